"""Anthropic's Messages API: its adapter over the shared turn core (`app.serving.turns`).

The request's blocks map onto chat messages and a `ChatTurn`; the turn's reply becomes
a `Message` or Anthropic's typed event stream, with a `ping` whenever the model is
quiet for `PING_AFTER` seconds (as Anthropic keeps its streams alive), and an `error`
event if it fails after the stream began.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request

from app.engine.base import Engine
from app.errors import to_openai_error
from app.metrics import Metrics
from app.serving.stream import sse_body
from app.serving.turns import ChatTurn, count_prompt_tokens, start_turn
from app.sse import typed_event
from config.settings import Settings
from conversion.anthropic.output import MessageEvents, to_message
from conversion.anthropic.requests import count_turn, to_turn
from conversion.anthropic.wire import (
    CountTokensRequest,
    Event,
    InputTokens,
    Message,
    MessagesRequest,
)
from conversion.chat.messages import to_template_messages
from conversion.limits import apply_limits
from conversion.params import GenerationParams, SamplingParams
from conversion.reply import TurnEvent

__all__ = ("PING_AFTER", "count_tokens", "create_message")

PING_AFTER = 10.0
"""Seconds without an event after which a stream gets a `ping`."""
_encoder = msgspec.json.Encoder()


def _frame(event: Event) -> bytes:
    return typed_event(type(event).__struct_config__.tag, event)  # type: ignore[arg-type]


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


def _turn(
    body: MessagesRequest | CountTokensRequest, engine: Engine, settings: Settings
) -> ChatTurn:
    if isinstance(body, MessagesRequest):
        mapped = to_turn(body, settings.sampling, settings.limits)
        messages, plan, effort = mapped.messages, mapped.plan, mapped.reasoning_effort
        params = apply_limits(mapped.params, settings.limits)
    else:
        messages, plan, effort = count_turn(body)
        params = GenerationParams(SamplingParams(1.0, 1.0, None), None, ())
    family = engine.family
    return ChatTurn(
        messages=to_template_messages(
            messages, native_tools=engine.renders_tools, syntax=family.tools
        ),
        params=params,
        plan=plan,
        schema_conflict_param="tool_choice",
        log_text=lambda: _encoder.encode(body.messages).decode(),
        reasoning_effort=effort,
    )


async def create_message(
    request: Request[Any, Any, Any],
    body: MessagesRequest,
    engine: Engine,
    settings: Settings,
    metrics: Metrics | None = None,
) -> Message | AsyncIterator[bytes]:
    """Serve one request; returns the message, or the SSE byte stream when streaming."""
    turn = _turn(body, engine, settings)
    started = await start_turn(request, turn, engine, settings, metrics)
    stops = turn.params.stop
    if not body.stream:
        [reply], _ = await started.replies()
        return to_message(reply, started.parts[0], engine.model_id, stops)
    events = await started.events()
    writer = MessageEvents(engine.model_id, started.prompt_tokens, stops)
    return sse_body(
        _with_pings(events, writer),
        started.fanout,
        encode=_frame,
        on_error=lambda exc: [_frame(e) for e in writer.fail(to_openai_error(None, exc))],
        done=None,
    )


async def count_tokens(body: CountTokensRequest, engine: Engine, settings: Settings) -> InputTokens:
    """The prompt tokens the same request would read (its usage's input and cache reads)."""
    engine.check_ready()
    return InputTokens(
        input_tokens=await count_prompt_tokens(_turn(body, engine, settings), engine, settings)
    )
