"""Log-probabilities of a sampled token, read from the logits of the last decode.

They are the model's own distribution (log-softmax of the raw logits), whatever the
request's temperature, top-p or biases did to the draw: what OpenAI documents as "the
log probability of this token". Computed with numpy over the whole vocabulary, about
0.1 ms for 50k tokens, and only for requests that ask.
"""

from __future__ import annotations

from collections.abc import Callable

import llama_cpp
import numpy as np

from app.engine.batch import logits_row
from conversion.generation import Alternative, TokenLogprob

__all__ = ("token_logprob",)


def token_logprob(
    ctx: llama_cpp.llama_context_p,
    index: int,
    token: int,
    n_vocab: int,
    top: int,
    piece: Callable[[int], bytes],
) -> TokenLogprob:
    """`token`'s entry from the logits at batch position `index` (valid until the
    next decode), with the `top` most likely tokens, most likely first."""
    logits = logits_row(ctx, index, n_vocab)
    peak = float(logits.max())
    log_total = peak + float(np.log(np.exp(logits - peak, dtype=np.float64).sum()))
    alternatives: tuple[Alternative, ...] = ()
    if top > 0:
        best = np.argpartition(logits, -top)[-top:]
        best = best[np.argsort(logits[best])[::-1]]
        alternatives = tuple(Alternative(piece(int(t)), float(logits[t]) - log_total) for t in best)
    return TokenLogprob(piece(token), float(logits[token]) - log_total, alternatives)
