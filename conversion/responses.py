"""Generated text, calls and token counts -> OpenAI chat responses and stream chunks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from msgspec import UNSET

from conversion.logprobs import TokenLogprob, to_chat_logprobs
from conversion.tools import ParsedCall, new_call_id
from conversion.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    PromptTokensDetails,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = (
    "ChoiceReply",
    "ChunkFactory",
    "combined_usage",
    "new_completion_id",
    "reported_cached_tokens",
    "to_chat_completion",
    "to_usage",
)


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


CACHE_MIN_PROMPT = 1024
CACHE_BLOCK = 128


def reported_cached_tokens(prompt_tokens: int, reused_tokens: int) -> int:
    """`cached_tokens` as OpenAI counts it: 0 below a 1,024-token prompt, else whole
    128-token blocks.

    The engine reuses cache token by token, but clients (and cost dashboards) written
    for OpenAI read this field with OpenAI's meaning; and it keeps usage identical for
    identical short requests, whichever of them found the other's cache.
    """
    if prompt_tokens < CACHE_MIN_PROMPT:
        return 0
    return reused_tokens // CACHE_BLOCK * CACHE_BLOCK


def to_usage(prompt_tokens: int, completion_tokens: int, reused_tokens: int = 0) -> Usage:
    cached_tokens = reported_cached_tokens(prompt_tokens, reused_tokens)
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached_tokens),
    )


def combined_usage(parts: Sequence[tuple[int, int, int, int]]) -> Usage:
    """Usage of a request with several generations, from (prompt index, prompt tokens,
    completion tokens, reused tokens) per generation: every completion counts, each
    distinct prompt once (n choices of one prompt read it once, as OpenAI bills it)."""
    prompts: dict[int, tuple[int, int]] = {}
    for index, prompt_tokens, _, reused in parts:
        best = prompts.get(index, (prompt_tokens, 0))
        prompts[index] = (prompt_tokens, max(best[1], reused))
    prompt_total = sum(tokens for tokens, _ in prompts.values())
    cached = sum(reported_cached_tokens(tokens, reused) for tokens, reused in prompts.values())
    completion_total = sum(part[2] for part in parts)
    return Usage(
        prompt_tokens=prompt_total,
        completion_tokens=completion_total,
        total_tokens=prompt_total + completion_total,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
    )


@dataclass(frozen=True, slots=True)
class ChoiceReply:
    """One finished choice, ready for the wire."""

    content: str | None
    finish_reason: str
    tool_calls: Sequence[ParsedCall] = ()
    logprobs: Sequence[TokenLogprob] | None = None
    """None: not asked for."""


def _tool_calls(calls: Sequence[ParsedCall]) -> list[ToolCall]:
    return [
        ToolCall(id=new_call_id(), function=FunctionCall(name=c.name, arguments=c.arguments))
        for c in calls
    ]


def to_chat_completion(
    *, model: str, choices: Sequence[ChoiceReply], usage: Usage
) -> ChatCompletion:
    return ChatCompletion(
        id=new_completion_id(),
        created=int(time.time()),
        model=model,
        choices=[
            Choice(
                index=index,
                message=ChatMessage(
                    content=reply.content,
                    tool_calls=_tool_calls(reply.tool_calls) if reply.tool_calls else UNSET,
                ),
                logprobs=None if reply.logprobs is None else to_chat_logprobs(reply.logprobs),
                finish_reason=reply.finish_reason,
            )
            for index, reply in enumerate(choices)
        ],
        usage=usage,
    )


@dataclass(slots=True)
class ChunkFactory:
    """Builds the chunks of one stream: same `id` and `created` on every chunk.

    Order per choice (OpenAI's): a role chunk, content (or tool-call) chunks, one chunk
    with `delta: {}` and the `finish_reason`; after every choice, only with
    `include_usage`, a chunk with `choices: []` and the usage (every earlier chunk then
    carries `"usage": null`). Each chunk carries one choice, named by its `index`.
    """

    model: str
    include_usage: bool = False
    id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))

    def _chunk(self, choices: list[ChunkChoice], usage: Usage | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=choices,
            usage=usage if self.include_usage else UNSET,
        )

    def role(self, index: int = 0) -> ChatCompletionChunk:
        return self._chunk([ChunkChoice(index=index, delta=Delta(role="assistant", content=""))])

    def content(
        self, text: str, index: int = 0, logprobs: Sequence[TokenLogprob] | None = None
    ) -> ChatCompletionChunk:
        return self._chunk(
            [
                ChunkChoice(
                    index=index,
                    delta=Delta(content=text),
                    logprobs=None if logprobs is None else to_chat_logprobs(logprobs),
                )
            ]
        )

    def tool_calls(
        self,
        calls: Sequence[ParsedCall],
        index: int = 0,
        logprobs: Sequence[TokenLogprob] | None = None,
    ) -> list[ChatCompletionChunk]:
        """Each call as OpenAI streams one: a chunk naming it (id, name, empty
        arguments), then one with its arguments. The reply's log-probabilities, if
        asked for, come with the first chunk."""
        chunks: list[ChatCompletionChunk] = []
        for position, call in enumerate(calls):
            named = ToolCallDelta(
                index=position,
                id=new_call_id(),
                type="function",
                function=FunctionCallDelta(name=call.name, arguments=""),
            )
            args = ToolCallDelta(
                index=position, function=FunctionCallDelta(arguments=call.arguments)
            )
            wire = None if logprobs is None or chunks else to_chat_logprobs(logprobs)
            chunks += [
                self._chunk(
                    [ChunkChoice(index=index, delta=Delta(tool_calls=[named]), logprobs=wire)]
                ),
                self._chunk([ChunkChoice(index=index, delta=Delta(tool_calls=[args]))]),
            ]
        return chunks

    def finish(self, finish_reason: str, index: int = 0) -> ChatCompletionChunk:
        return self._chunk([ChunkChoice(index=index, delta=Delta(), finish_reason=finish_reason)])

    def usage(self, usage: Usage) -> ChatCompletionChunk:
        return self._chunk([], usage)
