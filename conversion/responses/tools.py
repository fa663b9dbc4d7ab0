"""The Responses API's `tools` and `tool_choice` -> the functions the model is offered,
and the way back from a call the model writes to the tool it names.

Four kinds of tool arrive here:

* `function`: offered as it is.
* `namespace` (Codex groups a server's tools this way): each function inside is offered
  as `<namespace>__<name>`, so the model and the template tell `a.open` from `b.open`;
  its calls come back as `function_call` items with the SDK's `namespace` field.
* `custom`: free-form text input, optionally constrained by a Lark or regex grammar.
  The model is offered a function with one string argument, `input` (the grammar is
  in its description), and its calls come back as `custom_tool_call` items. Where a
  grammar constrains the call (a forced call), it constrains the string's content
  (`conversion.custom_grammar`); a grammar that cannot be enforced is a 400 naming it.
* Hosted tools (`web_search`, `file_search`, `code_interpreter`, remote `mcp`, ...),
  which OpenAI runs on its side and this server cannot. By default they are left out
  of what the model sees and the response says so (`omitted`, which the route puts in
  a header and the log); with `responses.hosted_tools = "refuse"` they are a 400.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from conversion.custom_grammar import GBNF_STRING_KEY, string_grammar
from conversion.errors import InvalidRequestError
from conversion.tools import Function, ToolPlan, function_from_spec, plan_functions

__all__ = ("HOSTED_TOOLS", "OfferedTools", "ToolOrigin", "model_name", "offered_tools")

HOSTED_TOOLS = frozenset(
    {
        "web_search",
        "web_search_2025_08_26",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "file_search",
        "code_interpreter",
        "image_generation",
        "computer",
        "computer_use_preview",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
        "tool_search",
        "programmatic_tool_calling",
    }
)
"""The tool types of OpenAI's API that OpenAI (or the client, through call items this
server does not write) runs: none of them can be honoured here."""

_NAMESPACE_JOIN = "__"


@dataclass(frozen=True, slots=True)
class ToolOrigin:
    """The tool a name offered to the model stands for."""

    kind: Literal["function", "custom"]
    name: str
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class OfferedTools:
    """What a request's tools became."""

    plan: ToolPlan | None
    origins: dict[str, ToolOrigin] = field(default_factory=dict)
    """By the name the model is offered: the tool it stands for."""
    omitted: tuple[str, ...] = ()
    """The hosted tools left out, by type."""


def model_name(name: str, namespace: str | None) -> str:
    """The name a tool is offered by (a call sent back as history names it so too)."""
    return f"{namespace}{_NAMESPACE_JOIN}{name}" if namespace else name


def _custom(tool: dict[str, Any], where: str, namespace: str | None) -> Function:
    """A custom tool as a function of one string, `input`."""
    base = function_from_spec({"name": tool.get("name")}, where)
    description = tool.get("description")
    text = description if isinstance(description, str) else ""
    content: dict[str, Any] = {"type": "string"}
    format_ = tool.get("format")
    if format_ is not None:
        kind = format_.get("type") if isinstance(format_, dict) else None
        if kind == "grammar":
            syntax, definition = format_.get("syntax"), format_.get("definition")
            gbnf = string_grammar(syntax, definition, f"{where}.format.definition")
            content = {**content, GBNF_STRING_KEY: gbnf}
            text = f"{text}\n\nThe input must match this {syntax} grammar:\n{definition}".strip()
        elif kind != "text":
            raise InvalidRequestError(
                "A custom tool's format must be {'type': 'text'} or {'type': 'grammar', ...}.",
                param=f"{where}.format.type",
            )
    shown = {"type": "string", "description": "The tool's input, as free-form text."}
    return Function(
        model_name(base.name, namespace),
        text,
        _one_string(shown),
        param=f"{where}.format",
        enforced=_one_string(content),
    )


def _one_string(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"input": value},
        "required": ["input"],
        "additionalProperties": False,
    }


