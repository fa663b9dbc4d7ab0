"""Several models behind one endpoint, through the real SDKs: SmolLM2 (the default),
Gemma-3-270M (`gemma`), and SmolLM2 again as `smol-short` with its own settings, at most
two loaded at once."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import psutil  # type: ignore[import-untyped]
import pytest

from tests.conftest import metric_total
from tests.e2e.conftest import LiveServer, serve

pytestmark = pytest.mark.e2e

GEMMA = "gemma"
SHORT = "smol-short"
ASK = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def live(
    model_path: Path, gemma_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    corrupt = tmp_path_factory.mktemp("corrupt") / "broken.gguf"
    corrupt.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)  # a header cut short
    yield from serve(
        None,
        model_path,
        slots=2,
        models={
            "max_loaded": 2,
            "min_resident": 0,
            "keep_alive": None,
            "entries": [
                {
                    "id": GEMMA,
                    "path": str(gemma_path),
                    "aliases": ["gpt-4o-mini"],
                    "model": {"chat_format": "gemma", "n_ctx": 1024, "n_parallel": 2},
                },
                {
                    "id": SHORT,
                    "path": str(model_path),
                    "model": {"n_ctx": 512, "n_parallel": 1},
                    "sampling": {"max_tokens": 3},
                },
                {"id": "broken", "path": str(corrupt)},
            ],
        },
    )


@pytest.fixture
def client(live: LiveServer) -> Iterator[openai.OpenAI]:
    with live.client() as opened:
        yield opened


@pytest.fixture
def claude(live: LiveServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=live.root, api_key="k", max_retries=0) as opened:
        yield opened


def _states(live: LiveServer) -> dict[str, str]:
    listed = httpx.get(f"{live.base_url}/models").json()["data"]
    return {m["id"]: m["state"] for m in listed}


def _unload(live: LiveServer, model: str) -> None:
    response = httpx.post(f"{live.root}/models/unload", json={"model": model}, timeout=60)
    assert response.status_code == 200, response.text


def _metric(live: LiveServer, name: str, **labels: str) -> float:
    return metric_total(httpx.get(f"{live.root}/metrics").text, name, **labels)


def _endless(live: LiveServer, model: str) -> dict[str, int]:
    """A `logit_bias` that bans the model's end tokens: its reply runs to the cap."""
    ends = "<end_of_turn><eos>" if model == GEMMA else "<|im_end|><|endoftext|>"
    tokens = httpx.post(f"{live.root}/tokenize", json={"content": ends, "model": model}).json()
    assert len(tokens["tokens"]) == 2
    return dict.fromkeys(map(str, tokens["tokens"]), -100)


def _chat(client: openai.OpenAI, model: str, **extra: Any) -> Any:
    options: dict[str, Any] = {"max_tokens": 8, "temperature": 0, **extra}
    return client.chat.completions.create(model=model, messages=ASK, **options)


def test_the_catalog_lists_every_model_with_its_state(
    live: LiveServer, client: openai.OpenAI
) -> None:
    listed = client.models.list().data
    ids = [m.id for m in listed]
    assert ids[0] == live.engine.model_id  # the default first
    assert set(ids) == {live.engine.model_id, GEMMA, SHORT, "broken"}
    gemma = next(m for m in listed if m.id == GEMMA)
    extra = gemma.model_extra or {}
    assert extra["aliases"] == ["gpt-4o-mini"]
    assert extra["context_length"] == 1024
    assert extra["state"] in {"loaded", "unloaded"}
    assert client.models.retrieve("gpt-4o-mini").id == GEMMA


def test_requests_reach_the_model_they_name(live: LiveServer, client: openai.OpenAI) -> None:
    smol, gemma = _chat(client, live.engine.model_id), _chat(client, GEMMA)
    assert smol.model == live.engine.model_id
    assert gemma.model == GEMMA
    assert smol.choices[0].message.content != gemma.choices[0].message.content
    # each reads the prompt in its own vocabulary and chat format
    assert smol.usage is not None
    assert gemma.usage is not None
    assert smol.usage.prompt_tokens != gemma.usage.prompt_tokens
    short = _chat(client, SHORT, max_tokens=openai.omit)  # its own default: 3 tokens
    assert short.model == SHORT
    assert short.usage is not None
    assert short.usage.completion_tokens <= 3
    assert _chat(client, "gpt-4o-mini").model == GEMMA  # an alias


