"""A decode call that fails ends the replies it carried with an error, never a hang.

llama.cpp fails a decode on faults the tests cannot cause on demand (a compute error,
device memory running out), so this one fault is faked: `llama_decode` answers 1 once
the replies are generating. Everything else is the real engine and model.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import llama_cpp
import pytest

from app.engine import worker
from app.engine.batching import BatchingEngine
from config import ModelSettings, resolve_model
from config.settings import SpeculativeSettings
from conversion.errors import InternalError
from conversion.generation import GenerationParams, SamplingParams, TextDelta
from tests.conftest import TEST_THREADS


@pytest.mark.parametrize("mode", ["ngram", "off"])
async def test_a_failed_step_ends_the_generating_replies_with_an_error(
    model_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    settings = ModelSettings(path=str(model_path), n_threads=TEST_THREADS, n_ctx=512)
    engine = BatchingEngine(
        resolve_model(settings),
        settings,
        queue_size=2,
        speculative=SpeculativeSettings(mode=mode),  # type: ignore[arg-type]
    )
    engine.start()
    try:
        assert await asyncio.to_thread(engine.wait_loaded) == "ready"
        generating = asyncio.Event()
        real = llama_cpp.llama_decode

        def decode(ctx: object, batch: object) -> int:
            return 1 if generating.is_set() else int(real(ctx, batch))

        monkeypatch.setattr(worker.llama_cpp, "llama_decode", decode)
        params = GenerationParams(SamplingParams(temperature=0, top_p=1, seed=None), 200, ())

        async def reply(text: str) -> list[str]:
            prompt = engine.tokenize_chat([{"role": "user", "content": text}]).tokens
            pieces = []
            async for event in engine.submit(prompt, engine.check_params(params)).events():
                if isinstance(event, TextDelta):
                    pieces.append(event.text)
                    generating.set()
            return pieces

        async with asyncio.timeout(30):  # a hang fails here
            results = await asyncio.gather(
                reply("Count to fifty."), reply("Name ten birds."), return_exceptions=True
            )
        assert all(isinstance(r, InternalError) for r in results), results
        monkeypatch.setattr(worker.llama_cpp, "llama_decode", real)
        assert engine.state == "ready"  # the engine goes on serving
    finally:
        await asyncio.to_thread(engine.close)
