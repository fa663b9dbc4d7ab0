"""Wire schemas of `POST /v1/chat/completions`: messages, the request, replies, chunks.

The base policies (tolerant requests, responses with OpenAI's `null`s) are the shared
ones of `conversion.wire`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, UnsetType

from conversion.wire import (
    Penalty,
    PositiveInt,
    StreamOptions,
    TokenLogprobEntry,
    Usage,
    WireRequest,
    WireResponse,
)

__all__ = (
    "AssistantMessage",
    "AudioPart",
    "CalledFunction",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatLogprobs",
    "ChatMessage",
    "ChatRequestFields",
    "Choice",
    "ChunkChoice",
    "Content",
    "ContentPart",
    "Delta",
    "DeveloperMessage",
    "FilePart",
    "FunctionCall",
    "FunctionCallDelta",
    "HistoryToolCall",
    "ImagePart",
    "Message",
    "RefusalPart",
    "SystemMessage",
    "TextPart",
    "ToolCall",
    "ToolCallDelta",
    "ToolMessage",
    "UserMessage",
)


class TextPart(WireRequest, kw_only=True, tag_field="type", tag="text"):
    text: str


class ImagePart(WireRequest, kw_only=True, tag_field="type", tag="image_url"):
    """Accepted by the schema only to answer it with a clear 400 (text-only models)."""

    image_url: Any = None


class AudioPart(WireRequest, kw_only=True, tag_field="type", tag="input_audio"):
    input_audio: Any = None


class FilePart(WireRequest, kw_only=True, tag_field="type", tag="file"):
    file: Any = None


class RefusalPart(WireRequest, kw_only=True, tag_field="type", tag="refusal"):
    refusal: str


ContentPart = TextPart | ImagePart | AudioPart | FilePart | RefusalPart


Content = str | list[ContentPart]


class SystemMessage(WireRequest, kw_only=True, tag_field="role", tag="system"):
    content: Content
    name: str | UnsetType = UNSET


class DeveloperMessage(WireRequest, kw_only=True, tag_field="role", tag="developer"):
    """OpenAI's newer name for system instructions; rendered as `system`."""

    content: Content
    name: str | UnsetType = UNSET


class UserMessage(WireRequest, kw_only=True, tag_field="role", tag="user"):
    content: Content
    name: str | UnsetType = UNSET


class CalledFunction(WireRequest, kw_only=True):
    name: str
    arguments: str | dict[str, Any] = "{}"
    """A JSON string, as OpenAI sends it back; an object is accepted too."""


class HistoryToolCall(WireRequest, kw_only=True):
    """A call in an earlier assistant message, sent back as history."""

    id: str | UnsetType = UNSET
    type: Literal["function"] = "function"
    function: CalledFunction


class AssistantMessage(WireRequest, kw_only=True, tag_field="role", tag="assistant"):
    """Earlier replies sent back as history; `content` may be null (e.g. with tool_calls)."""

    content: Content | None = None
    name: str | UnsetType = UNSET
    tool_calls: list[HistoryToolCall] | UnsetType | None = UNSET


class ToolMessage(WireRequest, kw_only=True, tag_field="role", tag="tool"):
    content: Content
    tool_call_id: str | UnsetType = UNSET


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage
Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


class ChatRequestFields(WireRequest, kw_only=True):
    """Every field of a chat completion request but `messages`, in the order of
    OpenAI's reference: what `/tokenize` shares with it (`conversion.tokens`), so that
    both read and check a prompt's fields the same way."""

    model: str | None = None
    audio: dict[str, Any] | None = None
    frequency_penalty: Penalty | None = None
    function_call: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    max_completion_tokens: PositiveInt | None = None
    max_tokens: PositiveInt | None = None
    modalities: list[str] | None = None
    n: Annotated[int, Meta(ge=1)] | None = None
    parallel_tool_calls: bool | None = None
    presence_penalty: Penalty | None = None
    prompt_cache_key: str | None = None
    """OpenAI's key for prompt caching. Not used by a replica; a proxy in front of
    several routes by it, so a conversation's turns reuse one replica's cache."""
    reasoning_effort: Effort | None = None
    response_format: dict[str, Any] | None = None
    safety_identifier: str | None = None
    seed: int | None = None
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    tool_choice: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    top_p: Annotated[float, Meta(gt=0, le=1)] | None = None
    user: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    """Not OpenAI's: variables for the chat template, as llama.cpp's server and vLLM
    take them (e.g. `{"enable_thinking": false}` for Qwen3)."""


class ChatCompletionRequest(ChatRequestFields, kw_only=True):
    """`POST /v1/chat/completions`."""

    messages: Annotated[list[Message], Meta(min_length=1)]


class ChatLogprobs(WireResponse, kw_only=True):
    content: list[TokenLogprobEntry] | None
    refusal: list[TokenLogprobEntry] | None = None


class FunctionCall(WireResponse, kw_only=True):
    name: str
    arguments: str
    """A JSON object, as a string (OpenAI's type; clients `json.loads` it)."""


class ToolCall(WireResponse, kw_only=True):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(WireResponse, kw_only=True):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: None = None
    tool_calls: list[ToolCall] | UnsetType = UNSET
    reasoning_content: str | UnsetType = UNSET
    """A reasoning model's thinking (the name llama.cpp's server and DeepSeek use)."""
    reasoning: str | UnsetType = UNSET
    """The same text under the name vLLM and OpenRouter use."""


class Choice(WireResponse, kw_only=True):
    index: int
    message: ChatMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: str


class ChatCompletion(WireResponse, kw_only=True):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class FunctionCallDelta(WireResponse, kw_only=True):
    name: str | UnsetType = UNSET
    arguments: str | UnsetType = UNSET


class ToolCallDelta(WireResponse, kw_only=True):
    """A piece of a streamed tool call: the first names it, later ones extend
    `function.arguments` (clients concatenate them by `index`)."""

    index: int
    id: str | UnsetType = UNSET
    type: Literal["function"] | UnsetType = UNSET
    function: FunctionCallDelta


class Delta(WireResponse, kw_only=True):
    role: Literal["assistant"] | UnsetType = UNSET
    content: str | UnsetType | None = UNSET
    reasoning_content: str | UnsetType = UNSET
    reasoning: str | UnsetType = UNSET
    tool_calls: list[ToolCallDelta] | UnsetType = UNSET


class ChunkChoice(WireResponse, kw_only=True):
    index: int
    delta: Delta
    logprobs: ChatLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(WireResponse, kw_only=True):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | UnsetType | None = UNSET
    """Absent unless `stream_options.include_usage`; then `null` on every chunk but the
    last, which has `choices: []` and the totals (OpenAI's framing)."""
