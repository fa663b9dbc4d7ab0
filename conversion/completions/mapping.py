"""Legacy completions: request -> prompts and generation params; output -> wire.

A request has one or more prompts (a string, strings, a token array, token arrays) and
`n` choices per prompt; choice `p * n + j` is prompt p's j-th, as OpenAI numbers them.
Each prompt is read as raw text: no chat template.
"""

from __future__ import annotations

import codecs
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from msgspec import UNSET

from config.settings import LimitSettings, SamplingDefaults
from conversion.completions.wire import (
    LEGACY_MAX_TOKENS,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    Prompt,
)
from conversion.errors import InvalidRequestError
from conversion.generation import GenerationParams, TokenLogprob
from conversion.inputs import texts_or_token_lists
from conversion.limits import check_choices, check_max_tokens, check_stop_lengths
from conversion.logprobs import piece_text
from conversion.params import sampling_params, stop_strings
from conversion.wire import Usage

__all__ = (
    "check_completion_limits",
    "CompletionChunks",
    "LegacyReply",
    "legacy_prompts",
    "to_completion",
    "to_completion_logprobs",
    "to_legacy_params",
)


def legacy_prompts(prompt: Prompt) -> list[str | list[int]]:
    """The request's prompts: each a text, or a token array."""
    return texts_or_token_lists(prompt, "prompt")


def to_legacy_params(req: CompletionRequest, defaults: SamplingDefaults) -> GenerationParams:
    """OpenAI's legacy semantics: `max_tokens` 16 when absent, `logprobs` a count."""
    if req.suffix:
        raise InvalidRequestError(
            "suffix (fill-in-the-middle) is not supported by this server.", param="suffix"
        )
    if req.best_of is not None and req.best_of != (req.n or 1):
        raise InvalidRequestError(
            "best_of must equal n: this server does not rank extra candidates.",
            param="best_of",
        )
    if req.echo and req.logprobs is not None:
        raise InvalidRequestError(
            "logprobs with echo would need the prompt's log-probabilities, which this "
            "server does not compute.",
            param="logprobs",
        )
    if req.stream_options is not None and not req.stream:
        raise InvalidRequestError(
            "stream_options is only allowed when stream is true.", param="stream_options"
        )
    return GenerationParams(
        sampling=sampling_params(req, defaults),
        max_tokens=LEGACY_MAX_TOKENS if req.max_tokens is None else req.max_tokens,
        stop=stop_strings(req.stop),
        logprobs=req.logprobs,
    )


def to_completion_logprobs(tokens: Sequence[TokenLogprob], offset: int) -> CompletionLogprobs:
    """The legacy shape, parallel lists; `offset` is where the first token's text starts
    in the choice's text (after an echoed prompt, or after earlier stream chunks)."""
    offsets: list[int] = []
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for t in tokens:
        offsets.append(offset)  # a token ending mid-character adds no characters yet
        offset += len(decoder.decode(t.piece))
    return CompletionLogprobs(
        tokens=[piece_text(t.piece) for t in tokens],
        token_logprobs=[t.logprob for t in tokens],
        top_logprobs=[{piece_text(a.piece): a.logprob for a in t.top} for t in tokens],
        text_offset=offsets,
    )


def new_completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class LegacyReply:
    text: str
    """With `echo`, the prompt's text first."""
    finish_reason: str
    logprobs: Sequence[TokenLogprob] | None = None
    echo_length: int = 0
    """Characters of echoed prompt at the start of `text` (for `text_offset`)."""


def to_completion(*, model: str, choices: Sequence[LegacyReply], usage: Usage) -> Completion:
    return Completion(
        id=new_completion_id(),
        created=int(time.time()),
        model=model,
        choices=[
            CompletionChoice(
                text=reply.text,
                index=index,
                logprobs=None
                if reply.logprobs is None
                else to_completion_logprobs(reply.logprobs, reply.echo_length),
                finish_reason=reply.finish_reason,
            )
            for index, reply in enumerate(choices)
        ],
        usage=usage,
    )


@dataclass(slots=True)
class CompletionChunks:
    """The chunks of one legacy stream (same `id`/`created`; one choice per chunk):
    text chunks, then per choice a chunk with `text: ""` and its `finish_reason`, then,
    only with `include_usage`, `choices: []` with the usage."""

    model: str
    include_usage: bool = False
    id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))
    _offsets: dict[int, int] = field(default_factory=dict)

    def _chunk(self, choices: list[CompletionChoice], usage: Usage | None = None) -> Completion:
        return Completion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=choices,
            usage=usage if self.include_usage else UNSET,
        )

    def text(
        self, text: str, index: int, logprobs: Sequence[TokenLogprob] | None = None
    ) -> Completion:
        offset = self._offsets.get(index, 0)
        self._offsets[index] = offset + len(text)
        wire = None if logprobs is None else to_completion_logprobs(logprobs, offset)
        choice = CompletionChoice(text=text, index=index, logprobs=wire, finish_reason=None)
        return self._chunk([choice])

    def finish(self, finish_reason: str, index: int) -> Completion:
        return self._chunk([CompletionChoice(text="", index=index, finish_reason=finish_reason)])

    def usage(self, usage: Usage) -> Completion:
        return self._chunk([], usage)


def check_completion_limits(req: CompletionRequest, prompts: int, limits: LimitSettings) -> None:
    """The configured limits for a legacy completion of `prompts` prompts, n choices each."""
    n = req.n or 1
    check_choices(prompts * n, limits, "n" if n > 1 else "prompt")
    check_max_tokens("max_tokens", req.max_tokens, limits)
    check_stop_lengths(req.stop, limits)
