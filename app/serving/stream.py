"""Running a request's generations to a JSON reply or an SSE body (every protocol).

A streamed reply waits for the first event before it answers (up to `FIRST_EVENT_WAIT`),
so a request that fails to start still gets a real HTTP error; after that, failures go
in-band (`app.sse`).
A client that disconnects while it waits stops the work (`unless_disconnected`).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from litestar import Request

from app.disconnect import unless_disconnected
from app.metrics import Metrics, RequestStats
from app.serving.fanout import ChoiceResult, Fanout, IndexedEvent, collect
from app.sse import DONE, error_event, event

__all__ = ("collect_all", "first_then_rest", "sse_body")


async def collect_all(
    request: Request[Any, Any, Any],
    fanout: Fanout,
    stats: RequestStats | None,
    metrics: Metrics | None,
) -> list[ChoiceResult]:
    """Every choice's whole output, for a JSON reply."""
    try:
        return await unless_disconnected(
            request, collect(fanout.events(stats, metrics), len(fanout.generations))
        )
    except BaseException:
        fanout.cancel()
        raise


FIRST_EVENT_WAIT = 5.0
"""Seconds a stream waits for its first event before it answers anyway. A request
that fails to start fails within them (a full queue, a bad grammar) and still gets its
HTTP status; a prompt that takes longer to read (tens of thousands of tokens take
minutes on a CPU) must not leave the client without a byte: Claude Code gives up on a
request after 300 s with nothing received. Past the wait the stream begins (Anthropic's
`message_start` and its pings), and a failure after that is an in-band error. (Claude
Code 2.1 also ends a stream without content for 300 s, pings not counted: a prompt
that takes longer to read needs a faster machine or a longer client timeout,
`CLAUDE_STREAM_IDLE_TIMEOUT_MS`.)"""


async def first_then_rest(
    request: Request[Any, Any, Any],
    fanout: Fanout,
    stats: RequestStats | None,
    metrics: Metrics | None,
) -> AsyncIterator[IndexedEvent]:
    """Wait for the first event up to `FIRST_EVENT_WAIT` seconds, then stream them all."""
    events = fanout.events(stats, metrics)
    first = asyncio.ensure_future(anext(events))
    try:
        await unless_disconnected(request, asyncio.wait({first}, timeout=FIRST_EVENT_WAIT))
        if first.done():
            return _chain(first.result(), events)
    except BaseException:
        first.cancel()
        fanout.cancel()
        raise
    return _pending_then_rest(first, events)


async def _chain(
    first: IndexedEvent, rest: AsyncIterator[IndexedEvent]
) -> AsyncIterator[IndexedEvent]:
    yield first
    async for item in rest:
        yield item


async def _pending_then_rest(
    first: asyncio.Future[IndexedEvent], rest: AsyncIterator[IndexedEvent]
) -> AsyncIterator[IndexedEvent]:
    """The first event once it comes (the stream has begun), then the rest; a stream
    closed before it came cancels the wait."""
    try:
        yield await first
    finally:
        first.cancel()
    async for item in rest:
        yield item


def _openai_error(exc: Exception) -> list[bytes]:
    return [error_event(exc)]


async def _sse(
    frames: AsyncIterator[Any],
    fanout: Fanout,
    encode: Callable[[Any], bytes],
    on_error: Callable[[Exception], Iterable[bytes]],
    done: bytes | None,
) -> AsyncIterator[bytes]:
    try:
        async for frame in frames:
            yield encode(frame)
        if done is not None:
            yield done
    except Exception as exc:  # noqa: BLE001 - the status is sent: report in-band, end cleanly
        for chunk in on_error(exc):
            yield chunk
        if done is not None:
            yield done
    finally:
        fanout.cancel()  # no-op when finished; frees the model when the client left


def sse_body(
    frames: AsyncIterator[Any],
    fanout: Fanout,
    *,
    encode: Callable[[Any], bytes] = event,
    on_error: Callable[[Exception], Iterable[bytes]] = _openai_error,
    done: bytes | None = DONE,
) -> AsyncIterator[bytes]:
    """`frames` (wire objects) as SSE events. By default OpenAI's chat framing: `data:`
    lines, an error as one `{"error": ...}` event, and `[DONE]` at the end; a protocol
    with other framing passes its own `encode`, `on_error` and `done`."""
    body = _sse(frames, fanout, encode, on_error, done)
    # If the response task is cancelled before the body is first iterated, its
    # `finally` never runs; this still frees the model once the body is dropped.
    weakref.finalize(body, fanout.cancel)
    return body
