"""`/v1/responses` with the tools coding agents send: namespaces, custom tools with
grammars, hosted tools, sealed reasoning (in-process app, real model).

The requests are shaped like Codex's (developer and user messages, functions, a
namespace, a hosted web search, `reasoning.summary`, `include` of sealed reasoning,
`store: false`, `prompt_cache_key`, `client_metadata`), with text written here."""

from __future__ import annotations

import re
from typing import Any

import lark
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.api.conftest import ClientFactory
from tests.api.test_chat_api import assert_error
from tests.api.test_responses_api import typed_events

Client = AsyncTestClient[Litestar]

PLAN_GRAMMAR = r"""
start: "BEGIN" LF step~1..3 "END"
step: VERB " " NAME LF
VERB: "add" | "drop"
NAME: /[a-z]{1,12}(\.[a-z]{1,4})?/
%import common.LF
"""
"""A small edit language of our own, in Lark, for a custom tool."""


def _function(name: str, description: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "description": description,
        "strict": False,
        "parameters": {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        },
    }


RUN = _function("run_command", "Run a shell command in the workspace.", cmd={"type": "string"})
HELPERS = {
    "type": "namespace",
    "name": "helpers",
    "description": "Tools for delegating work to helper agents.",
    "tools": [
        _function(
            "start_helper", "Start a helper on a task.", task={"type": "string", "maxLength": 24}
        ),
        _function("stop_helper", "Stop a helper.", helper_id={"type": "string"}),
    ],
}
PLAN_TOOL = {
    "type": "custom",
    "name": "edit_plan",
    "description": "Change the list of files of the project.",
    "format": {"type": "grammar", "syntax": "lark", "definition": PLAN_GRAMMAR},
}


def agent_request(**extra: Any) -> dict[str, Any]:
    """A coding agent's first request, in Codex's shape."""
    return {
        "model": "agent-model",
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "You are a careful coding agent."}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Add a file named notes.txt."}],
            },
        ],
        "tools": [RUN, HELPERS, PLAN_TOOL, {"type": "web_search", "external_web_access": False}],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "session-1",
        "client_metadata": {"turn_id": "turn-1", "session_id": "session-1"},
        "max_output_tokens": 24,
        "temperature": 0,
        **extra,
    }


async def test_an_agents_request_is_served_and_names_the_hosted_tools_left_out(
    client: Client,
) -> None:
    for stream in (False, True):
        reply = await client.post("/v1/responses", json=agent_request(stream=stream))
        assert reply.status_code == 200, reply.text
        assert reply.headers["llm-omitted-tools"] == "web_search"
        final = typed_events(reply.text)[-1][1]["response"] if stream else reply.json()
        assert final["status"] in ("completed", "incomplete")
        assert final["store"] is False
        assert final["usage"]["input_tokens"] > 100  # the tools' descriptions are read
        # the echoed tools are the request's, hosted one included
        assert [t["type"] for t in final["tools"]] == [
            "function",
            "namespace",
            "custom",
            "web_search",
        ]


async def test_refusing_hosted_tools_is_a_setting(client_for: ClientFactory) -> None:
    async with client_for(responses={"hosted_tools": "refuse"}) as client:
        reply = await client.post("/v1/responses", json=agent_request())
        assert_error(reply, 400, param="tools[3].type")


async def forced_call(
    client: Client, choice: dict[str, Any], **extra: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A request of the agent's shape that forces `choice`, and its one output item."""
    body = agent_request(tool_choice=choice, **extra)
    reply = await client.post("/v1/responses", json=body)
    assert reply.status_code == 200, reply.text
    [call] = reply.json()["output"]
    return body, call


async def test_a_namespaced_function_is_called_by_its_own_name_and_namespace(
    client: Client,
) -> None:
    choice = {"type": "function", "name": "start_helper"}
    body, call = await forced_call(client, choice, max_output_tokens=60)
    assert call["type"] == "function_call"
    assert (call["namespace"], call["name"]) == ("helpers", "start_helper")
    assert isinstance(msgspec.json.decode(call["arguments"])["task"], str)
    # sent back as history, with its output, the conversation goes on
    history = [
        *body["input"],
        {k: call[k] for k in ("type", "call_id", "name", "namespace", "arguments")},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "helper-7"},
    ]
    again = await client.post("/v1/responses", json=agent_request(input=history))
    assert again.status_code == 200, again.text


