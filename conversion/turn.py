"""One chat-style turn, whatever protocol asked for it: the value every request mapping
returns, and how it becomes the chat template's input.

Chat completions (`conversion.chat.requests`), the Responses API
(`conversion.responses.requests`), Anthropic's Messages and count_tokens
(`conversion.anthropic.requests`) and `/tokenize` each map their request, limits
checked, onto a `Turn`: the conversation as protocol-neutral `TurnMessage`s, the
generation params, the tool plan and the template switches. The serving core renders,
counts and submits every turn the same way (`app.serving.prompt`), so what one
protocol's prompt holds, another's holds too, and a count is the count of the prompt
the request would read.

What depends on the model is decided here too, from its family and whether its
template lays out tools: the messages in the template's form (`template_inputs`) and
the structure a forced call or a structured answer must take (`structured_params`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from conversion.errors import InvalidRequestError
from conversion.families import Family, ToolSyntax, template_variables
from conversion.generation import GenerationParams, TemplateMessage
from conversion.structure import Structure
from conversion.tools import Function, ToolPlan, tool_instructions

__all__ = (
    "HistoryCall",
    "Turn",
    "TurnMessage",
    "merged_system_messages",
    "structured_params",
    "template_inputs",
    "template_messages",
    "turn_variables",
)

Role = Literal["system", "user", "assistant", "tool"]


class HistoryCall(msgspec.Struct, frozen=True, omit_defaults=True):
    """A tool call an earlier assistant message made, sent back as history."""

    name: str
    arguments: str | dict[str, Any]
    """A JSON string, as OpenAI sends it back; an object is accepted too."""
    id: str | None = None


class TurnMessage(msgspec.Struct, frozen=True, omit_defaults=True):
    """A message of the conversation, whatever its protocol called it (OpenAI's
    `developer` and Anthropic's `system` field are `system` here). A Struct that leaves
    out what a message does not have, so `server.log_prompts` logs it as chat
    messages read."""

    role: Role
    content: str
    """Its text parts, joined; "" for an assistant message that only made calls."""
    name: str | None = None
    tool_calls: tuple[HistoryCall, ...] = ()
    """An assistant message's tool calls."""
    tool_call_id: str | None = None
    """A tool message's answer to this call."""
    reasoning: str | None = None
    """An assistant message's thinking, where the client sent it back (the Responses
    API's reasoning items); templates that show it within a tool loop get it as
    `reasoning_content`, the others leave it out."""


@dataclass(frozen=True, slots=True)
class Turn:
    """What a chat-style request asks of the engine, once its protocol has mapped it."""

    messages: tuple[TurnMessage, ...]
    params: GenerationParams
    plan: ToolPlan | None = None
    choices: int = 1
    truncate: bool = False
    """Drop the oldest messages until the prompt fits (the Responses API's
    `truncation: "auto"`); otherwise a prompt that does not fit is a 400."""
    messages_param: str = "messages"
    """The request field the messages came from, named by errors about them."""
    schema_conflict_param: str = "response_format"
    """The field to name when a structured reply is asked for with a forced call."""
    reasoning_effort: str | None = None
    """The request's effort (`none` turns a model's thinking off); None: the server's."""
    template_kwargs: dict[str, Any] | None = None
    """The request's own template variables (`chat_template_kwargs`)."""


def _arguments(arguments: str | dict[str, Any], native: bool) -> Any:
    """Hugging Face templates expect the arguments parsed (OpenAI sends a string); text
    written in the family's syntax wants the string."""
    if native and isinstance(arguments, str):
        # else the template gets the string (RecursionError: nested past Python's limit)
        with contextlib.suppress(ValueError, RecursionError):
            return json.loads(arguments)
    elif not native and not isinstance(arguments, str):
        return json.dumps(arguments, ensure_ascii=False)
    return arguments


def _calls(message: TurnMessage, native: bool, syntax: ToolSyntax) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    for call in message.tool_calls:
        out: dict[str, Any] = {
            "type": "function",
            "function": {"name": call.name, "arguments": _arguments(call.arguments, native)},
        }
        if call.id is not None:
            out["id"] = syntax.history_id(call.id)
        calls.append(out)
    return calls


def template_messages(
    messages: Sequence[TurnMessage], *, native_tools: bool, syntax: ToolSyntax
) -> list[TemplateMessage]:
    """The messages as a chat template reads them. `native_tools`: the template
    renders `tool_calls` and `tool` messages itself; otherwise calls are written as
    text in the family's `syntax` and tool results as a user message, which templates
    that insist on alternating roles accept."""
    rendered: list[TemplateMessage] = []
    for message in messages:
        out: TemplateMessage = {"role": message.role, "content": message.content}
        if message.role == "tool":
            if not native_tools:
                out = {
                    "role": "user",
                    "content": f"<tool_response>\n{message.content}\n</tool_response>",
                }
            elif message.tool_call_id is not None:
                out["tool_call_id"] = syntax.history_id(message.tool_call_id)
        elif message.name is not None:
            out["name"] = message.name
        if message.reasoning:
            out["reasoning_content"] = message.reasoning
        if message.tool_calls:
            calls = _calls(message, native_tools, syntax)
            if native_tools:
                out["tool_calls"] = calls
            else:
                written = [
                    syntax.write(str(c["function"]["name"]), str(c["function"]["arguments"]))
                    for c in calls
                ]
                out["content"] = "\n".join(filter(None, [message.content, *written]))
        rendered.append(out)
    return rendered


def _tool_dict(function: Function) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": function.name,
            "description": function.description,
            "parameters": function.parameters,
        },
    }


