"""The serial llama engine on its own: prompt reuse, cancellation during the prompt."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.engine.llama_engine import LlamaEngine
from config import ModelSettings, resolve_model
from conversion.requests import GenerationParams, SamplingParams
from tests.conftest import TEST_THREADS

GREEDY = GenerationParams(SamplingParams(temperature=0, top_p=1, seed=None), 8, ())


@pytest.fixture
def engine(model_path: Path) -> Iterator[LlamaEngine]:
    settings = ModelSettings(path=str(model_path), n_ctx=2048, n_batch=32, n_threads=TEST_THREADS)
    engine = LlamaEngine(resolve_model(settings), settings, queue_size=4)
    engine.start()
    try:
        yield engine
    finally:
        engine.close()


async def wait_ready(engine: LlamaEngine) -> None:
    async with asyncio.timeout(30):
        while engine.state != "ready":
            await asyncio.sleep(0.01)


def chat(engine: LlamaEngine, text: str) -> list[int]:
    return engine.tokenize_chat([{"role": "user", "content": text}]).tokens


async def reply(engine: LlamaEngine, prompt: list[int]) -> str:
    parts = []
    async for event in engine.submit(prompt, GREEDY).events():
        parts.append(getattr(event, "text", ""))
    return "".join(parts)


async def test_whole_chunks_of_a_shared_prompt_prefix_are_reused(engine: LlamaEngine) -> None:
    await wait_ready(engine)
    document = "The quick brown fox jumps over the lazy dog. " * 20
    first = chat(engine, document + "Summarise.")
    second = chat(engine, document + "Translate.")
    alone = await reply(engine, second)
    await reply(engine, first)
    again = await reply(engine, second)
    record: Any = engine.records[-1]
    assert record.reused_tokens >= 32 * 5  # most of the shared document
    assert record.reused_tokens % 32 == 0
    assert record.reused_tokens + record.evaluated_tokens == len(second)
    assert again == alone  # reuse never changes the reply


async def test_cancelling_during_a_long_prompt_stops_between_chunks(engine: LlamaEngine) -> None:
    await wait_ready(engine)
    prompt = chat(engine, "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 120)
    assert len(prompt) > 1500
    handle = engine.submit(prompt, GREEDY)
    consumer = asyncio.ensure_future(reply_from(handle))
    await asyncio.sleep(0.05)  # evaluating ~1500 tokens 32 at a time takes far longer
    consumer.cancel()
    async with asyncio.timeout(10):
        while not engine.records:
            await asyncio.sleep(0.01)
    record: Any = engine.records[-1]
    assert record.outcome == "cancelled"
    assert record.completion_tokens == 0
    assert record.evaluated_tokens < len(prompt) - 32
    assert engine.queue_depth() == 0
    assert await reply(engine, chat(engine, "Hi")) is not None  # and the engine goes on


async def reply_from(handle: Any) -> None:
    async for _ in handle.events():
        pass
