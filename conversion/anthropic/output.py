"""Replies -> Anthropic messages and their stream events, and errors -> its envelope.

Token counts follow Anthropic's meaning: `input_tokens` are the prompt tokens read for
this request, `cache_read_input_tokens` those the engine took from its prefix cache
(exactly, not in OpenAI's 128-token blocks), so their sum is the prompt's size.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from conversion.anthropic.wire import (
    AnthropicError,
    AnthropicErrorBody,
    BlockDelta,
    BlockStart,
    BlockStop,
    ContentBlock,
    ErrorEvent,
    Event,
    JsonDelta,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
    OutputUsage,
    Ping,
    StopInfo,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ToolUseBlock,
    Usage,
)
from conversion.errors import OpenAIError
from conversion.reply import ChoiceEnd, ChoiceReply, ContentPiece, ReasoningPiece, TurnEvent
from conversion.tools import ParsedCall
from conversion.usage import UsagePart

__all__ = ("MessageEvents", "error_body", "new_message_id", "to_message")

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    499: "invalid_request_error",
    503: "overloaded_error",
}


def new_message_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


def _tool_id() -> str:
    return f"toolu_{secrets.token_hex(12)}"


def error_body(error: OpenAIError) -> AnthropicErrorBody:
    """Anthropic's envelope for an error this server classified (`app.errors`); it has
    no `param`, so the field leads the message, as in Anthropic's own messages."""
    kind = _ERROR_TYPES.get(error.status_code, "api_error")
    message = f"{error.param}: {error.message}" if error.param else error.message
    return AnthropicErrorBody(error=AnthropicError(type=kind, message=message))


def _stop(
    finish_reason: str, matched: str | None, stops: Sequence[str]
) -> tuple[StopReason, str | None]:
    if finish_reason == "tool_calls":
        return "tool_use", None
    if finish_reason == "length":
        return "max_tokens", None
    if matched is not None and matched in stops:
        return "stop_sequence", matched
    return "end_turn", None


def _usage(part: UsagePart) -> Usage:
    return Usage(
        input_tokens=part.prompt_tokens - part.reused_tokens,
        output_tokens=part.completion_tokens,
        cache_read_input_tokens=part.reused_tokens,
    )


def _input(call: ParsedCall) -> dict[str, Any]:
    value = json.loads(call.arguments) if call.arguments.strip() else {}
    return value if isinstance(value, dict) else {}


def to_message(
    reply: ChoiceReply,
    part: UsagePart,
    model: str,
    stops: Sequence[str],
    *,
    show_thinking: bool = True,
) -> Message:
    """`show_thinking` False (`thinking.display: "omitted"`): the thinking block is
    there, empty, as Anthropic returns omitted thinking."""
    content: list[ContentBlock] = []
    if reply.reasoning is not None:
        content.append(ThinkingBlock(thinking=reply.reasoning if show_thinking else ""))
    if reply.content or not reply.tool_calls:
        content.append(TextBlock(text=reply.content or ""))
    content += [ToolUseBlock(id=_tool_id(), name=c.name, input=_input(c)) for c in reply.tool_calls]
    reason, sequence = _stop(reply.finish_reason, reply.stop_sequence, stops)
    return Message(
        id=new_message_id(),
        model=model,
        content=content,
        stop_reason=reason,
        stop_sequence=sequence,
        usage=_usage(part),
    )


@dataclass(slots=True)
class MessageEvents:
    """One streamed message: `message_start` and a `ping`, then content blocks, each
    started, given its deltas and stopped in turn, then `message_delta` with the stop
    reason and the counts, and `message_stop`."""

    model: str
    prompt_tokens: int
    stops: Sequence[str]
    show_thinking: bool = True
    """False: a thinking block is started and stopped with no deltas (omitted)."""
    id: str = field(default_factory=new_message_id)
    _index: int = -1
    _open: str | None = None
    _texted: bool = False

    def start(self) -> Iterator[Event]:
        usage = Usage(input_tokens=self.prompt_tokens, output_tokens=0)
        message = Message(id=self.id, model=self.model, content=[], stop_reason=None, usage=usage)
        yield MessageStart(message=message)
        yield Ping()

    def _switch(self, kind: str, block: ContentBlock) -> Iterator[Event]:
        if self._open == kind:
            return
        yield from self._close()
        self._index += 1
        self._open = kind
        self._texted = self._texted or kind == "text"
        yield BlockStart(index=self._index, content_block=block)

    def _close(self) -> Iterator[Event]:
        if self._open is not None:
            yield BlockStop(index=self._index)
            self._open = None

    def feed(self, event: TurnEvent) -> Iterator[Event]:
        if isinstance(event, ReasoningPiece):
            yield from self._switch("thinking", ThinkingBlock(thinking=""))
            if self.show_thinking:
                yield BlockDelta(index=self._index, delta=ThinkingDelta(thinking=event.text))
        elif isinstance(event, ContentPiece):
            if event.text:
                yield from self._switch("text", TextBlock(text=""))
                yield BlockDelta(index=self._index, delta=TextDelta(text=event.text))
        else:
            yield from self._end(event)

    def _end(self, end: ChoiceEnd) -> Iterator[Event]:
        if not end.calls and not self._texted:  # a reply without calls has a text block
            yield from self._switch("text", TextBlock(text=""))
        yield from self._close()
        for call in end.calls:
            self._index += 1
            block = ToolUseBlock(id=_tool_id(), name=call.name, input={})
            yield BlockStart(index=self._index, content_block=block)
            arguments = json.dumps(_input(call), ensure_ascii=False)
            yield BlockDelta(index=self._index, delta=JsonDelta(partial_json=arguments))
            yield BlockStop(index=self._index)
        reason, sequence = _stop(end.finish_reason, end.stop_sequence, self.stops)
        yield MessageDelta(
            delta=StopInfo(stop_reason=reason, stop_sequence=sequence),
            usage=OutputUsage(
                output_tokens=end.usage.completion_tokens,
                input_tokens=end.usage.prompt_tokens - end.usage.reused_tokens,
                cache_read_input_tokens=end.usage.reused_tokens,
            ),
        )
        yield MessageStop()

    def ping(self) -> Event:
        return Ping()

    def fail(self, error: OpenAIError) -> Iterator[Event]:
        yield ErrorEvent(error=error_body(error).error)
