"""Does llama.cpp compute this model's logits the same whatever shape of step computes them?

Speculative decoding only changes how many tokens a step yields if a position's logits
are the same whether its step carries it alone, with guesses after it, or as part of
a larger piece of prompt. With SmolLM2-135M Q4_1 they are, bit for bit. With
Gemma-3-270M Q4_K_M they were not while llama.cpp's tiled K-quant kernel served steps
of 8+ tokens: reading a 23-token prompt in two pieces moved the next position's logits
by up to 0.8 for 12 of the 22 split points (README, Request fields); with
`model.batch_invariant` that kernel is off and Gemma passes. A model that fails has a
greedy reply that can change with the drafts a load leads to. Which models do this cannot be told
from their metadata (both use quantized weights and flash attention), and it may differ
from CPU to CPU, so the engine asks the model at start-up: 17 decode calls of at most
24 tokens on a free slot, 0.6-0.7 s on two EPYC threads here, 2.2 s on one. The answer
is kept (`measurements`) and asked again only for another model, machine, build or
context shape.
"""

from __future__ import annotations

from typing import Any

import llama_cpp
import numpy as np

from app.engine.batch import logits_row, set_token
from app.engine.model import LoadedModel

__all__ = ("logit_drift",)

PROBE_TEXT = (
    "The quick brown fox jumps over the lazy dog, and then it runs back across the "
    "field to the old barn where the farmer keeps his tools and a cart."
)
PROBE_TOKENS = 24
"""Short enough that every step shape here takes llama.cpp's paths for short contexts
(the f16 cache's split past 512 cached tokens is documented apart)."""
CUTS = (-1, -2, -3, -4, -8, 3, 7, 12)
"""Where the probe's tokens are cut in two besides being read at once: plain decoding
(the last token a step of its own), steps with guesses after their token (the last 2,
3, 4 or 8), and a prompt read in two pieces. On the EPYC here Gemma-3-270M's logits
moved at 12 of the 22 cut points of a 23-token prompt, in runs: 8 cuts find it."""


def logit_drift(model: LoadedModel, seq: int = 0) -> float:
    """The largest difference, over the vocabulary and the `CUTS`, between the last
    probe position's logits read in two steps and read in one (0.0: the model computes
    a position the same in every step shape tried). Uses slot `seq`'s cache, which
    must be free, and leaves it empty. Raises RuntimeError if a decode call fails."""
    size = min(PROBE_TOKENS, model.n_batch, model.n_ctx_seq)
    tokens = model.tokenize(PROBE_TEXT, add_bos=True)[:size]
    batch = llama_cpp.llama_batch_init(len(tokens), 0, 1)
    try:
        reference = _last_logits(model, batch, seq, [tokens])
        drift = 0.0
        for cut in CUTS:
            point = cut + len(tokens) if cut < 0 else cut
            if 0 < point < len(tokens):
                logits = _last_logits(model, batch, seq, [tokens[:point], tokens[point:]])
                drift = max(drift, float(np.abs(logits - reference).max()))
        return drift
    finally:
        model.forget(seq)
        llama_cpp.llama_batch_free(batch)


def _last_logits(model: LoadedModel, batch: Any, seq: int, steps: list[list[int]]) -> np.ndarray:
    """Feed `steps` (consecutive pieces of one sequence, each at most the batch's size)
    one decode call each and return a copy of the last token's logits. One piece is
    read as the engine reads a prompt (logits for its last token only); of several, the
    last piece has logits for every token, as a step with guesses."""
    model.forget(seq)
    pos = 0
    for step, piece in enumerate(steps):
        last = step == len(steps) - 1
        batch.n_tokens = len(piece)
        for i, token in enumerate(piece):
            wanted = last and (len(steps) > 1 or i == len(piece) - 1)
            set_token(batch, i, token, pos + i, seq, wanted)
        if llama_cpp.llama_decode(model.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed while probing step shapes")
        pos += len(piece)
    return logits_row(model.ctx, len(steps[-1]) - 1, model.n_vocab).copy()
