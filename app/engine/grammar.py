"""JSON schemas -> llama.cpp GBNF grammars, for `response_format` and forced tool calls.

llama-cpp-python ships llama.cpp's JSON-schema converter (`json_schema_to_gbnf`); the
grammar then constrains sampling so the reply can only be JSON that matches. Schema
features the converter cannot express are the client's problem to hear about, as a 400
naming the schema, before any model work.
"""

from __future__ import annotations

import json
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

from conversion.errors import InvalidRequestError

__all__ = ("grammar_for",)


def grammar_for(schema: dict[str, Any], param: str) -> str:
    """`param`: the request field the schema came from, for the 400."""
    try:
        return str(json_schema_to_gbnf(json.dumps(schema)))
    except Exception as exc:  # any failure of the converter: the schema is unusable
        raise InvalidRequestError(
            f"This JSON schema cannot be enforced: {exc}",
            param=param,
        ) from exc
