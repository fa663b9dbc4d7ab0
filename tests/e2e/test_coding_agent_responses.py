"""A coding agent's requests to `/v1/responses` through the real openai SDK, typed as
its params: a namespace of functions, a custom tool with a Lark grammar, a hosted web
search, sealed reasoning, `store: false` (the shape Codex sends; the text is ours)."""

from __future__ import annotations

from typing import Any

import lark
import openai
from openai.types.responses import (
    CustomToolParam,
    FunctionToolParam,
    NamespaceToolParam,
    ResponseCustomToolCall,
    ResponseFunctionToolCall,
    ResponseInputParam,
    ToolParam,
)

from tests.api.test_responses_tools import PLAN_GRAMMAR
from tests.e2e.conftest import LiveServer

RUN: FunctionToolParam = {
    "type": "function",
    "name": "run_command",
    "description": "Run a shell command in the workspace.",
    "strict": False,
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string", "maxLength": 30}},
        "required": ["cmd"],
    },
}
HELPERS: NamespaceToolParam = {
    "type": "namespace",
    "name": "helpers",
    "description": "Tools for delegating work to helper agents.",
    "tools": [
        {
            "type": "function",
            "name": "start_helper",
            "description": "Start a helper on a task.",
            "parameters": {
                "type": "object",
                "properties": {"task": {"type": "string", "maxLength": 24}},
                "required": ["task"],
            },
        }
    ],
}
PLAN: CustomToolParam = {
    "type": "custom",
    "name": "edit_plan",
    "description": "Change the list of files of the project.",
    "format": {"type": "grammar", "syntax": "lark", "definition": PLAN_GRAMMAR},
}
TOOLS: list[ToolParam] = [RUN, HELPERS, PLAN, {"type": "web_search"}]
OPENING: ResponseInputParam = [
    {"role": "developer", "content": "You are a careful coding agent."},
    {"role": "user", "content": "List the project's files, then add notes.txt."},
]


def _ask(client: openai.OpenAI, **extra: Any) -> Any:
    return client.responses.create(
        model="agent-model",
        input=extra.pop("input", OPENING),
        tools=TOOLS,
        reasoning={"summary": "auto"},
        include=["reasoning.encrypted_content"],
        store=False,
        prompt_cache_key="session-1",
        parallel_tool_calls=True,
        temperature=0,
        max_output_tokens=extra.pop("max_output_tokens", 60),
        extra_body={"client_metadata": {"turn_id": "t1"}},
        **extra,
    )


def test_a_coding_agents_turn_with_a_namespace_call_and_a_custom_call(live: LiveServer) -> None:
    with live.client() as client:
        named = _ask(client, tool_choice={"type": "function", "name": "start_helper"})
        [call] = named.output
        assert isinstance(call, ResponseFunctionToolCall)
        assert (call.namespace, call.name) == ("helpers", "start_helper")

        custom = _ask(client, tool_choice={"type": "custom", "name": "edit_plan"})
        [edit] = custom.output
        assert isinstance(edit, ResponseCustomToolCall)
        lark.Lark(PLAN_GRAMMAR).parse(edit.input)

        # both calls and their outputs go back as the agent's history; the turn goes on,
        # streamed, and the stream helper assembles the final response
        history: ResponseInputParam = [
            *OPENING,
            call.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"type": "function_call_output", "call_id": call.call_id, "output": "helper-7"},
            edit.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"type": "custom_tool_call_output", "call_id": edit.call_id, "output": "done"},
        ]
        with client.responses.stream(
            model="agent-model",
            input=history,
            tools=TOOLS,
            tool_choice={"type": "custom", "name": "edit_plan"},
            store=False,
            temperature=0,
            max_output_tokens=60,
        ) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_response()
        assert "response.custom_tool_call_input.done" in kinds
        [again] = final.output
        assert isinstance(again, ResponseCustomToolCall)
        lark.Lark(PLAN_GRAMMAR).parse(again.input)
