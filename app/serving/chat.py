"""Chat completions: the chat adapter over the shared turn core (`app.serving.turns`).

The request maps onto a `ChatTurn` (`conversion.chat`); the turn's replies and events
become a `ChatCompletion` or `chat.completion.chunk` events, then `[DONE]`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request

from app.engine.base import Engine
from app.metrics import Metrics
from app.serving.stream import sse_body
from app.serving.turns import ChatTurn, start_turn
from config.settings import Settings
from conversion.chat.messages import to_template_messages
from conversion.chat.replies import ChunkFactory, to_chat_completion
from conversion.chat.requests import check_limits, template_kwargs, to_generation_params
from conversion.chat.wire import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from conversion.limits import apply_limits
from conversion.reply import ContentPiece, ReasoningPiece, TurnEvent
from conversion.tools import plan_tools
from conversion.usage import combined_usage

__all__ = ("create_chat_completion",)

_MESSAGES = msgspec.json.Encoder()


async def _chunks(
    chunks: ChunkFactory, events: AsyncIterator[TurnEvent], count: int
) -> AsyncIterator[ChatCompletionChunk]:
    finished = []
    for index in range(count):
        yield chunks.role(index)
    async for item in events:
        if isinstance(item, ReasoningPiece):
            yield chunks.reasoning(item.text, item.index)
            continue
        if isinstance(item, ContentPiece):
            yield chunks.content(item.text, item.index, item.logprobs)
            continue
        if item.calls:
            for chunk in chunks.tool_calls(item.calls, item.index, item.logprobs):
                yield chunk
        yield chunks.finish(item.finish_reason, item.index)
        finished.append(item.usage)
    if chunks.include_usage:
        yield chunks.usage(combined_usage(finished))


async def create_chat_completion(
    request: Request[Any, Any, Any],
    body: ChatCompletionRequest,
    engine: Engine,
    settings: Settings,
    metrics: Metrics | None = None,
) -> ChatCompletion | AsyncIterator[bytes]:
    """Serve one request; returns the JSON body, or the SSE byte stream when streaming."""
    check_limits(body, settings.limits)
    params = apply_limits(to_generation_params(body, settings.sampling), settings.limits)
    plan = plan_tools(body.tools, body.tool_choice)
    messages = to_template_messages(
        body.messages, native_tools=engine.renders_tools, syntax=engine.family.tools
    )
    turn = ChatTurn(
        messages=messages,
        params=params,
        plan=plan,
        choices=body.n or 1,
        log_text=lambda: _MESSAGES.encode(body.messages).decode(),
        reasoning_effort=body.reasoning_effort,
        template_kwargs=template_kwargs(body.chat_template_kwargs),
    )
    started = await start_turn(request, turn, engine, settings, metrics)
    if not body.stream:
        replies, usage = await started.replies()
        return to_chat_completion(model=engine.model_id, choices=replies, usage=usage)
    events = await started.events()
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    chunks = ChunkFactory(engine.model_id, include_usage)
    return sse_body(_chunks(chunks, events, started.count), started.fanout)
