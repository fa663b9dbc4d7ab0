"""Does llama.cpp compute this model's logits the same whatever shape of step computes them?

Speculative decoding only changes how many tokens a step yields if a position's logits
are the same whether its step carries it alone, with guesses after it, or as part of a
larger piece of prompt. With SmolLM2-135M Q4_1 they were for steps under 64 tokens, not
beyond (0.63 apart); with Gemma-3-270M Q4_K_M they were not while llama.cpp's tiled
K-quant kernel served steps of 8+ tokens (reading a 23-token prompt in two pieces moved
the next position's logits by up to 0.8 for 12 of the 22 split points), nor while flash
attention over an f16 cache took its tiled path for steps of 64+ tokens;
`model.batch_invariant` keeps both on the reference path (`native`), and both pass. A
model that fails has a greedy reply that can change with the drafts a load leads to.
Which models do this cannot be told from their metadata, and it may differ from CPU to
CPU and from build to build (the reference paths need the llama.cpp
`scripts/llama_build.py` compiles), so the engine asks the model at start-up: 17 decode
calls of at most 24 tokens and 5 of at most 72 on a free slot. The answer is kept
(`measurements`) and asked again only for another model, machine, build or context
shape.
"""

from __future__ import annotations

from typing import Any

import llama_cpp
import numpy as np

from app.engine.batch import logits_row, set_token
from app.engine.model import LoadedModel

__all__ = ("last_logits", "logit_drift")

PROBE_TEXT = (
    "The quick brown fox jumps over the lazy dog, and then it runs back across the "
    "field to the old barn where the farmer keeps his tools and a cart."
)
PROBE_TOKENS = 24
CUTS = (-1, -2, -3, -4, -8, 3, 7, 12)
"""Where the probe's tokens are cut in two besides being read at once: plain decoding
(the last token a step of its own), steps with guesses after their token (the last 2,
3, 4 or 8), and a prompt read in two pieces. On the EPYC here Gemma-3-270M's logits
moved at 12 of the 22 cut points of a 23-token prompt, in runs: 8 cuts find it."""
LONG_PROBE_TOKENS = 72
LONG_CUTS = (-1, -6)
"""A prompt of 64+ tokens read whole against its last token, or last 6, read apart: the
step shapes on either side of flash attention's 64-row tile. (The per-thread sums of a
lone token over 512+ cached cells would need a 512-token prompt here, too slow to
probe at every new start; the reference paths remove them with the rest, and
tests/api/test_step_shapes.py reads past 512.)"""


def logit_drift(model: LoadedModel, seq: int = 0) -> float:
    """The largest difference, over the vocabulary and the cuts, between the last probe
    position's logits read in two steps and read in one (0.0: the model computes a
    position the same in every step shape tried). Uses slot `seq`'s cache, which must
    be free, and leaves it empty. Raises RuntimeError if a decode call fails."""
    room = min(model.n_batch, model.n_ctx_seq)
    text = " ".join([PROBE_TEXT] * 3)
    tokens = model.tokenize(text, add_bos=True)
    probes: list[tuple[list[int], tuple[int, ...]]] = [(tokens[: min(PROBE_TOKENS, room)], CUTS)]
    if room >= 64:  # a smaller batch never gives flash attention 64 rows
        probes.append((tokens[: min(LONG_PROBE_TOKENS, room)], LONG_CUTS))
    batch = llama_cpp.llama_batch_init(max(len(probe) for probe, _ in probes), 0, 1)
    try:
        drift = 0.0
        for probe, cuts in probes:
            reference = last_logits(model, batch, seq, [probe])
            for cut in cuts:
                point = cut + len(probe) if cut < 0 else cut
                if 0 < point < len(probe):
                    logits = last_logits(model, batch, seq, [probe[:point], probe[point:]])
                    drift = max(drift, float(np.abs(logits - reference).max()))
        return drift
    finally:
        model.forget(seq)
        llama_cpp.llama_batch_free(batch)


def last_logits(
    model: LoadedModel, batch: Any, seq: int, steps: list[list[int]], start: int = 0
) -> np.ndarray:
    """Feed `steps` (consecutive pieces of one sequence, each at most the batch's size)
    one decode call each after the first `start` cached positions of slot `seq`, and
    return a copy of the last token's logits. One piece is read as the engine reads a
    prompt (logits for its last token only); of several, the last piece has logits for
    every token, as a step with guesses."""
    model.forget(seq, start)
    pos = start
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
