"""A replica stopped (SIGTERM) or killed (SIGKILL) under load, and one that comes back."""

from __future__ import annotations

import asyncio
import collections
import signal
import time
import uuid
from dataclasses import dataclass, field

import openai

from tests.replicas.conftest import SLOTS, Proxy, Replica, openai_client

ESSAY = "Write a very long essay on the history of bridges, century by century."


@dataclass
class Outcome:
    """What a client saw of one streamed request."""

    replica: str | None = None
    chunks: int = 0
    finish_reason: str | None = None
    error: BaseException | None = None
    ended_at: float | None = None
    first_chunk: asyncio.Event = field(default_factory=asyncio.Event)


async def _stream(
    client: openai.AsyncOpenAI, key: str, max_tokens: int, outcome: Outcome | None = None
) -> Outcome:
    outcome = outcome if outcome is not None else Outcome()
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="any",
            messages=[{"role": "user", "content": ESSAY}],
            max_tokens=max_tokens,
            temperature=0,
            stream=True,
            prompt_cache_key=key,
        )
        outcome.replica = raw.headers["llm-replica"]
        async for chunk in raw.parse():  # `with_raw_response` parses at once
            outcome.chunks += 1
            outcome.first_chunk.set()
            if chunk.choices and chunk.choices[0].finish_reason:
                outcome.finish_reason = chunk.choices[0].finish_reason
    except Exception as exc:  # what the client saw is the result
        outcome.error = exc
    outcome.ended_at = time.monotonic()
    outcome.first_chunk.set()
    return outcome


async def _complete(client: openai.AsyncOpenAI, key: str) -> Outcome:
    outcome = Outcome()
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="any",
            messages=[{"role": "user", "content": f"Name a colour. ({key})"}],
            max_tokens=8,
            temperature=0,
            prompt_cache_key=key,
        )
        outcome.replica = raw.headers["llm-replica"]
        outcome.finish_reason = raw.parse().choices[0].finish_reason
    except Exception as exc:
        outcome.error = exc
    outcome.ended_at = time.monotonic()
    return outcome


def _route(proxy: Proxy, keys: list[str]) -> dict[str, str]:
    """The replica the proxy sends each `prompt_cache_key` to (one-token requests)."""
    served = {}
    with openai_client(proxy) as client:
        for key in keys:
            raw = client.completions.with_raw_response.create(
                model="any", prompt="Hi", max_tokens=1, extra_body={"prompt_cache_key": key}
            )
            served[key] = raw.headers["llm-replica"]
    return served


def _key_for(proxy: Proxy, replica: str) -> str:
    """A `prompt_cache_key` the proxy sends to `replica`."""
    for n in range(0, 200, 10):
        for key, served in _route(proxy, [f"pin-{n + i}" for i in range(10)]).items():
            if served == replica:
                return key
    raise AssertionError(f"no key of 200 went to {replica}")


def _async_client(proxy: Proxy) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=proxy.base_url, api_key="k", max_retries=0, timeout=120)


async def _under_way(
    client: openai.AsyncOpenAI, count: int, max_tokens: int
) -> tuple[list[asyncio.Task[Outcome]], list[Outcome]]:
    """`count` streams, each with its own key (so they spread over the replicas),
    returned once each has had its first chunk."""
    outcomes = [Outcome() for _ in range(count)]
    tasks = [
        asyncio.create_task(_stream(client, f"busy-{uuid.uuid4().hex}", max_tokens, o))
        for o in outcomes
    ]
    await asyncio.wait_for(asyncio.gather(*(o.first_chunk.wait() for o in outcomes)), 60)
    for outcome in outcomes:
        assert outcome.error is None, outcome
        assert outcome.chunks > 0, outcome
    return tasks, outcomes


def _busiest(outcomes: list[Outcome], replicas: list[Replica]) -> Replica:
    served = collections.Counter(o.replica for o in outcomes)
    return max(replicas, key=lambda r: served[r.name])


