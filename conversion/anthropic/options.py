"""What a Messages request asks of the reply beyond its messages: `output_config`
(`format`, a JSON schema the answer must match; `effort`), `thinking` (type, effort,
`display`) and `context_management` edits, each checked with a 400 naming the field.
"""

from __future__ import annotations

from typing import Any

from conversion.anthropic.schema_hints import with_length_hints
from conversion.errors import InvalidRequestError
from conversion.json_schema import check_schema

__all__ = ("answer_schema", "check_context_edits", "reasoning_effort", "thinking_shown")


_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "xhigh"}
"""`output_config.effort` -> the engine's reasoning effort (`max`: the most there is)."""
_THINKING = ("enabled", "adaptive", "disabled", "between_tools")


def reasoning_effort(
    thinking: dict[str, Any] | None, output_config: dict[str, Any] | None
) -> str | None:
    """`thinking` and `output_config.effort` for a model that reasons. Disabled (or
    `between_tools`, which Anthropic answers with progress notes, not thinking) turns
    it off where the template can; enabled or adaptive thinks at the request's effort,
    else at medium (`budget_tokens` sets no limit here); effort alone sets the effort."""
    kind = (thinking or {}).get("type")
    if kind is not None and kind not in _THINKING:
        raise InvalidRequestError(
            "thinking type must be enabled, adaptive, disabled or between_tools.",
            param="thinking.type",
        )
    display = (thinking or {}).get("display")
    if display not in (None, "summarized", "omitted"):
        raise InvalidRequestError(
            "thinking display must be summarized or omitted.", param="thinking.display"
        )
    effort = (output_config or {}).get("effort")
    if effort is not None and (not isinstance(effort, str) or effort not in _EFFORTS):
        raise InvalidRequestError(
            "effort must be low, medium, high, xhigh or max.", param="output_config.effort"
        )
    if kind in ("disabled", "between_tools"):
        return "none"
    if effort is not None:
        return _EFFORTS[effort]
    return None if kind is None else "medium"


def thinking_shown(thinking: dict[str, Any] | None) -> bool:
    """False with `display: "omitted"`: the reply's thinking block comes back empty, as
    Anthropic returns it, while the model still thinks."""
    return (thinking or {}).get("display") != "omitted"


def answer_schema(
    output_config: dict[str, Any] | None, output_format: dict[str, Any] | None
) -> tuple[dict[str, Any], str] | None:
    """The JSON schema the answer must match and the field it came from, or None.
    Anthropic promises a reply that matches, so a keyword no grammar enforces is a 400
    naming its path (OpenAI's `strict`)."""
    if output_config is not None and output_config.get("format") is not None:
        spec, where = output_config["format"], "output_config.format"
    elif output_format is not None:
        spec, where = output_format, "output_format"
    else:
        return None
    if not isinstance(spec, dict) or spec.get("type") != "json_schema":
        raise InvalidRequestError(
            "The output format's type must be json_schema.", param=f"{where}.type"
        )
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise InvalidRequestError(
            "A json_schema output format needs a `schema` object.", param=f"{where}.schema"
        )
    schema = with_length_hints(schema)
    check_schema(schema, f"{where}.schema", strict=True)
    return schema, f"{where}.schema"


def check_context_edits(context_management: dict[str, Any] | None) -> None:
    """Earlier thinking is always cleared here (templates drop it), so a
    `clear_thinking_20251015` edit, whatever it keeps, asks for nothing more; other
    edits would change the prompt in ways not made here: a 400 names them."""
    edits = (context_management or {}).get("edits") or []
    if not isinstance(edits, list):
        raise InvalidRequestError("`edits` must be a list.", param="context_management.edits")
    for index, edit in enumerate(edits):
        kind = edit.get("type") if isinstance(edit, dict) else None
        if kind != "clear_thinking_20251015":
            raise InvalidRequestError(
                f"Context edits of type {kind!r} are not supported; clear_thinking_20251015 is.",
                param=f"context_management.edits[{index}].type",
            )
