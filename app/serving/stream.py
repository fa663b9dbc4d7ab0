"""The SSE body of a streamed response, shared by chat and legacy completions.

The handler waits for the first event before it answers, so a request that fails to
start still gets a real HTTP error; after that, failures go in-band (`app.sse`).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from typing import Any

from app.serving.fanout import Fanout
from app.sse import DONE, error_event, event

__all__ = ("sse_body",)


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
