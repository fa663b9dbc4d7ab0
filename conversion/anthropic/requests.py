"""Anthropic Messages and count_tokens requests -> a `Turn`, limits checked.

Content blocks map onto the turn's messages (`conversion.turn`): `text` blocks become
text, an assistant's `tool_use` blocks its tool calls, a user's `tool_result` blocks
tool messages (before the user's own text, which follows them in the turn), and a
`system` message between turns a system message where it stands (`app.serving.prompt`
merges it into the first where a template takes only one).
`output_config`, `thinking` and `context_management` are read in
`conversion.anthropic.options`.
`thinking` blocks sent back from an earlier reply are dropped, as the templates drop
past reasoning. Images and documents cannot be read by a text model: a 400 names the
block.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from config.settings import LimitSettings, SamplingDefaults
from conversion.anthropic.options import answer_schema, check_context_edits, reasoning_effort
from conversion.anthropic.wire import CountTokensRequest, MessagesRequest
from conversion.errors import InvalidRequestError
from conversion.generation import GenerationParams, SamplingParams
from conversion.limits import (
    apply_limits,
    check_max_tokens,
    check_message_count,
    check_stop_lengths,
)
from conversion.params import stop_strings
from conversion.tools import Function, ToolPlan, function_from_spec, plan_functions
from conversion.turn import HistoryCall, Turn, TurnMessage

__all__ = ("to_count_turn", "to_turn", "to_turn_messages")

_UNREADABLE = {"image", "document", "search_result", "container_upload"}
_SKIPPED = {"thinking", "redacted_thinking"}


def _fail(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _fail("`content` must be a string or a list of content blocks.", where)
    for index, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _fail("Each content block needs a `type`.", f"{where}[{index}]")
    return content


def _text(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _fail("A text block needs `text`.", f"{where}.text")
    return text


def _result_text(block: dict[str, Any], where: str) -> str:
    content = block.get("content", "")
    if isinstance(content, list):
        parts = []
        for index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text":
                raise _fail(
                    f"Tool results of type {kind!r} are not supported: this model reads text.",
                    f"{where}.content[{index}].type",
                )
            parts.append(_text(part, f"{where}.content[{index}]"))
        content = "\n".join(parts)
    if not isinstance(content, str):
        raise _fail("`content` must be a string or text blocks.", f"{where}.content")
    return f"Error: {content}" if block.get("is_error") else content


def _message(raw: Any, index: int) -> list[TurnMessage]:
    where = f"messages[{index}]"
    if not isinstance(raw, dict) or raw.get("role") not in ("user", "assistant", "system"):
        raise _fail("Each message needs a `role` of user, assistant or system.", f"{where}.role")
    blocks = _blocks(raw.get("content"), f"{where}.content")
    if raw["role"] == "system":  # text only, as Anthropic's SystemMessageParam
        return [TurnMessage("system", _system_text(blocks, f"{where}.content"))]
    texts: list[str] = []
    calls: list[HistoryCall] = []
    results: list[TurnMessage] = []
    for j, block in enumerate(blocks):
        here, kind = f"{where}.content[{j}]", block["type"]
        if kind in _UNREADABLE:
            raise _fail(
                f"Content blocks of type {kind!r} are not supported: this model reads text only.",
                f"{here}.type",
            )
        if kind == "text":
            texts.append(_text(block, here))
        elif kind == "tool_use" and raw["role"] == "assistant":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise _fail("A tool_use block needs an `id` and a `name`.", here)
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            calls.append(HistoryCall(block["name"], arguments, block["id"]))
        elif kind == "tool_result" and raw["role"] == "user":
            if not isinstance(block.get("tool_use_id"), str):
                raise _fail("A tool_result block needs `tool_use_id`.", f"{here}.tool_use_id")
            results.append(
                TurnMessage("tool", _result_text(block, here), tool_call_id=block["tool_use_id"])
            )
        elif kind not in _SKIPPED:
            raise _fail(
                f"Content blocks of type {kind!r} are not supported in {raw['role']} messages.",
                f"{here}.type",
            )
    text = "\n".join(texts)
    if raw["role"] == "assistant":
        return [TurnMessage("assistant", text, tool_calls=tuple(calls))]
    return [*results, TurnMessage("user", text)] if text or not results else results


def _system_text(blocks: list[dict[str, Any]], where: str) -> str:
    """System text: text blocks only (their `cache_control` has no meaning here)."""
    texts = []
    for j, block in enumerate(blocks):
        if block["type"] != "text":
            raise _fail("System content holds text blocks only.", f"{where}[{j}].type")
        texts.append(_text(block, f"{where}[{j}]"))
    return "\n".join(texts)


def _system(system: str | list[Any] | None) -> str | None:
    if system is None or isinstance(system, str):
        return system or None
    return _system_text(_blocks(system, "system"), "system") or None


def to_turn_messages(
    messages: list[Any], system: str | list[Any] | None
) -> tuple[TurnMessage, ...]:
    if not messages:
        raise _fail("`messages` must not be empty.", "messages")
    turn: list[TurnMessage] = []
    if (text := _system(system)) is not None:
        turn.append(TurnMessage("system", text))
    for index, raw in enumerate(messages):
        turn.extend(_message(raw, index))
    return tuple(turn)


def _function(tool: Any, index: int) -> Function:
    where = f"tools[{index}]"
    if not isinstance(tool, dict):
        raise _fail("Each tool must be an object.", where)
    kind = tool.get("type", "custom")
    if kind != "custom":
        raise _fail(
            f"Server tools ({kind!r}) are not supported; define client tools.", f"{where}.type"
        )
    spec = {
        "name": tool.get("name"),
        "description": tool.get("description", ""),
        "parameters": tool.get("input_schema"),
    }
    if spec["parameters"] is None:
        raise _fail("A tool needs an `input_schema`.", f"{where}.input_schema")
    function = function_from_spec(spec, where)
    return Function(
        function.name, function.description, function.parameters, param=f"{where}.input_schema"
    )


def _plan(tools: list[Any] | None, choice: dict[str, Any] | None) -> ToolPlan | None:
    functions = tuple(_function(tool, i) for i, tool in enumerate(tools or ()))
    kind = (choice or {}).get("type", "auto")
    if not functions or kind == "none":
        if kind in ("any", "tool"):
            raise _fail(f"tool_choice {kind!r} needs `tools`.", "tool_choice")
        return None
    if kind == "auto":
        return plan_functions(functions, "auto")
    if kind == "any":
        return plan_functions(functions, "required")
    if kind == "tool":
        name = (choice or {}).get("name")
        return plan_functions(functions, {"type": "function", "function": {"name": name}})
    raise _fail("tool_choice type must be auto, any, tool or none.", "tool_choice.type")


def to_turn(req: MessagesRequest, defaults: SamplingDefaults, limits: LimitSettings) -> Turn:
    check_message_count(len(req.messages), limits, "messages")
    check_max_tokens("max_tokens", req.max_tokens, limits)
    check_stop_lengths(req.stop_sequences, limits)
    check_context_edits(req.context_management)
    effort = reasoning_effort(req.thinking, req.output_config)
    answer = answer_schema(req.output_config, req.output_format)
    params = GenerationParams(
        sampling=SamplingParams(
            temperature=defaults.temperature if req.temperature is None else req.temperature,
            top_p=defaults.top_p if req.top_p is None else req.top_p,
            seed=defaults.seed,
            top_k=req.top_k,
        ),
        max_tokens=req.max_tokens,
        stop=stop_strings(req.stop_sequences),
        json_schema=answer[0] if answer else None,
        schema_param=answer[1] if answer else "tools",
    )
    return Turn(
        messages=to_turn_messages(req.messages, req.system),
        params=apply_limits(params, limits),
        plan=_plan(req.tools, req.tool_choice),
        schema_conflict_param="tool_choice",
        reasoning_effort=effort,
    )


_COUNTING = GenerationParams(SamplingParams(1.0, 1.0, None), None, ())
"""A count reads the prompt only: no sampling, no cap, no stop strings."""


def to_count_turn(req: CountTokensRequest, limits: LimitSettings) -> Turn:
    """What a token count needs of a request: its messages, tools and thinking, as
    `to_turn` maps them for the same request sent to `/v1/messages`."""
    check_message_count(len(req.messages), limits, "messages")
    check_context_edits(req.context_management)
    effort = reasoning_effort(req.thinking, req.output_config)
    answer = answer_schema(req.output_config, req.output_format)
    params = _COUNTING
    if answer is not None:  # a structured answer may open the prompt's thinking
        params = dataclasses.replace(params, json_schema=answer[0], schema_param=answer[1])
    return Turn(
        messages=to_turn_messages(req.messages, req.system),
        params=params,
        plan=_plan(req.tools, req.tool_choice),
        schema_conflict_param="tool_choice",
        reasoning_effort=effort,
    )
