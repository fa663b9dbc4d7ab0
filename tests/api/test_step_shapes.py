"""A position's logits do not depend on how its sequence was cut into decode steps, at
each step shape where ggml's CPU backend would otherwise change paths: K-quant products
of 8+ tokens, flash attention over 64+ query rows, and one query over 512+ cached cells
(summed in per-thread pieces). With `model.batch_invariant` every step takes the
reference paths (app/engine/native.py); without them the logits moved by 1.36 (Gemma)
and 0.63 (SmolLM2) read as 300 + 260. Bit for bit, on both models the suite ships, past
512 tokens (the start-up probe stops at 72 tokens to stay quick)."""

from __future__ import annotations

import itertools
from pathlib import Path

import llama_cpp
import numpy as np
import pytest

from app.engine.model import LoadedModel
from app.engine.shape_probe import PROBE_TEXT, last_logits
from config import ModelSettings
from tests.conftest import TEST_THREADS

BATCH = 512
LENGTH = 560
REST = {
    "the last token alone, over 512+ cells": (LENGTH - 1,),
    "the last 8 as guesses": (LENGTH - 8,),
    "7 tokens a step": (525, 532, 539, 546, 553),
}
"""Where the tokens after the first 512 (read once, kept) are cut, besides reading them
in one step: the reference."""


def _steps(tokens: list[int], start: int, cuts: tuple[int, ...]) -> list[list[int]]:
    bounds = [start, *cuts, len(tokens)]
    return [tokens[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("second", [False, True], ids=["smollm2", "gemma"])
def test_the_last_positions_logits_are_the_same_however_the_sequence_was_cut(
    model_path: Path, gemma_path: Path, second: bool
) -> None:
    path = gemma_path if second else model_path
    settings = ModelSettings(
        path=str(path),
        n_threads=TEST_THREADS,
        n_ctx=1024,
        n_parallel=1,
        n_batch=BATCH,
        chat_format="gemma" if second else None,
    )
    model = LoadedModel(str(path), settings, TEST_THREADS)
    batch = llama_cpp.llama_batch_init(BATCH, 0, 1)
    try:
        tokens = model.tokenize(" ".join([PROBE_TEXT] * 20), add_bos=True)[:LENGTH]
        assert len(tokens) == LENGTH
        last_logits(model, batch, 0, [tokens[:BATCH]])
        reference = last_logits(model, batch, 0, [tokens[BATCH:]], start=BATCH)
        readings = {
            name: last_logits(model, batch, 0, _steps(tokens, BATCH, cuts), start=BATCH)
            for name, cuts in REST.items()
        }
        # a cached opening of 300 tokens, then 260 in one step (64+ rows)
        readings["300, then 260"] = last_logits(model, batch, 0, _steps(tokens, 0, (300,)))
        moved = {name: float(np.abs(logits - reference).max()) for name, logits in readings.items()}
        assert moved == dict.fromkeys(moved, 0.0)
    finally:
        llama_cpp.llama_batch_free(batch)
        model.close()
