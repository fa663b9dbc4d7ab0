"""Configured request limits: each breach is a 4xx in the OpenAI envelope."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ClientFactory
from tests.api.test_chat_api import assert_error, sse_events

HI: list[Any] = [{"role": "user", "content": "Hi"}]
LIMITS = {"max_body_bytes": 2048, "max_messages": 3, "max_tokens": 50, "max_stop_length": 5}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HI * 4}, "messages"),
        ({"messages": HI, "max_tokens": 51}, "max_tokens"),
        ({"messages": HI, "max_completion_tokens": 99}, "max_completion_tokens"),
        ({"messages": HI, "stop": "toolong"}, "stop"),
        ({"messages": HI, "stop": ["ok", "toolong"]}, "stop[1]"),
    ],
)
async def test_requests_beyond_the_limits_are_400_naming_the_field(
    client_for: ClientFactory, body: dict[str, Any], param: str
) -> None:
    async with client_for(limits=LIMITS) as client:
        response = await client.post("/v1/chat/completions", json=body)
        assert_error(response, 400, param=param)


async def test_requests_within_the_limits_are_served(client_for: ClientFactory) -> None:
    async with client_for(limits=LIMITS) as client:
        body = {"messages": HI * 3, "max_tokens": 50, "stop": ["ok", "fine"]}
        assert (await client.post("/v1/chat/completions", json=body)).status_code == 200


async def test_a_body_over_the_size_limit_is_413_in_the_envelope(client_for: ClientFactory) -> None:
    async with client_for(limits=LIMITS) as client:
        body = {"messages": [{"role": "user", "content": "x" * 4000}]}
        response = await client.post("/v1/chat/completions", json=body)
        assert response.status_code == 413
        assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("stream", [False, True])
async def test_the_time_limit_ends_a_reply_as_length_with_what_it_has(
    client_for: ClientFactory, stream: bool
) -> None:
    async with client_for(limits={"request_timeout": 0.5}) as client:
        body = {
            "messages": [{"role": "user", "content": "Count from 1 to 1000."}],
            "max_tokens": 900,
            "temperature": 0,
            "stream": stream,
            **({"stream_options": {"include_usage": True}} if stream else {}),
        }
        response = await client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200
        if stream:
            chunks = sse_events(response.text)[:-1]
            finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
            usage = chunks[-1]["usage"]
        else:
            finish = response.json()["choices"][0]["finish_reason"]
            usage = response.json()["usage"]
        assert finish == "length"
        assert 0 < usage["completion_tokens"] < 900


async def test_the_max_tokens_ceiling_also_caps_requests_that_set_none(
    client_for: ClientFactory,
) -> None:
    async with client_for(limits={"max_tokens": 3}) as client:
        body = {"messages": [{"role": "user", "content": "Count to 100."}], "temperature": 0}
        reply = (await client.post("/v1/chat/completions", json=body)).json()
        assert reply["usage"]["completion_tokens"] <= 3
