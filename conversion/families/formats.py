"""Each family's tool-call syntax, as its models write calls (see `syntax.ToolSyntax`).

The examples in the docstrings are what the models emit; llama.cpp's chat tests and
the families' own templates were read to establish them. Forced calls are built in
the same syntax, so a constrained model writes what it was trained to write.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conversion.families.syntax import (
    ToolSyntax,
    all_or_none,
    arguments_json,
    between,
    call_object,
    json_prefix,
    read_json_values,
)
from conversion.structure import FreeText, Json, Literal, Part
from conversion.tools import Function, ParsedCall

__all__ = (
    "DeepSeekR1Syntax",
    "DeepSeekV3Syntax",
    "Gemma4Syntax",
    "HarmonySyntax",
    "Llama3Syntax",
    "MistralArgsSyntax",
    "MistralJsonSyntax",
    "Phi4Syntax",
    "Qwen3CoderSyntax",
)


def _names(functions: Sequence[Function]) -> list[str]:
    return [f.name for f in functions]


def _nine(call_id: str) -> str:
    """A 9-character alphanumeric id derived from any id (Mistral's templates refuse
    others); the same id always gives the same one, so calls and results still pair."""
    return hashlib.sha256(call_id.encode()).hexdigest()[:9]


@dataclass(frozen=True, slots=True)
class Llama3Syntax(ToolSyntax):
    """`{"name": "get_weather", "parameters": {"city": "Paris"}}` as the whole reply
    (several separated by `;`), or after `<|python_tag|>`."""

    name: str = "llama3"
    openers: tuple[str, ...] = ("<|python_tag|>",)
    bare_json: bool = True

    def parse(self, text: str, functions: Sequence[Function]) -> list[ParsedCall] | None:
        body = text.strip().removeprefix("<|python_tag|>")
        values = read_json_values(body)
        return all_or_none([call_object(v, _names(functions), "parameters") for v in values or ()])

    def write(self, name: str, arguments: str) -> str:
        return f'{{"name": "{name}", "parameters": {arguments}}}'

    def forced_call(self, function: Function) -> tuple[Part, ...]:
        return (
            Literal('{"name": "' + function.name + '", "parameters": '),
            function.arguments(),
            Literal("}"),
        )

    def cut_call(self, text: str, names: Sequence[str]) -> list[ParsedCall] | None:
        match = re.search(r'"name": "([^"]*)"(?:, "parameters": (.*))?', text, re.S)
        if match is None or match[1] not in names:
            return None
        return [ParsedCall(match[1], match[2] or "")]


@dataclass(frozen=True, slots=True)
class MistralJsonSyntax(ToolSyntax):
    """Mistral Nemo: `[TOOL_CALLS][{"name": "f", "arguments": {...}, "id": "..."}]`."""

    name: str = "mistral-json"
    openers: tuple[str, ...] = ("[TOOL_CALLS]",)
    bare_json: bool = False

    def parse(self, text: str, functions: Sequence[Function]) -> list[ParsedCall] | None:
        found = json_prefix(text.strip().removeprefix("[TOOL_CALLS]"))
        if found is None or not isinstance(found[0], list):
            return None
        return all_or_none([call_object(v, _names(functions)) for v in found[0]])

    def write(self, name: str, arguments: str) -> str:
        return f'[TOOL_CALLS][{{"name": "{name}", "arguments": {arguments}}}]'

    def history_id(self, call_id: str) -> str:
        return _nine(call_id)

    def forced_call(self, function: Function) -> tuple[Part, ...]:
        return (
            Literal('[TOOL_CALLS][{"name": "' + function.name + '", "arguments": '),
            function.arguments(),
            Literal("}]"),
        )


_MISTRAL_CALL = re.compile(
    r"\[TOOL_CALLS\]\s*([A-Za-z0-9_-]+)\s*(?:\[CALL_ID\]\s*([A-Za-z0-9]+)\s*)?\[ARGS\]", re.S
)


@dataclass(frozen=True, slots=True)
class MistralArgsSyntax(ToolSyntax):
    """Mistral Small 3.x, Devstral, Ministral/Magistral: `[TOOL_CALLS]f[ARGS]{...}`,
    `[CALL_ID]id` between name and arguments in some, one block per call."""

    name: str = "mistral"
    openers: tuple[str, ...] = ("[TOOL_CALLS]",)
    bare_json: bool = False

    def parse(self, text: str, functions: Sequence[Function]) -> list[ParsedCall] | None:
        rest, calls = text.strip(), []
        while rest:
            match = _MISTRAL_CALL.match(rest)
            if match is None or match[1] not in _names(functions):
                return None
            found = json_prefix(rest[match.end() :])
            args = arguments_json(found[0]) if found else None
            if found is None or args is None:
                return None
            calls.append(ParsedCall(match[1], args))
            rest = rest[match.end() + found[1] :].strip()
        return calls or None

    def write(self, name: str, arguments: str) -> str:
        return f"[TOOL_CALLS]{name}[ARGS]{arguments}"

    def history_id(self, call_id: str) -> str:
        return _nine(call_id)

    def forced_call(self, function: Function) -> tuple[Part, ...]:
        return (
            Literal(f"[TOOL_CALLS]{function.name}[ARGS]"),
            function.arguments(),
        )

    def cut_call(self, text: str, names: Sequence[str]) -> list[ParsedCall] | None:
        match = _MISTRAL_CALL.match(text.strip())
        if match is None or match[1] not in names:
            return None
        return [ParsedCall(match[1], text.strip()[match.end() :])]


_DS_BEGIN, _DS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
_DS_CALL, _DS_CALL_END, _DS_SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"


_DS_BEGIN_VARIANTS = (
    "<｜tool_calls_begin｜>",
    "<｜tool calls begin｜>",
    "<｜tool\\_calls\\_begin｜>",
    "<｜tool▁calls｜>",
)
"""Openers R1 distills write instead of the real token (llama.cpp accepted these too)."""


def _deepseek_blocks(text: str) -> list[str] | None:
    body = text.strip()
    for variant in _DS_BEGIN_VARIANTS:
        body = body.replace(variant, _DS_BEGIN)
    body = body.removeprefix(_DS_BEGIN)
    end = body.find(_DS_END)
    if end >= 0:
        if body[end + len(_DS_END) :].strip():
            return None
        body = body[:end]
    return between(body, _DS_CALL, _DS_CALL_END)


@dataclass(frozen=True, slots=True)
class DeepSeekV3Syntax(ToolSyntax):
    """DeepSeek V3.1+: `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{...}
    <｜tool▁call▁end｜><｜tool▁calls▁end｜>` (one call block per call)."""

    name: str = "deepseek-v3"
    openers: tuple[str, ...] = (_DS_BEGIN, _DS_CALL)
    bare_json: bool = False

    def _call(self, block: str, names: Sequence[str]) -> ParsedCall | None:
        name, sep, args = block.partition(_DS_SEP)
        arguments = arguments_json(args.strip()) if sep else None
        if name.strip() not in names or arguments is None:
            return None
        return ParsedCall(name.strip(), arguments)

    def parse(self, text: str, functions: Sequence[Function]) -> list[ParsedCall] | None:
        blocks = _deepseek_blocks(text)
        names = _names(functions)
        return None if blocks is None else all_or_none([self._call(b, names) for b in blocks])

    def write(self, name: str, arguments: str) -> str:
        return f"{_DS_BEGIN}{_DS_CALL}{name}{_DS_SEP}{arguments}{_DS_CALL_END}{_DS_END}"

    def forced_call(self, function: Function) -> tuple[Part, ...]:
        return (
            Literal(f"{_DS_BEGIN}{_DS_CALL}{function.name}{_DS_SEP}"),
            function.arguments(),
            Literal(f"{_DS_CALL_END}{_DS_END}"),
        )

    def cut_call(self, text: str, names: Sequence[str]) -> list[ParsedCall] | None:
        head, sep, args = text.partition(_DS_SEP)
        name = head.rpartition(_DS_CALL)[2].removeprefix("function").strip()
        return [ParsedCall(name, args.strip())] if sep and name in names else None


@dataclass(frozen=True, slots=True)
class DeepSeekR1Syntax(DeepSeekV3Syntax):
    """DeepSeek R1 and its distills: `<｜tool▁call▁begin｜>function<｜tool▁sep｜>f` then
    the arguments in a ```json fence."""

    name: str = "deepseek-r1"
    openers: tuple[str, ...] = (_DS_BEGIN, _DS_CALL, *_DS_BEGIN_VARIANTS)

    def _call(self, block: str, names: Sequence[str]) -> ParsedCall | None:
        kind, sep, rest = block.partition(_DS_SEP)
        name, _, fenced = rest.partition("\n")
        match = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", fenced, re.S)
        arguments = arguments_json(match[1]) if match else None
        if not sep or kind.strip() != "function" or name.strip() not in names or not arguments:
            return None
        return ParsedCall(name.strip(), arguments)

    def write(self, name: str, arguments: str) -> str:
        fenced = f"\n```json\n{arguments}\n```"
        return f"{_DS_BEGIN}{_DS_CALL}function{_DS_SEP}{name}{fenced}{_DS_CALL_END}{_DS_END}"

    def forced_call(self, function: Function) -> tuple[Part, ...]:
        return (
            Literal(f"{_DS_BEGIN}{_DS_CALL}function{_DS_SEP}{function.name}\n```json\n"),
            function.arguments(),
            Literal(f"\n```{_DS_CALL_END}{_DS_END}"),
        )

    def cut_call(self, text: str, names: Sequence[str]) -> list[ParsedCall] | None:
        _, sep, rest = text.partition(_DS_SEP)
        name, _, fenced = rest.partition("\n")
        args = fenced.strip().removeprefix("```json").strip()
        return [ParsedCall(name.strip(), args)] if sep and name.strip() in names else None


