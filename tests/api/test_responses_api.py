"""`/v1/responses` over raw HTTP: event order and field shapes, errors naming their
field, truncation, and the store's bounds (in-process app, real model)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.api.conftest import ClientFactory
from tests.api.test_chat_api import assert_error

Client = AsyncTestClient[Litestar]
ASK = "Name a colour."


def typed_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event line, data) per event; no `[DONE]` in this protocol."""
    assert "[DONE]" not in text
    frames = [frame for frame in text.split("\n\n") if frame]
    events = []
    for frame in frames:
        kind, data = frame.split("\n")
        assert kind.startswith("event: ")
        assert data.startswith("data: ")
        events.append((kind.removeprefix("event: "), msgspec.json.decode(data[6:])))
    return events


async def test_a_response_has_openais_fields_and_real_usage(client: Client) -> None:
    body = {"model": "gpt-4.1", "input": ASK, "max_output_tokens": 12, "temperature": 0}
    reply = await client.post("/v1/responses", json=body)
    assert reply.status_code == 200, reply.text
    response = reply.json()
    assert response["id"].startswith("resp_")
    assert response["object"] == "response"
    assert response["model"] == "SmolLM2-135M-Instruct.Q4_1"
    assert response["status"] in {"completed", "incomplete"}
    [item] = response["output"]
    assert item["type"] == "message"
    assert item["id"].startswith("msg_")
    assert item["role"] == "assistant"
    [part] = item["content"]
    assert part["type"] == "output_text"
    assert part["annotations"] == []
    assert part["text"]
    usage = response["usage"]
    assert usage["output_tokens"] <= 12
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
    assert usage["input_tokens_details"] == {"cached_tokens": 0}
    # the same conversation as a chat request reads as many prompt tokens
    chat = await client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": ASK}], "max_tokens": 1},
    )
    assert chat.json()["usage"]["prompt_tokens"] == usage["input_tokens"]
    for echoed, value in {
        "max_output_tokens": 12,
        "temperature": 0.0,
        "top_p": 1.0,
        "tools": [],
        "tool_choice": "auto",
        "truncation": "disabled",
        "parallel_tool_calls": True,
        "store": True,
        "previous_response_id": None,
        "text": {"format": {"type": "text"}},
        "metadata": {},
    }.items():
        assert response[echoed] == value, echoed


async def test_a_reply_cut_by_max_output_tokens_is_incomplete(client: Client) -> None:
    body = {"input": "Tell me a long story.", "max_output_tokens": 3, "temperature": 0}
    response = (await client.post("/v1/responses", json=body)).json()
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"
    assert response["usage"]["output_tokens"] == 3


async def test_stream_events_come_in_openais_order(client: Client) -> None:
    body = {"input": ASK, "max_output_tokens": 12, "temperature": 0, "stream": True}
    reply = await client.post("/v1/responses", json=body)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = typed_events(reply.text)
    kinds = [kind for kind, _ in events]
    assert all(kind == data["type"] for kind, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    deltas = kinds.count("response.output_text.delta")
    assert deltas >= 1
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        kinds[-1],
    ]
    assert kinds[-1] in {"response.completed", "response.incomplete"}
    created = events[0][1]["response"]
    assert created["status"] == "in_progress"
    assert created["output"] == []
    assert created["usage"] is None
    added = events[2][1]
    assert added["item"]["content"] == []
    assert added["item"]["status"] == "in_progress"
    text = "".join(d["delta"] for k, d in events if k == "response.output_text.delta")
    assert events[-4][1]["text"] == text
    final = events[-1][1]["response"]
    assert final["id"] == created["id"]
    assert final["output"][0]["content"][0]["text"] == text
    assert final["output"][0]["id"] == added["item"]["id"]
    assert final["usage"]["output_tokens"] >= 1


