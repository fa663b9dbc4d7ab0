"""One turn for every protocol: the same conversation sent as a chat completion, a
Responses request and an Anthropic message maps onto the same `Turn`, and so onto the
same chat template input."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from config.settings import LimitSettings, SamplingDefaults
from conversion.anthropic.requests import to_count_turn
from conversion.anthropic.requests import to_turn as anthropic_turn
from conversion.anthropic.wire import CountTokensRequest, MessagesRequest
from conversion.chat.requests import to_turn as chat_turn
from conversion.chat.wire import ChatCompletionRequest
from conversion.errors import InvalidRequestError
from conversion.families import FALLBACK, ToolSyntax, detect_family
from conversion.responses.requests import to_turn as responses_turn
from conversion.responses.wire import ResponsesRequest
from conversion.turn import HistoryCall, Turn, TurnMessage, template_inputs, template_messages

DEFAULTS, LIMITS = SamplingDefaults(), LimitSettings()
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CONVERSATION = (
    TurnMessage("system", "Be brief."),
    TurnMessage("user", "Weather in Oslo?"),
    TurnMessage(
        "assistant", "", tool_calls=(HistoryCall("get_weather", '{"city": "Oslo"}', "c1"),)
    ),
    TurnMessage("tool", "sunny", tool_call_id="c1"),
    TurnMessage("user", "And tomorrow?"),
)


def _chat() -> Turn:
    body = {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": [{"type": "function", "function": WEATHER}],
        "reasoning_effort": "low",
    }
    req = msgspec.convert(body, ChatCompletionRequest)
    return chat_turn(req, req.messages, DEFAULTS, LIMITS)


def _responses() -> Turn:
    body = {
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "get_weather",
                "arguments": '{"city": "Oslo"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"role": "user", "content": [{"type": "input_text", "text": "And tomorrow?"}]},
        ],
        "tools": [{"type": "function", **WEATHER}],
        "reasoning": {"effort": "low"},
    }
    req = msgspec.convert(body, ResponsesRequest)
    mapped = responses_turn(req, DEFAULTS, LIMITS, lambda _: [], lambda _: None)
    assert len(mapped.items) == 4
    return mapped.turn


def _anthropic_body() -> dict[str, Any]:
    return {
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "c1",
                        "name": "get_weather",
                        "input": {"city": "Oslo"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "c1", "content": "sunny"},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": WEATHER["description"],
                "input_schema": WEATHER["parameters"],
            }
        ],
    }


def _anthropic() -> Turn:
    body = {**_anthropic_body(), "max_tokens": 64}
    return anthropic_turn(msgspec.convert(body, MessagesRequest), DEFAULTS, LIMITS)


@pytest.mark.parametrize("make", [_chat, _responses, _anthropic])
def test_every_protocol_maps_the_conversation_onto_the_same_turn(make: Any) -> None:
    turn = make()
    assert turn.messages == CONVERSATION
    assert turn.plan is not None
    assert [f.name for f in turn.plan.functions] == ["get_weather"]
    assert turn.plan.mode == "auto"


def test_the_same_turn_gives_the_template_the_same_input() -> None:
    family = detect_family("<tool_call>{{ tools }}")
    inputs = {
        make.__name__: template_inputs(
            make().messages, make().plan, native_tools=True, family=family
        )
        for make in (_chat, _responses, _anthropic)
    }
    assert inputs["_chat"] == inputs["_responses"] == inputs["_anthropic"]
    messages, tools = inputs["_chat"]
    assert tools is not None
    assert tools[0]["function"]["name"] == "get_weather"
    assert messages[2]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}


def test_tools_a_template_cannot_lay_out_are_described_in_its_system_message() -> None:
    messages, tools = template_inputs(
        CONVERSATION, _chat().plan, native_tools=False, family=FALLBACK
    )
    assert tools is None
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith("Be brief.\n\nYou can call these functions:")
    assert '"get_weather"' in messages[0]["content"]
    assert messages[2]["content"].startswith("<tool_call>")  # the call, written as text
    assert messages[3] == {"role": "user", "content": "<tool_response>\nsunny\n</tool_response>"}


def test_a_count_maps_as_the_message_would_and_checks_the_same_limits() -> None:
    body = _anthropic_body()
    counted = to_count_turn(msgspec.convert(body, CountTokensRequest), LIMITS)
    assert counted.messages == _anthropic().messages
    assert counted.plan == _anthropic().plan
    with pytest.raises(InvalidRequestError) as refused:
        to_count_turn(msgspec.convert(body, CountTokensRequest), LimitSettings(max_messages=2))
    assert refused.value.param == "messages"


def test_limits_are_checked_inside_each_mapping() -> None:
    few = LimitSettings(max_messages=2)
    chat = msgspec.convert(
        {"messages": [{"role": "user", "content": "a"}] * 3}, ChatCompletionRequest
    )
    responses = msgspec.convert({"input": [{"role": "user", "content": "a"}] * 3}, ResponsesRequest)
    for map_request, param in (
        (lambda: chat_turn(chat, chat.messages, DEFAULTS, few), "messages"),
        (lambda: responses_turn(responses, DEFAULTS, few, lambda _: [], lambda _: None), "input"),
    ):
        with pytest.raises(InvalidRequestError) as refused:
            map_request()
        assert refused.value.param == param


def test_arguments_nested_past_pythons_limit_reach_the_template_as_sent() -> None:
    """A client's history call whose arguments `json.loads` cannot parse for depth (a
    RecursionError, not a ValueError) is passed on as the string, not a 500."""
    deep = "[" * 100_000 + "]" * 100_000
    message = TurnMessage("assistant", "", tool_calls=(HistoryCall("f", deep, "c1"),))
    [out] = template_messages([message], native_tools=True, syntax=ToolSyntax())
    assert out["tool_calls"][0]["function"]["arguments"] == deep
