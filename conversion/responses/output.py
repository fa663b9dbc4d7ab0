"""A reply -> the Responses API's output items and `Response` object.

The response echoes the request's settings, as OpenAI's does. Its status says how the
reply ended: `completed`, or `incomplete` with `incomplete_details.reason:
"max_output_tokens"` when it was cut (by `max_output_tokens`, the context, or the
server's time limit); a failure after the stream started is `failed`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from conversion.errors import OpenAIError
from conversion.generation import TokenLogprob
from conversion.logprobs import token_entries
from conversion.reply import ChoiceReply
from conversion.responses.items import new_id
from conversion.responses.requests import echoed_text
from conversion.responses.sealing import seal
from conversion.responses.tools import OfferedTools
from conversion.responses.wire import (
    CustomToolCallItem,
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
    "CallItem",
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
CallItem = FunctionCallItem | CustomToolCallItem


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


_PARTIAL_INPUT = re.compile(r'\s*\{\s*"input"\s*:\s*"((?:[^"\\]|\\.)*)', re.S)


def _custom_input(arguments: str) -> str:
    """A custom tool's input: the `input` argument the model wrote, or as much of it as
    a call cut short holds (its arguments as they are, should a call not have the one
    string argument it was offered)."""
    try:
        value = json.loads(arguments)
    except ValueError:
        partial = _PARTIAL_INPUT.match(arguments)
        if partial is None:
            return arguments
        text = partial[1]
        for cut in range(len(r"\uXXXX")):  # an escape cut in the middle: drop its start
            try:
                return str(json.loads(f'"{text[: len(text) - cut]}"'))
            except ValueError:
                continue
        return text
    text = value.get("input") if isinstance(value, dict) else None
    return text if isinstance(text, str) else arguments


def call_item(
    call: ParsedCall, status: ItemStatus, tools: OfferedTools, *, announced: bool = False
) -> CallItem:
    """A call as an output item, named as the request named its tool; `announced`: the
    stream's first, empty, announcement of the item."""
    origin = tools.origins.get(call.name)
    namespace = origin.namespace if origin and origin.namespace else msgspec.UNSET
    name = origin.name if origin else call.name
    if origin is not None and origin.kind == "custom":
        return CustomToolCallItem(
            id=new_id("ctc"),
            call_id=new_call_id(),
            name=name,
            input="" if announced else _custom_input(call.arguments),
            namespace=namespace,
        )
    return FunctionCallItem(
        id=new_id("fc"),
        call_id=new_call_id(),
        name=name,
        arguments="" if announced else call.arguments,
        status=status,
        namespace=namespace,
    )


def reasoning_item(
    item_id: str, text: str, status: ItemStatus, seal_key: bytes | None = None
) -> ReasoningItem:
    """Thinking as an item; sealed into `encrypted_content` too when `seal_key` is set."""
    sealed = seal(text, seal_key) if seal_key is not None else msgspec.UNSET
    return ReasoningItem(
        id=item_id, content=[ReasoningText(text=text)], status=status, encrypted_content=sealed
    )


def output_items(reply: ChoiceReply, draft: ResponseDraft) -> list[OutputItem]:
    """A reply's thinking (if any), then its content (one message, if it has some or
    made no call) and its calls (one item per call)."""
    status = item_status(reply.finish_reason)
    items: list[OutputItem] = []
    if reply.reasoning is not None:
        thought = status if not (reply.content or reply.tool_calls) else "completed"
        items.append(reasoning_item(new_id("rs"), reply.reasoning, thought, draft.seal_key))
    if reply.content or not reply.tool_calls:
        items.append(message_item(new_id("msg"), reply.content or "", reply.logprobs, status))
    items += [call_item(call, status, draft.tools) for call in reply.tool_calls]
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
    tools: OfferedTools = field(default_factory=lambda: OfferedTools(None))
    """What the request's tools became: calls are named back from it."""
    seal_key: bytes | None = None
    """Set when the request includes `reasoning.encrypted_content`: the key to seal
    thinking with."""
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