def test_an_unknown_id_or_a_path_is_the_default_model(
    live: LiveServer, client: openai.OpenAI
) -> None:
    for name in ("gpt-4", "../../etc/passwd", "/etc/passwd", "https://example.com/x.gguf"):
        assert _chat(client, name).model == live.engine.model_id


def test_unknown_ids_are_refused_when_asked(model_path: Path) -> None:
    for live in serve(None, model_path, slots=1, models={"unknown": "error"}):
        with live.client() as client, pytest.raises(openai.NotFoundError) as caught:
            _chat(client, "gpt-4")
        assert caught.value.code == "model_not_found"
        assert caught.value.body["param"] == "model"  # type: ignore[index]
        claude = anthropic.Anthropic(base_url=live.root, api_key="k", max_retries=0)
        with claude, pytest.raises(anthropic.NotFoundError) as refused:
            claude.messages.create(model="claude-x", max_tokens=4, messages=ASK)  # type: ignore[arg-type]
        assert refused.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
        with live.client() as client:
            assert _chat(client, live.engine.model_id).model == live.engine.model_id


def test_every_protocol_routes_by_model(
    live: LiveServer, client: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    completion = client.completions.create(model=GEMMA, prompt="Once upon", max_tokens=4)
    assert completion.model == GEMMA
    vectors = client.embeddings.create(model=GEMMA, input="hello")
    small = client.embeddings.create(model=live.engine.model_id, input="hello")
    assert vectors.model == GEMMA
    assert len(vectors.data[0].embedding) != len(small.data[0].embedding)  # 640 vs 576
    response = client.responses.create(model=GEMMA, input="Hi", max_output_tokens=4)
    assert response.model == GEMMA
    message = claude.messages.create(model=GEMMA, max_tokens=4, messages=ASK)  # type: ignore[arg-type]
    assert message.model == GEMMA
    counted = claude.messages.count_tokens(model=GEMMA, messages=ASK)  # type: ignore[arg-type]
    read = message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)
    assert counted.input_tokens == read
    text = {"content": "Strawberries are red."}
    by_gemma = httpx.post(f"{live.root}/tokenize", json={**text, "model": GEMMA}).json()
    by_smol = httpx.post(f"{live.root}/tokenize", json=text).json()
    assert by_gemma["model"] == GEMMA
    assert by_gemma["tokens"] != by_smol["tokens"]
    back = httpx.post(
        f"{live.root}/detokenize", json={"tokens": by_gemma["tokens"], "model": GEMMA}
    )
    assert back.json() == {"content": text["content"], "model": GEMMA}


def test_a_continuation_stays_on_the_stored_responses_model(
    live: LiveServer, client: openai.OpenAI
) -> None:
    first = client.responses.create(model=GEMMA, input="Say hi.", max_output_tokens=4)
    then = client.responses.create(
        model="gpt-4o", previous_response_id=first.id, input="Again.", max_output_tokens=4
    )
    assert then.model == GEMMA
    other = client.responses.create(
        model=live.engine.model_id, previous_response_id=first.id, input="Hm.", max_output_tokens=4
    )
    assert other.model == live.engine.model_id  # a model the catalog has is honoured


def test_a_third_model_evicts_the_least_recently_used_idle_one(
    live: LiveServer, client: openai.OpenAI
) -> None:
    _chat(client, GEMMA)
    _chat(client, live.engine.model_id)  # now gemma is the least recently used
    evicted = _metric(live, "llm_model_unloads_total", model=GEMMA, reason="evicted")
    assert _chat(client, SHORT).model == SHORT
    states = _states(live)
    assert states[SHORT] == "loaded"
    assert states[live.engine.model_id] == "loaded"
    assert states[GEMMA] == "unloaded"
    assert _metric(live, "llm_model_unloads_total", model=GEMMA, reason="evicted") == evicted + 1


