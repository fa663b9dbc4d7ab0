"""conversion/json_schema.py: what a strict schema may use, refused by path otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, Field

from conversion.errors import InvalidRequestError
from conversion.json_schema import check_schema

P = "response_format.json_schema.schema"


class Item(BaseModel):
    label: str
    tags: list[str] = Field(max_length=4)


class Order(BaseModel):
    id: str
    items: list[Item]
    note: str | None
    child: Order | None = None


def refused(schema: Any, *, strict: bool = True) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        check_schema(schema, P, strict=strict)
    return caught.value


def test_what_the_sdk_makes_of_pydantic_models_passes() -> None:
    """`$defs`/`$ref` (recursive too), `anyOf` with null, arrays of objects, maxItems,
    `additionalProperties: false`, every field required."""
    check_schema(to_strict_json_schema(Order), P, strict=True)


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ({"type": "integer", "minimum": 0}, f"{P}.minimum"),
        (
            {"type": "object", "properties": {"n": {"type": "number", "multipleOf": 2}}},
            f"{P}.properties.n.multipleOf",
        ),
        (
            {"$defs": {"X": {"type": "array", "uniqueItems": True}}, "$ref": "#/$defs/X"},
            f"{P}.$defs.X.uniqueItems",
        ),
        ({"anyOf": [{"type": "null"}, {"not": {"type": "string"}}]}, f"{P}.anyOf[1].not"),
        ({"type": "array", "items": {"type": "integer", "maximum": 3}}, f"{P}.items.maximum"),
    ],
)
def test_strict_refuses_what_no_grammar_enforces_naming_its_path(
    schema: dict[str, Any], path: str
) -> None:
    assert refused(schema).param == path
    check_schema(schema, P, strict=False)  # accepted, not enforced, when not strict


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ({"$ref": "https://example.com/s.json"}, f"{P}.$ref"),
        ({"properties": {"a": {"$ref": "#/$defs/Missing"}}}, f"{P}.properties.a.$ref"),
        ({"type": "string", "pattern": "abc"}, f"{P}.pattern"),
        ({"type": "string", "pattern": "^(?=a)b$"}, f"{P}.pattern"),
        ({"properties": {"a": 3}}, f"{P}.properties.a"),
    ],
)
def test_broken_schemas_are_refused_by_path_whatever_the_mode(
    schema: dict[str, Any], path: str
) -> None:
    assert refused(schema, strict=False).param == path


def test_annotations_and_unknown_keywords_pass() -> None:
    check_schema(
        {
            "title": "T",
            "description": "d",
            "type": "string",
            "format": "email",
            "default": "x",
            "x-vendor": 1,
            "pattern": "^[a-z]+$",
        },
        P,
        strict=True,
    )
