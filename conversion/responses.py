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
    Usage,
)

__all__ = ("ChunkFactory", "new_completion_id", "to_chat_completion", "to_usage")


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def to_usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
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
