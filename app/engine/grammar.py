"""JSON schemas -> llama.cpp GBNF grammars, for structured replies and forced tool calls.

llama-cpp-python ships a Python port of llama.cpp's JSON-schema converter
(`llama_cpp.llama_grammar.SchemaConverter`); the grammar then constrains sampling so the
reply can only be JSON that matches. The port in 0.3.36 lags llama.cpp's own C++
converter (`common/json-schema-to-grammar.cpp`) in ways that let invalid JSON through,
so it is used with three small corrections, each checked by `tests/unit`-level tests
that fail if the upstream rule they correct changes:

1. `char`, one character inside a JSON string, is `[^"\\\\] | …` upstream: it admits the
   raw control characters U+0000-U+001F, which JSON forbids inside strings (a model
   did emit a raw newline there). The C++ converter's rule replaces it.
2. Literals (property names, `enum` and `const` values, already JSON-encoded) are
   escaped for GBNF without their backslashes, so a value holding `\\` or an escape
   such as `\\n` would come out as different (or broken) JSON. The C++ converter
   escapes backslashes too; so does this one.
3. A `pattern` is turned into grammar rules over the string's raw text, where `.` and
   negated classes `[^…]` would admit a raw `"`, `\\` or control character. Here they
   exclude those (a pattern thus matches only characters that need no JSON escape).

A string schema may also carry the GBNF of its content (`GBNF_STRING_KEY`, put there by
`conversion.custom_grammar` for a custom tool's input): its rules join the grammar,
renamed apart, in place of the converter's string rule.

Schema features the converter cannot express reach the client as a 400 naming the
schema, before any model work; `conversion/json_schema.py` has already refused, with
their paths, the keywords a strict schema uses that no grammar here enforces.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llama_cpp.llama_grammar import SchemaConverter

from conversion.custom_grammar import GBNF_STRING_KEY
from conversion.errors import InvalidRequestError
from conversion.structure import Json, Literal, Structure

__all__ = (
    "JSON_CHAR_RULE",
    "UPSTREAM_CHAR_RULE",
    "grammar_for",
    "grammar_for_structure",
    "literal",
)

UPSTREAM_CHAR_RULE = (
    r'[^"\\] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
)
"""llama-cpp-python 0.3.36's `char` rule, the one corrected (a test pins it)."""
JSON_CHAR_RULE = r'[^"\\\x7F\x00-\x1F] | [\\] (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
"""llama.cpp's C++ rule (which also keeps DEL out), plus the valid escape `\\/`."""
_STRING_UNSAFE = r'"\\\x7F\x00-\x1F'
"""What a negated class inside a JSON string must also exclude, in GBNF class syntax."""
_LITERAL_ESCAPES = {"\r": "\\r", "\n": "\\n", '"': '\\"', "\\": "\\\\"}


