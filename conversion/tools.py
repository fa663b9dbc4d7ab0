"""Tool calling: OpenAI `tools`/`tool_choice` -> prompt and constraints, reply -> calls.

How a model is asked for calls, and how its reply is read:

* A chat template that knows tools (its source uses `tools`) renders them itself, and
  history `tool_calls` with it. Otherwise the tools are described in the system
  message (`tool_instructions`) and earlier calls are shown to the model as text in
  the format it is asked to use, `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`
  (the Hermes/Qwen format many small models know).
* `tool_choice: "required"` or a named function: a JSON schema (`call_schema`) that
  the engine turns into a grammar, so the reply *is* a call whose arguments match the
  function's `parameters`.
* `"auto"`: the model decides; a reply that is a call in that format (or bare JSON with
  `name` and `arguments`) becomes `tool_calls`, anything else stays content.
  `ReplyShaper` makes that decision while streaming, holding back only what could
  still be the start of a call.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from conversion.errors import InvalidRequestError
from conversion.json_schema import check_schema

__all__ = (
    "ParsedCall",
    "ReplyShaper",
    "ToolPlan",
    "call_as_text",
    "call_schema",
    "function_from_spec",
    "new_call_id",
    "parse_tool_calls",
    "plan_functions",
    "plan_tools",
    "tool_instructions",
)

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BLOCK = re.compile(re.escape(CALL_OPEN) + r"(.*?)(?:" + re.escape(CALL_CLOSE) + r"|$)", re.S)


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    description: str
    parameters: dict[str, Any]
    strict: bool = False
    """The client asked that arguments always match `parameters`."""
    param: str = "tools"
    """Where `parameters` sits in the request, for errors about it."""


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """What a request's tools mean for this generation."""

    mode: Literal["auto", "required"]
    functions: tuple[Function, ...]
    """All the request's tools (shown to the model)."""
    allowed: tuple[Function, ...]
    """Those the reply may call: all of them, or the one `tool_choice` names."""


@dataclass(frozen=True, slots=True)
class ParsedCall:
    name: str
    arguments: str
    """The arguments object as a JSON string."""


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _function(tool: Any, index: int) -> Function:
    where = f"tools[{index}]"
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise InvalidRequestError(
            "Each tool must be {'type': 'function', 'function': {...}}.", param=f"{where}.type"
        )
    return function_from_spec(tool.get("function"), f"{where}.function")


def function_from_spec(spec: Any, where: str) -> Function:
    """A function tool from its `{name, description, parameters, strict}` fields, which
    chat nests under `function` and the Responses API puts on the tool itself."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise InvalidRequestError("A tool needs a function name.", param=f"{where}.name")
    name = spec["name"]
    if not _NAME.fullmatch(name):
        raise InvalidRequestError(
            f"Invalid function name {name!r}: use letters, digits, '_' and '-', at most 64.",
            param=f"{where}.name",
        )
    parameters = spec.get("parameters")
    if parameters is None:  # absent, or null (the Responses API allows that)
        parameters = {"type": "object", "properties": {}}
    if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
        raise InvalidRequestError(
            "A function's parameters must be a JSON schema of an object (arguments are "
            "a JSON object).",
            param=f"{where}.parameters",
        )
    description = spec.get("description", "")
    return Function(
        name,
        description if isinstance(description, str) else "",
        parameters,
        strict=spec.get("strict") is True,
        param=f"{where}.parameters",
    )


def plan_tools(tools: list[dict[str, Any]] | None, tool_choice: Any) -> ToolPlan | None:
    """Validate chat's `tools` and `tool_choice`; None when the reply is plain content."""
    functions = tuple(_function(tool, i) for i, tool in enumerate(tools or ()))
    return plan_functions(functions, tool_choice)


def plan_functions(functions: tuple[Function, ...], tool_choice: Any) -> ToolPlan | None:
    """The plan for validated functions and a `tool_choice` already in chat's shape.
    Parameters a grammar will enforce (forced calls), and those of strict functions,
    are checked here (`check_schema`), so what cannot be honoured is a 400 with a path."""
    plan = _plan(functions, tool_choice)
    forced = plan.allowed if plan is not None and plan.mode == "required" else ()
    for f in functions:
        if f.strict or f in forced:
            check_schema(f.parameters, f.param, strict=f.strict)
    return plan


def _plan(functions: tuple[Function, ...], tool_choice: Any) -> ToolPlan | None:
    names = [f.name for f in functions]
    if len(set(names)) != len(names):
        raise InvalidRequestError("Function names must be unique.", param="tools")
    if tool_choice is None:
        tool_choice = "auto" if functions else "none"
    if tool_choice == "none":
        return None
    if tool_choice in ("auto", "required"):
        if not functions:
            raise InvalidRequestError(
                f"tool_choice {tool_choice!r} needs `tools`.", param="tool_choice"
            )
        return ToolPlan(tool_choice, functions, functions)
    named = tool_choice.get("function") if isinstance(tool_choice, dict) else None
    if isinstance(named, dict) and tool_choice.get("type") == "function":
        wanted = named.get("name")
        chosen = tuple(f for f in functions if f.name == wanted)
        if not chosen:
            raise InvalidRequestError(
                f"tool_choice names {wanted!r}, which is not among `tools`.",
                param="tool_choice",
            )
        return ToolPlan("required", functions, chosen)
    raise InvalidRequestError(
        "tool_choice must be 'none', 'auto', 'required' or "
        "{'type': 'function', 'function': {'name': ...}}.",
        param="tool_choice",
    )


