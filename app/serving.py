"""Chat completions: validate, render and tokenize, queue, then answer as JSON or SSE.

Everything that can fail because of the request (bad fields, template errors, context
length, a full queue) fails *before* the response starts, so it gets a real 4xx/503
status. Once a stream has started, failures go in-band (`app.sse.error_event`).
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgspec
from litestar import Request

from app.access_log import request_stats
from app.disconnect import unless_disconnected
from app.engine.base import Engine, Finished, Generation, GenerationEvent, TextDelta
from app.engine.grammar import grammar_for
from app.metrics import Metrics, observe
from app.sse import DONE, error_event, event
from config.settings import Settings
from conversion.errors import InvalidRequestError
from conversion.limits import apply_limits, check_limits
from conversion.messages import to_template_messages
from conversion.requests import check_context_length, to_generation_params
from conversion.responses import ChunkFactory, to_chat_completion, to_usage
from conversion.wire import ChatCompletion, ChatCompletionRequest

__all__ = ("create_chat_completion",)


async def _collect(events: AsyncIterator[GenerationEvent]) -> tuple[str, Finished]:
    parts: list[str] = []
    async for item in events:
        if isinstance(item, TextDelta):
            parts.append(item.text)
        else:
            return "".join(parts), item
    raise RuntimeError("generation ended without a Finished event")


async def _stream(
    chunks: ChunkFactory,
    first: GenerationEvent,
    events: AsyncIterator[GenerationEvent],
    generation: Generation,
) -> AsyncIterator[bytes]:
    try:
        yield event(chunks.role())
        item = first
        while True:
            if isinstance(item, TextDelta):
                yield event(chunks.content(item.text))
            else:
                yield event(chunks.finish(item.finish_reason))
                if chunks.include_usage:
                    usage = to_usage(item.prompt_tokens, item.completion_tokens, item.cached_tokens)
                    yield event(chunks.usage(usage))
                break
            item = await anext(events)
        yield DONE
    except Exception as exc:  # noqa: BLE001 - the status is sent: report in-band, end cleanly
        yield error_event(exc)
        yield DONE
    finally:
        generation.cancel()  # no-op when finished; frees the model when the client left


prompt_log = logging.getLogger("llm_service.prompts")
_MESSAGES = msgspec.json.Encoder()


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
    if params.json_schema is not None:
        params = dataclasses.replace(params, grammar=grammar_for(params.json_schema))
    messages = to_template_messages(body.messages)
    prompt = await anyio.to_thread.run_sync(engine.tokenize_chat, messages)
    if not prompt.tokens:
        raise InvalidRequestError(
            "The chat template renders these messages as an empty prompt.", param="messages"
        )
    check_context_length(len(prompt.tokens), params.max_tokens, engine.context_length)
    if prompt.stop:
        params = dataclasses.replace(params, stop=params.stop + prompt.stop)
    generation = engine.submit(prompt.tokens, params)
    events = generation.events()
    stats = request_stats(request.scope)
    if settings.server.log_prompts:
        prompt_log.info(
            "request_id=%s messages=%s",
            stats.request_id if stats else "-",
            _MESSAGES.encode(body.messages).decode(),
        )
    if metrics is not None and stats is not None:
        events = observe(events, stats, metrics)
    try:
        if not body.stream:
            text, finished = await unless_disconnected(request, _collect(events))
            return to_chat_completion(
                model=engine.model_id,
                text=text,
                finish_reason=finished.finish_reason,
                usage=to_usage(
                    finished.prompt_tokens, finished.completion_tokens, finished.cached_tokens
                ),
            )
        # Wait for the first token before answering, so that a failure to start is
        # still a proper HTTP error rather than an in-band one.
        first = await unless_disconnected(request, anext(events))
    except BaseException:
        generation.cancel()
        raise
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    stream = _stream(ChunkFactory(engine.model_id, include_usage), first, events, generation)
    # If the response task is cancelled before the stream is first iterated, its
    # `finally` never runs; this still frees the model once the stream is dropped.
    weakref.finalize(stream, generation.cancel)
    return stream
