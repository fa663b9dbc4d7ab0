"""Anthropic's Messages API through the real `anthropic` SDK, and over raw HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import EnginePool
from tests.e2e.conftest import LiveServer, serve
from tests.e2e.test_concurrency import assert_sane_retry_after

ASK = [{"role": "user", "content": "What is 2+2? Answer with a number only."}]
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 30}},
        "required": ["city"],
    },
}


@pytest.fixture
def claude(live: LiveServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=live.root, api_key="any", max_retries=0) as client:
        yield client


def typed_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for frame in filter(None, text.split("\n\n")):
        kind, data = frame.split("\n")
        events.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def test_create_names_the_served_model_and_counts_tokens(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=20,
        messages=ASK,
        extra_body={"temperature": 0},  # type: ignore[arg-type]
    )
    assert message.id.startswith("msg_")
    assert message.model == "SmolLM2-135M-Instruct.Q4_1"
    assert message.role == "assistant"
    [block] = message.content
    assert block.type == "text"
    assert block.text
    assert message.stop_reason in {"end_turn", "max_tokens"}
    usage = message.usage
    assert usage.output_tokens > 0
    counted = claude.messages.count_tokens(model="m", messages=ASK)  # type: ignore[arg-type]
    assert counted.input_tokens == usage.input_tokens + (usage.cache_read_input_tokens or 0)


def test_the_stream_helper_gives_the_plain_reply(claude: anthropic.Anthropic) -> None:
    plain = claude.messages.create(
        model="m", max_tokens=20, messages=ASK, extra_body={"temperature": 0}
    )  # type: ignore[arg-type]
    with claude.messages.stream(
        model="m", max_tokens=20, messages=ASK, extra_body={"temperature": 0}
    ) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == plain.content[0].text  # type: ignore[union-attr]
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == plain.stop_reason
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert (final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0)) == (
        plain.usage.input_tokens + (plain.usage.cache_read_input_tokens or 0)
    )


async def test_the_async_client(live: LiveServer) -> None:
    async with anthropic.AsyncAnthropic(base_url=live.root, api_key="k", max_retries=0) as client:
        message = await client.messages.create(
            model="m",
            max_tokens=16,
            system="You are terse.",
            messages=ASK,  # type: ignore[arg-type]
            extra_body={"temperature": 0},
        )
    assert message.content[0].text  # type: ignore[union-attr]


def test_stop_sequences_are_named(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="m",
        max_tokens=200,
        messages=[{"role": "user", "content": "Count from 1 to 20, separated by commas."}],
        stop_sequences=["5"],
        extra_body={"temperature": 0},
    )
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "5"
    assert "5" not in message.content[0].text  # type: ignore[union-attr]


def test_a_forced_tool_call_and_its_result(claude: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    called = claude.messages.create(
        model="m",
        max_tokens=60,
        messages=ask,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather"},
        extra_body={"temperature": 0},
    )
    assert called.stop_reason == "tool_use"
    [use] = [b for b in called.content if b.type == "tool_use"]
    assert use.id.startswith("toolu_")
    assert use.name == "get_weather"
    assert isinstance(use.input, dict)
    assert use.input["city"]
    answered = claude.messages.create(
        model="m",
        max_tokens=30,
        messages=[
            *ask,
            {"role": "assistant", "content": called.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21 C"}
                ],
            },
        ],  # type: ignore[list-item]
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "none"},
        extra_body={"temperature": 0},
    )
    assert answered.content[0].type == "text"


def test_typed_errors_reach_the_sdk(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model="m",
            max_tokens=10,
            messages=[{"role": "user", "content": [{"type": "image", "source": {}}]}],  # type: ignore[list-item]
        )
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "image" in caught.value.body["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"messages": ASK}, "max_tokens"),
        ({"max_tokens": 5, "messages": ASK, "temperature": 1.5}, "temperature"),
        ({"max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]}, "role"),
        (
            {"max_tokens": 5, "messages": ASK, "tools": [{"type": "web_search_20250305"}]},
            "tools[0].type",
        ),
        ({"max_tokens": 5, "messages": ASK, "tool_choice": {"type": "any"}}, "tools"),
        ({"max_tokens": 5, "messages": []}, "messages"),
    ],
)
def test_invalid_requests_get_anthropics_envelope(
    live: LiveServer, body: dict[str, Any], needle: str
) -> None:
    reply = httpx.post(f"{live.root}/v1/messages", json=body, timeout=30)
    assert reply.status_code == 400, reply.text
    assert reply.json()["type"] == "error"
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert needle in reply.text


def test_raw_stream_events_come_in_anthropics_order(live: LiveServer) -> None:
    body = {"model": "m", "max_tokens": 12, "messages": ASK, "temperature": 0, "stream": True}
    reply = httpx.post(f"{live.root}/v1/messages", json=body, timeout=60)
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = typed_events(reply.text)
    kinds = [kind for kind, _ in events]
    assert all(kind == data["type"] for kind, data in events)
    deltas = kinds.count("content_block_delta")
    assert kinds == [
        "message_start",
        "ping",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert all(d["index"] == 0 for k, d in events if k.startswith("content_block"))
    assert events[2][1]["content_block"] == {"type": "text", "text": ""}
    assert events[-2][1]["usage"]["output_tokens"] >= 1


def test_a_forced_call_streams_as_input_json(live: LiveServer) -> None:
    body = {
        "model": "m",
        "max_tokens": 60,
        "messages": [{"role": "user", "content": "Weather in Rome?"}],
        "tools": [WEATHER],
        "tool_choice": {"type": "any"},
        "temperature": 0,
        "stream": True,
    }
    events = typed_events(httpx.post(f"{live.root}/v1/messages", json=body, timeout=60).text)
    starts = [d for k, d in events if k == "content_block_start"]
    assert starts[-1]["content_block"]["type"] == "tool_use"
    assert starts[-1]["content_block"]["input"] == {}
    partial = "".join(
        d["delta"]["partial_json"]
        for k, d in events
        if k == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(partial)["city"]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


@pytest.fixture
def keyed(engine_pool: EnginePool, model_path: Path) -> Iterator[LiveServer]:
    yield from serve(engine_pool, model_path, api_keys=["secret"])


def test_keys_by_x_api_key_or_bearer_on_every_protocol(keyed: LiveServer) -> None:
    with anthropic.Anthropic(base_url=keyed.root, api_key="wrong", max_retries=0) as client:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            client.messages.create(model="m", max_tokens=5, messages=ASK)  # type: ignore[arg-type]
        assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with anthropic.Anthropic(base_url=keyed.root, api_key="secret", max_retries=0) as client:
        assert client.messages.create(model="m", max_tokens=5, messages=ASK).content  # type: ignore[arg-type]
    chat = {"model": "m", "max_tokens": 2, "messages": ASK}
    headers = {"x-api-key": "secret", "anthropic-version": "2023-06-01"}
    assert (
        httpx.post(f"{keyed.base_url}/chat/completions", json=chat, headers=headers).status_code
        == 200
    )


def test_quiet_streams_get_pings_and_the_sdk_reads_through_them(
    live: LiveServer, claude: anthropic.Anthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.serving.anthropic as adapter

    monkeypatch.setattr(adapter, "PING_AFTER", 0.0005)  # every gap between tokens is "long"
    body = {"model": "m", "max_tokens": 12, "messages": ASK, "temperature": 0, "stream": True}
    kinds = [
        k
        for k, _ in typed_events(httpx.post(f"{live.root}/v1/messages", json=body, timeout=60).text)
    ]
    assert kinds.count("ping") > 1
    with claude.messages.stream(
        model="m", max_tokens=12, messages=ASK, extra_body={"temperature": 0}
    ) as stream:  # type: ignore[arg-type]
        assert "".join(stream.text_stream)


def test_a_full_queue_and_a_big_body_keep_anthropics_envelope(
    engine_pool: EnginePool, model_path: Path
) -> None:
    servers = serve(engine_pool, model_path, slots=1, queue_size=0, limits={"max_body_bytes": 4096})
    live = next(servers)
    try:
        huge = {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x" * 8000}],
        }
        too_big = httpx.post(f"{live.root}/v1/messages", json=huge, timeout=30)
        assert too_big.status_code == 413
        assert too_big.json()["error"]["type"] == "request_too_large"
        count = [{"role": "user", "content": "Count from 1 to 300, separated by commas."}]
        long = {
            "model": "m",
            "max_tokens": 300,
            "messages": count,
            "stream": True,
            "temperature": 0,
        }
        with httpx.stream("POST", f"{live.root}/v1/messages", json=long, timeout=60) as running:
            lines = running.iter_lines()  # kept: dropping it would close the stream
            next(lines)  # the only slot is busy now
            busy = httpx.post(
                f"{live.root}/v1/messages", json={**long, "stream": False}, timeout=30
            )
        assert busy.status_code == 503
        assert_sane_retry_after(busy.headers)
        assert busy.json() == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": busy.json()["error"]["message"]},
        }
    finally:
        next(servers, None)
