"""Wire schemas of the legacy `POST /v1/completions` (raw text in, text out).

Same two policies as `conversion.wire`: tolerant requests, responses with OpenAI's
`null`s. OpenAI's defaults differ from chat on purpose and are kept: `max_tokens` is 16
when absent, and `logprobs` is a number (of alternatives, at most 5), not a flag.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from conversion.inputs import TextsOrTokens
from conversion.wire import Penalty, PositiveInt, StreamOptions, Usage, WireRequest, WireResponse

__all__ = (
    "Completion",
    "CompletionChoice",
    "CompletionLogprobs",
    "CompletionRequest",
    "LEGACY_MAX_TOKENS",
    "Prompt",
)

LEGACY_MAX_TOKENS = 16
"""OpenAI's `max_tokens` default for `/v1/completions` (chat has none)."""

Prompt = TextsOrTokens
"""A string, strings, a token array, or token arrays (see `conversion.inputs`)."""


class CompletionRequest(WireRequest, kw_only=True):
    """`POST /v1/completions`, fields in the order of OpenAI's reference."""

    prompt: Prompt
    model: str | None = None
    best_of: PositiveInt | None = None
    echo: bool | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: Annotated[int, Meta(ge=0, le=5)] | None = None
    max_tokens: Annotated[int, Meta(ge=0)] | None = None
    n: PositiveInt | None = None
    presence_penalty: Penalty | None = None
    prompt_cache_key: str | None = None
    """OpenAI's key for prompt caching. Not used by a replica; a proxy in front of
    several routes by it, so a conversation's turns reuse one replica's cache."""
    seed: int | None = None
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(gt=0, le=1)] | None = None
    user: str | None = None


class CompletionLogprobs(WireResponse, kw_only=True):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(WireResponse, kw_only=True):
    text: str
    index: int
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None


class Completion(WireResponse, kw_only=True):
    """A response, and (with `object` the same, as OpenAI streams it) a stream chunk."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | UnsetType | None = UNSET
