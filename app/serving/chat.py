"""Chat completions: validate, render and tokenize, queue, then answer as JSON or SSE.

Everything that can fail because of the request (bad fields, template errors, context
length, a full queue) fails *before* the response starts, so it gets a real 4xx/503
status. Once a stream has started, failures go in-band (`app.sse.error_event`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import anyio
import msgspec
from litestar import Request

from app.access_log import request_stats
from app.engine.base import Engine, TextDelta
from app.metrics import Metrics
from app.serving.fanout import ChoiceResult, IndexedEvent, submit_all, usage_part
from app.serving.stream import collect_all, first_then_rest, sse_body
from config.settings import Settings
from conversion.chat.messages import to_template_messages
from conversion.chat.replies import ChoiceReply, ChunkFactory, to_chat_completion
from conversion.chat.requests import check_limits, to_generation_params
from conversion.chat.wire import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from conversion.errors import InvalidRequestError
from conversion.limits import apply_limits
from conversion.logprobs import TokenLogprob
from conversion.params import GenerationParams, check_context_length, per_choice
from conversion.tools import ReplyShaper, ToolPlan, call_schema, plan_tools, tool_instructions
from conversion.usage import combined_usage

__all__ = ("create_chat_completion",)

prompt_log = logging.getLogger("llm_service.prompts")
_MESSAGES = msgspec.json.Encoder()


def _with_tools(params: GenerationParams, plan: ToolPlan | None) -> GenerationParams:
    if plan is None or plan.mode != "required":
        return params
    if params.json_schema is not None:
        raise InvalidRequestError(
            "response_format cannot be combined with a required tool call.",
            param="response_format",
        )
    return dataclasses.replace(params, json_schema=call_schema(plan), schema_param="tools")


def _template_inputs(
    body: ChatCompletionRequest, plan: ToolPlan | None, native: bool
) -> tuple[list[Any], list[dict[str, Any]] | None]:
    """Messages and tools for the chat template: a template that renders tools gets
    them as they are; otherwise they are described in the system message."""
    messages = to_template_messages(body.messages, native_tools=native)
    if plan is None:
        return messages, None
    if native:
        return messages, [{"type": "function", "function": asdict(f)} for f in plan.functions]
    instructions = tool_instructions(plan)
    if messages and messages[0]["role"] == "system":
        messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{instructions}"}
    else:
        messages.insert(0, {"role": "system", "content": instructions})
    return messages, None


def _reply(result: ChoiceResult, plan: ToolPlan | None, logprobs: bool) -> ChoiceReply:
    assert result.finished is not None
    shaper = ReplyShaper(plan)
    content = shaper.feed(result.text)
    rest, calls, finish_reason = shaper.finish(result.finished.finish_reason)
    tokens = result.logprobs if logprobs else None
    if calls:
        return ChoiceReply(None, finish_reason, calls, tokens)
    return ChoiceReply(content + rest, finish_reason, (), tokens)


async def _chunks(
    chunks: ChunkFactory,
    events: AsyncIterator[IndexedEvent],
    count: int,
    plan: ToolPlan | None,
    logprobs: bool,
) -> AsyncIterator[ChatCompletionChunk]:
    shapers = [ReplyShaper(plan) for _ in range(count)]
    held: list[list[TokenLogprob]] = [[] for _ in range(count)]
    finished = []
    for index in range(count):
        yield chunks.role(index)
    async for index, item in events:
        if isinstance(item, TextDelta):
            held[index].extend(item.logprobs)
            if text := shapers[index].feed(item.text):
                yield chunks.content(text, index, held[index] if logprobs else None)
                held[index] = []
            continue
        rest, calls, finish_reason = shapers[index].finish(item.finish_reason)
        tokens = held[index] if logprobs else None
        if calls:
            for chunk in chunks.tool_calls(calls, index, tokens):
                yield chunk
        elif rest or tokens:
            yield chunks.content(rest, index, tokens)
        yield chunks.finish(finish_reason, index)
        finished.append(usage_part(item))
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
    params = await anyio.to_thread.run_sync(engine.check_params, _with_tools(params, plan))
    messages, tools = _template_inputs(body, plan, engine.renders_tools)
    prompt = await anyio.to_thread.run_sync(engine.tokenize_chat, messages, tools)
    if not prompt.tokens:
        raise InvalidRequestError(
            "The chat template renders these messages as an empty prompt.", param="messages"
        )
    check_context_length(len(prompt.tokens), params.max_tokens, engine.context_length)
    if prompt.stop:
        params = dataclasses.replace(params, stop=params.stop + prompt.stop)
    count = body.n or 1
    fanout = submit_all(engine, [(prompt.tokens, p) for p in per_choice(params, count)])
    stats = request_stats(request.scope)
    if settings.server.log_prompts:
        prompt_log.info(
            "request_id=%s messages=%s",
            stats.request_id if stats else "-",
            _MESSAGES.encode(body.messages).decode(),
        )
    logprobs = params.logprobs is not None
    if not body.stream:
        results = await collect_all(request, fanout, stats, metrics)
        return to_chat_completion(
            model=engine.model_id,
            choices=[_reply(r, plan, logprobs) for r in results],
            usage=combined_usage([usage_part(r.finished) for r in results if r.finished]),
        )
    events = await first_then_rest(request, fanout, stats, metrics)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    chunks = ChunkFactory(engine.model_id, include_usage)
    return sse_body(_chunks(chunks, events, count, plan, logprobs), fanout)
