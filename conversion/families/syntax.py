"""How a family writes tool calls: where they start in a reply, how to read them, and
the structure that forces one.

A `ToolSyntax` is all text: the engine renders a family's marker tokens into the
reply text (`Family.markers`), so parsing works on strings, streamed or not. Every
syntax shares the same reading rule: content runs until a call opener (or, for
families whose calls are bare JSON, a `{` at the very start); from there on the rest
of the reply is held and parsed whole when it ends. Text a syntax cannot read stays
content, so malformed output is shown, never dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conversion.structure import Literal, Part, Structure
from conversion.tools import Function, ParsedCall, ToolPlan

__all__ = (
    "ToolSyntax",
    "all_or_none",
    "arguments_json",
    "between",
    "call_object",
    "json_prefix",
    "read_json_values",
)


def arguments_json(value: Any) -> str | None:
    """Arguments as the JSON-object string OpenAI sends; None if they are no object."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict):
        return None
    return json.dumps(value, ensure_ascii=False)


def call_object(
    value: Any, names: Sequence[str], arguments: str = "arguments"
) -> ParsedCall | None:
    """`{"name": ..., "arguments": {...}}` (or `parameters`) naming an allowed function."""
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    args = arguments_json(value.get(arguments, value.get("parameters", value.get("arguments"))))
    return None if args is None else ParsedCall(value["name"], args)


_DECODER = json.JSONDecoder()


def read_json_values(text: str, separators: str = " \t\r\n;,") -> list[Any] | None:
    """Consecutive JSON values (separated by whitespace, `;` or `,`), or None if the
    text is anything else."""
    values: list[Any] = []
    index = 0
    while True:
        while index < len(text) and text[index] in separators:
            index += 1
        if index == len(text):
            return values
        try:
            value, index = _DECODER.raw_decode(text, index)
        except ValueError:
            return None
        values.append(value)


def json_prefix(text: str) -> tuple[Any, int] | None:
    """The JSON value at the start of `text` (after whitespace) and where it ends."""
    stripped = len(text) - len(text.lstrip())
    try:
        return _DECODER.raw_decode(text, stripped)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ToolSyntax:
    """Base: Hermes' `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, the
    format many models share and the fallback for templates that show none."""

    name: str = "hermes"
    openers: tuple[str, ...] = ("<tool_call>",)
    """Text that starts a call anywhere in a reply."""
    bare_json: bool = True
    """A reply that starts with `{` may be a call written as bare JSON."""

    def parse(self, text: str, functions: Sequence[Function]) -> list[ParsedCall] | None:
        """The calls in `text` (which starts at an opener, or with `{` for bare JSON),
        or None when it is not entirely calls of the allowed `functions`."""
        names = [f.name for f in functions]
        body = text.strip()
        if body.startswith("{"):
            values = read_json_values(body)
            return all_or_none([call_object(v, names) for v in values or ()])
        blocks = between(body, "<tool_call>", "</tool_call>")
        if blocks is None:
            return None
        return all_or_none([call_object(json_prefix_value(block), names) for block in blocks])

    def forced(self, plan: ToolPlan) -> Structure:
        """The structure a forced call takes: one call of an allowed function."""
        return Structure(tuple(self.forced_call(f) for f in plan.allowed))

    def forced_call(self, function: Function) -> tuple[Part, ...]:
        return (
            Literal('<tool_call>\n{"name": "' + function.name + '", "arguments": '),
            function.arguments(),
            Literal("}\n</tool_call>"),
        )

    def write(self, name: str, arguments: str) -> str:
        """A call as this family writes it (`arguments`: a JSON object, as text), for
        history shown to a template that cannot render calls, and for the example in
        the instructions that describe tools to such a template."""
        return f'<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>'

    def history_id(self, call_id: str) -> str:
        """A call id as the template accepts it (Mistral's insist on 9 characters)."""
        return call_id

    def cut_call(self, text: str, names: Sequence[str]) -> list[ParsedCall] | None:
        """A forced call that ran out of tokens: its name and the arguments so far (the
        grammar fixed its layout), as OpenAI returns a call cut by `max_tokens`."""
        match = re.search(r'"name": "([^"]*)"(?:, "arguments": (.*))?', text, re.S)
        if match is None or match[1] not in names:
            return None
        return [ParsedCall(match[1], match[2] or "")]


def all_or_none(calls: Sequence[ParsedCall | None]) -> list[ParsedCall] | None:
    """The calls, if there are some and every one was read."""
    if not calls or any(call is None for call in calls):
        return None
    return [call for call in calls if call is not None]


def between(text: str, opener: str, closer: str) -> list[str] | None:
    """The bodies of `opener ... closer` blocks that make up all of `text` (the last
    closer may be missing: a reply may end at a stop token), or None if anything else
    is there."""
    blocks: list[str] = []
    rest = text.strip()
    while rest:
        if not rest.startswith(opener):
            return None
        end = rest.find(closer, len(opener))
        if end < 0:
            blocks.append(rest[len(opener) :])
            break
        blocks.append(rest[len(opener) : end])
        rest = rest[end + len(closer) :].strip()
    return blocks


def json_prefix_value(text: str) -> Any:
    found = json_prefix(text)
    if found is None or text[found[1] :].strip():
        return None
    return found[0]
