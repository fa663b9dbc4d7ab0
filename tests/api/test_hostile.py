"""Hostile and broken input: never a 5xx, always the OpenAI envelope, server alive after.

Bodies come from hypothesis (random JSON, and chat requests with random values in every
field) as well as hand-written cases the generators rarely hit.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.api.conftest import ClientFactory

Client = AsyncTestClient[Litestar]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stream",
    "stop",
    "n",
    "user",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "stream_options",
    "response_format",
    "tools",
    "tool_choice",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "parallel_tool_calls",
]
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant", "developer", "tool", "x"])},
        optional={"content": json_values, "name": json_values},
    ),
    max_size=3,
)
chat_bodies = st.fixed_dictionaries(
    {"messages": messages | json_values},
    optional={field: json_values for field in FIELDS if field != "messages"},
)


def check_envelope(status: int, body: bytes) -> None:
    assert status < 500, body
    if status >= 400:
        error = json.loads(body)["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] is None or isinstance(error["code"], str)


async def send(client: Client, payload: Any) -> None:
    """Send, capping replies so valid bodies stay quick; stream bodies are read whole."""
    if isinstance(payload, dict) and isinstance(payload.get("messages"), list):
        payload = {**payload, "max_tokens": 2, "max_completion_tokens": None}
    response = await client.post("/v1/chat/completions", json=payload)
    check_envelope(response.status_code, response.content)


@pytest.mark.parametrize("strategy", [json_values, chat_bodies], ids=["any-json", "chat-shaped"])
async def test_generated_bodies_never_get_a_5xx(client_for: ClientFactory, strategy: Any) -> None:
    async with client_for(limits={"request_timeout": 5}) as client:
        examples: list[Any] = []

        @settings(
            max_examples=150,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(strategy)
        def collect(body: Any) -> None:
            examples.append(body)

        collect()
        for body in examples:
            await send(client, body)
        assert (await client.get("/health")).status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
        b'{"messages": [{"role": "user", "content": "hi"}], "top_p": Infinity}',
        b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e400}',
        b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -99999999999999999999}',
        b'{"messages": [{"role": "user", "content": "\\ud800"}]}',
        b'{"messages": "' + b"A" * 100_000 + b'"}',
        b"[" * 50_000,
        b"\x00\x01\x02",
        b"",
    ],
)
async def test_hand_written_hostile_bodies(client: Client, raw: bytes) -> None:
    response = await client.post(
        "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    check_envelope(response.status_code, response.content)
    assert 400 <= response.status_code < 500, response.text  # a lone surrogate too


async def test_an_astronomic_max_tokens_is_served_up_to_the_context(client: Client) -> None:
    body = (
        b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 0,'
        b' "max_tokens": 99999999999999999999}'
    )  # greedy: a sampled reply to "hi" sometimes ran to the end of the context
    response = await client.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    check_envelope(response.status_code, response.content)
    assert response.status_code == 200, response.text


async def test_a_huge_prompt_is_refused_by_context_length_not_a_crash(client: Client) -> None:
    body = {"messages": [{"role": "user", "content": "word " * 400_000}], "max_tokens": 1}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_wrong_content_types_are_4xx(client: Client, content_type: str) -> None:
    response = await client.post(
        "/v1/chat/completions", content=b"messages=hi", headers={"content-type": content_type}
    )
    check_envelope(response.status_code, response.content)
    assert response.status_code >= 400


async def test_the_server_survives_a_burst_of_bad_requests_then_serves(
    client_for: ClientFactory,
) -> None:
    async with client_for() as client:
        async with anyio.create_task_group() as group:
            for _ in range(50):
                group.start_soon(send, client, {"messages": [{"role": "user"}], "n": 5})
        ok = await client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
        )
        assert ok.status_code == 200
