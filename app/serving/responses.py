"""The Responses API: its adapter over the shared turn core (`app.serving.turns`).

The request's input items (after the stored conversation of `previous_response_id`,
if any) map onto a `Turn` (`conversion.responses.requests`); the turn's reply becomes output items
in a `Response`, or the typed event stream. A stored response is saved before its
last event is sent, so a client that continues at once finds it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
from litestar import Request

from app.engine.base import Engine
from app.errors import to_openai_error
from app.metrics import Metrics
from app.serving.stream import sse_body
from app.serving.turns import start_turn
from app.sse import typed_event
from app.store import ResponseStore
from config.settings import Settings
from conversion.reply import TurnEvent
from conversion.responses.events import ResponseEvents
from conversion.responses.items import Item
from conversion.responses.output import ResponseDraft, output_items
from conversion.responses.requests import to_turn
from conversion.responses.wire import Response, ResponsesRequest, StreamEvent

__all__ = ("create_response",)


async def _events(
    events: AsyncIterator[TurnEvent],
    writer: ResponseEvents,
    store: ResponseStore | None,
    items: list[Item],
) -> AsyncIterator[StreamEvent]:
    for event in writer.start():
        yield event
    async for turn_event in events:
        for event in writer.feed(turn_event):
            if writer.final is not None and store is not None:  # before the last event
                await anyio.to_thread.run_sync(store.save, writer.final, items)
                store = None
            yield event


async def create_response(
    request: Request[Any, Any, Any],
    body: ResponsesRequest,
    engine: Engine,
    settings: Settings,
    store: ResponseStore,
    metrics: Metrics | None = None,
) -> tuple[str, Response | AsyncIterator[bytes]]:
    """Serve one request; returns the response's id (known before the stream starts, for
    a header) and the response, or the SSE byte stream when streaming."""
    turn, items = await anyio.to_thread.run_sync(
        lambda: to_turn(body, settings.sampling, settings.limits, store.history, store.item)
    )
    keep = body.store is not False and store.enabled
    draft = ResponseDraft(body, turn, engine.model_id, keep)
    started = await start_turn(request, turn, engine, settings, metrics)
    if not body.stream:
        [reply], usage = await started.replies()
        response = draft.response(
            output_items(reply), finish_reason=reply.finish_reason, usage=usage
        )
        if keep:
            await anyio.to_thread.run_sync(store.save, response, items)
        return draft.id, response
    events = await started.events()
    writer = ResponseEvents(draft)
    return draft.id, sse_body(
        _events(events, writer, store if keep else None, items),
        started.fanout,
        encode=typed_event,
        on_error=lambda exc: [typed_event(e) for e in writer.fail(to_openai_error(None, exc))],
        done=None,
    )
