"""The app in-process with the real model: wire shapes, errors, and error envelopes."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.api.conftest import ClientFactory

Client = AsyncTestClient[Litestar]
HELLO = [{"role": "user", "content": "Hello!"}]


def assert_error(
    response: Any, status: int, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["code"] is None or isinstance(error["code"], str)
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error


def sse_events(text: str) -> list[Any]:
    assert text.endswith("data: [DONE]\n\n")
    frames = text.split("\n\n")
    assert frames[-1] == ""
    return [
        "[DONE]" if f == "data: [DONE]" else msgspec.json.decode(f.removeprefix("data: "))
        for f in frames[:-1]
    ]


async def test_non_streaming_shape_and_usage(client: Client) -> None:
    response = await client.post(
        "/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO, "max_tokens": 5}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert body["model"] == "SmolLM2-135M-Instruct.Q4_1"  # the loaded model, not "gpt-4"
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["logprobs"] is None
    assert choice["finish_reason"] in {"stop", "length"}
    usage = body["usage"]
    assert 0 < usage["completion_tokens"] <= 5
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_streaming_is_sse_in_openai_order(client: Client) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={"messages": HELLO, "max_tokens": 6, "stream": True, "temperature": 0},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1
    assert len({c["created"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishing = [c for c in chunks if c["choices"][0]["finish_reason"] is not None]
    assert finishing == [chunks[-1]]
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert all("usage" not in c for c in chunks)


async def test_stream_usage_chunk_matches_non_stream_usage(client: Client) -> None:
    request = {"messages": HELLO, "max_tokens": 8, "temperature": 0}
    plain = (await client.post("/v1/chat/completions", json=request)).json()
    streamed = await client.post(
        "/v1/chat/completions",
        json={**request, "stream": True, "stream_options": {"include_usage": True}},
    )
    chunks = sse_events(streamed.text)[:-1]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == plain["usage"]
    assert all(c["usage"] is None for c in chunks[:-1])
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert text == plain["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({}, "messages"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": HELLO, "temperature": 2.5}, "temperature"),
        ({"messages": HELLO, "temperature": "hot"}, "temperature"),
        ({"messages": HELLO, "top_p": 0}, "top_p"),
        ({"messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"messages": HELLO, "presence_penalty": 3}, "presence_penalty"),
        ({"messages": HELLO, "frequency_penalty": -2.5}, "frequency_penalty"),
        ({"messages": HELLO, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": HELLO, "n": 0}, "n"),
        ({"messages": HELLO, "n": 9}, "n"),
        ({"messages": HELLO, "top_logprobs": 21, "logprobs": True}, "top_logprobs"),
        ({"messages": HELLO, "tool_choice": "required"}, "tool_choice"),
        ({"messages": HELLO, "stream": "yes please"}, "stream"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0].type",
        ),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(
    client: Client, body: dict[str, Any], param: str
) -> None:
    response = await client.post("/v1/chat/completions", json=body)
    error = assert_error(response, 400, param=param)
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"messages": [', "application/json"),
        (b"", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"\xff", "text/plain"),
    ],
)
async def test_malformed_bodies_are_400(client: Client, content: bytes, content_type: str) -> None:
    response = await client.post(
        "/v1/chat/completions", content=content, headers={"content-type": content_type}
    )
    assert_error(response, 400)


async def test_non_utf8_and_absurdly_nested_json_are_400_not_500(client: Client) -> None:
    latin1 = '{"messages": [{"role": "user", "content": "caf\xe9"}]}'.encode("latin-1")
    nested = b'{"messages": [{"role": "user", "content": "x"}], "metadata": ' + b"[" * 5000
    nested += b"]" * 5000 + b"}"
    for body in (latin1, nested):
        response = await client.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
        assert_error(response, 400)
    assert (await client.get("/health")).status_code == 200


async def test_body_without_json_content_type_is_still_read(client: Client) -> None:
    """curl -d without -H sends form encoding; the body is JSON all the same."""
    response = await client.post(
        "/v1/chat/completions",
        content=msgspec.json.encode({"messages": HELLO, "max_tokens": 2}),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200


async def test_unknown_fields_are_tolerated(client: Client) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={
            "messages": HELLO,
            "max_tokens": 2,
            "metadata": {"a": "b"},
            "store": False,
            "some_future_field": 1,
        },
    )
    assert response.status_code == 200


async def test_prompt_longer_than_the_context_is_400_before_anything_starts(client: Client) -> None:
    long = [{"role": "user", "content": "word " * 2000}]  # > n_ctx 1024 tokens
    for stream in (False, True):
        response = await client.post(
            "/v1/chat/completions", json={"messages": long, "stream": stream, "max_tokens": 10}
        )
        error = assert_error(response, 400, param="messages", code="context_length_exceeded")
        assert "maximum context length is 1024 tokens" in error["message"]
        assert "in the messages, 10 in the completion" in error["message"]


async def test_a_reply_that_outgrows_the_context_ends_with_length(
    client_for: ClientFactory,
) -> None:
    # ~200 prompt tokens in a 256-token context (reading 800 of a 1,024-token one took
    # seconds here), and a reply that would go on far longer.
    messages = [
        {"role": "system", "content": "Notes: " + "apple banana cherry " * 60},
        {"role": "user", "content": "Count from 1 to 1000, separated by commas."},
    ]
    async with client_for(model={"n_ctx": 256}) as client:
        for max_tokens in (None, 5000):  # no cap, and a cap beyond the context
            response = await client.post(
                "/v1/chat/completions",
                json={"messages": messages, "temperature": 0, "max_tokens": max_tokens},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["choices"][0]["finish_reason"] == "length"
            assert body["usage"]["prompt_tokens"] > 175
            assert body["usage"]["total_tokens"] == 256


async def test_models_list_and_retrieve(client: Client) -> None:
    listing = (await client.get("/v1/models")).json()
    assert listing["object"] == "list"
    (model,) = listing["data"]
    assert set(model) == {"id", "object", "created", "owned_by"} | {
        "state",
        "aliases",
        "context_length",
        "default",
    }
    assert model["object"] == "model"
    assert (model["state"], model["aliases"], model["default"]) == ("loaded", [], True)
    assert model["context_length"] == 1024  # the tests' n_ctx
    assert "/" not in model["id"]
    assert not model["id"].endswith(".gguf")
    one = await client.get(f"/v1/models/{model['id']}")
    assert one.json() == model
    missing = await client.get("/v1/models/gpt-4")
    assert_error(missing, 404, param="model", code="model_not_found")


async def test_health(client: Client) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize("path", ["/chat/completions", "/models", "/models/x"])
async def test_missing_v1_prefix_gets_a_hint(client: Client, path: str) -> None:
    method = client.post if path == "/chat/completions" else client.get
    response = (
        await method(path, json={"messages": HELLO})
        if method == client.post
        else await method(path)
    )
    error = assert_error(response, 404)
    assert "/v1" in error["message"]
    assert "base_url" in error["message"]


async def test_unknown_path_and_wrong_method(client: Client) -> None:
    error = assert_error(await client.get("/v2/whatever"), 404)
    assert "base_url" not in error["message"]
    assert_error(await client.get("/v1/chat/completions"), 405)


async def test_openapi_schema_describes_the_chat_request(client: Client) -> None:
    schema = (await client.get("/docs/openapi.json")).json()
    operation = schema["paths"]["/v1/chat/completions"]["post"]
    assert "requestBody" in operation
    assert "200" in operation["responses"]
