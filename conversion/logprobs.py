"""Token log-probabilities: the engine's values -> OpenAI's two wire shapes.

The engine reports, for each generated token, its log-probability under the model's
own distribution (the softmax of the raw logits: before temperature, top-p or bias,
as vLLM reports by default and as OpenAI documents "the log probability of this
token") and the most likely alternatives. Chat completions carry them as
`logprobs.content[]` entries (the Responses API has the same entries in
`output_text.logprobs`); legacy completions as parallel lists
(`tokens`, `token_logprobs`, `top_logprobs`, `text_offset`).
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass

from conversion.chat.wire import ChatLogprobs
from conversion.completions.wire import CompletionLogprobs
from conversion.wire import TokenLogprobEntry, TopLogprob

__all__ = (
    "Alternative",
    "TokenLogprob",
    "to_chat_logprobs",
    "to_completion_logprobs",
    "token_entries",
)


@dataclass(frozen=True, slots=True)
class Alternative:
    piece: bytes
    """The token's bytes (may be part of a UTF-8 character)."""
    logprob: float


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token: its bytes and log-probability, and the top alternatives
    (most likely first, as many as the request asked for)."""

    piece: bytes
    logprob: float
    top: tuple[Alternative, ...] = ()


def _text(piece: bytes) -> str:
    """A token as text; a piece of a multi-byte character shows as its escaped bytes,
    with the exact bytes in the `bytes` field (OpenAI's convention)."""
    return piece.decode("utf-8", "backslashreplace")


def token_entries(tokens: Sequence[TokenLogprob]) -> list[TokenLogprobEntry]:
    """One `{token, logprob, bytes, top_logprobs}` entry per token: the shape of chat's
    `logprobs.content` and of the Responses API's `output_text.logprobs`."""
    return [
        TokenLogprobEntry(
            token=_text(t.piece),
            logprob=t.logprob,
            bytes=list(t.piece),
            top_logprobs=[
                TopLogprob(token=_text(a.piece), logprob=a.logprob, bytes=list(a.piece))
                for a in t.top
            ],
        )
        for t in tokens
    ]


def to_chat_logprobs(tokens: Sequence[TokenLogprob]) -> ChatLogprobs:
    return ChatLogprobs(content=token_entries(tokens))


def to_completion_logprobs(tokens: Sequence[TokenLogprob], offset: int) -> CompletionLogprobs:
    """The legacy shape; `offset` is where the first token's text starts in the choice's
    text (after an echoed prompt, or after earlier stream chunks)."""
    offsets: list[int] = []
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for t in tokens:
        offsets.append(offset)  # a token ending mid-character adds no characters yet
        offset += len(decoder.decode(t.piece))
    return CompletionLogprobs(
        tokens=[_text(t.piece) for t in tokens],
        token_logprobs=[t.logprob for t in tokens],
        top_logprobs=[{_text(a.piece): a.logprob for a in t.top} for t in tokens],
        text_offset=offsets,
    )
