"""Token log-probabilities in the entry shape OpenAI's chat and Responses APIs share.

The engine reports each generated token as a `TokenLogprob` (`conversion.generation`):
its log-probability under the model's own distribution (the softmax of the raw logits:
before temperature, top-p or bias, as vLLM reports by default and as OpenAI documents
"the log probability of this token") and the most likely alternatives. Chat completions
carry them as `logprobs.content[]` entries (`conversion.chat.replies`), the Responses
API has the same entries in `output_text.logprobs`; legacy completions use parallel
lists of their own (`conversion.completions.mapping`).
"""

from __future__ import annotations

from collections.abc import Sequence

from conversion.generation import TokenLogprob
from conversion.wire import TokenLogprobEntry, TopLogprob

__all__ = ("piece_text", "token_entries")


def piece_text(piece: bytes) -> str:
    """A token as text; a piece of a multi-byte character shows as its escaped bytes,
    with the exact bytes in the `bytes` field (OpenAI's convention)."""
    return piece.decode("utf-8", "backslashreplace")


def token_entries(tokens: Sequence[TokenLogprob]) -> list[TokenLogprobEntry]:
    """One `{token, logprob, bytes, top_logprobs}` entry per token: the shape of chat's
    `logprobs.content` and of the Responses API's `output_text.logprobs`."""
    return [
        TokenLogprobEntry(
            token=piece_text(t.piece),
            logprob=t.logprob,
            bytes=list(t.piece),
            top_logprobs=[
                TopLogprob(token=piece_text(a.piece), logprob=a.logprob, bytes=list(a.piece))
                for a in t.top
            ],
        )
        for t in tokens
    ]
