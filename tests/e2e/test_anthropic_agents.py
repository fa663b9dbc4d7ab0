"""What current Anthropic clients send (issue 23), through the real `anthropic` SDK:
`messages.parse(output_format=...)` streamed and not, `count_tokens` with it, and a
request shaped as the coding agents send theirs (written for this test): system
messages between turns, system blocks with `cache_control`, several tools, adaptive
thinking with its display omitted, a context edit, an effort, `metadata.user_id` as a
JSON string, on `/v1/messages?beta=true`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import httpx
import pydantic
import pytest
from pydantic import BaseModel, Field

from tests.e2e.conftest import LiveServer
from tests.e2e.test_structured_sdk import Colour

ASK: list[Any] = [{"role": "user", "content": "Invent a person with a pet, as JSON."}]
TRIES = range(4)
"""As many requests as the server has slots: they run as one batch."""


class Pet(BaseModel):
    name: str
    kind: str


class Person(BaseModel):
    name: str
    colour: Colour
    pets: list[Pet] = Field(max_length=2)  # the SDK moves this bound into a description


class Recorded:
    """An SDK client whose HTTP responses are kept: when `parse()` fails, the test reads
    the stop reason the SDK never returned."""

    def __init__(self, live: LiveServer) -> None:
        self.bodies: list[bytes] = []
        http = anthropic.DefaultHttpxClient(event_hooks={"response": [self._keep]})
        self.client = anthropic.Anthropic(
            base_url=live.root, api_key="k", max_retries=0, http_client=http
        )

    def _keep(self, response: Any) -> None:  # the SDK's own httpx (httpx2)
        self.bodies.append(response.read())


def _cut(body: bytes) -> bool:
    """Whether the reply (JSON or a stream) ended at `max_tokens`."""
    return b'"stop_reason":"max_tokens"' in body.replace(b" ", b"")


def _parse(live: LiveServer, stream: bool) -> str:
    recorded = Recorded(live)
    fields: dict[str, Any] = {
        "model": "m",
        "max_tokens": 160,
        "messages": ASK,
        "output_format": Person,
        "extra_body": {"temperature": 0.8},  # the SDK has no `temperature` any more
    }
    with recorded.client as client:
        try:
            if stream:
                with client.messages.stream(**fields) as events:
                    message = events.get_final_message()
            else:
                message = client.messages.parse(**fields)
        except pydantic.ValidationError:
            assert _cut(recorded.bodies[-1]), recorded.bodies[-1][-400:]
            return "max_tokens"
    assert message.stop_reason == "end_turn"
    [block] = [b for b in message.content if b.type == "text"]
    person = Person.model_validate_json(block.text)
    assert message.parsed_output == person
    return "end_turn"


@pytest.mark.parametrize("stream", [False, True], ids=["parse", "stream"])
def test_parse_gives_a_parsed_object_for_every_reply_that_ends(
    live: LiveServer, stream: bool
) -> None:
    with ThreadPoolExecutor(len(TRIES)) as pool:
        ends = list(pool.map(lambda _: _parse(live, stream), TRIES))
    assert "end_turn" in ends, ends


def test_count_tokens_takes_the_output_format(live: LiveServer) -> None:
    with anthropic.Anthropic(base_url=live.root, api_key="k", max_retries=0) as client:
        counted = client.messages.count_tokens(model="m", messages=ASK, output_format=Person)
        sent = client.messages.create(
            model="m",
            max_tokens=1,
            messages=ASK,
            output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}},
        )
    usage = sent.usage
    assert counted.input_tokens == usage.input_tokens + (usage.cache_read_input_tokens or 0)


def test_a_schema_no_grammar_enforces_is_refused_in_anthropics_envelope(live: LiveServer) -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}}
    with (
        anthropic.Anthropic(base_url=live.root, api_key="k", max_retries=0) as client,
        pytest.raises(anthropic.BadRequestError) as refused,
    ):
        client.messages.create(
            model="m",
            max_tokens=8,
            messages=ASK,
            output_config={"format": {"type": "json_schema", "schema": schema}},
        )
    error = refused.value.body["error"]  # type: ignore[index]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("output_config.format.schema.properties.age.minimum:")


def _tool(name: str, description: str, **properties: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": {key: {"type": kind} for key, kind in properties.items()},
            "required": list(properties),
        },
    }


AGENT_REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 32000,
    "system": [
        {"type": "text", "text": "You are a command-line coding assistant."},
        {"type": "text", "text": "Answer briefly.", "cache_control": {"type": "ephemeral"}},
        {
            "type": "text",
            "text": "The project is a Python web server.",
            "cache_control": {"type": "ephemeral"},
        },
    ],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Which file starts the server?"}]},
        {
            "role": "system",
            "content": [{"type": "text", "text": "The working directory is /work/project."}],
        },
    ],
    "tools": [
        _tool("read_file", "Read a file of the project.", path="string"),
        _tool("list_files", "List the files under a folder.", folder="string"),
        _tool("run", "Run a shell command.", command="string", timeout="integer"),
    ],
    "thinking": {"type": "adaptive", "display": "omitted"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "high"},
    "metadata": {"user_id": json.dumps({"device": "test-device", "session": "s1"})},
    "temperature": 0,
}


@pytest.fixture
def agent_client(live: LiveServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=live.root, api_key="k", max_retries=0) as client:
        yield client


def test_a_coding_agents_request_is_answered_streamed_and_counted(
    agent_client: anthropic.Anthropic,
) -> None:
    extra = {"context_management": AGENT_REQUEST["context_management"], "temperature": 0}
    fields = {k: v for k, v in AGENT_REQUEST.items() if k not in extra}
    with agent_client.beta.messages.stream(
        **fields, betas=["context-management-2025-06-27"], extra_body=extra
    ) as stream:
        texts = [
            event.delta.text
            for event in stream
            if event.type == "content_block_delta" and event.delta.type == "text_delta"
        ]
        message = stream.get_final_message()
    assert message.stop_reason in {"end_turn", "tool_use"}
    assert "".join(texts) == "".join(b.text for b in message.content if b.type == "text")
    counted = agent_client.messages.count_tokens(
        model="m",
        messages=AGENT_REQUEST["messages"],
        system=AGENT_REQUEST["system"],
        tools=AGENT_REQUEST["tools"],
        thinking=AGENT_REQUEST["thinking"],
        output_config=AGENT_REQUEST["output_config"],
        extra_body={"context_management": AGENT_REQUEST["context_management"]},
    )
    usage = message.usage
    assert counted.input_tokens == usage.input_tokens + (usage.cache_read_input_tokens or 0)
    # the same request, not streamed, over plain HTTP as the agents send it
    reply = httpx.post(
        f"{agent_client.base_url}/v1/messages?beta=true",
        json=AGENT_REQUEST,
        headers={"anthropic-beta": "context-management-2025-06-27", "x-api-key": "k"},
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    assert (
        reply.json()["usage"]["input_tokens"] + reply.json()["usage"]["cache_read_input_tokens"]
        == counted.input_tokens
    )