_HARMONY_CALL = re.compile(
    r"(?:<\|start\|>assistant)?\s*(?:<\|channel\|>(?:commentary|analysis))?\s*"
    r"to=functions\.([A-Za-z0-9_.-]+)\s*(?:<\|channel\|>(?:commentary|analysis))?\s*"
    r"(?:<\|constrain\|>)?\s*\w*\s*<\|message\|>",
    re.S,
)


@dataclass(frozen=True, slots=True)
class HarmonySyntax(ToolSyntax):
    """gpt-oss: `<|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json
    <|message|>{...}` ended by `<|call|>` (an end-of-generation token)."""

    name: str = "harmony"
    openers: tuple[str, ...] = (
        "<|start|>assistant<|channel|>commentary to=",
        "<|start|>assistant to=",
        "<|channel|>commentary to=",
        "<|channel|>analysis to=",
        " to=functions.",
    )
    bare_json: bool = False

    def parse(self, text: str, functions: Sequence[Function]) -> list[ParsedCall] | None:
        rest, calls = text.strip(), []
        while rest:
            match = _HARMONY_CALL.match(rest)
            if match is None or match[1] not in _names(functions):
                return None
            body, _, rest = rest[match.end() :].partition("<|call|>")
            args = arguments_json(body.strip())
            if args is None:
                return None
            calls.append(ParsedCall(match[1], args))
            rest = rest.strip()
        return calls or None

    def write(self, name: str, arguments: str) -> str:
        header = f"<|start|>assistant<|channel|>commentary to=functions.{name}"
        return f"{header} <|constrain|>json<|message|>{arguments}<|call|>"

    def forced_call(self, function: Function) -> tuple[Part, ...]:
        header = f"<|start|>assistant<|channel|>commentary to=functions.{function.name}"
        return (
            Literal(header + " <|constrain|>json<|message|>"),
            function.arguments(),
        )

    def cut_call(self, text: str, names: Sequence[str]) -> list[ParsedCall] | None:
        match = _HARMONY_CALL.match(text.strip())
        if match is None or match[1] not in names:
            return None
        return [ParsedCall(match[1], text.strip()[match.end() :])]


