"""Wire schemas of Anthropic's Messages API (`/v1/messages`), as msgspec Structs.

The base policies are the shared ones of `conversion.wire` (unknown request fields are
tolerated, as Anthropic tolerates them). Message content is read as plain JSON values
(`conversion.anthropic.requests` walks it) so that an unsupported block gets a 400
naming its place, and blocks this server sent (thinking, tool use) come back as they
were. Replies and stream events are Structs with Anthropic's field names and order.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta

from conversion.wire import WireRequest, WireResponse

__all__ = (
    "AnthropicError",
    "AnthropicErrorBody",
    "CountTokensRequest",
    "InputTokens",
    "Message",
    "MessagesRequest",
    "TextBlock",
    "ThinkingBlock",
    "ToolUseBlock",
    "Usage",
)


class MessagesRequest(WireRequest, kw_only=True):
    """`POST /v1/messages`, fields in the order of Anthropic's reference."""

    model: str | None = None
    max_tokens: Annotated[int, Meta(ge=1)]
    messages: list[Any]
    container: Any = None
    mcp_servers: list[Any] | None = None
    metadata: dict[str, Any] | None = None
    service_tier: str | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    system: str | list[Any] | None = None
    temperature: Annotated[float, Meta(ge=0, le=1)] | None = None
    thinking: dict[str, Any] | None = None
    tool_choice: dict[str, Any] | None = None
    tools: list[Any] | None = None
    top_k: Annotated[int, Meta(ge=1)] | None = None
    top_p: Annotated[float, Meta(gt=0, le=1)] | None = None
    output_config: dict[str, Any] | None = None
    """`format` (a JSON schema the answer must match) and `effort`."""
    output_format: dict[str, Any] | None = None
    """The deprecated top-level form of `output_config.format`, still accepted."""
    context_management: dict[str, Any] | None = None
    """Edits to the context before the model reads it (beta; `clear_thinking` only)."""


class CountTokensRequest(WireRequest, kw_only=True):
    """`POST /v1/messages/count_tokens`: the request without its sampling fields."""

    model: str | None = None
    messages: list[Any]
    system: str | list[Any] | None = None
    thinking: dict[str, Any] | None = None
    tool_choice: dict[str, Any] | None = None
    tools: list[Any] | None = None
    output_config: dict[str, Any] | None = None
    output_format: dict[str, Any] | None = None
    context_management: dict[str, Any] | None = None


class TextBlock(WireResponse, kw_only=True, tag_field="type", tag="text"):
    text: str


class ThinkingBlock(WireResponse, kw_only=True, tag_field="type", tag="thinking"):
    thinking: str
    signature: str = ""
    """Anthropic signs its thinking; a local model's is not signed."""


class ToolUseBlock(WireResponse, kw_only=True, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]


ContentBlock = ThinkingBlock | TextBlock | ToolUseBlock


class Usage(WireResponse, kw_only=True):
    input_tokens: int
    """Prompt tokens read now; those taken from the cache are `cache_read_input_tokens`."""
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


class Message(WireResponse, kw_only=True):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[ContentBlock]
    stop_reason: Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"] | None
    stop_sequence: str | None = None
    usage: Usage


class InputTokens(WireResponse, kw_only=True):
    input_tokens: int


class AnthropicError(WireResponse, kw_only=True):
    type: str
    message: str


class AnthropicErrorBody(WireResponse, kw_only=True):
    """Anthropic's error envelope, for every error on its routes."""

    type: Literal["error"] = "error"
    error: AnthropicError


# --- stream events --------------------------------------------------------------------


class Event(WireResponse, kw_only=True, tag_field="type"):
    """Base of Anthropic's typed stream events."""


class MessageStart(Event, kw_only=True, tag="message_start"):
    message: Message


class Ping(Event, kw_only=True, tag="ping"):
    pass


class BlockStart(Event, kw_only=True, tag="content_block_start"):
    index: int
    content_block: ContentBlock


class TextDelta(WireResponse, kw_only=True, tag_field="type", tag="text_delta"):
    text: str


class JsonDelta(WireResponse, kw_only=True, tag_field="type", tag="input_json_delta"):
    partial_json: str


class ThinkingDelta(WireResponse, kw_only=True, tag_field="type", tag="thinking_delta"):
    thinking: str


class BlockDelta(Event, kw_only=True, tag="content_block_delta"):
    index: int
    delta: TextDelta | JsonDelta | ThinkingDelta


class BlockStop(Event, kw_only=True, tag="content_block_stop"):
    index: int


class StopInfo(WireResponse, kw_only=True):
    stop_reason: Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]
    stop_sequence: str | None = None


class OutputUsage(WireResponse, kw_only=True):
    """The final counts (cumulative, as Anthropic sends them on `message_delta`)."""

    output_tokens: int
    input_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


class MessageDelta(Event, kw_only=True, tag="message_delta"):
    delta: StopInfo
    usage: OutputUsage


class MessageStop(Event, kw_only=True, tag="message_stop"):
    pass


class ErrorEvent(Event, kw_only=True, tag="error"):
    error: AnthropicError