def _json_safe_negations(rule: str) -> str:
    """Every negated class `[^…]` in `rule` (outside `"…"` literals) also excludes the
    characters a JSON string cannot hold raw. In a JSON grammar a negated class only
    ever matches inside a string, so this is always right; repeats are harmless."""
    out: list[str] = []
    i, n = 0, len(rule)
    while i < n:
        c = rule[i]
        if c in '"[':  # copy a literal or a class whole, minding backslash escapes
            close = '"' if c == '"' else "]"
            j = i + 1
            if c == "[" and rule.startswith("[^", i):
                out.append("[^" + _STRING_UNSAFE)
                j = i + 2
            else:
                out.append(c)
            while j < n and rule[j] != close:
                step = 2 if rule[j] == "\\" else 1
                out.append(rule[j : j + step])
                j += step
            out.append(rule[j : j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


class _JsonSafeConverter(SchemaConverter):
    """llama-cpp-python's converter with the corrections in the module docstring."""

    def _format_literal(self, literal: str) -> str:
        return '"' + re.sub(r'[\r\n"\\]', lambda m: _LITERAL_ESCAPES[m.group(0)], literal) + '"'

    def _add_rule(self, name: str, rule: str) -> str:
        if name == "char":  # only the primitive: schema names that clash get a suffix
            rule = JSON_CHAR_RULE
        elif name == "dot":  # a pattern's `.`: any character but line breaks
            rule = r"[^\x0A\x0D]"
        return str(super()._add_rule(name, _json_safe_negations(rule)))  # type: ignore[no-untyped-call]

    def visit(self, schema: Any, name: str) -> str:
        content = schema.get(GBNF_STRING_KEY) if isinstance(schema, dict) else None
        if not isinstance(content, str):
            return str(super().visit(schema, name))  # type: ignore[no-untyped-call]
        prefix = f"{name or 'root'}-content-"
        for line in content.splitlines():
            rule_name, body = line.split(" ::= ", 1)
            self._add_rule(prefix + rule_name, _renamed(body, prefix))
        return self._add_rule(name or "root", f'"\\"" {prefix}root "\\"" space')


def _schema_rules(schema: dict[str, Any], param: str) -> list[tuple[str, str]]:
    """The converter's rules for one schema, as (name, body); the first is `root`."""
    try:
        converter = _JsonSafeConverter(  # type: ignore[no-untyped-call]
            prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
        )
        # resolve_refs rewrites `$ref`s in place: work on a copy of the request's schema
        resolved = converter.resolve_refs(json.loads(json.dumps(schema)), "input")
        converter.visit(resolved, "")
        text = str(converter.format_grammar())  # type: ignore[no-untyped-call]
    except Exception as exc:  # any failure of the converter: the schema is unusable
        raise InvalidRequestError(
            f"This JSON schema cannot be enforced: {exc}",
            param=param,
        ) from exc
    rules = [tuple(line.split(" ::= ", 1)) for line in text.splitlines()]
    rules.sort(key=lambda rule: rule[0] != "root")
    return [(name, body) for name, body in rules]


_RULE_NAME = re.compile(r"[A-Za-z0-9-]+")


def _renamed(body: str, prefix: str) -> str:
    """`body` with every rule reference (outside literals and classes) prefixed."""
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c in '"[{':  # literals, classes and {m,n} repetitions are copied whole
            close = {'"': '"', "[": "]", "{": "}"}[c]
            j = i + 1
            while j < n and body[j] != close:
                j += 2 if body[j] == "\\" else 1
            out.append(body[i : j + 1])
            i = j + 1
        elif (match := _RULE_NAME.match(body, i)) is not None:
            out.append(prefix + match[0])
            i = match.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    escaped = "".join(
        _LITERAL_ESCAPES.get(c) or (f"\\x{ord(c):02X}" if ord(c) < 0x20 else c) for c in text
    )
    return f'"{escaped}"'


def grammar_for_structure(structure: Structure) -> str:
    """One GBNF grammar for a `Structure`: its options as alternatives of `root`, each
    a sequence of literals, schema-matching JSON (the converter's rules, renamed apart)
    and free text."""
    rules: list[str] = []
    options: list[str] = []
    free = False
    for o, option in enumerate(structure.options):
        sequence: list[str] = []
        for p, part in enumerate(option):
            if isinstance(part, Literal):
                if part.text:
                    sequence.append(literal(part.text))
            elif isinstance(part, Json):
                prefix = f"o{o}p{p}-"
                for name, body in _schema_rules(part.schema, part.param):
                    rules.append(f"{prefix}{name} ::= {_renamed(body, prefix)}")
                sequence.append(f"{prefix}root")
            else:
                free = True
                sequence.append("free-text")
        options.append(" ".join(sequence) or '""')
    if free:
        rules.append("free-text ::= [^<]*")
    return "\n".join([f"root ::= {' | '.join(f'( {o} )' for o in options)}", *rules])


def grammar_for(schema: dict[str, Any], param: str) -> str:
    """The grammar of JSON matching `schema`; `param`: its request field, for the 400."""
    return grammar_for_structure(Structure.json(schema, param))
