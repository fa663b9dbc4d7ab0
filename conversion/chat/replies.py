"""Generated text and calls -> OpenAI chat completions and their stream chunks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from msgspec import UNSET

from conversion.chat.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatLogprobs,
    ChatMessage,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    ToolCall,
    ToolCallDelta,
)
from conversion.generation import TokenLogprob
from conversion.logprobs import token_entries
from conversion.reply import ChoiceReply
from conversion.tools import ParsedCall, new_call_id
from conversion.wire import Usage

__all__ = (
    "ChunkFactory",
    "new_completion_id",
    "to_chat_completion",
    "to_chat_logprobs",
)


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def to_chat_logprobs(tokens: Sequence[TokenLogprob]) -> ChatLogprobs:
    """Chat's `logprobs`: one `content[]` entry per token."""
    return ChatLogprobs(content=token_entries(tokens))


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
                    reasoning_content=UNSET if reply.reasoning is None else reply.reasoning,
                    reasoning=UNSET if reply.reasoning is None else reply.reasoning,
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

    def reasoning(self, text: str, index: int = 0) -> ChatCompletionChunk:
        delta = Delta(reasoning_content=text, reasoning=text)
        return self._chunk([ChunkChoice(index=index, delta=delta)])

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
