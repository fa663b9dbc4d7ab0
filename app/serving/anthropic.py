"""Anthropic's Messages API: its adapter over the shared turn core (`app.serving.turns`).

The request maps onto a `Turn` (`conversion.anthropic.requests`); the turn's reply becomes
a `Message` or Anthropic's typed event stream, with a `ping` whenever the model is
quiet for `PING_AFTER` seconds (as Anthropic keeps its streams alive), and an `error`
event if it fails after the stream began.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request

from app.engine.base import Engine
from app.errors import to_openai_error
from app.metrics import Metrics
from app.serving.prompt import turn_prompt
from app.serving.stream import sse_body
from app.serving.turns import start_turn
from app.sse import typed_event
from config.settings import Settings
from conversion.anthropic.options import thinking_shown
from conversion.anthropic.output import MessageEvents, to_message
from conversion.anthropic.requests import to_count_turn, to_turn
from conversion.anthropic.wire import (
    CountTokensRequest,
    Event,
    InputTokens,
    Message,
    MessagesRequest,
)
from conversion.reply import TurnEvent

__all__ = ("PING_AFTER", "count_tokens", "create_message")

PING_AFTER = 10.0
"""Seconds without an event after which a stream gets a `ping`."""


async def _with_pings(
    events: AsyncIterator[TurnEvent], writer: MessageEvents
) -> AsyncIterator[Event]:
    """The stream's events, a `ping` for every `PING_AFTER` seconds of silence. The
    pending read is never cancelled by the wait (that would close the generator)."""
    for event in writer.start():
        yield event
    iterator = aiter(events)
    while True:
        pending = asyncio.ensure_future(anext(iterator))
        while not pending.done():
            done, _ = await asyncio.wait({pending}, timeout=PING_AFTER)
            if not done:
                yield writer.ping()
        try:
            turn_event = pending.result()
        except StopAsyncIteration:
            return
        for event in writer.feed(turn_event):
            yield event


async def create_message(
    request: Request[Any, Any, Any],
    body: MessagesRequest,
    engine: Engine,
    settings: Settings,
    metrics: Metrics | None = None,
) -> Message | AsyncIterator[bytes]:
    """Serve one request; returns the message, or the SSE byte stream when streaming."""
    turn = to_turn(body, settings.sampling, settings.limits)
    started = await start_turn(request, turn, engine, settings, metrics)
    stops, shown = turn.params.stop, thinking_shown(body.thinking)
    if not body.stream:
        [reply], _ = await started.replies()
        return to_message(reply, started.parts[0], engine.model_id, stops, show_thinking=shown)
    events = await started.events()
    writer = MessageEvents(engine.model_id, started.prompt_tokens, stops, show_thinking=shown)
    return sse_body(
        _with_pings(events, writer),
        started.fanout,
        encode=typed_event,
        on_error=lambda exc: [typed_event(e) for e in writer.fail(to_openai_error(None, exc))],
        done=None,
    )


async def count_tokens(body: CountTokensRequest, engine: Engine, settings: Settings) -> InputTokens:
    """The prompt tokens the same request would read (its usage's input and cache reads),
    checked as that request would be."""
    rendered = await turn_prompt(engine, to_count_turn(body, settings.limits), settings, fit=False)
    return InputTokens(input_tokens=len(rendered.prompt.tokens))
