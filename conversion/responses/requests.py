"""Responses API requests -> a `Turn` (limits checked), and the settings a response echoes.

A field is honoured, accepted and documented as having no effect here (`reasoning`
on a model that does not reason, `service_tier`, `prompt_cache_key`, ...), or refused
with a 400 naming it (`background`, `conversation`, built-in tools, ...). The sampling
defaults are the server's, as in chat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config.settings import LimitSettings, SamplingDefaults
from conversion.errors import InvalidRequestError
from conversion.families import EFFORTS, request_variables
from conversion.generation import GenerationParams, SamplingParams
from conversion.json_schema import structured_output_schema
from conversion.limits import apply_limits, check_max_tokens, check_message_count
from conversion.responses.items import Item, read_items, to_turn_messages
from conversion.responses.wire import ResponsesRequest
from conversion.tools import Function, ToolPlan, function_from_spec, plan_functions
from conversion.turn import Turn

__all__ = ("LOGPROBS_INCLUDE", "echoed_text", "to_turn")

LOGPROBS_INCLUDE = "message.output_text.logprobs"
KNOWN_INCLUDES = frozenset(
    {
        LOGPROBS_INCLUDE,
        "reasoning.encrypted_content",
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
    }
)
"""What `include` may name; only the log-probabilities change anything here (the rest
refer to tools and inputs this server does not have)."""


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


def _function(tool: Any, index: int) -> Function:
    where = f"tools[{index}]"
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != "function":
        raise InvalidRequestError(
            f"Tools of type {kind!r} are not supported; only function tools are.",
            param=f"{where}.type",
        )
    return function_from_spec(tool, where)


def _plan(tools: list[Any] | None, tool_choice: Any) -> ToolPlan | None:
    """Flat function tools and the Responses forms of `tool_choice`, onto chat's plan."""
    functions = tuple(_function(tool, i) for i, tool in enumerate(tools or ()))
    if not functions and tool_choice in (None, "auto", "none"):
        return None
    if tool_choice is None or isinstance(tool_choice, str):
        return plan_functions(functions, tool_choice)
    kind = tool_choice.get("type") if isinstance(tool_choice, dict) else None
    if kind == "function":
        named = {"type": "function", "function": {"name": tool_choice.get("name")}}
        return plan_functions(functions, named)
    if kind == "allowed_tools":
        return _allowed(functions, tool_choice)
    raise InvalidRequestError(
        "tool_choice must be 'none', 'auto', 'required', {'type': 'function', 'name': ...} "
        "or {'type': 'allowed_tools', ...}.",
        param="tool_choice",
    )


def _allowed(functions: tuple[Function, ...], choice: dict[str, Any]) -> ToolPlan:
    mode = choice.get("mode", "auto")
    listed = choice.get("tools")
    if mode not in ("auto", "required") or not isinstance(listed, list):
        raise InvalidRequestError(
            "allowed_tools needs a mode ('auto' or 'required') and a list of tools.",
            param="tool_choice",
        )
    names = {t.get("name") for t in listed if isinstance(t, dict)}
    allowed = tuple(f for f in functions if f.name in names)
    if not allowed or len(allowed) != len(listed):
        raise InvalidRequestError(
            "allowed_tools names functions that are not among `tools`.",
            param="tool_choice.tools",
        )
    base = plan_functions(functions, mode)
    assert base is not None
    return ToolPlan(mode, base.functions, allowed)


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


def to_turn(
    req: ResponsesRequest,
    defaults: SamplingDefaults,
    limits: LimitSettings,
    history: Callable[[str], list[Item]],
    stored_item: Callable[[str], Item | None],
) -> tuple[Turn, list[Item]]:
    """The turn a request asks for, and its own checked input items (to store with its
    response). The conversation is the stored `history` of `previous_response_id`,
    then the input items, whose `item_reference`s `stored_item` resolves, after the
    request's instructions. Both read the store (blocking): the request's own fields
    are checked first, so a bad request costs no read."""
    _check_request(req, limits)
    params = _params(req, defaults)
    plan = _plan(req.tools, req.tool_choice)
    effort = _effort(req.reasoning)
    variables = request_variables(req.chat_template_kwargs)
    past = history(req.previous_response_id) if req.previous_response_id else []
    items = read_items(req.input, stored_item)
    turn = Turn(
        messages=to_turn_messages([*past, *items], req.instructions),
        params=apply_limits(params, limits),
        plan=plan,
        truncate=req.truncation == "auto",
        messages_param="input",
        schema_conflict_param="text.format",
        reasoning_effort=effort,
        template_kwargs=variables,
    )
    return turn, items


def _effort(reasoning: dict[str, Any] | None) -> str | None:
    effort = (reasoning or {}).get("effort")
    if effort is not None and effort not in EFFORTS:
        raise InvalidRequestError(
            f"reasoning.effort must be one of {', '.join(EFFORTS)}.", param="reasoning.effort"
        )
    return effort
