"""Responses API requests -> a `Turn` (limits checked), and the settings a response echoes.

A field is honoured, accepted and documented as having no effect here (`reasoning`
on a model that does not reason, `service_tier`, `prompt_cache_key`,
`client_metadata`, ...), or refused with a 400 naming it (`background`,
`conversation`, ...). Tools are read in `conversion.responses.tools`. The sampling
defaults are the server's, as in chat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from config.settings import LimitSettings, SamplingDefaults
from conversion.errors import InvalidRequestError
from conversion.families import EFFORTS, request_variables
from conversion.generation import GenerationParams, SamplingParams
from conversion.json_schema import structured_output_schema
from conversion.limits import apply_limits, check_max_tokens, check_message_count
from conversion.responses.items import Item, read_items, to_turn_messages
from conversion.responses.tools import OfferedTools, offered_tools
from conversion.responses.wire import ResponsesRequest
from conversion.turn import Turn

__all__ = ("LOGPROBS_INCLUDE", "SEALED_INCLUDE", "MappedRequest", "echoed_text", "to_turn")

LOGPROBS_INCLUDE = "message.output_text.logprobs"
SEALED_INCLUDE = "reasoning.encrypted_content"
KNOWN_INCLUDES = frozenset(
    {
        LOGPROBS_INCLUDE,
        SEALED_INCLUDE,
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
    }
)
"""What `include` may name; the log-probabilities and sealed reasoning change something
here (the rest refer to tools and inputs this server does not have)."""


def _check_request(req: ResponsesRequest, limits: LimitSettings) -> None:
    """What this server refuses, and the configured limits."""
    if req.background:
        raise InvalidRequestError(
            "Background responses are not supported; send the request without `background`.",
            param="background",
        )
    if req.conversation is not None:
        raise InvalidRequestError(
            "Conversations are not supported; continue with `previous_response_id`.",
            param="conversation",
        )
    if req.prompt is not None:
        raise InvalidRequestError("Prompt templates are not supported.", param="prompt")
    if req.stream_options is not None and not req.stream:
        raise InvalidRequestError(
            "stream_options is only allowed when stream is true.", param="stream_options"
        )
    if req.input is None and req.previous_response_id is None:
        raise InvalidRequestError("`input` is required.", param="input")
    for index, name in enumerate(req.include or ()):
        if name not in KNOWN_INCLUDES:
            raise InvalidRequestError(f"Unknown include value {name!r}.", param=f"include[{index}]")
    if isinstance(req.input, list):
        check_message_count(len(req.input), limits, "input")
    check_max_tokens("max_output_tokens", req.max_output_tokens, limits)


def echoed_text(req: ResponsesRequest) -> dict[str, Any]:
    """The request's `text` as the response echoes it: with its `format`, plain text
    when none was asked for."""
    text = dict(req.text or {})
    return {**text, "format": text.get("format") or {"type": "text"}}


def _params(req: ResponsesRequest, defaults: SamplingDefaults) -> GenerationParams:
    format_ = echoed_text(req)["format"]
    if not isinstance(format_, dict):
        raise InvalidRequestError("text.format must be an object.", param="text.format")
    schema = structured_output_schema(
        format_.get("type"), format_, "text.format.type", "text.format"
    )
    logprobs = LOGPROBS_INCLUDE in (req.include or ())
    return GenerationParams(
        sampling=SamplingParams(
            temperature=defaults.temperature if req.temperature is None else req.temperature,
            top_p=defaults.top_p if req.top_p is None else req.top_p,
            seed=defaults.seed if req.seed is None else req.seed,
        ),
        max_tokens=req.max_output_tokens or defaults.max_tokens,
        stop=(),
        json_schema=schema,
        schema_param="text.format.schema",
        logprobs=(req.top_logprobs or 0) if logprobs else None,
    )


@dataclass(frozen=True, slots=True)
class MappedRequest:
    """A request, mapped: the turn, its own checked input items (to store with its
    response) and what its tools became (to name calls in the output)."""

    turn: Turn
    items: list[Item]
    tools: OfferedTools


def to_turn(
    req: ResponsesRequest,
    defaults: SamplingDefaults,
    limits: LimitSettings,
    history: Callable[[str], list[Item]],
    stored_item: Callable[[str], Item | None],
    *,
    hosted_tools: Literal["omit", "refuse"] = "omit",
    key: bytes = b"",
) -> MappedRequest:
    """The turn a request asks for. The conversation is the stored `history` of
    `previous_response_id`, then the input items, whose `item_reference`s
    `stored_item` resolves, after the request's instructions. Both read the store
    (blocking): the request's own fields are checked first, so a bad request costs no
    read. `key` opens reasoning sealed for a stateless client."""
    _check_request(req, limits)
    params = _params(req, defaults)
    tools = offered_tools(req.tools, req.tool_choice, hosted_tools)
    effort = _effort(req.reasoning)
    variables = request_variables(req.chat_template_kwargs)
    past = history(req.previous_response_id) if req.previous_response_id else []
    items = read_items(req.input, stored_item, key=key)
    turn = Turn(
        messages=to_turn_messages([*past, *items], req.instructions, key=key),
        params=apply_limits(params, limits),
        plan=tools.plan,
        truncate=req.truncation == "auto",
        messages_param="input",
        schema_conflict_param="text.format",
        reasoning_effort=effort,
        template_kwargs=variables,
    )
    return MappedRequest(turn, items, tools)


def _effort(reasoning: dict[str, Any] | None) -> str | None:
    effort = (reasoning or {}).get("effort")
    if effort is not None and effort not in EFFORTS:
        raise InvalidRequestError(
            f"reasoning.effort must be one of {', '.join(EFFORTS)}.", param="reasoning.effort"
        )
    return effort
