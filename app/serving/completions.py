"""Legacy completions: raw prompts (no chat template), one or more, n choices each.

Shares the engine path, limits, usage and streaming guarantees with chat; only the
prompts (text or token arrays) and the wire shapes differ (`conversion.completions`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import anyio
from litestar import Request

from app.access_log import request_stats
from app.auth import request_owner
from app.engine.base import Engine
from app.metrics import Metrics
from app.serving.fanout import Fanout, IndexedEvent, submit_all, usage_part
from app.serving.stream import collect_all, first_then_rest, sse_body
from config.settings import Settings
from conversion.completions.mapping import (
    CompletionChunks,
    LegacyReply,
    check_completion_limits,
    legacy_prompts,
    to_completion,
    to_legacy_params,
)
from conversion.completions.wire import Completion, CompletionRequest
from conversion.errors import InvalidRequestError
from conversion.generation import Finished, GenerationEvent, TextDelta
from conversion.limits import apply_limits
from conversion.params import check_context_length, per_choice
from conversion.usage import combined_usage

__all__ = ("create_completion",)


@dataclasses.dataclass(frozen=True, slots=True)
class _Prompt:
    tokens: list[int]
    text: str
    """For `echo`: the prompt as text (token arrays are detokenized)."""


async def _read(engine: Engine, prompt: str | list[int], index: int, count: int) -> _Prompt:
    where = "prompt" if count == 1 else f"prompt[{index}]"
    if isinstance(prompt, str):
        tokens = await anyio.to_thread.run_sync(
            lambda: engine.tokenize_text(prompt, add_special=True)
        )
        text = prompt
    else:
        tokens = prompt
        try:
            text = await anyio.to_thread.run_sync(engine.detokenize, prompt)
        except InvalidRequestError as exc:  # an id outside the vocabulary
            raise InvalidRequestError(exc.message, param=where) from exc
    if not tokens:
        raise InvalidRequestError("The prompt is empty.", param=where)
    check_context_length(len(tokens), None, engine.context_length, param=where)
    return _Prompt(tokens, text)


class _NothingToGenerate:
    """The `Generation` of a choice that asks for 0 tokens (e.g. `echo` only): it ends at
    once as `length`, with no model work, and flows through the same path as others."""

    def __init__(self, prompt_tokens: int) -> None:
        self._prompt_tokens = prompt_tokens

    async def events(self) -> AsyncIterator[GenerationEvent]:
        yield Finished("length", self._prompt_tokens, 0)

    def cancel(self) -> None:
        pass


async def _chunks(
    chunks: CompletionChunks,
    events: AsyncIterator[IndexedEvent],
    prompts: list[_Prompt],
    n: int,
    echo: bool,
    logprobs: bool,
) -> AsyncIterator[Completion]:
    if echo:
        for index in range(len(prompts) * n):
            yield chunks.text(prompts[index // n].text, index)
    parts = []
    async for index, item in events:
        if isinstance(item, TextDelta):
            yield chunks.text(item.text, index, item.logprobs if logprobs else None)
            continue
        yield chunks.finish(item.finish_reason, index)
        parts.append(usage_part(item, index // n))
    if chunks.include_usage:
        yield chunks.usage(combined_usage(parts))


async def create_completion(
    request: Request[Any, Any, Any],
    body: CompletionRequest,
    engine: Engine,
    settings: Settings,
    metrics: Metrics | None = None,
) -> Completion | AsyncIterator[bytes]:
    """Serve one request; returns the JSON body, or the SSE byte stream when streaming."""
    engine.check_ready()
    raw = legacy_prompts(body.prompt)
    n = body.n or 1
    check_completion_limits(body, len(raw), settings.limits)
    params = apply_limits(to_legacy_params(body, settings.sampling), settings.limits)
    params = await anyio.to_thread.run_sync(engine.check_params, params)
    prompts = [await _read(engine, p, i, len(raw)) for i, p in enumerate(raw)]
    echo, logprobs = bool(body.echo), params.logprobs is not None
    jobs = [(p.tokens, choice) for p in prompts for choice in per_choice(params, n)]
    if params.max_tokens == 0:
        fanout = Fanout([_NothingToGenerate(len(tokens)) for tokens, _ in jobs])
    else:
        fanout = submit_all(engine, jobs, request_owner(request))
    stats = request_stats(request.scope)
    if not body.stream:
        results = await collect_all(request, fanout, stats, metrics)
        replies, parts = [], []
        for index, result in enumerate(results):
            assert result.finished is not None
            echoed = prompts[index // n].text if echo else ""
            replies.append(
                LegacyReply(
                    echoed + result.text,
                    result.finished.finish_reason,
                    result.logprobs if logprobs else None,
                    len(echoed),
                )
            )
            parts.append(usage_part(result.finished, index // n))
        return to_completion(model=engine.model_id, choices=replies, usage=combined_usage(parts))
    events = await first_then_rest(request, fanout, stats, metrics)
    chunks = CompletionChunks(engine.model_id, _include_usage(body))
    return sse_body(_chunks(chunks, events, prompts, n, echo, logprobs), fanout)


def _include_usage(body: CompletionRequest) -> bool:
    return bool(body.stream_options and body.stream_options.include_usage)
