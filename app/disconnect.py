"""Stop work when the client goes away before the response starts.

Litestar cancels a *streaming* body when the client disconnects, but a handler that is
still waiting (a non-streaming generation, or a request queued behind another) is not
told. So the handler races its work against the ASGI `http.disconnect` message, as
vLLM's `with_cancellation` does; polling `is_disconnected()` would miss it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from litestar import Request

__all__ = ("ClientDisconnectedError", "unless_disconnected")

T = TypeVar("T")


class ClientDisconnectedError(Exception):
    """The client closed the connection; there is nobody to answer."""


async def _wait_for_disconnect(request: Request[Any, Any, Any]) -> None:
    # The body has been read in full, so the next ASGI message can only be a disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request[Any, Any, Any], work: Awaitable[T]) -> T:
    """Await `work`; if the client disconnects first, cancel it (and wait for its
    clean-up, which frees the request's place in the engine), then raise."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.wait((task,))
        raise ClientDisconnectedError
    finally:
        watcher.cancel()
        task.cancel()