async def _full(replicas: list[Replica]) -> Replica:
    """A replica generating in every slot: what the proxy sends it now waits in the
    proxy's queue, so it has not started when the replica dies."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for replica in replicas:
            if await asyncio.to_thread(replica.metric, "llm_active_generations") >= SLOTS:
                return replica
        await asyncio.sleep(0.1)
    raise AssertionError("no replica had all its slots busy")


def test_sigterm_under_load_fails_no_request(proxy: Proxy, all_up: list[Replica]) -> None:
    keys = {replica.name: _key_for(proxy, replica.name) for replica in all_up}

    async def run() -> tuple[Replica, list[Outcome], list[Outcome]]:
        async with _async_client(proxy) as client:
            tasks, outcomes = await _under_way(client, 2 * SLOTS, 120)
            victim = _busiest(outcomes, all_up)
            victim.signal(signal.SIGTERM)
            key = keys[victim.name]
            # New work keeps coming while the victim drains: none of it may fail.
            later = []
            for n in range(6):
                later.append(asyncio.create_task(_complete(client, f"{key}-{n}")))
                later.append(asyncio.create_task(_stream(client, key, 8)))
                await asyncio.sleep(0.25)
            running = await asyncio.gather(*tasks)
            return victim, list(running), list(await asyncio.gather(*later))

    victim, running, later = asyncio.run(run())
    assert victim.wait_exit() in (0, -signal.SIGTERM)
    assert any(outcome.replica == victim.name for outcome in running)
    # The replies running, there and elsewhere, ended as replies (within the grace).
    for outcome in running:
        assert outcome.error is None, outcome.error
        assert outcome.finish_reason in {"stop", "length"}
    # Everything sent during the drain was served, by the others.
    for outcome in later:
        assert outcome.error is None, outcome.error
        assert outcome.finish_reason in {"stop", "length"}
        assert outcome.replica != victim.name
    proxy.wait_states({victim.name: "DOWN"})


def test_sigkill_retries_what_had_not_started_and_ends_the_running_streams(
    proxy: Proxy, all_up: list[Replica]
) -> None:
    keys = {replica.name: _key_for(proxy, replica.name) for replica in all_up}

    async def run() -> tuple[Replica, list[Outcome], list[Outcome], float]:
        async with _async_client(proxy) as client:
            # Long streams in every slot of every replica (each with its own key).
            outcomes = [Outcome() for _ in range(len(all_up) * SLOTS)]
            tasks = []
            for outcome in outcomes:
                key = f"busy-{uuid.uuid4().hex}"
                tasks.append(asyncio.create_task(_stream(client, key, 400, outcome)))
                await asyncio.sleep(0.3)
            await asyncio.wait_for(outcomes[0].first_chunk.wait(), 30)
            victim = await _full(all_up)
            victim.signal(signal.SIGKILL)
            killed_at = time.monotonic()
            on_victim = [
                task
                for task, o in zip(tasks, outcomes, strict=True)
                if o.replica == victim.name and o.chunks and o.ended_at is None
            ]
            # Requests for the victim once it is gone, before the proxy's health checks
            # have noticed: not started anywhere. (One queued for it while it dies can be
            # handed to it in that instant, which the proxy cannot retry: docs/replicas.md.)
            await asyncio.to_thread(victim.wait_exit)
            waiting = []
            for _ in range(6):
                waiting.append(asyncio.create_task(_complete(client, keys[victim.name])))
                await asyncio.sleep(0.2)
            broken = await asyncio.wait_for(asyncio.gather(*on_victim), 30)  # not a hang
            for task in tasks:  # the others have nothing more to show: free their slots
                task.cancel()
            return victim, list(broken), list(await asyncio.gather(*waiting)), killed_at

    victim, broken, waiting, killed_at = asyncio.run(run())
    assert victim.wait_exit() == -signal.SIGKILL
    assert broken
    for outcome in broken:
        assert outcome.finish_reason is None
        assert outcome.error is not None  # the stream broke off, and the client knows
        assert outcome.ended_at is not None
        assert outcome.ended_at - killed_at < 5
    # None of the requests that had not started failed.
    for outcome in waiting:
        assert outcome.error is None, outcome.error
        assert outcome.replica != victim.name
    proxy.wait_states({victim.name: "DOWN"})


def test_a_replica_that_comes_back_takes_back_its_share_and_only_that(
    proxy: Proxy, all_up: list[Replica]
) -> None:
    victim = all_up[2]
    keys = [f"share-{n}" for n in range(30)]
    victim.signal(signal.SIGTERM)
    victim.wait_exit()
    proxy.wait_states({victim.name: "DOWN"})
    without = _route(proxy, keys)
    assert victim.name not in without.values()

    victim.start()
    proxy.wait_states({victim.name: "UP"})
    again = _route(proxy, keys)
    moved = {key for key in keys if again[key] != without[key]}
    assert moved  # it is used again...
    assert all(again[key] == victim.name for key in moved)  # ...and takes only its keys
