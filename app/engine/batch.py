"""The two raw llama.cpp buffers every decode caller touches: a batch's entries and a
row of logits. One place for their layout, so the decode loop, the draft model, the
embedder and the start-up probe cannot drift apart."""

from __future__ import annotations

from typing import Any

import llama_cpp
import numpy as np

__all__ = ("logits_row", "set_token")


def set_token(batch: Any, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
    """Entry `i` of a `llama_batch`: `token` at position `pos` of sequence `seq` alone,
    with its logits (or embedding) computed if `logits`. The caller sets `n_tokens`."""
    batch.token[i], batch.pos[i], batch.logits[i] = token, pos, logits
    batch.n_seq_id[i] = 1
    batch.seq_id[i][0] = seq


def logits_row(ctx: llama_cpp.llama_context_p, index: int, n_vocab: int) -> np.ndarray:
    """The logits the last decode computed for batch entry `index`, as a view that is
    valid until the next decode (copy it to keep it)."""
    return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index), shape=(n_vocab,))
