"""The Responses API: its adapter over the shared turn core (`app.serving.turns`).

The request's input items (after the stored conversation of `previous_response_id`,
if any) map onto a `Turn` (`conversion.responses.requests`); the turn's reply becomes output items
in a `Response`, or the typed event stream. A stored response is saved before its
last event is sent, so a client that continues at once finds it.

Hosted tools the request named and the server left out (`responses.hosted_tools`) are
logged and named in the `llm-omitted-tools` header, so a client can tell why the model
never searched the web.
"""

from __future__ import annotations

import logging
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
from conversion.responses.requests import SEALED_INCLUDE, to_turn
from conversion.responses.wire import Response, ResponsesRequest, StreamEvent

__all__ = ("OMITTED_TOOLS_HEADER", "RESPONSE_ID_HEADER", "create_response")

RESPONSE_ID_HEADER = "llm-response-id"
OMITTED_TOOLS_HEADER = "llm-omitted-tools"
logger = logging.getLogger("llm_service.responses")


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
) -> tuple[dict[str, str], Response | AsyncIterator[bytes]]:
    """Serve one request; returns the headers (the response's id, known before the
    stream starts, and the hosted tools left out) and the response, or the SSE byte
    stream when streaming."""
    hosted = settings.responses.hosted_tools
    mapped = await anyio.to_thread.run_sync(
        lambda: to_turn(
            body,
            settings.sampling,
            settings.limits,
            store.history,
            store.item,
            hosted_tools=hosted,
            key=store.seal_key,
        )
    )
    turn, items = mapped.turn, mapped.items
    keep = body.store is not False and store.enabled
    sealed = SEALED_INCLUDE in (body.include or ())
    draft = ResponseDraft(
        body, turn, engine.model_id, keep, mapped.tools, store.seal_key if sealed else None
    )
    headers = {RESPONSE_ID_HEADER: draft.id}
    if mapped.tools.omitted:
        headers[OMITTED_TOOLS_HEADER] = ", ".join(mapped.tools.omitted)
        logger.info(
            "Left out hosted tools this server cannot run: %s", headers[OMITTED_TOOLS_HEADER]
        )
    started = await start_turn(request, turn, engine, settings, metrics)
    if not body.stream:
        [reply], usage = await started.replies()
        response = draft.response(
            output_items(reply, draft), finish_reason=reply.finish_reason, usage=usage
        )
        if keep:
            await anyio.to_thread.run_sync(store.save, response, items)
        return headers, response
    events = await started.events()
    writer = ResponseEvents(draft)
    return headers, sse_body(
        _events(events, writer, store if keep else None, items),
        started.fanout,
        encode=typed_event,
        on_error=lambda exc: [typed_event(e) for e in writer.fail(to_openai_error(None, exc))],
        done=None,
    )
