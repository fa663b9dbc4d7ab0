"""Bursts through the real openai SDK with its default settings (two retries): a burst
far past the old queue bound is queued and served without an error, the light routes
answer at once meanwhile, the queue's waits are in /metrics, and with API keys a key
that floods the queue does not hold up another."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import EnginePool, metric_total
from tests.e2e.conftest import LiveServer, serve

SHORT = [{"role": "user", "content": "Say yes."}]
BURST = 60
"""Three times the old bound (16 waiting + 4 slots), which refused 40 of 60."""
KEYS = ["flood-key", "other-key"]


@pytest.fixture(scope="module")
def keyed(engine_pool: EnginePool, model_path: Path) -> Iterator[LiveServer]:
    yield from serve(engine_pool, model_path, slots=4, api_keys=KEYS)


async def _burst(live: LiveServer, key: str, count: int) -> list[float]:
    """`count` short requests at once; the time each one's reply arrived."""
    done: list[float] = []
    async with openai.AsyncOpenAI(base_url=live.base_url, api_key=key) as client:

        async def one() -> None:
            reply = await client.chat.completions.create(
                model="gpt-4", messages=SHORT, max_tokens=2, temperature=0
            )
            assert reply.choices[0].finish_reason in ("stop", "length")
            done.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(count)))
    return done


def test_a_burst_past_the_old_bound_is_served_and_light_routes_stay_fast(
    keyed: LiveServer,
) -> None:
    headers = {"Authorization": f"Bearer {KEYS[0]}"}
    before = httpx.get(f"{keyed.root}/metrics").text

    async def burst_and_probe() -> tuple[float, float]:
        started = time.monotonic()
        burst = asyncio.ensure_future(_burst(keyed, KEYS[0], BURST))
        slowest = 0.0
        async with httpx.AsyncClient() as probe:
            while not burst.done():
                await asyncio.sleep(0.2)
                for path, extra in (("/health", {}), ("/v1/models", headers), ("/metrics", {})):
                    sent = time.monotonic()
                    answer = await probe.get(f"{keyed.root}{path}", headers=extra)
                    assert answer.status_code == 200
                    slowest = max(slowest, time.monotonic() - sent)
        await burst
        return slowest, time.monotonic() - started

    slowest, drained = asyncio.run(burst_and_probe())
    # a light route never waits for a slot: far less than the burst's own requests do
    # (a bound relative to the burst, as a loaded machine slows both)
    assert slowest < drained / 3, (slowest, drained)
    after = httpx.get(f"{keyed.root}/metrics").text
    assert (
        metric_total(after, "llm_queue_wait_seconds_count")
        - metric_total(before, "llm_queue_wait_seconds_count")
        >= BURST
    )
    assert 'llm_refused_requests_total{cause="server_busy"}' not in after


def test_a_key_that_floods_the_queue_does_not_hold_up_another(keyed: LiveServer) -> None:
    async def flood_then_other() -> tuple[list[float], list[float]]:
        flood = asyncio.ensure_future(_burst(keyed, KEYS[0], 40))
        await asyncio.sleep(0.5)  # the flood is queued first
        other = await _burst(keyed, KEYS[1], 4)
        return await flood, other

    flood, other = asyncio.run(flood_then_other())
    # the other key's four are served with the next free slots, not after the forty
    assert max(other) < sorted(flood)[-10], (sorted(flood), other)


def test_every_protocol_queues_and_choices_take_their_places(keyed: LiveServer) -> None:
    """A mixed burst: chat with `n` 3 (three places each), legacy completions, the
    Responses API and Anthropic's Messages; all answered, none refused."""
    bodies = [
        ("/v1/chat/completions", {"messages": SHORT, "max_tokens": 2, "n": 3}),
        ("/v1/completions", {"prompt": "Yes or no?", "max_tokens": 2}),
        ("/v1/responses", {"input": "Say yes.", "max_output_tokens": 2}),
        ("/v1/messages", {"messages": SHORT, "max_tokens": 2}),
    ]
    headers = {"Authorization": f"Bearer {KEYS[1]}"}

    async def mixed() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=120, headers=headers) as client:
            sent = [
                client.post(f"{keyed.root}{path}", json={"model": "m", **body})
                for _ in range(10)
                for path, body in bodies
            ]
            return list(await asyncio.gather(*sent))

    replies = asyncio.run(mixed())
    assert [r.status_code for r in replies] == [200] * len(replies)
    chats = [r.json() for r in replies if r.url.path == "/v1/chat/completions"]
    assert all(len(chat["choices"]) == 3 for chat in chats)
