"""The shape a constrained reply must take, before it becomes a llama.cpp grammar.

A structured answer is JSON matching a schema; a forced tool call is the call written
in the model's own syntax (`<tool_call>` JSON `</tool_call>`, `[TOOL_CALLS]name[ARGS]`
JSON, Qwen3-Coder's XML, harmony's `to=functions.NAME` header, ...). Both are a choice
of `options`, each a sequence of parts: literal text, JSON matching a schema, or free
text. The engine turns a `Structure` into one GBNF grammar (`app.engine.grammar`); the
families (`conversion.families`) say which structure their syntax needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ("FreeText", "Json", "Literal", "Part", "Structure")


@dataclass(frozen=True, slots=True)
class Literal:
    text: str


@dataclass(frozen=True, slots=True)
class Json:
    schema: dict[str, Any]
    param: str
    """The request field the schema came from, for errors about it."""


@dataclass(frozen=True, slots=True)
class FreeText:
    """Any text without `<` (the value of a Qwen3-Coder string parameter, which ends at
    the next tag)."""


Part = Literal | Json | FreeText


@dataclass(frozen=True, slots=True)
class Structure:
    options: tuple[tuple[Part, ...], ...]

    @classmethod
    def json(cls, schema: dict[str, Any], param: str, prefix: str = "") -> Structure:
        """JSON matching `schema`, after `prefix` (text the family's answer starts with)."""
        parts: tuple[Part, ...] = (Json(schema, param),)
        return cls(((Literal(prefix), *parts) if prefix else parts,))

    @property
    def param(self) -> str:
        """The field errors about the structure name: its first schema's."""
        for option in self.options:
            for part in option:
                if isinstance(part, Json):
                    return part.param
        return "tools"