@dataclass(frozen=True, slots=True)
class Phi4Syntax(ToolSyntax):
    """Phi-4-mini: `<|tool_call|>{"name": "f", "arguments": {...}}<|/tool_call|>`."""

    name: str = "phi4"
    openers: tuple[str, ...] = ("<|tool_call|>",)
    bare_json: bool = False

    def parse(self, text: str, functions: Sequence[Function]) -> list[ParsedCall] | None:
        blocks = between(text, "<|tool_call|>", "<|/tool_call|>")
        values: list[Any] = []
        for block in blocks or ():
            found = read_json_values(block.strip())
            for value in found or [None]:
                values.extend(value if isinstance(value, list) else [value])
        return all_or_none([call_object(v, _names(functions)) for v in values])

    def write(self, name: str, arguments: str) -> str:
        return f'<|tool_call|>{{"name": "{name}", "arguments": {arguments}}}<|/tool_call|>'

    def forced_call(self, function: Function) -> tuple[Part, ...]:
        return (
            Literal('<|tool_call|>{"name": "' + function.name + '", "arguments": '),
            function.arguments(),
            Literal("}<|/tool_call|>"),
        )


_GEMMA_QUOTE = '<|"|>'


def _gemma_json(text: str) -> Any:
    """Gemma 4's argument notation (`{city:<|"|>Paris<|"|>,n:3}`) as a JSON value:
    its string quote token becomes `"` and bare keys get quoted."""
    pieces = text.split(_GEMMA_QUOTE)
    for index in range(0, len(pieces), 2):  # outside strings only
        pieces[index] = re.sub(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:", r'\1"\2":', pieces[index])
    for index in range(1, len(pieces), 2):
        pieces[index] = json.dumps(pieces[index])[1:-1]
    try:
        return json.loads('"'.join(pieces))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Gemma4Syntax(ToolSyntax):
    """Gemma 4: `<|tool_call>call:f{city:<|"|>Paris<|"|>}<tool_call|>`. Forced calls
    write the arguments as plain JSON, which this reader takes too."""

    name: str = "gemma4"
    openers: tuple[str, ...] = ("<|tool_call>",)
    bare_json: bool = False

    def parse(self, text: str, functions: Sequence[Function]) -> list[ParsedCall] | None:
        calls: list[ParsedCall | None] = []
        for block in between(text, "<|tool_call>", "<tool_call|>") or ():
            match = re.fullmatch(r"\s*call:([A-Za-z0-9_-]+)\s*(\{.*\})\s*", block, re.S)
            if match is None or match[1] not in _names(functions):
                return None
            args = arguments_json(_gemma_json(match[2]))
            calls.append(ParsedCall(match[1], args) if args is not None else None)
        return all_or_none(calls)

    def write(self, name: str, arguments: str) -> str:
        return f"<|tool_call>call:{name}{arguments}<tool_call|>"

    def forced_call(self, function: Function) -> tuple[Part, ...]:
        return (
            Literal(f"<|tool_call>call:{function.name}"),
            function.arguments(),
            Literal("<tool_call|>"),
        )


_QWEN_FUNCTION = re.compile(r"<function=([A-Za-z0-9_.-]+)>(.*?)(?:</function>|$)", re.S)
_QWEN_PARAMETER = re.compile(r"<parameter=([^>\n]+)>\n?(.*?)\n?(?:</parameter>|$)", re.S)


@dataclass(frozen=True, slots=True)
class Qwen3CoderSyntax(ToolSyntax):
    """Qwen3-Coder (and Qwen3.5): `<tool_call>\\n<function=f>\\n<parameter=city>\\nParis
    \\n</parameter>\\n</function>\\n</tool_call>`; values are raw text, JSON for
    non-string parameters."""

    name: str = "qwen3-coder"
    openers: tuple[str, ...] = ("<tool_call>", "<function=")
    bare_json: bool = False

    def _value(self, raw: str, schema: Any) -> Any:
        """Raw text for a string (unless written as a JSON string, as a constrained
        call writes enums), else JSON when it parses."""
        kind = schema.get("type") if isinstance(schema, dict) else None
        if kind == "string" and not (raw.startswith('"') and raw.endswith('"')):
            return raw
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    def parse(self, text: str, functions: Sequence[Function]) -> list[ParsedCall] | None:
        by_name = {f.name: f for f in functions}
        body = re.sub(r"</?tool_call>", "", text).strip()
        calls: list[ParsedCall | None] = []
        position = 0
        for match in _QWEN_FUNCTION.finditer(body):
            if body[position : match.start()].strip():
                return None
            position = match.end()
            function = by_name.get(match[1])
            if function is None:
                return None
            properties = function.parameters.get("properties", {})
            args = {
                key.strip(): self._value(value, properties.get(key.strip()))
                for key, value in _QWEN_PARAMETER.findall(match[2])
            }
            calls.append(ParsedCall(match[1], json.dumps(args, ensure_ascii=False)))
        if body[position:].strip():
            return None
        return all_or_none(calls)

    def write(self, name: str, arguments: str) -> str:
        try:
            values = json.loads(arguments)
        except ValueError:
            values = None
        if not isinstance(values, dict):  # a placeholder, as in the instructions
            values = {"<parameter name>": "<value>"}
        params = "".join(
            f"<parameter={key}>\n{v if isinstance(v, str) else json.dumps(v)}\n</parameter>\n"
            for key, v in values.items()
        )
        return f"<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>"

    def forced_call(self, function: Function) -> tuple[Part, ...]:
        parts: list[Part] = [Literal(f"<tool_call>\n<function={function.name}>\n")]
        properties = function.parameters.get("properties", {})
        for key in function.parameters.get("required", list(properties)):
            schema = properties.get(key, {})
            parts.append(Literal(f"<parameter={key}>\n"))
            if (
                isinstance(schema, dict)
                and set(schema) <= {"type", "description", "title"}
                and (schema.get("type") == "string")
            ):
                parts.append(FreeText())
            else:
                parts.append(Json(schema, f"{function.param}.properties.{key}"))
            parts.append(Literal("\n</parameter>\n"))
        parts.append(Literal("</function>\n</tool_call>"))
        return tuple(parts)

    def cut_call(self, text: str, names: Sequence[str]) -> list[ParsedCall] | None:
        return None  # arguments are not JSON until the call is whole
