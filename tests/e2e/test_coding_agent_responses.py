"""A coding agent's requests to `/v1/responses` through the real openai SDK: a namespace
of functions, a custom tool with a Lark grammar, a hosted web search, sealed reasoning,
`store: false` (the shape Codex sends; the text is ours, the tools those of
tests/api/test_responses_tools.py), the SDK's types reading the calls back."""

from __future__ import annotations

from typing import Any

import lark
import openai
from openai.types.responses import (
    ResponseCustomToolCall,
    ResponseFunctionToolCall,
    ResponseInputParam,
)

from tests.api.test_responses_tools import HELPERS, PLAN_GRAMMAR, PLAN_TOOL, RUN
from tests.e2e.conftest import LiveServer

TOOLS: list[Any] = [RUN, HELPERS, PLAN_TOOL, {"type": "web_search"}]
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
