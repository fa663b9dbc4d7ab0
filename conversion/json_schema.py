"""What of a JSON schema the engine's grammars enforce, checked before any model work.

A reply constrained by a grammar built from a schema matches the schema, except where
the schema says something no grammar here can express. Those keywords are listed
below. With `strict: true` (what the openai SDK's `parse()` and `pydantic_function_tool`
send) the client is promised a reply that matches the schema, so such a keyword is a
400 naming its path, as OpenAI refuses what strict mode cannot honour. Without
`strict` it is accepted and not enforced, as a non-strict schema is on OpenAI.

Whatever the mode, a schema the converter could only fail on later with an opaque
message (a `$ref` that points outside the schema or nowhere, an unanchored or
look-around `pattern`) is refused here with the path of the offending part.
"""

from __future__ import annotations

from typing import Any

from conversion.errors import InvalidRequestError

__all__ = ("NOT_ENFORCED", "check_schema", "structured_output_schema")

NOT_ENFORCED = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "minProperties",
        "maxProperties",
        "patternProperties",
        "propertyNames",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "not",
        "if",
        "then",
        "else",
        "unevaluatedProperties",
        "unevaluatedItems",
    }
)
"""Validation keywords the grammar converter ignores. (`format` is an annotation in
JSON Schema unless a validator opts in; `date`, `time`, `date-time` and `uuid` are
enforced, others are not and are accepted.)"""

_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_ONE = ("items", "additionalProperties")


def check_schema(schema: Any, param: str, *, strict: bool) -> None:
    """Raise a 400 naming `param` + the path of the first part that cannot be honoured."""
    _check(schema, schema, param, strict)


def _check(node: Any, root: dict[str, Any], path: str, strict: bool) -> None:
    if isinstance(node, bool):  # `true`/`false` are schemas too
        return
    if not isinstance(node, dict):
        raise InvalidRequestError("A JSON schema must be an object (or a boolean).", param=path)
    if strict:
        for keyword in node:
            if keyword in NOT_ENFORCED:
                raise InvalidRequestError(
                    f"'{keyword}' cannot be enforced on generated JSON; remove it, or set "
                    "strict to false to have it accepted but not enforced.",
                    param=f"{path}.{keyword}",
                )
    ref = node.get("$ref")
    if ref is not None:
        _check_ref(ref, root, f"{path}.$ref")
    pattern = node.get("pattern")
    if pattern is not None:
        _check_pattern(pattern, f"{path}.pattern")
    for key in _SUBSCHEMA_MAPS:
        children = node.get(key)
        if isinstance(children, dict):
            for name, child in children.items():
                _check(child, root, f"{path}.{key}.{name}", strict)
    for key in _SUBSCHEMA_LISTS:
        children = node.get(key)
        if isinstance(children, list):
            for index, child in enumerate(children):
                _check(child, root, f"{path}.{key}[{index}]", strict)
    for key in _SUBSCHEMA_ONE:
        child = node.get(key)
        if isinstance(child, dict):
            _check(child, root, f"{path}.{key}", strict)
        elif isinstance(child, list):  # the old tuple form of `items`
            for index, item in enumerate(child):
                _check(item, root, f"{path}.{key}[{index}]", strict)


def _check_ref(ref: Any, root: dict[str, Any], param: str) -> None:
    if not isinstance(ref, str) or not ref.startswith("#/"):
        raise InvalidRequestError(
            "Only references inside the schema ('#/$defs/...') are supported.", param=param
        )
    target: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            raise InvalidRequestError(f"{ref!r} points to nothing in the schema.", param=param)
        target = target[part]


def _check_pattern(pattern: Any, param: str) -> None:
    if not isinstance(pattern, str):
        raise InvalidRequestError("A pattern must be a string.", param=param)
    if not (pattern.startswith("^") and pattern.endswith("$")) or len(pattern) < 2:
        raise InvalidRequestError(
            "Patterns must be anchored with '^' and '$' to be enforced.", param=param
        )
    if "(?" in pattern:
        raise InvalidRequestError(
            "Look-arounds, non-capturing groups and other '(?' syntax cannot be enforced.",
            param=param,
        )


def structured_output_schema(
    kind: Any, spec: dict[str, Any] | None, type_param: str, spec_param: str
) -> dict[str, Any] | None:
    """A structured-output format -> the JSON schema replies must match, or None.

    `kind` is the format's `type`: `text` (None), `json_object` (any JSON object) or
    `json_schema`, whose `spec` holds `name`, `schema` and `strict` (chat nests it under
    `response_format.json_schema`, the Responses API has it in `text.format` itself).
    """
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InvalidRequestError(
                "A json_schema format needs a `name` and a `schema`.", param=f"{spec_param}.name"
            )
        schema = spec.get("schema", {"type": "object"})
        if not isinstance(schema, dict):
            raise InvalidRequestError(
                "The format's schema must be a JSON schema object.", param=f"{spec_param}.schema"
            )
        check_schema(schema, f"{spec_param}.schema", strict=spec.get("strict") is True)
        return schema
    raise InvalidRequestError(
        f"Format type {kind!r} is not supported; use 'text', 'json_object' or 'json_schema'.",
        param=type_param,
    )
