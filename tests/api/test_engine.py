"""The batching engine on its own, with the real model: prefix reuse, slots, cancellation,
and replies that do not depend on what else is running."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.engine.batching import BatchingEngine
from config import ModelSettings, Settings, resolve_model
from config.settings import ServerSettings
from conversion.errors import ServerBusyError
from conversion.generation import GenerationParams, SamplingParams, TextDelta, ThinkingPlan
from tests.conftest import TEST_THREADS, EnginePool


def greedy(max_tokens: int = 8) -> GenerationParams:
    return GenerationParams(SamplingParams(temperature=0, top_p=1, seed=None), max_tokens, ())


def engine_settings(model_path: Path, **overrides: Any) -> ModelSettings:
    options: dict[str, Any] = {"n_ctx": 2048, "n_batch": 64, "n_parallel": 4}
    options.update(overrides)
    return ModelSettings(path=str(model_path), n_threads=TEST_THREADS, **options)


def make_engine(model_path: Path, **overrides: Any) -> BatchingEngine:
    settings = engine_settings(model_path, **overrides)
    return BatchingEngine(resolve_model(settings), settings, queue_size=2)


@pytest.fixture
async def engine(model_path: Path, engine_pool: EnginePool) -> AsyncIterator[BatchingEngine]:
    """The pool's engine of these settings: the tests here read its records and slots,
    never its history before them."""
    settings = Settings(model=engine_settings(model_path), server=ServerSettings(queue_size=2))
    shared = engine_pool.lend(settings)
    async with asyncio.timeout(30):
        while shared.engine.state != "ready":
            await asyncio.sleep(0.01)
    yield shared.engine
    await asyncio.to_thread(shared.close)  # idle again before the next test


def chat(engine: BatchingEngine, text: str) -> list[int]:
    return engine.tokenize_chat([{"role": "user", "content": text}]).tokens


async def reply(engine: BatchingEngine, prompt: list[int], params: GenerationParams) -> str:
    parts = []
    async for event in engine.submit(prompt, params).events():
        parts.append(getattr(event, "text", ""))
    return "".join(parts)


async def test_the_next_turn_of_a_chat_only_evaluates_what_is_new(
    engine: BatchingEngine,
) -> None:
    history = [{"role": "user", "content": "Name three rivers."}]
    first = engine.tokenize_chat(history).tokens  # type: ignore[arg-type]
    answer = await reply(engine, first, greedy(24))
    history += [
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "Which is longest?"},
    ]
    second = engine.tokenize_chat(history).tokens  # type: ignore[arg-type]
    await reply(engine, second, greedy(8))
    record: Any = engine.records[-1]
    assert record.reused_tokens >= len(first)  # the whole first turn, reply included
    assert record.reused_tokens + record.evaluated_tokens == len(second)


async def test_a_request_goes_to_the_slot_holding_its_prefix(engine: BatchingEngine) -> None:
    document = "The quick brown fox jumps over the lazy dog. " * 8
    prompts = [chat(engine, f"{topic} {document}") for topic in ("Cats.", "Dogs.", "Owls.")]
    for prompt in prompts:  # three slots now hold three different caches
        await reply(engine, prompt, greedy(2))
    again = chat(engine, "Cats. " + document + "Summarise.")
    await reply(engine, again, greedy(2))
    record: Any = engine.records[-1]
    assert record.reused_tokens > len(prompts[0]) - 10


async def test_replies_under_load_equal_replies_alone(engine: BatchingEngine) -> None:
    questions = ["Tell me about the sea.", "What is 2 + 2?", "Write a haiku.", "Name a colour."]
    prompts = [chat(engine, q) for q in questions]
    alone = [await reply(engine, p, greedy(48)) for p in prompts]
    seeded = GenerationParams(SamplingParams(temperature=0.9, top_p=0.95, seed=7), 48, ())
    seeded_alone = await reply(engine, prompts[0], seeded)
    together = await asyncio.gather(
        *(reply(engine, p, greedy(48)) for p in prompts), reply(engine, prompts[0], seeded)
    )
    assert together == [*alone, seeded_alone]


async def test_cancelling_during_a_long_prompt_frees_the_slot(engine: BatchingEngine) -> None:
    prompt = chat(engine, "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 60)
    assert len(prompt) > 700
    before = engine.records[-1] if engine.records else None
    handle = engine.submit(prompt, greedy())
    consumer = asyncio.ensure_future(drain(handle))
    await asyncio.sleep(0.3)  # reading ~750 tokens takes seconds here
    consumer.cancel()
    async with asyncio.timeout(10):
        while not engine.records or engine.records[-1] is before:
            await asyncio.sleep(0.01)
    record: Any = engine.records[-1]
    assert record.outcome == "cancelled"
    assert record.completion_tokens == 0
    assert engine.queue_depth() == 0
    assert await reply(engine, chat(engine, "Hi"), greedy())  # and it goes on:
    after: Any = engine.records[-1]
    assert after.outcome in ("stop", "length")  # the next request is served whole
    assert after.completion_tokens > 0


async def test_a_full_queue_is_refused_at_once(model_path: Path) -> None:
    engine = make_engine(model_path, n_parallel=1)
    engine.start()
    try:
        await asyncio.to_thread(engine.wait_loaded)
        prompt = chat(engine, "Count to one hundred.")
        handles = [engine.submit(prompt, greedy(200)) for _ in range(3)]  # 1 runs, 2 wait
        with pytest.raises(ServerBusyError):
            engine.submit(prompt, greedy())
        for handle in handles:
            handle.cancel()
    finally:
        await asyncio.to_thread(engine.close)


async def drain(handle: Any) -> None:
    async for _ in handle.events():
        pass


def thinking(end: str, start: str | None = None, **params: Any) -> GenerationParams:
    return dataclasses.replace(
        greedy(params.pop("max_tokens", 64)), thinking=ThinkingPlan(end, start), **params
    )


async def phases(engine: BatchingEngine, prompt: list[int], params: GenerationParams) -> Any:
    """(thinking text, answer text, the Finished event)."""
    thought, said, last = [], [], None
    async for event in engine.submit(prompt, params).events():
        if isinstance(event, TextDelta):
            (thought if event.thinking else said).append(event.text)
        else:
            last = event
    return "".join(thought), "".join(said), last


async def test_stop_strings_wait_for_the_answer_and_thinking_tokens_are_counted(
    engine: BatchingEngine,
) -> None:
    """The thinking ends at its marker (here the first '.', which the model surely
    writes); the same text as a stop string ends only the answer. The prompt asks for
    a paragraph: "Tell me about the sea. Write three sentences." came out as a single
    sentence, greedy, on one AMD EPYC, and then nothing is left to answer."""
    prompt = chat(engine, "Write a short paragraph about cats.")
    thought, said, last = await phases(engine, prompt, thinking(".", stop=(".",)))
    assert thought.endswith(".")
    assert thought.count(".") == 1
    assert said  # the answer went on past the first '.'...
    assert "." not in said  # ...and stopped at the next one
    assert last.finish_reason == "stop"
    assert 0 < last.reasoning_tokens < last.completion_tokens


async def test_a_grammar_holds_the_answer_not_the_thinking(engine: BatchingEngine) -> None:
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string", "maxLength": 12}},
        "required": ["colour"],
        "additionalProperties": False,
    }
    prompt = chat(engine, "Name a colour, then answer in JSON.")
    params = engine.check_params(thinking(".", json_schema=schema, max_tokens=80))
    thought, said, last = await phases(engine, prompt, params)
    assert thought.endswith(".")
    assert not thought.lstrip().startswith("{")  # free text while thinking
    assert last.finish_reason == "stop"
    assert json.loads(said)["colour"]


async def test_a_reply_cut_while_thinking_is_all_thinking(engine: BatchingEngine) -> None:
    prompt = chat(engine, "Tell me about the sea.")
    thought, said, last = await phases(engine, prompt, thinking("\n\n\n\n\n", max_tokens=6))
    assert thought
    assert said == ""
    assert last.finish_reason == "length"
    assert last.reasoning_tokens == last.completion_tokens == 6


async def test_a_reply_that_does_not_open_its_thinking_is_all_answer(
    engine: BatchingEngine,
) -> None:
    prompt = chat(engine, "Say hello.")
    plain = await reply(engine, prompt, greedy(12))
    thought, said, last = await phases(engine, prompt, thinking(".", "<think>", max_tokens=12))
    assert (thought, said) == ("", plain)
    assert last.reasoning_tokens == 0


async def test_a_reply_that_ends_while_it_could_still_open_its_thinking_keeps_that_text(
    engine: BatchingEngine,
) -> None:
    """The reply reaches its cap while what it wrote is still a prefix of the thinking's
    start marker: the thinking never opened, so that text is the answer."""
    prompt = chat(engine, "Tell me about the sea.")
    _, first, _ = await phases(engine, prompt, greedy(1))
    assert first.strip()
    start = first.strip() + " \u2603 thinks"
    thought, said, last = await phases(engine, prompt, thinking("</t>", start, max_tokens=1))
    assert (thought, said) == ("", first)
    assert last.finish_reason == "length"
    assert last.reasoning_tokens == 0
