"""Wire schemas of OpenAI's Responses API (`/v1/responses`), as msgspec Structs.

The base policies are the shared ones of `conversion.wire`. Input items are read as
plain JSON values (`conversion.responses.items` walks them), so that an unsupported
part gets a 400 naming its exact place (`input[2].content[0].type`), and so that the
items a client sends back, which are often this server's own output with every key it
had, are taken as they come. Output items, the response and its stream events are
Structs: the SDK's types, field for field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from conversion.wire import TokenLogprobEntry, WireRequest, WireResponse

__all__ = (
    "CustomToolCallItem",
    "DeletedResponse",
    "FunctionCallItem",
    "InputItemList",
    "InputTokensDetails",
    "OutputItem",
    "OutputMessage",
    "OutputText",
    "OutputTokensDetails",
    "ReasoningItem",
    "ReasoningText",
    "Response",
    "ResponseUsage",
    "ResponsesRequest",
)


class ResponsesRequest(WireRequest, kw_only=True):
    """`POST /v1/responses`, fields in the order of OpenAI's reference."""

    model: str | None = None
    input: str | list[Any] | None = None
    background: bool | None = None
    conversation: Any = None
    include: list[str] | None = None
    instructions: str | None = None
    max_output_tokens: Annotated[int, Meta(ge=1)] | None = None
    max_tool_calls: Annotated[int, Meta(ge=1)] | None = None
    metadata: dict[str, str] | None = None
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    prompt: Any = None
    prompt_cache_key: str | None = None
    reasoning: dict[str, Any] | None = None
    safety_identifier: str | None = None
    service_tier: str | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    text: dict[str, Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    tools: list[Any] | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    top_p: Annotated[float, Meta(gt=0, le=1)] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    user: str | None = None
    seed: int | None = None
    """Not OpenAI's: this server's extension (as in chat), for reproducible sampling."""
    chat_template_kwargs: dict[str, Any] | None = None
    """Not OpenAI's: variables for the chat template, as in chat."""
    client_metadata: dict[str, Any] | None = None
    """What the client says about itself (Codex sends its turn's ids): accepted, and
    not used."""


# --- output items -------------------------------------------------------------------


class OutputText(WireResponse, kw_only=True, tag_field="type", tag="output_text"):
    text: str
    annotations: list[Any] = msgspec.field(default_factory=list)
    logprobs: list[TokenLogprobEntry] = msgspec.field(default_factory=list)


class OutputMessage(WireResponse, kw_only=True, tag_field="type", tag="message"):
    id: str
    status: Literal["in_progress", "completed", "incomplete"]
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class FunctionCallItem(WireResponse, kw_only=True, tag_field="type", tag="function_call"):
    id: str
    call_id: str
    name: str
    arguments: str
    """The arguments object as a JSON string."""
    status: Literal["in_progress", "completed", "incomplete"]
    namespace: str | msgspec.UnsetType = msgspec.UNSET
    """The namespace tool the function belongs to, if any."""


class CustomToolCallItem(WireResponse, kw_only=True, tag_field="type", tag="custom_tool_call"):
    """A call of a `custom` tool: its free-form input (the SDK's type has no status)."""

    id: str
    call_id: str
    name: str
    input: str
    namespace: str | msgspec.UnsetType = msgspec.UNSET


class ReasoningText(WireResponse, kw_only=True, tag_field="type", tag="reasoning_text"):
    text: str


class ReasoningItem(WireResponse, kw_only=True, tag_field="type", tag="reasoning"):
    """A reasoning model's thinking, before its answer (as vLLM and LM Studio send it:
    the text in `content`, no summary)."""

    id: str
    summary: list[Any] = msgspec.field(default_factory=list)
    content: list[ReasoningText]
    status: Literal["in_progress", "completed", "incomplete"] = "completed"
    encrypted_content: str | msgspec.UnsetType = msgspec.UNSET
    """With `include: ["reasoning.encrypted_content"]`: the thinking, sealed, for a
    client that keeps no state to send back (`conversion.responses.sealing`)."""


OutputItem = ReasoningItem | OutputMessage | FunctionCallItem | CustomToolCallItem


# --- the response -------------------------------------------------------------------


class InputTokensDetails(WireResponse, kw_only=True):
    cached_tokens: int


class OutputTokensDetails(WireResponse, kw_only=True):
    reasoning_tokens: int = 0


class ResponseUsage(WireResponse, kw_only=True):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class IncompleteDetails(WireResponse, kw_only=True):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponseError(WireResponse, kw_only=True):
    code: str
    message: str


class Response(WireResponse, kw_only=True):
    """A response, as created, stored and read back; settings echoed as OpenAI does."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["completed", "failed", "in_progress", "incomplete", "cancelled", "queued"]
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    model: str
    output: list[OutputItem]
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    prompt_cache_key: str | None = None
    reasoning: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"effort": None, "summary": None}
    )
    safety_identifier: str | None = None
    service_tier: str = "default"
    store: bool = True
    temperature: float
    text: dict[str, Any] = msgspec.field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[Any] = msgspec.field(default_factory=list)
    top_logprobs: int = 0
    top_p: float
    truncation: Literal["auto", "disabled"] = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    background: bool = False


class DeletedResponse(WireResponse, kw_only=True):
    id: str
    object: Literal["response.deleted"] = "response.deleted"
    deleted: bool = True


class InputItemList(WireResponse, kw_only=True):
    """`GET /v1/responses/{id}/input_items`: OpenAI's cursor page."""

    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool


# --- stream events ------------------------------------------------------------------


class StreamEvent(WireResponse, kw_only=True, tag_field="type"):
    """Base of the typed events; `sequence_number` is set as they are sent."""

    sequence_number: int = 0


class ResponseCreated(StreamEvent, kw_only=True, tag="response.created"):
    response: Response


class ResponseInProgress(StreamEvent, kw_only=True, tag="response.in_progress"):
    response: Response


class ResponseCompleted(StreamEvent, kw_only=True, tag="response.completed"):
    response: Response


class ResponseIncomplete(StreamEvent, kw_only=True, tag="response.incomplete"):
    response: Response


class ResponseFailed(StreamEvent, kw_only=True, tag="response.failed"):
    response: Response


class OutputItemAdded(StreamEvent, kw_only=True, tag="response.output_item.added"):
    output_index: int
    item: OutputItem


class OutputItemDone(StreamEvent, kw_only=True, tag="response.output_item.done"):
    output_index: int
    item: OutputItem


class _ItemEvent(StreamEvent, kw_only=True):
    """An event about one output item, named by its id and place."""

    item_id: str
    output_index: int


class _PartEvent(_ItemEvent, kw_only=True):
    """An event about one content part of a message item (this server writes one)."""

    content_index: int = 0


class ContentPartAdded(_PartEvent, kw_only=True, tag="response.content_part.added"):
    part: OutputText


class ContentPartDone(_PartEvent, kw_only=True, tag="response.content_part.done"):
    part: OutputText


class OutputTextDelta(_PartEvent, kw_only=True, tag="response.output_text.delta"):
    delta: str
    logprobs: list[TokenLogprobEntry] = msgspec.field(default_factory=list)


class OutputTextDone(_PartEvent, kw_only=True, tag="response.output_text.done"):
    text: str
    logprobs: list[TokenLogprobEntry] = msgspec.field(default_factory=list)


class ReasoningTextDelta(_PartEvent, kw_only=True, tag="response.reasoning_text.delta"):
    delta: str


class ReasoningTextDone(_PartEvent, kw_only=True, tag="response.reasoning_text.done"):
    text: str


class ArgumentsDelta(_ItemEvent, kw_only=True, tag="response.function_call_arguments.delta"):
    delta: str


class CustomInputDelta(_ItemEvent, kw_only=True, tag="response.custom_tool_call_input.delta"):
    delta: str


class CustomInputDone(_ItemEvent, kw_only=True, tag="response.custom_tool_call_input.done"):
    input: str


class ArgumentsDone(_ItemEvent, kw_only=True, tag="response.function_call_arguments.done"):
    name: str
    arguments: str
