"""Tool calling: OpenAI `tools`/`tool_choice` -> the functions and how they may be used.

`plan_tools` (chat's nested shape) and `plan_functions` (any protocol's functions)
validate a request's tools and say whether the reply may call them (`auto`), must call
one (`required` or a named function), or may not (`none`). How a model is asked for
calls, how its calls are read and how a forced call is constrained depend on its
family's syntax (`conversion.families`):

* A chat template that knows tools (its source uses `tools`) renders them itself, and
  history `tool_calls` with it. Otherwise the tools are described in the system
  message (`tool_instructions`, with an example in the family's syntax) and earlier
  calls are shown to the model as text in that syntax.
* `required` or a named function: the reply is constrained to one call written in the
  family's syntax, with arguments matching the function's `parameters`.
* `auto`: the model decides; calls it writes in its syntax become `tool_calls`.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from conversion.errors import InvalidRequestError
from conversion.json_schema import check_schema
from conversion.structure import Json

__all__ = (
    "Function",
    "ParsedCall",
    "ToolPlan",
    "function_from_spec",
    "new_call_id",
    "plan_functions",
    "plan_tools",
    "tool_instructions",
)

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    description: str
    parameters: dict[str, Any]
    strict: bool = False
    """The client asked that arguments always match `parameters`."""
    param: str = "tools"
    """Where `parameters` sits in the request, for errors about it."""
    enforced: dict[str, Any] | None = None
    """The schema a grammar enforces on forced calls, where it says more than the
    `parameters` the model is shown (a custom tool's input grammar)."""

    def arguments(self) -> Json:
        """The arguments of a forced call, as a structure part."""
        return Json(self.enforced or self.parameters, self.param)


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


def tool_instructions(plan: ToolPlan, example: str) -> str:
    """System-prompt text for templates that do not lay out tools themselves;
    `example` is a call in the model family's own syntax."""
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
        f"To call one, reply with only {example}; otherwise answer normally."
    )
