"""Chat completion requests (and `/tokenize` with messages) -> a `Turn`, limits checked.

A field is either honoured, accepted and documented as ignored, or rejected with a 400
naming it. Nothing is silently dropped in a way that changes what the client expects.
"""

from __future__ import annotations

from typing import Any

from config.settings import LimitSettings, SamplingDefaults
from conversion.chat.messages import to_turn_messages
from conversion.chat.wire import ChatRequestFields, Message
from conversion.errors import InvalidRequestError
from conversion.families import request_variables
from conversion.generation import GenerationParams
from conversion.json_schema import structured_output_schema
from conversion.limits import (
    apply_limits,
    check_choices,
    check_max_tokens,
    check_message_count,
    check_stop_lengths,
)
from conversion.params import sampling_params, stop_strings
from conversion.tools import plan_tools
from conversion.turn import Turn

__all__ = ("to_generation_params", "to_turn")


def _reject_unsupported(req: ChatRequestFields) -> None:
    """Refuse, with a 400 naming the field, what this server cannot do.

    Ignoring these silently would hand clients something other than what they asked
    for (legacy function calling, audio, log-probabilities nobody asked to turn on).
    """
    if req.stream_options is not None and not req.stream:
        raise InvalidRequestError(
            "stream_options is only allowed when stream is true.", param="stream_options"
        )
    if req.top_logprobs and not req.logprobs:
        raise InvalidRequestError("top_logprobs needs logprobs to be true.", param="top_logprobs")
    if req.functions:
        raise InvalidRequestError(
            "functions (the legacy form of tools) are not supported; send `tools`.",
            param="functions",
        )
    if req.function_call not in (None, "none", "auto"):
        raise InvalidRequestError(
            "function_call (the legacy form of tool_choice) is not supported; send `tool_choice`.",
            param="function_call",
        )
    if req.audio is not None or (req.modalities and set(req.modalities) != {"text"}):
        raise InvalidRequestError(
            "Audio output is not supported: this server generates text only.",
            param="audio" if req.audio is not None else "modalities",
        )


def to_generation_params(req: ChatRequestFields, defaults: SamplingDefaults) -> GenerationParams:
    """Validate the request's generation fields and resolve their defaults.

    `presence_penalty` and `frequency_penalty` are range-checked by the schema and then
    deliberately not used: they must not change the output (documented in the README).
    """
    _reject_unsupported(req)
    if req.max_completion_tokens is not None:
        max_tokens: int | None = req.max_completion_tokens
    elif req.max_tokens is not None:
        max_tokens = req.max_tokens
    else:
        max_tokens = defaults.max_tokens
    return GenerationParams(
        sampling=sampling_params(req, defaults),
        max_tokens=max_tokens,
        stop=stop_strings(req.stop),
        json_schema=_response_format_schema(req.response_format),
        logprobs=(req.top_logprobs or 0) if req.logprobs else None,
    )


def _check_limits(req: ChatRequestFields, messages: list[Message], limits: LimitSettings) -> None:
    check_choices(req.n or 1, limits)
    check_message_count(len(messages), limits, "messages")
    check_max_tokens("max_completion_tokens", req.max_completion_tokens, limits)
    check_max_tokens("max_tokens", req.max_tokens, limits)
    check_stop_lengths(req.stop, limits)


def to_turn(
    req: ChatRequestFields,
    messages: list[Message],
    defaults: SamplingDefaults,
    limits: LimitSettings,
) -> Turn:
    """The turn a chat request asks for; `messages` are its own (a chat completion's,
    or those `/tokenize` counts with the same fields)."""
    _check_limits(req, messages, limits)
    params = apply_limits(to_generation_params(req, defaults), limits)
    plan = plan_tools(req.tools, req.tool_choice)
    return Turn(
        messages=to_turn_messages(messages),
        params=params,
        plan=plan,
        choices=req.n or 1,
        reasoning_effort=req.reasoning_effort,
        template_kwargs=request_variables(req.chat_template_kwargs),
    )


def _response_format_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chat's `response_format` -> the JSON schema replies must match, or None."""
    format_ = response_format or {}
    spec = format_.get("json_schema")
    if format_.get("type") == "json_schema" and not isinstance(spec, dict):
        raise InvalidRequestError(
            "response_format json_schema needs a `json_schema` object with a `name`.",
            param="response_format.json_schema",
        )
    return structured_output_schema(
        format_.get("type", "text"), spec, "response_format", "response_format.json_schema"
    )