def _tool(
    tool: Any, where: str, namespace: str | None, offered: dict[str, ToolOrigin]
) -> list[Function]:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind == "function":
        function = function_from_spec(tool, where)
        name = model_name(function.name, namespace)
        offered[name] = ToolOrigin("function", function.name, namespace)
        return [dataclasses.replace(function, name=name)]
    if kind == "custom":
        function = _custom(tool, where, namespace)
        offered[function.name] = ToolOrigin("custom", str(tool["name"]), namespace)
        return [function]
    if kind == "namespace" and namespace is None:
        inner, name = tool.get("tools"), tool.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequestError("A namespace needs a name.", param=f"{where}.name")
        if not isinstance(inner, list):
            raise InvalidRequestError("A namespace needs a list of tools.", param=f"{where}.tools")
        functions = []
        for index, member in enumerate(inner):
            functions += _tool(member, f"{where}.tools[{index}]", name, offered)
        return functions
    raise InvalidRequestError(
        f"Tools of type {kind!r} are not supported here.", param=f"{where}.type"
    )


def offered_tools(
    tools: list[Any] | None, tool_choice: Any, hosted: Literal["omit", "refuse"]
) -> OfferedTools:
    """The functions offered, how the reply may use them, and the hosted tools left out."""
    offered: dict[str, ToolOrigin] = {}
    functions: list[Function] = []
    omitted: list[str] = []
    for index, tool in enumerate(tools or ()):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind in HOSTED_TOOLS:
            if hosted == "refuse":
                raise InvalidRequestError(
                    f"Tools of type {kind!r} run on OpenAI's side and cannot run here; "
                    "only function, custom and namespace tools can.",
                    param=f"tools[{index}].type",
                )
            omitted.append(str(kind))
            continue
        functions += _tool(tool, f"tools[{index}]", None, offered)
    plan = _plan(tuple(functions), tool_choice, offered)
    return OfferedTools(plan, offered, tuple(omitted))


def _named(offered: dict[str, ToolOrigin], kind: str, name: Any, where: str) -> str:
    for offered_name, origin in offered.items():
        if origin.kind == kind and name in (origin.name, offered_name):
            return offered_name
    raise InvalidRequestError(
        f"{where} names {name!r}, which is not among the {kind} tools.", param=where
    )


def _plan(
    functions: tuple[Function, ...], tool_choice: Any, offered: dict[str, ToolOrigin]
) -> ToolPlan | None:
    """The Responses forms of `tool_choice`, onto chat's plan."""
    if not functions and tool_choice in (None, "auto", "none"):
        return None
    if tool_choice is None or isinstance(tool_choice, str):
        return plan_functions(functions, tool_choice)
    kind = tool_choice.get("type") if isinstance(tool_choice, dict) else None
    if kind in ("function", "custom"):
        name = _named(offered, kind, tool_choice.get("name"), "tool_choice.name")
        return plan_functions(functions, {"type": "function", "function": {"name": name}})
    if kind == "allowed_tools":
        return _allowed(functions, tool_choice, offered)
    if kind in HOSTED_TOOLS:
        raise InvalidRequestError(
            f"tool_choice cannot force a {kind!r} tool: hosted tools do not run here.",
            param="tool_choice.type",
        )
    raise InvalidRequestError(
        "tool_choice must be 'none', 'auto', 'required', {'type': 'function', 'name': ...}, "
        "{'type': 'custom', 'name': ...} or {'type': 'allowed_tools', ...}.",
        param="tool_choice",
    )


def _allowed(
    functions: tuple[Function, ...], choice: dict[str, Any], offered: dict[str, ToolOrigin]
) -> ToolPlan:
    mode = choice.get("mode", "auto")
    listed = choice.get("tools")
    if mode not in ("auto", "required") or not isinstance(listed, list):
        raise InvalidRequestError(
            "allowed_tools needs a mode ('auto' or 'required') and a list of tools.",
            param="tool_choice",
        )
    names = set()
    for index, tool in enumerate(listed):
        kind = tool.get("type") if isinstance(tool, dict) else None
        where = f"tool_choice.tools[{index}]"
        if kind not in ("function", "custom"):
            raise InvalidRequestError(
                "allowed_tools lists function and custom tools only.", param=f"{where}.type"
            )
        names.add(_named(offered, kind, tool.get("name"), f"{where}.name"))
    base = plan_functions(functions, mode)
    assert base is not None
    return ToolPlan(mode, base.functions, tuple(f for f in functions if f.name in names))
