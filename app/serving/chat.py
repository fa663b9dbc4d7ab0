"""Chat completions: the chat adapter over the shared turn core (`app.serving.turns`).

The request maps onto a `Turn` (`conversion.chat.requests`); the turn's replies and
events become a `ChatCompletion` or `chat.completion.chunk` events, then `[DONE]`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request

from app.engine.base import Engine
from app.metrics import Metrics
from app.serving.stream import sse_body
from app.serving.turns import start_turn
from config.settings import Settings
from conversion.chat.replies import ChunkFactory, to_chat_completion
from conversion.chat.requests import to_turn
from conversion.chat.wire import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from conversion.reply import ContentPiece, ReasoningPiece, TurnEvent
from conversion.usage import combined_usage

__all__ = ("create_chat_completion",)


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
    turn = to_turn(body, body.messages, settings.sampling, settings.limits)
    started = await start_turn(request, turn, engine, settings, metrics)
    if not body.stream:
        replies, usage = await started.replies()
        return to_chat_completion(model=engine.model_id, choices=replies, usage=usage)
    events = await started.events()
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    chunks = ChunkFactory(engine.model_id, include_usage)
    return sse_body(_chunks(chunks, events, started.count), started.fanout)
