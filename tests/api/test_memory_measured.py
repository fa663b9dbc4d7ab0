"""The memory estimate read from a GGUF header against what really loading it takes."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import anyio

from app.engine.batching import BatchingEngine
from app.models.memory import estimate_footprint, process_rss
from config import ModelSettings, resolve_model
from conversion.generation import GenerationParams, SamplingParams
from tests.conftest import make_settings

MiB = 2**20
SMOLLM2_VOCAB = 49152


def test_estimate_bounds_what_serving_takes(model_path: Path) -> None:
    """The estimate is of what a model can grow to, so the registry never admits more
    than fits: loading, a generation and an embedding of a full batch must stay under it.
    They touch all of it but the generation context's logits of a step whose every
    token is an output (compute and output buffers, 2 x n_vocab x n_batch floats), which
    only a step full of draft tokens reaches. A small n_batch keeps that part small (24
    MiB of 248), so the lower bound says something. Measured in a fresh process: in
    this one, the heap hands back memory earlier tests freed without growing (205 and
    174 MiB instead of 222 were seen)."""
    settings = make_settings(model_path, slots=2, model={"n_batch": 64}).model
    estimate = estimate_footprint(
        model_path,
        n_ctx=settings.n_ctx,
        n_parallel=settings.n_parallel,
        kv_cache_type=settings.kv_cache_type,
        embeddings=settings.embeddings,
        n_batch=settings.n_batch,
    )
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as fresh:
        loaded, served = fresh.submit(_load_and_serve, settings).result(timeout=120)
    untouched = 2 * 4 * SMOLLM2_VOCAB * settings.n_batch
    reachable = estimate.total - untouched
    report = (
        f"estimate {estimate.total / MiB:.0f} MiB ({reachable / MiB:.0f} without the "
        f"untouched logits), loaded {loaded / MiB:.0f}, served {served / MiB:.0f}"
    )
    assert estimate.weights + estimate.kv_cache < served, report
    assert loaded <= served <= estimate.total, report
    assert served >= reachable * 0.8, report


def _load_and_serve(settings: ModelSettings) -> tuple[int, int]:
    """RSS growth of this process (a fresh one) once the model has loaded, and once it
    has generated and embedded a full batch."""
    return anyio.run(_serve, settings)


async def _serve(settings: ModelSettings) -> tuple[int, int]:
    before = process_rss()
    engine = BatchingEngine(resolve_model(settings), settings, queue_size=2)
    engine.start()
    try:
        assert await anyio.to_thread.run_sync(engine.wait_loaded) == "ready"
        loaded = process_rss() - before
        prompt = engine.tokenize_text(
            "The quick brown fox jumps over the lazy dog.", add_special=True
        )
        params = GenerationParams(SamplingParams(temperature=0, top_p=1, seed=None), 8, ())
        async for _ in engine.submit(prompt, params).events():
            pass
        text = engine.tokenize_text("one two three four " * 40, add_special=True)
        assert len(text) > settings.n_batch  # every piece of the embedding all outputs
        await anyio.to_thread.run_sync(engine.embed, [text])
        return loaded, process_rss() - before
    finally:
        await anyio.to_thread.run_sync(engine.close)
