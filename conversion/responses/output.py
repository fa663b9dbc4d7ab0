"""A reply -> the Responses API's output items and `Response` object.

The response echoes the request's settings, as OpenAI's does. Its status says how the
reply ended: `completed`, or `incomplete` with `incomplete_details.reason:
"max_output_tokens"` when it was cut (by `max_output_tokens`, the context, or the
server's time limit); a failure after the stream started is `failed`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from conversion.errors import OpenAIError
from conversion.generation import TokenLogprob
from conversion.logprobs import token_entries
from conversion.reply import ChoiceReply
from conversion.responses.items import new_id
from conversion.responses.requests import echoed_text
from conversion.responses.wire import (
    FunctionCallItem,
    IncompleteDetails,
    InputTokensDetails,
    OutputItem,
    OutputMessage,
    OutputText,
    OutputTokensDetails,
    ReasoningItem,
    ReasoningText,
    Response,
    ResponseError,
    ResponsesRequest,
    ResponseUsage,
)
from conversion.tools import ParsedCall, new_call_id
from conversion.turn import Turn
from conversion.wire import Usage

__all__ = (
    "ItemStatus",
    "ResponseDraft",
    "call_item",
    "item_status",
    "message_item",
    "output_items",
    "reasoning_item",
    "response_usage",
)

ItemStatus = Literal["in_progress", "completed", "incomplete"]


def item_status(finish_reason: str) -> ItemStatus:
    return "incomplete" if finish_reason == "length" else "completed"


def message_item(
    item_id: str,
    text: str,
    logprobs: Sequence[TokenLogprob] | None,
    status: ItemStatus,
) -> OutputMessage:
    part = OutputText(text=text, logprobs=token_entries(logprobs or ()))
    return OutputMessage(id=item_id, status=status, content=[part])


def call_item(
    call: ParsedCall, status: ItemStatus, arguments: str | None = None
) -> FunctionCallItem:
    """A call as an output item; `arguments` overrides the call's (the stream's first,
    empty, announcement of the item)."""
    return FunctionCallItem(
        id=new_id("fc"),
        call_id=new_call_id(),
        name=call.name,
        arguments=call.arguments if arguments is None else arguments,
        status=status,
    )


def reasoning_item(item_id: str, text: str, status: ItemStatus) -> ReasoningItem:
    return ReasoningItem(id=item_id, content=[ReasoningText(text=text)], status=status)


def output_items(reply: ChoiceReply) -> list[OutputItem]:
    """A reply's thinking (if any), then its content (one message, if it has some or
    made no call) and its calls (one item per call)."""
    status = item_status(reply.finish_reason)
    items: list[OutputItem] = []
    if reply.reasoning is not None:
        thought = status if not (reply.content or reply.tool_calls) else "completed"
        items.append(reasoning_item(new_id("rs"), reply.reasoning, thought))
    if reply.content or not reply.tool_calls:
        items.append(message_item(new_id("msg"), reply.content or "", reply.logprobs, status))
    items += [call_item(call, status) for call in reply.tool_calls]
    return items


def response_usage(usage: Usage) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=usage.prompt_tokens,
        input_tokens_details=InputTokensDetails(
            cached_tokens=usage.prompt_tokens_details.cached_tokens
        ),
        output_tokens=usage.completion_tokens,
        output_tokens_details=OutputTokensDetails(
            reasoning_tokens=usage.completion_tokens_details.reasoning_tokens
        ),
        total_tokens=usage.total_tokens,
    )


@dataclass(frozen=True, slots=True)
class ResponseDraft:
    """What a response is before it has output: its id, and the echoed settings (the
    request's, with the server's defaults as its turn resolved them)."""

    request: ResponsesRequest
    turn: Turn
    model: str
    store: bool
    id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))

    def response(
        self,
        output: list[OutputItem],
        *,
        finish_reason: str | None = None,
        usage: Usage | None = None,
        error: OpenAIError | None = None,
    ) -> Response:
        """`finish_reason` None: still in progress (the stream's first events)."""
        req, sampling = self.request, self.turn.params.sampling
        status: Literal["completed", "failed", "in_progress", "incomplete"] = "in_progress"
        incomplete = None
        if error is not None:
            status = "failed"
        elif finish_reason == "length":
            status, incomplete = "incomplete", IncompleteDetails(reason="max_output_tokens")
        elif finish_reason is not None:
            status = "completed"
        return Response(
            id=self.id,
            created_at=self.created_at,
            status=status,
            completed_at=int(time.time()) if status == "completed" else None,
            error=_error(error) if error is not None else None,
            incomplete_details=incomplete,
            instructions=req.instructions,
            max_output_tokens=req.max_output_tokens,
            max_tool_calls=req.max_tool_calls,
            model=self.model,
            output=output,
            parallel_tool_calls=req.parallel_tool_calls is not False,
            previous_response_id=req.previous_response_id,
            prompt_cache_key=req.prompt_cache_key,
            reasoning={"effort": (req.reasoning or {}).get("effort"), "summary": None},
            safety_identifier=req.safety_identifier,
            service_tier="default",
            store=self.store,
            temperature=sampling.temperature,
            text=echoed_text(req),
            tool_choice=req.tool_choice if req.tool_choice is not None else "auto",
            tools=list(req.tools or ()),
            top_logprobs=req.top_logprobs or 0,
            top_p=sampling.top_p,
            truncation=req.truncation or "disabled",
            usage=response_usage(usage) if usage is not None else None,
            user=req.user,
            metadata=dict(req.metadata or {}),
        )


def _error(error: OpenAIError) -> ResponseError:
    return ResponseError(code=error.code or error.error_type, message=error.message)
