"""Running a request's generations to a JSON reply or an SSE body (chat and legacy).

A streamed reply waits for the first event before it answers, so a request that fails
to start still gets a real HTTP error; after that, failures go in-band (`app.sse`).
A client that disconnects while it waits stops the work (`unless_disconnected`).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
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


async def first_then_rest(
    request: Request[Any, Any, Any],
    fanout: Fanout,
    stats: RequestStats | None,
    metrics: Metrics | None,
) -> AsyncIterator[IndexedEvent]:
    """Wait for the first event (see the module docstring), then stream them all."""
    events = fanout.events(stats, metrics)
    try:
        first = await unless_disconnected(request, anext(events))
    except BaseException:
        fanout.cancel()
        raise
    return _chain(first, events)


async def _chain(
    first: IndexedEvent, rest: AsyncIterator[IndexedEvent]
) -> AsyncIterator[IndexedEvent]:
    yield first
    async for item in rest:
        yield item


async def _sse(frames: AsyncIterator[Any], fanout: Fanout) -> AsyncIterator[bytes]:
    try:
        async for frame in frames:
            yield event(frame)
        yield DONE
    except Exception as exc:  # noqa: BLE001 - the status is sent: report in-band, end cleanly
        yield error_event(exc)
        yield DONE
    finally:
        fanout.cancel()  # no-op when finished; frees the model when the client left


def sse_body(frames: AsyncIterator[Any], fanout: Fanout) -> AsyncIterator[bytes]:
    """`frames` (wire objects) as SSE events, then `[DONE]`."""
    body = _sse(frames, fanout)
    # If the response task is cancelled before the body is first iterated, its
    # `finally` never runs; this still frees the model once the body is dropped.
    weakref.finalize(body, fanout.cancel)
    return body