def test_a_streaming_model_is_never_evicted_and_its_stream_completes(
    live: LiveServer, client: openai.OpenAI
) -> None:
    _chat(client, SHORT)
    _chat(client, GEMMA)  # loaded: gemma and smol-short; the default is not
    stream = client.chat.completions.create(
        model=GEMMA,
        messages=ASK,  # type: ignore[arg-type]
        max_tokens=120,
        temperature=0,
        stream=True,
        logit_bias=_endless(live, GEMMA),
    )
    chunks = iter(stream)
    next(chunks)  # gemma is streaming; smol-short is idle and older
    assert _chat(client, live.engine.model_id).model == live.engine.model_id
    states = _states(live)
    assert states[GEMMA] == "loaded"
    assert states[SHORT] == "unloaded"
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["length"]


async def test_streams_keep_flowing_while_another_model_loads(live: LiveServer) -> None:
    await asyncio.to_thread(_unload, live, GEMMA)
    await asyncio.to_thread(_unload, live, SHORT)
    endless = await asyncio.to_thread(_endless, live, live.engine.model_id)
    arrivals: list[float] = []
    load: asyncio.Task[Any] | None = None
    async with live.async_client() as client:
        stream = await client.chat.completions.create(
            model=live.engine.model_id,
            messages=ASK,  # type: ignore[arg-type]
            max_tokens=300,
            temperature=0,
            stream=True,
            logit_bias=endless,
        )
        async for _ in stream:
            arrivals.append(time.monotonic())
            if len(arrivals) == 20:  # streaming steadily: now gemma loads beside it
                load = asyncio.create_task(
                    client.chat.completions.create(model=GEMMA, messages=ASK, max_tokens=1)  # type: ignore[arg-type]
                )
        assert load is not None
        loaded = await load
    assert loaded.model == GEMMA
    gaps = [b - a for a, b in itertools.pairwise(arrivals[20:])]
    worst = max(gaps)
    print(f"worst gap between chunks while gemma loaded: {worst * 1000:.0f} ms")
    assert worst < 1.5  # loading reads the file and builds buffers beside the stream


def test_concurrent_first_requests_load_the_model_once(live: LiveServer) -> None:
    _unload(live, GEMMA)
    loads = _metric(live, "llm_model_loads_total", model=GEMMA, outcome="loaded")

    async def four() -> list[Any]:
        async with live.async_client() as client:
            return await asyncio.gather(
                *(
                    client.chat.completions.create(model=GEMMA, messages=ASK, max_tokens=2)  # type: ignore[arg-type]
                    for _ in range(4)
                )
            )

    replies = asyncio.run(four())
    assert {r.model for r in replies} == {GEMMA}
    assert _metric(live, "llm_model_loads_total", model=GEMMA, outcome="loaded") == loads + 1


def test_unloading_frees_the_memory(live: LiveServer, client: openai.OpenAI) -> None:
    _chat(client, GEMMA)
    process = psutil.Process()
    before = process.memory_info().rss
    _unload(live, GEMMA)
    after = process.memory_info().rss
    print(f"RSS {before / 2**20:.0f} MiB with gemma loaded, {after / 2**20:.0f} MiB after")
    assert before - after > 150 * 2**20  # its weights alone are 242 MiB
    assert _states(live)[GEMMA] == "unloaded"


def test_a_corrupt_model_fails_with_its_cause_and_the_others_carry_on(
    live: LiveServer, client: openai.OpenAI
) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        _chat(client, "broken")
    assert caught.value.code == "model_load_failed"
    assert "'broken'" in caught.value.message
    assert "broken.gguf" in caught.value.message
    listed = {m["id"]: m for m in httpx.get(f"{live.base_url}/models").json()["data"]}
    assert listed["broken"]["state"] == "failed"
    assert "broken.gguf" in listed["broken"]["error"]
    assert _chat(client, GEMMA).model == GEMMA
    assert httpx.get(f"{live.root}/health").status_code == 200


def test_loading_and_unloading_by_hand(live: LiveServer) -> None:
    loaded = httpx.post(f"{live.root}/models/load", json={"model": SHORT}, timeout=60)
    assert loaded.status_code == 200
    assert loaded.json()["state"] == "loaded"
    unknown = httpx.post(f"{live.root}/models/load", json={"model": "../../etc/passwd"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"
    _unload(live, SHORT)
    assert _states(live)[SHORT] == "unloaded"
