"""Generated text and token counts -> OpenAI chat responses and stream chunks."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from msgspec import UNSET

from conversion.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    Choice,
    ChunkChoice,
    Delta,
    PromptTokensDetails,
    Usage,
)

__all__ = (
    "ChunkFactory",
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


def to_chat_completion(
    *, model: str, text: str, finish_reason: str, usage: Usage
) -> ChatCompletion:
    return ChatCompletion(
        id=new_completion_id(),
        created=int(time.time()),
        model=model,
        choices=[
            Choice(
                index=0,
                message=ChatMessage(content=text),
                finish_reason=finish_reason,
            )
        ],
        usage=usage,
    )


@dataclass(slots=True)
class ChunkFactory:
    """Builds the chunks of one stream: same `id` and `created` on every chunk.

    Order (OpenAI's): a role chunk, content chunks, one chunk with `delta: {}` and the
    `finish_reason`, then, only with `include_usage`, a chunk with `choices: []` and the
    usage; every earlier chunk then carries `"usage": null`.
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

    def role(self) -> ChatCompletionChunk:
        return self._chunk([ChunkChoice(index=0, delta=Delta(role="assistant", content=""))])

    def content(self, text: str) -> ChatCompletionChunk:
        return self._chunk([ChunkChoice(index=0, delta=Delta(content=text))])

    def finish(self, finish_reason: str) -> ChatCompletionChunk:
        return self._chunk([ChunkChoice(index=0, delta=Delta(), finish_reason=finish_reason)])

    def usage(self, usage: Usage) -> ChatCompletionChunk:
        return self._chunk([], usage)
