"""OpenAI wire shapes every protocol shares, and the two base Structs, in msgspec.

Two policies, each in one base class:

* `WireRequest` tolerates unknown fields: OpenAI clients send fields this server does
  not know yet, and the API must not reject them (the routes log them at debug level).
* `WireResponse` keeps `None` fields as `null` in the JSON because OpenAI's own
  responses carry `"logprobs": null`, `"finish_reason": null` and clients index them;
  fields OpenAI omits are `UNSET` and so left out.

msgspec applies `kw_only` per class, so every subclass repeats it (fields can then be
declared in the API's order, required or not). Request fields are `None` when absent or
`null`: OpenAI treats both as "use the default", and so do we. Each protocol's own
shapes live in its package (`conversion.chat.wire`, `conversion.completions.wire`, ...).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

__all__ = (
    "CompletionTokensDetails",
    "ErrorBody",
    "ErrorDetail",
    "Model",
    "ModelList",
    "Penalty",
    "PositiveInt",
    "PromptTokensDetails",
    "StreamOptions",
    "TokenLogprobEntry",
    "TopLogprob",
    "Usage",
    "WireRequest",
    "WireResponse",
)


class WireRequest(msgspec.Struct, kw_only=True):
    """Tolerant base for request bodies: unknown fields are ignored, not errors."""


class WireResponse(msgspec.Struct, kw_only=True):
    """Base for response bodies: `None` encodes as `null`, `UNSET` is omitted."""


class StreamOptions(WireRequest, kw_only=True):
    include_usage: bool | None = None


Penalty = Annotated[float, Meta(ge=-2, le=2)]


PositiveInt = Annotated[int, Meta(ge=1)]


class PromptTokensDetails(WireResponse, kw_only=True):
    cached_tokens: int
    """Prompt tokens whose KV cache was reused from an earlier request (not re-read)."""


class CompletionTokensDetails(WireResponse, kw_only=True):
    """OpenAI's breakdown; of these only reasoning happens here."""

    reasoning_tokens: int = 0
    """Tokens the model spent thinking (its reasoning), included in `completion_tokens`."""
    audio_tokens: int = 0
    accepted_prediction_tokens: int = 0
    rejected_prediction_tokens: int = 0


class Usage(WireResponse, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails


class Model(WireResponse, kw_only=True):
    """OpenAI's model object, with what a server of several models adds (as llama.cpp's
    router and LM Studio do): whether it is loaded, its other names, its context."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    state: Literal["loaded", "loading", "unloading", "unloaded", "failed"] | UnsetType = UNSET
    aliases: list[str] | UnsetType = UNSET
    context_length: int | UnsetType = UNSET
    """Tokens of context per request (prompt and completion)."""
    default: bool | UnsetType = UNSET
    """The model a request that names none, or an unknown one, gets."""
    error: str | UnsetType = UNSET
    """Why it failed to load; it is tried again once its file changes."""


class ModelAction(WireRequest, kw_only=True):
    """`POST /models/load` and `/models/unload` (llama.cpp's router has the same)."""

    model: str


class PullRequest(WireRequest, kw_only=True):
    """`POST /models/pull`: a GGUF (or a split one's parts) from a Hub repository."""

    repo: str
    file: str
    """A file name or a glob (the quantization, e.g. `*q4_k_m.gguf`)."""


class ModelList(WireResponse, kw_only=True):
    object: Literal["list"] = "list"
    data: list[Model]


class ErrorDetail(WireResponse, kw_only=True):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(WireResponse, kw_only=True):
    """OpenAI's error envelope, for every error on every route."""

    error: ErrorDetail


class TopLogprob(WireResponse, kw_only=True):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobEntry(WireResponse, kw_only=True):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob]