async def test_a_forced_call_streams_as_a_function_call_item(client: Client) -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    }
    body = {
        "input": "Weather in Paris?",
        "tools": [tool],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "temperature": 0,
        "max_output_tokens": 60,
        "stream": True,
    }
    events = typed_events((await client.post("/v1/responses", json=body)).text)
    kinds = [kind for kind, _ in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    added, done = events[2][1]["item"], events[5][1]["item"]
    assert added["type"] == "function_call"
    assert added["arguments"] == ""
    assert (added["id"], added["call_id"]) == (done["id"], done["call_id"])
    assert done["call_id"].startswith("call_")
    assert msgspec.json.decode(done["arguments"])["city"]
    assert events[4][1]["arguments"] == done["arguments"]
    assert events[-1][1]["response"]["output"] == [done]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"input": [{"role": "user", "content": [{"type": "input_image"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file"}]}]},
            "input[0].content[0].type",
        ),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"input": [{"type": "web_search_call"}]}, "input[0].type"),
        (
            {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
        ),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({"input": [{"type": "item_reference", "id": "msg_unknown"}]}, "input[0].id"),
        ({"input": ["just a string"]}, "input[0]"),
        ({"input": "x", "tools": [{"type": "teleport"}]}, "tools[0].type"),
        ({"input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        (
            {"input": "x", "tool_choice": {"type": "function", "name": "nope"}, "tools": []},
            "tool_choice.name",
        ),
        ({"input": "x", "tool_choice": {"type": "file_search"}}, "tool_choice.type"),
        ({"input": "x", "background": True}, "background"),
        ({"input": "x", "conversation": "conv_1"}, "conversation"),
        ({"input": "x", "prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"input": "x", "include": ["everything"]}, "include[0]"),
        ({"input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"input": "x", "text": {"format": {"type": "json_schema"}}}, "text.format.name"),
        (
            {
                "input": "x",
                "text": {
                    "format": {
                        "type": "json_schema",
                        "name": "n",
                        "strict": True,
                        "schema": {"type": "integer", "minimum": 1},
                    }
                },
            },
            "text.format.schema.minimum",
        ),
        ({"input": "x", "temperature": 3}, "temperature"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "x", "truncation": "sometimes"}, "truncation"),
        ({"input": "x", "stream_options": {}}, "stream_options"),
        ({}, "input"),
        ({"input": "x", "previous_response_id": "resp_unknown"}, "previous_response_id"),
    ],
)
async def test_invalid_fields_are_400_naming_the_param(
    client: Client, body: dict[str, Any], param: str
) -> None:
    response = await client.post("/v1/responses", json=body)
    error = assert_error(response, 400, param=param)
    # OpenAI's code for a response that is gone; the other mistakes carry none
    gone = param == "previous_response_id"
    assert error["code"] == ("previous_response_not_found" if gone else None)


async def test_an_unknown_previous_response_is_openais_400(client: Client) -> None:
    body = {"input": "x", "previous_response_id": "resp_unknown"}
    error = assert_error(
        await client.post("/v1/responses", json=body),
        400,
        param="previous_response_id",
        code="previous_response_not_found",
    )
    assert "resp_unknown" in error["message"]


async def test_limits_apply_as_in_chat(client_for: ClientFactory) -> None:
    async with client_for(limits={"max_tokens": 10, "max_messages": 2}) as client:
        too_many = await client.post("/v1/responses", json={"input": ["a", "b", "c"]})
        assert_error(too_many, 400, param="input")
        capped = await client.post("/v1/responses", json={"input": "x", "max_output_tokens": 11})
        assert_error(capped, 400, param="max_output_tokens")
        ok = await client.post("/v1/responses", json={"input": "Hi", "temperature": 0})
        assert ok.json()["usage"]["output_tokens"] <= 10


async def test_keys_guard_the_responses_routes(client_for: ClientFactory) -> None:
    async with client_for(api_keys=["secret"]) as client:
        for method, path in [
            ("POST", "/v1/responses"),
            ("GET", "/v1/responses/resp_1"),
            ("DELETE", "/v1/responses/resp_1"),
            ("GET", "/v1/responses/resp_1/input_items"),
        ]:
            response = await client.request(method, path, json={"input": "x"})
            assert_error(response, 401, code="invalid_api_key")


HISTORY = [  # the first item alone is past the context; what follows is short to read
    {"role": "user", "content": "I will tell you a long story. " + "Once upon a time. " * 220},
    {"role": "assistant", "content": "Go on."},
    {"role": "user", "content": "Then what?" + " And then. " * 20},
    {"role": "assistant", "content": "Tell me more."},
    {"role": "user", "content": "What colour is the sky?"},
]


async def test_truncation_auto_drops_the_oldest_items_until_it_fits(
    client_for: ClientFactory,
) -> None:
    async with client_for() as client:  # 1,024 tokens of context
        body = {"input": HISTORY, "instructions": "Be brief.", "max_output_tokens": 8}
        refused = await client.post("/v1/responses", json=body)
        assert_error(refused, 400, param="input", code="context_length_exceeded")
        fitted = await client.post("/v1/responses", json={**body, "truncation": "auto"})
        assert fitted.status_code == 200, fitted.text
        response = fitted.json()
        assert response["truncation"] == "auto"
        assert response["usage"]["input_tokens"] + 8 <= 1024
        # the instructions and the last turn are kept; only whole items were dropped
        alone = await client.post(
            "/v1/responses",
            json={"input": HISTORY[-1:], "instructions": "Be brief.", "max_output_tokens": 1},
        )
        assert response["usage"]["input_tokens"] > alone.json()["usage"]["input_tokens"]


async def test_store_false_keeps_nothing(client_for: ClientFactory, tmp_path: Path) -> None:
    async with client_for(responses={"dir": str(tmp_path)}) as client:
        body = {"input": "Hi", "max_output_tokens": 2, "store": False}
        response = (await client.post("/v1/responses", json=body)).json()
        assert response["store"] is False
        assert_error(await client.get(f"/v1/responses/{response['id']}"), 404, param="response_id")
        kept = (await client.post("/v1/responses", json={**body, "store": True})).json()
        assert (await client.get(f"/v1/responses/{kept['id']}")).json() == kept
    with sqlite3.connect(tmp_path / "responses.sqlite3") as db:
        ids = [row[0] for row in db.execute("SELECT id FROM responses")]
    assert ids == [kept["id"]]


async def test_stored_responses_expire_after_the_ttl(
    client_for: ClientFactory, tmp_path: Path
) -> None:
    async with client_for(responses={"dir": str(tmp_path), "ttl": 1.0}) as client:
        body = {"input": "Hi", "max_output_tokens": 2}
        response = (await client.post("/v1/responses", json=body)).json()
        assert (await client.get(f"/v1/responses/{response['id']}")).status_code == 200
        await anyio.sleep(1.2)
        assert_error(await client.get(f"/v1/responses/{response['id']}"), 404, param="response_id")
        follow = {**body, "previous_response_id": response["id"]}
        assert_error(
            await client.post("/v1/responses", json=follow),
            400,
            param="previous_response_id",
            code="previous_response_not_found",
        )


async def test_the_store_can_be_turned_off(client_for: ClientFactory, tmp_path: Path) -> None:
    async with client_for(responses={"dir": str(tmp_path / "off"), "store": False}) as client:
        response = (
            await client.post("/v1/responses", json={"input": "Hi", "max_output_tokens": 2})
        ).json()
        assert response["store"] is False
        follow = {"input": "more", "previous_response_id": response["id"]}
        assert_error(
            await client.post("/v1/responses", json=follow),
            400,
            param="previous_response_id",
            code="previous_response_not_found",
        )
    assert not (tmp_path / "off").exists()


async def test_input_items_are_listed_as_openai_pages_them(
    client_for: ClientFactory, tmp_path: Path
) -> None:
    items = [{"role": "user", "content": f"message {i}"} for i in range(5)]
    async with client_for(responses={"dir": str(tmp_path)}) as client:
        body = {"input": items, "max_output_tokens": 1}
        response_id = (await client.post("/v1/responses", json=body)).json()["id"]
        url = f"/v1/responses/{response_id}/input_items"
        page = (await client.get(url)).json()
        assert page["object"] == "list"
        assert [i["content"] for i in page["data"]] == [f"message {i}" for i in reversed(range(5))]
        assert all(i["id"].startswith("msg_") and i["type"] == "message" for i in page["data"])
        first = (await client.get(url, params={"order": "asc", "limit": 2})).json()
        assert [i["content"] for i in first["data"]] == ["message 0", "message 1"]
        assert first["has_more"] is True
        assert first["first_id"] == first["data"][0]["id"]
        rest = (
            await client.get(url, params={"order": "asc", "limit": 10, "after": first["last_id"]})
        ).json()
        assert [i["content"] for i in rest["data"]] == ["message 2", "message 3", "message 4"]
        assert rest["has_more"] is False
        assert_error(await client.get(url, params={"limit": 0}), 400, param="limit")
        assert_error(await client.get(url, params={"after": "msg_x"}), 400, param="after")
        assert_error(await client.get("/v1/responses/resp_x/input_items"), 404, param="response_id")
        # an item of a stored response can be referenced by id
        reference = {"input": [{"type": "item_reference", "id": page["data"][0]["id"]}]}
        referenced = await client.post("/v1/responses", json={**reference, "max_output_tokens": 1})
        assert referenced.status_code == 200, referenced.text


@pytest.mark.parametrize("stream", [False, True])
async def test_logprobs_come_with_the_text_when_included(client: Client, stream: bool) -> None:
    body = {
        "input": ASK,
        "max_output_tokens": 6,
        "temperature": 0,
        "top_logprobs": 2,
        "include": ["message.output_text.logprobs"],
        "stream": stream,
    }
    reply = await client.post("/v1/responses", json=body)
    if stream:
        events = typed_events(reply.text)
        deltas = [d for k, d in events if k == "response.output_text.delta"]
        assert sum(len(d["logprobs"]) for d in deltas) == 6
        response = events[-1][1]["response"]
    else:
        response = reply.json()
    entries = response["output"][0]["content"][0]["logprobs"]
    assert len(entries) == response["usage"]["output_tokens"] == 6
    assert all(e["logprob"] <= 0 and len(e["top_logprobs"]) == 2 for e in entries)
    text = response["output"][0]["content"][0]["text"]
    assert bytes(b for e in entries for b in e["bytes"]).decode() == text
    plain = await client.post("/v1/responses", json={**body, "include": [], "stream": False})
    assert plain.json()["output"][0]["content"][0]["logprobs"] == []


@pytest.mark.parametrize("stream", [False, True])
async def test_the_response_id_comes_in_a_header_before_the_body(
    client: Client, stream: bool
) -> None:
    """What a proxy in front of several replicas records to route `previous_response_id`
    to the replica that stored the response (deploy/haproxy.cfg)."""
    body = {"input": ASK, "max_output_tokens": 4, "stream": stream}
    reply = await client.post("/v1/responses", json=body)
    assert reply.status_code == 200, reply.text
    if stream:
        [(_, created), *_] = typed_events(reply.text)
        response_id = created["response"]["id"]
    else:
        response_id = reply.json()["id"]
    assert reply.headers["llm-response-id"] == response_id