_DEFINITIONS = ("$defs", "definitions")


def call_schema(plan: ToolPlan) -> dict[str, Any]:
    """The JSON a forced reply must be: one call of an allowed function, with
    arguments matching its parameters (`name` first, so it streams in that order).

    Parameters that refer to their own definitions (`#/$defs/...`, as pydantic writes
    them) keep working: definitions move to the root of the call schema, where those
    references point. Functions whose definitions clash by name cannot be merged.
    """
    options = []
    definitions: dict[str, dict[str, Any]] = {}
    for f in plan.allowed:
        parameters = dict(f.parameters)
        for key in _DEFINITIONS:
            for name, schema in (parameters.pop(key, None) or {}).items():
                if definitions.setdefault(key, {}).setdefault(name, schema) != schema:
                    raise InvalidRequestError(
                        f"Functions define {key}/{name} differently; name the choice "
                        "of one function or rename the definition.",
                        param="tools",
                    )
        options.append(
            {
                "type": "object",
                "properties": {"name": {"const": f.name}, "arguments": parameters},
                "required": ["name", "arguments"],
            }
        )
    root = options[0] if len(options) == 1 else {"anyOf": options}
    return {**root, **definitions}


def tool_instructions(plan: ToolPlan) -> str:
    """System-prompt text for templates without tool support."""
    listed = "\n".join(
        json.dumps(
            {"name": f.name, "description": f.description, "parameters": f.parameters},
            ensure_ascii=False,
        )
        for f in plan.functions
    )
    return (
        "You can call these functions:\n"
        f"{listed}\n"
        "To call one, reply with only "
        f'{CALL_OPEN}{{"name": <function name>, "arguments": <arguments object>}}{CALL_CLOSE}; '
        "otherwise answer normally."
    )


def call_as_text(name: str, arguments: str) -> str:
    """An earlier call, as a model without template tool support is asked to write it."""
    try:
        args: Any = json.loads(arguments)
    except ValueError:
        args = arguments
    return (
        CALL_OPEN + json.dumps({"name": name, "arguments": args}, ensure_ascii=False) + CALL_CLOSE
    )


def _one_call(text: str, names: Sequence[str]) -> ParsedCall | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    args = value.get("arguments", value.get("parameters"))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return ParsedCall(value["name"], json.dumps(args, ensure_ascii=False))


def parse_tool_calls(text: str, names: Sequence[str]) -> list[ParsedCall] | None:
    """The calls in a reply, or None if it is not (entirely) calls of known functions."""
    stripped = text.strip()
    blocks = _BLOCK.findall(stripped) if stripped.startswith(CALL_OPEN) else [stripped]
    rest = _BLOCK.sub("", stripped).strip() if stripped.startswith(CALL_OPEN) else ""
    if not blocks or rest:
        return None
    calls = [_one_call(block.strip(), names) for block in blocks]
    if any(call is None for call in calls):
        return None
    return [call for call in calls if call is not None]


class ReplyShaper:
    """Per choice: content to send as it comes, or a reply held whole to become calls.

    Without a plan everything is content. With one, text is held while it could still
    be the start of a call (`<tool_call>` or `{`); once it cannot, it flows as content.
    A forced call (`required`) is always held.
    """

    def __init__(self, plan: ToolPlan | None) -> None:
        self._names = [f.name for f in plan.allowed] if plan else []
        self._forced = plan is not None and plan.mode == "required"
        self._mode = "text" if plan is None else "hold" if self._forced else "decide"
        self._held = ""

    def feed(self, text: str) -> str:
        """Add generated text; return the content that can be sent now."""
        if self._mode == "text":
            return text
        self._held += text
        if self._mode == "decide":
            start = self._held.lstrip()
            if start and not (start.startswith(("{", CALL_OPEN)) or CALL_OPEN.startswith(start)):
                self._mode = "text"
                text, self._held = self._held, ""
                return text
            if start.startswith(("{", CALL_OPEN)):
                self._mode = "hold"
        return ""

    def finish(self, finish_reason: str) -> tuple[str, list[ParsedCall], str]:
        """End of the reply: (content not sent yet, its calls, the finish_reason).

        A forced call cut off by `max_tokens` is still a call, with its arguments cut
        short and `finish_reason: "length"`, as OpenAI returns it.
        """
        held, self._held = self._held, ""
        if self._mode == "text" or not held.strip():
            return held, [], finish_reason
        calls = parse_tool_calls(held, self._names)
        if calls is None and self._forced and finish_reason == "length":
            calls = _cut_call(held, self._names)
        if calls is None:
            return held, [], finish_reason
        return "", calls, "tool_calls" if finish_reason == "stop" else finish_reason


_CUT_CALL = re.compile(r'\s*\{\s*"name"\s*:\s*"([^"]*)"\s*,\s*"arguments"\s*:\s*(.*)', re.S)


def _cut_call(text: str, names: Sequence[str]) -> list[ParsedCall] | None:
    """A forced call that ran out of tokens (the grammar fixes its layout)."""
    match = _CUT_CALL.fullmatch(text)
    if match is None or match[1] not in names:
        return None
    return [ParsedCall(match[1], match[2])]
