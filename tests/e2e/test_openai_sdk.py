"""The OpenAI Python SDK (sync, async, streaming, env vars) and curl against a live server."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import LiveServer

HELLO: list[Any] = [{"role": "user", "content": "Hello!"}]
STORY: list[Any] = [{"role": "user", "content": "Write a very long story about a dragon."}]


def stream_text(client: openai.OpenAI, **request: Any) -> tuple[str, list[Any]]:
    chunks = list(client.chat.completions.create(stream=True, **request))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_the_seed_curl_example_works_verbatim(live: LiveServer) -> None:
    body = (
        '{"model": "gpt-4", "messages": [{"role": "user", "content": "Hello!"}], '
        '"temperature": 0.7, "max_tokens": 100}'
    )
    response = httpx.post(
        f"{live.base_url}/chat/completions",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["model"] == live.engine.model_id
    assert data["choices"][0]["message"]["content"]


def test_sync_client_non_streaming(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4", messages=HELLO, max_tokens=20)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_env_vars_configure_a_default_client(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", live.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-anything")
    with openai.OpenAI(max_retries=0) as from_env:
        completion = from_env.chat.completions.create(
            model="whatever", messages=HELLO, max_tokens=3
        )
    assert completion.choices[0].message.content is not None


async def test_async_client_streaming_and_not(live: LiveServer) -> None:
    client = live.async_client()
    request: dict[str, Any] = {"model": "m", "messages": HELLO, "max_tokens": 12, "temperature": 0}
    completion = await client.chat.completions.create(**request)
    stream = await client.chat.completions.create(stream=True, **request)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == completion.choices[0].message.content
    await client.close()


def test_stream_protocol_invariants(client: openai.OpenAI) -> None:
    text, chunks = stream_text(
        client,
        model="m",
        messages=STORY,
        max_tokens=30,
        temperature=0,
        stream_options={"include_usage": True},
    )
    assert len({c.id for c in chunks}) == 1
    assert len({c.created for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1
    assert finishes[0].choices[0].finish_reason == "length"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 30
    assert all(c.usage is None for c in chunks[:-1])
    assert text


def test_stream_equals_non_stream_with_the_same_usage(client: openai.OpenAI) -> None:
    request: dict[str, Any] = {"model": "m", "messages": STORY, "max_tokens": 60, "temperature": 0}
    full = client.chat.completions.create(**request)
    text, chunks = stream_text(client, stream_options={"include_usage": True}, **request)
    assert text == full.choices[0].message.content
    assert chunks[-1].usage == full.usage


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_token_caps_end_with_length(client: openai.OpenAI, field: str) -> None:
    completion = client.chat.completions.create(
        model="m", messages=STORY, temperature=0, **{field: 7}
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 7


def test_max_completion_tokens_wins(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="m", messages=STORY, temperature=0, max_tokens=50, max_completion_tokens=4
    )
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 4


def test_stop_strings_spanning_tokens_never_appear(client: openai.OpenAI) -> None:
    request: dict[str, Any] = {"model": "m", "messages": STORY, "max_tokens": 80, "temperature": 0}
    reference = client.chat.completions.create(**request).choices[0].message.content
    assert reference is not None
    words = reference.split(" ")
    stop = " ".join(words[5:7])  # two words: several tokens
    assert len(stop) > 4
    expected = reference[: reference.index(stop)]
    full = client.chat.completions.create(stop=stop, **request)
    assert full.choices[0].message.content == expected
    assert full.choices[0].finish_reason == "stop"
    text, chunks = stream_text(client, stop=[stop, "zzzz-not-there"], **request)
    assert text == expected
    assert all(stop not in (c.choices[0].delta.content or "") for c in chunks if c.choices)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_a_fixed_seed_reproduces_a_sampled_reply(client: openai.OpenAI) -> None:
    request: dict[str, Any] = {
        "model": "m",
        "messages": STORY,
        "max_tokens": 40,
        "temperature": 1.0,
        "seed": 1234,
    }
    first = client.chat.completions.create(**request).choices[0].message.content
    second = client.chat.completions.create(**request).choices[0].message.content
    streamed, _ = stream_text(client, **request)
    assert first == second == streamed


def test_penalties_are_accepted_and_do_not_change_the_output(client: openai.OpenAI) -> None:
    request: dict[str, Any] = {"model": "m", "messages": STORY, "max_tokens": 30, "temperature": 0}
    plain = client.chat.completions.create(**request)
    penalised = client.chat.completions.create(
        presence_penalty=1.5, frequency_penalty=-1, **request
    )
    assert penalised.choices[0].message.content == plain.choices[0].message.content


@pytest.mark.parametrize(
    "prompt", ["Translate to Chinese: I love you.", "Reply with only emoji: happy birthday"]
)
def test_multibyte_characters_are_never_broken_in_a_stream(
    client: openai.OpenAI, prompt: str
) -> None:
    request: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 41,  # odd, to cut some emoji midway: the cut must not show
        "temperature": 0,
    }
    text, chunks = stream_text(client, **request)
    deltas = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert any(ord(ch) > 0x2FFF for ch in text), "the prompt no longer yields CJK/emoji"
    assert all("\ufffd" not in d for d in deltas)
    full = client.chat.completions.create(**request).choices[0].message.content
    assert text == full


def test_message_shapes_the_sdk_sends(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="m",
        max_tokens=5,
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "system", "content": [{"type": "text", "text": "You are kind."}]},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}], "name": "ann"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
            {"role": "user", "content": "Thanks"},
        ],
        user="user-1",
    )
    assert completion.choices[0].message.content is not None


@pytest.mark.parametrize(
    ("request_fields", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"n": 9}, "n"),
        ({"messages": []}, "messages"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"presence_penalty": -3}, "presence_penalty"),
    ],
)
def test_bad_input_raises_bad_request_and_the_server_keeps_serving(
    client: openai.OpenAI, request_fields: dict[str, Any], param: str
) -> None:
    request: dict[str, Any] = {"model": "m", "messages": HELLO, **request_fields}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**request)
    assert caught.value.status_code == 400
    assert caught.value.param == param
    assert client.chat.completions.create(model="m", messages=HELLO, max_tokens=2).choices


def test_context_length_exceeded_is_a_bad_request(client: openai.OpenAI) -> None:
    long = [{"role": "user", "content": "word " * 2000}]
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="m", messages=long, stream=stream)
        assert caught.value.code == "context_length_exceeded"
        assert caught.value.param == "messages"


def test_models_list_retrieve_and_not_found(client: openai.OpenAI, live: LiveServer) -> None:
    models = client.models.list().data
    assert [m.id for m in models] == [live.engine.model_id]
    assert models[0].owned_by
    assert models[0].created > 0
    assert client.models.retrieve(live.engine.model_id).id == live.engine.model_id
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-4")
    assert caught.value.code == "model_not_found"


def test_base_url_without_v1_gets_a_not_found_that_explains(live: LiveServer) -> None:
    with (
        openai.OpenAI(base_url=live.root, api_key="x", max_retries=0) as wrong,
        pytest.raises(openai.NotFoundError, match="/v1"),
    ):
        wrong.chat.completions.create(model="m", messages=HELLO)
