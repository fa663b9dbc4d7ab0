"""`speculative.mode = auto` (the default): n-gram guessing where the model computes a
position the same whatever the step's shape, off where it does not while
`model.batch_invariant` holds -- decided at start-up by probing the real model."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import llama_cpp
import pytest

from app.engine import batching, measurements
from app.engine.batching import BatchingEngine
from app.engine.model import LoadedModel
from app.engine.shape_probe import logit_drift
from config import ModelSettings, resolve_model
from conversion.generation import Finished, GenerationParams, SamplingParams
from tests.conftest import TEST_THREADS

PASSAGE = (
    "Every morning the baker on Mill Street opens his shutters at six, sets out the rye "
    "loaves on the left and the white ones on the right, and writes the day's price of "
    "bread on a slate that hangs beside the door."
)


@pytest.fixture(autouse=True)
def probe_every_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every engine here probes its model: the tests of the probe's answer must not read
    one kept from another run, nor keep the one faked below."""
    monkeypatch.setattr(batching, "recall", lambda kind, identity: None)
    monkeypatch.setattr(batching, "remember", lambda kind, identity, value: None)


@pytest.fixture
def fresh_measurements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache of measurements, kept and read as a server does."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(batching, "recall", measurements.recall)
    monkeypatch.setattr(batching, "remember", measurements.remember)
    return tmp_path


def settings(path: Path, **options: object) -> ModelSettings:
    return ModelSettings(path=str(path), n_threads=TEST_THREADS, n_ctx=1024, **options)  # type: ignore[arg-type]


_DRIFTS: dict[Path, float] = {}
"""Each model's drift as the first test here measured it, for the test of what `auto`
makes of it (the probe takes seconds on one thread; the first test shows it repeats)."""


def _gemma_drift(path: Path) -> float:
    if path not in _DRIFTS:
        model = LoadedModel(str(path), settings(path, chat_format="gemma"), TEST_THREADS)
        try:
            _DRIFTS[path] = logit_drift(model)
        finally:
            model.close()
    return _DRIFTS[path]


@pytest.mark.parametrize("second", [False, True], ids=["smollm2", "gemma"])
def test_the_probe_measures_the_same_drift_each_time_and_leaves_the_slot_empty(
    model_path: Path, gemma_path: Path, second: bool
) -> None:
    path = gemma_path if second else model_path
    options = {"chat_format": "gemma"} if second else {}
    model = LoadedModel(str(path), settings(path, **options), TEST_THREADS)
    try:
        drift = logit_drift(model)
        assert llama_cpp.llama_memory_seq_pos_max(model.memory, 0) == -1
        assert logit_drift(model) == drift
    finally:
        model.close()
    _DRIFTS[path] = drift
    if not second:  # the whole suite's exactness tests rest on this for SmolLM2
        assert drift == 0.0


def test_the_probe_fits_a_batch_smaller_than_its_text(model_path: Path) -> None:
    model = LoadedModel(str(model_path), settings(model_path, n_batch=8), TEST_THREADS)
    try:
        assert logit_drift(model) == 0.0
    finally:
        model.close()


async def _served(
    path: Path, caplog: pytest.LogCaptureFixture, *, reply: bool = True, **options: object
) -> str:
    """Start an engine with the default speculative settings; its start-up log line
    about speculative decoding and, for SmolLM2 and a `reply`, whether a copying reply
    guessed."""
    logger = logging.getLogger("llm_service.engine")
    logger.addHandler(caplog.handler)
    model_settings = settings(path, **options)
    engine = BatchingEngine(resolve_model(model_settings), model_settings, queue_size=1)
    try:
        with caplog.at_level(logging.INFO, logger="llm_service.engine"):
            engine.start()
            assert await asyncio.to_thread(engine.wait_loaded) == "ready"
        [line] = {r.getMessage() for r in caplog.records if "Speculative" in r.getMessage()}
        caplog.clear()
        if "chat_format" in options or not reply:  # Gemma: a base model, nothing to copy
            return line
        text = f"Repeat this text exactly, word for word:\n\n{PASSAGE}"
        prompt = engine.tokenize_chat([{"role": "user", "content": text}]).tokens
        sampling = SamplingParams(temperature=0, top_p=1, seed=None)
        job = engine.submit(prompt, engine.check_params(GenerationParams(sampling, 80, ())))
        last = [event async for event in job.events()][-1]
        assert isinstance(last, Finished)
        return f"{line} / guessed {last.draft_tokens}"
    finally:
        logger.removeHandler(caplog.handler)
        await asyncio.to_thread(engine.close)


async def test_auto_guesses_with_a_model_that_computes_any_step_alike(
    model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    line = await _served(model_path, caplog)
    assert line.startswith("Speculative decoding: ngram, up to 62 guesses")
    assert "do not depend on the step's shape" in line
    assert int(line.rsplit(" ", 1)[1]) > 0


async def test_auto_guesses_for_gemma_too(
    gemma_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Gemma-3-270M's logits moved with the step's shape (tiled K-quant products for 8+
    tokens, tiled flash attention for 64+ rows) until model.batch_invariant kept every
    step on ggml's reference paths: the probe finds no drift, and `auto` guesses."""
    assert _gemma_drift(gemma_path) == 0.0
    line = await _served(gemma_path, caplog, chat_format="gemma")
    assert line.startswith("Speculative decoding: ngram")
    assert "do not depend on the step's shape" in line


async def test_auto_is_off_where_the_probe_finds_a_drift(
    model_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one fake here: SmolLM2 never drifts, and which real model drifts depends on
    the CPU, so the probe's answer is set to test what `auto` does with it."""
    monkeypatch.setattr(batching, "logit_drift", lambda model: 0.25)
    line = await _served(model_path, caplog)
    assert line.startswith("Speculative decoding: off (auto; a position's logits here moved")
    assert "by up to 0.25 with the step's shape" in line
    assert line.endswith("/ guessed 0")


async def test_auto_guesses_when_replies_may_depend_on_the_load_anyway(
    gemma_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    line = await _served(  # flash attention set: its timing (15 s) is not the subject
        gemma_path, caplog, chat_format="gemma", batch_invariant=False, flash_attn="on"
    )
    assert line.startswith("Speculative decoding: ngram")
    assert "batch_invariant is off" in line


async def test_the_probes_answer_is_kept_for_the_next_start_with_the_same_shape(
    model_path: Path, caplog: pytest.LogCaptureFixture, fresh_measurements: Path
) -> None:
    first = await _served(model_path, caplog, reply=False)
    assert "probed before" not in first
    kept = json.loads((fresh_measurements / "llm-service" / "measurements.json").read_text())
    assert [value for key, value in kept.items() if key.startswith("shape_probe:")] == [
        {"drift": 0.0}
    ]
    again = await _served(model_path, caplog, reply=False)
    assert again.startswith("Speculative decoding: ngram")
    assert "probed before, kept in" in again
    other_shape = await _served(model_path, caplog, reply=False, kv_cache_type="q8_0")
    assert "probed before" not in other_shape
