"""One request, several generations: submit them together, merge their events.

A request with `n` choices (or a legacy completion with several prompts) is that many
engine generations, batched like separate requests. They are submitted all or none (a
full queue refuses the request as a whole), their events are merged into one stream
of `(choice index, event)` in arrival order, and leaving the stream early cancels
every one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from app.engine.base import Engine, Generation
from app.metrics import Metrics, RequestStats, observe
from conversion.generation import (
    Finished,
    GenerationEvent,
    GenerationParams,
    TextDelta,
    TokenLogprob,
)
from conversion.usage import UsagePart

__all__ = ("ChoiceResult", "Fanout", "collect", "submit_all", "usage_part")

IndexedEvent = tuple[int, GenerationEvent]


@dataclass(slots=True)
class ChoiceResult:
    """A choice's whole output, for a non-streamed response."""

    text: str = ""
    """All of it, thinking included (legacy completions read this)."""
    pieces: list[tuple[str, bool]] = field(default_factory=list)
    """The text as it came: (text, whether it was thinking)."""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finished: Finished | None = None


class Fanout:
    """The generations of one request. `events()` once; `cancel()` at any time."""

    def __init__(self, generations: Sequence[Generation]) -> None:
        self.generations = list(generations)
        self._pumps: list[asyncio.Future[None]] = []

    def cancel(self) -> None:
        for generation in self.generations:
            generation.cancel()
        for pump in self._pumps:  # a cancelled generation sends no more events
            pump.cancel()

    async def events(
        self, stats: RequestStats | None = None, metrics: Metrics | None = None
    ) -> AsyncIterator[IndexedEvent]:
        streams = [g.events() for g in self.generations]
        if stats is not None and metrics is not None:
            streams = [observe(s, stats, metrics) for s in streams]
        if len(streams) == 1:  # the usual case needs no tasks
            try:
                async for item in streams[0]:
                    yield 0, item
            finally:
                self.cancel()
            return
        merged: asyncio.Queue[tuple[int, GenerationEvent | Exception]] = asyncio.Queue()

        async def pump(index: int, stream: AsyncIterator[GenerationEvent]) -> None:
            try:
                async for item in stream:
                    merged.put_nowait((index, item))
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
                merged.put_nowait((index, exc))

        tasks = self._pumps = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(streams)]
        try:
            running = len(tasks)
            while running:
                index, got = await merged.get()
                if isinstance(got, Exception):
                    raise got
                if isinstance(got, Finished):
                    running -= 1
                yield index, got
        finally:
            self.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)


def usage_part(finished: Finished, prompt: int = 0) -> UsagePart:
    """One generation's entry for `conversion.usage.combined_usage`."""
    return UsagePart(
        prompt,
        finished.prompt_tokens,
        finished.completion_tokens,
        finished.cached_tokens,
        finished.reasoning_tokens,
    )


def submit_all(
    engine: Engine,
    jobs: Sequence[tuple[list[int], GenerationParams]],
    owner: str | None = None,
) -> Fanout:
    """Queue every generation, or none: if one is refused the others are cancelled."""
    submitted: list[Generation] = []
    try:
        for prompt, params in jobs:
            submitted.append(engine.submit(prompt, params, owner))
    except BaseException:
        for generation in submitted:
            generation.cancel()
        raise
    return Fanout(submitted)


async def collect(events: AsyncIterator[IndexedEvent], count: int) -> list[ChoiceResult]:
    """Every choice's text, log-probabilities and end."""
    results = [ChoiceResult() for _ in range(count)]
    async for index, item in events:
        if isinstance(item, TextDelta):
            results[index].pieces.append((item.text, item.thinking))
            results[index].logprobs.extend(item.logprobs)
        else:
            results[index].finished = item
    for result in results:
        if result.finished is None:
            raise RuntimeError("a generation ended without a Finished event")
        result.text = "".join(text for text, _ in result.pieces)
    return results