def merged_system_messages(messages: Sequence[TurnMessage]) -> tuple[TurnMessage, ...] | None:
    """The messages with every system message after the conversation's start merged, in
    order, into the leading one (made if there is none), for templates that take a
    system message only first; None when there is nothing to merge. Anthropic's clients
    put system messages between turns (Claude Code does), and so may chat clients."""
    lead = 0
    while lead < len(messages) and messages[lead].role == "system":
        lead += 1
    later = [m for m in messages[lead:] if m.role == "system"]
    if not later:
        return None
    text = "\n\n".join(m.content for m in [*messages[:lead], *later] if m.content)
    rest = tuple(m for m in messages[lead:] if m.role != "system")
    return (TurnMessage("system", text), *rest)


def template_inputs(
    messages: Sequence[TurnMessage], plan: ToolPlan | None, *, native_tools: bool, family: Family
) -> tuple[list[TemplateMessage], list[dict[str, Any]] | None]:
    """Messages and tools for the chat template: a template that renders tools gets
    them as they are; otherwise they are described in the system message, with an
    example call in the family's syntax."""
    rendered = template_messages(messages, native_tools=native_tools, syntax=family.tools)
    if plan is None:
        return rendered, None
    if native_tools:
        return rendered, [_tool_dict(f) for f in plan.functions]
    example = family.tools.write("<function name>", "<arguments object>")
    instructions = tool_instructions(plan, example)
    if rendered and rendered[0]["role"] == "system":
        rendered[0] = {**rendered[0], "content": f"{rendered[0]['content']}\n\n{instructions}"}
    else:
        rendered.insert(0, {"role": "system", "content": instructions})
    return rendered, None


def structured_params(turn: Turn, family: Family) -> GenerationParams:
    """A forced call is the call in the family's syntax; a structured answer is JSON
    after the family's answer prefix. Both become a `Structure` the engine enforces."""
    params, plan = turn.params, turn.plan
    if plan is not None and plan.mode == "required":
        if params.json_schema is not None:
            raise InvalidRequestError(
                f"{turn.schema_conflict_param} cannot ask for structured output together "
                "with a required tool call.",
                param=turn.schema_conflict_param,
            )
        return dataclasses.replace(params, structure=family.tools.forced(plan))
    if params.json_schema is not None and family.answer_prefix:
        answer = Structure.json(params.json_schema, params.schema_param, family.answer_prefix)
        return dataclasses.replace(params, structure=answer)
    return params


def turn_variables(turn: Turn, family: Family, default_effort: str | None) -> dict[str, Any]:
    """The chat template's variables for this turn: its reasoning effort (else the
    server's `model.reasoning_effort`) through the family's switch, then its own
    `chat_template_kwargs`."""
    effort = turn.reasoning_effort or default_effort
    return template_variables(family, effort, turn.template_kwargs)
