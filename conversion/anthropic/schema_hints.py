"""Length bounds the anthropic SDK moved into descriptions, put back into the schema.

Anthropic's structured outputs take few JSON-schema keywords, so the SDK's
`messages.parse(output_format=Model)` rewrites a pydantic schema before sending it: a
keyword the API does not take leaves its place and is appended to the node's
description as `{maxItems: 2}` ("so that the model *might* follow them"). It then
validates the reply against the full pydantic model, so a list one item too long fails
`parse()`. The grammars here enforce length bounds, so the integer ones are read back
from that suffix (`minItems`, `maxItems`, `minLength`, `maxLength`) and enforced; the
description keeps its text. Nothing else is read from a description: a suffix that is
not exactly `{key: integer, ...}` of those keys is left alone.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ("with_length_hints",)

_BOUNDS = frozenset({"minItems", "maxItems", "minLength", "maxLength"})
_SUFFIX = re.compile(r"(?:^|\n\n)\{(?P<pairs>[^{}\n]*)\}\Z")
_PAIR = re.compile(r"\s*(?P<key>\w+): (?P<value>\d+)\s*\Z")


def _bounds(description: Any) -> dict[str, int]:
    """`{maxItems: 2, minItems: 2}` at the end of a description -> those bounds."""
    if not isinstance(description, str) or (match := _SUFFIX.search(description)) is None:
        return {}
    bounds = {}
    for pair in match["pairs"].split(","):
        parsed = _PAIR.match(pair)
        if parsed is None or parsed["key"] not in _BOUNDS:
            return {}
        bounds[parsed["key"]] = int(parsed["value"])
    return bounds


def with_length_hints(node: Any) -> Any:
    """A copy of the schema `node` with the SDK's length hints as keywords again."""
    if isinstance(node, list):
        return [with_length_hints(item) for item in node]
    if not isinstance(node, dict):
        return node
    restored = {key: with_length_hints(value) for key, value in node.items()}
    kind = restored.get("type")
    for key, value in _bounds(restored.get("description")).items():
        fits = kind == "array" if key.endswith("Items") else kind == "string"
        if fits and key not in restored:
            restored[key] = value
    return restored
