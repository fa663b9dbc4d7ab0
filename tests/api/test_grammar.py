"""The grammars built from JSON schemas can only produce valid JSON (issue: raw control
characters in strings). Checked on the grammar text itself, rule by rule, and against
the upstream converter rules the corrections in app/engine/grammar.py rely on."""

from __future__ import annotations

import json
import re
from enum import Enum
from typing import Any

import llama_cpp
import pytest
from llama_cpp import llama_grammar
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, Field

from app.engine.grammar import JSON_CHAR_RULE, UPSTREAM_CHAR_RULE, grammar_for
from conversion.errors import InvalidRequestError


class Colour(Enum):
    RED = "red"
    GREEN = "green"


class Pet(BaseModel):
    name: str
    nickname: str | None = None


class Person(BaseModel):
    name: str
    age: int
    colour: Colour
    pets: list[Pet] = Field(max_length=3)


SCHEMAS: dict[str, dict[str, Any]] = {
    "pydantic strict": to_strict_json_schema(Person),
    "json_object": {"type": "object"},
    "enum with escapes": {"enum": ["back\\slash", "new\nline", 'quote"d', "tab\there"]},
    "pattern": {"type": "string", "pattern": "^[^x]+-.{2}$"},
    "bounded string": {"type": "string", "minLength": 1, "maxLength": 5},
    "property names with escapes": {
        "type": "object",
        "properties": {"a\\b": {"type": "string"}, 'c"d': {"type": "integer"}},
        "required": ["a\\b", 'c"d'],
    },
    "free-form values": {"type": "object", "additionalProperties": {"type": "array"}},
}

_CONTROL = [chr(c) for c in range(0x20)]
_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]')


def _unescape(text: str) -> list[str]:
    """The characters of a GBNF class body or literal, with escapes decoded, as a list
    of single characters and (lo, hi) ranges marked by a '-' entry between them."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            kind = text[i + 1]
            if kind == "x":
                out.append(chr(int(text[i + 2 : i + 4], 16)))
                i += 4
            elif kind in "uU":
                width = 4 if kind == "u" else 8
                out.append(chr(int(text[i + 2 : i + 2 + width], 16)))
                i += 2 + width
            else:
                out.append({"n": "\n", "r": "\r", "t": "\t"}.get(kind, kind))
                i += 2
        else:
            out.append(c)
            i += 1
    return out


def _class_admits(body: str, char: str) -> bool:
    negated = body.startswith("^")
    items = _unescape(body[1:] if negated else body)
    hit, i = False, 0
    while i < len(items):
        if i + 2 < len(items) and items[i + 1] == "-":
            hit = hit or items[i] <= char <= items[i + 2]
            i += 3
        else:
            hit = hit or items[i] == char
            i += 1
    return hit != negated


def _literals_and_classes(grammar: str) -> tuple[list[str], list[str]]:
    literals, classes = [], []
    for line in grammar.splitlines():
        _, _, body = line.partition("::=")
        for token in _TOKEN.findall(body):
            (literals if token[0] == '"' else classes).append(token[1:-1])
    return literals, classes


@pytest.mark.parametrize("name", SCHEMAS)
def test_no_rule_lets_a_control_character_or_raw_quote_into_a_string(name: str) -> None:
    grammar = grammar_for(SCHEMAS[name], "response_format.json_schema.schema")
    literals, classes = _literals_and_classes(grammar)
    assert classes or name.startswith("enum")
    for body in classes:
        for char in _CONTROL:
            assert not _class_admits(body, char), f"[{body}] admits {char!r}"
        if body.startswith("^"):  # negated classes only ever match inside strings
            assert not _class_admits(body, '"'), f"[{body}] admits a raw quote"
            assert not _class_admits(body, "\\"), f"[{body}] admits a raw backslash"
    for literal in literals:
        assert not set(_unescape(literal)) & set(_CONTROL), f'"{literal}" holds a control char'


def test_literals_keep_their_json_escapes() -> None:
    """An enum value's literal text, decoded as GBNF, must be its own JSON encoding."""
    schema = SCHEMAS["enum with escapes"]
    grammar = grammar_for(schema, "p")
    rule = next(line for line in grammar.splitlines() if "back" in line)  # the enum's
    literals = [token[1:-1] for token in _TOKEN.findall(rule.partition("::=")[2])]
    produced = {json.loads("".join(_unescape(literal))) for literal in literals}
    assert produced == set(schema["enum"])


def test_the_grammars_parse_in_llama_cpp(model_path: Any) -> None:
    model = llama_cpp.llama_model_load_from_file(
        str(model_path).encode(), llama_cpp.llama_model_default_params()
    )
    try:
        vocab = llama_cpp.llama_model_get_vocab(model)
        for name, schema in SCHEMAS.items():
            grammar = grammar_for(schema, "p").encode()
            sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar, b"root")
            assert sampler, f"llama.cpp rejected the grammar for {name}"
            llama_cpp.llama_sampler_free(sampler)
    finally:
        llama_cpp.llama_model_free(model)


def test_the_upstream_rules_the_corrections_rely_on_are_unchanged() -> None:
    """If llama-cpp-python updates its converter, look again at app/engine/grammar.py:
    the corrections may have become unnecessary, or need to change."""
    assert llama_grammar.PRIMITIVE_RULES["char"].content == UPSTREAM_CHAR_RULE
    assert llama_grammar.GRAMMAR_LITERAL_ESCAPE_RE.pattern == r'[\r\n"]'
    assert llama_grammar.DOT == "[^\\x0A\\x0D]"
    upstream = llama_grammar.json_schema_to_gbnf(json.dumps({"type": "string"}))
    assert f"char ::= {UPSTREAM_CHAR_RULE}" in upstream
    ours = grammar_for({"type": "string"}, "p")
    char_line = next(line for line in ours.splitlines() if line.split(" ::= ")[0].endswith("char"))
    assert char_line.split(" ::= ")[1].startswith(JSON_CHAR_RULE.split(" |")[0][:-1])


def test_a_schema_the_converter_cannot_express_is_a_400_naming_the_field() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        grammar_for({"type": "frobnicate"}, "text.format.schema")
    assert caught.value.param == "text.format.schema"