async def test_a_forced_custom_call_follows_its_lark_grammar(client: Client) -> None:
    parser = lark.Lark(PLAN_GRAMMAR)
    choice = {"type": "custom", "name": "edit_plan"}
    body, call = await forced_call(client, choice, max_output_tokens=80)
    assert call["type"] == "custom_tool_call"
    assert call["name"] == "edit_plan"
    assert "namespace" not in call
    parser.parse(call["input"])  # raises if the input is not in the language

    events = typed_events((await client.post("/v1/responses", json={**body, "stream": True})).text)
    kinds = [kind for kind, _ in events]
    assert kinds[2:-1] == [
        "response.output_item.added",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
    ]
    added, done = events[2][1]["item"], events[5][1]["item"]
    assert added["input"] == ""
    assert added["call_id"] == done["call_id"]
    assert events[4][1]["input"] == done["input"]
    parser.parse(done["input"])

    history = [
        *body["input"],
        {"type": "custom_tool_call", "call_id": "c1", "name": "edit_plan", "input": done["input"]},
        {"type": "custom_tool_call_output", "call_id": "c1", "output": "done"},
    ]
    again = await client.post("/v1/responses", json=agent_request(input=history))
    assert again.status_code == 200, again.text


async def test_a_regex_custom_tool_is_enforced_too(client: Client) -> None:
    tool = {
        "type": "custom",
        "name": "set_version",
        "format": {
            "type": "grammar",
            "syntax": "regex",
            "definition": r"^v\d{1,2}\.\d{1,2} \"[a-z]{1,8}\"$",
        },
    }
    choice = {"type": "custom", "name": "set_version"}
    _, call = await forced_call(client, choice, tools=[tool], max_output_tokens=40)
    assert re.fullmatch(r"v\d{1,2}\.\d{1,2} \"[a-z]{1,8}\"", call["input"]), call["input"]


@pytest.mark.parametrize(
    ("format_", "param"),
    [
        ({"type": "grammar", "syntax": "regex", "definition": "^(?=a)a$"}, "definition"),
        ({"type": "grammar", "syntax": "regex", "definition": r"^(a)\1$"}, "definition"),
        ({"type": "grammar", "syntax": "regex", "definition": "(?i)^a$"}, "definition"),
        (
            {"type": "grammar", "syntax": "lark", "definition": 'start: A\nA: /a/\n%ignore " "'},
            "definition",
        ),
        ({"type": "grammar", "syntax": "lark", "definition": 'start: x\nx: x "a"'}, "definition"),
        ({"type": "grammar", "syntax": "lark", "definition": "start: ("}, "definition"),
        (
            {
                "type": "grammar",
                "syntax": "lark",
                "definition": 'start: a\na: b "x" | "y"\nb: a "z"',
            },
            "definition",
        ),
        ({"type": "grammar", "syntax": "ebnf", "definition": "a"}, "syntax"),
        ({"type": "json"}, "type"),
    ],
)
async def test_a_grammar_that_cannot_be_enforced_is_a_400_naming_it(
    client: Client, format_: dict[str, Any], param: str
) -> None:
    tool = {"type": "custom", "name": "t", "format": format_}
    reply = await client.post("/v1/responses", json={"input": "x", "tools": [tool]})
    assert_error(reply, 400, param=f"tools[0].format.{param}")


async def test_sealed_reasoning_must_be_the_servers(client: Client) -> None:
    item = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "llms1.abc.def"}
    body = agent_request(input=[item, {"role": "user", "content": "Go on."}])
    assert_error(
        await client.post("/v1/responses", json=body), 400, param="input[0].encrypted_content"
    )
    # what clients send when they have nothing sealed: null, and no id
    item = {"type": "reasoning", "summary": [], "encrypted_content": None}
    body = agent_request(input=[item, {"role": "user", "content": "Go on."}])
    assert (await client.post("/v1/responses", json=body)).status_code == 200
