"""Tool calling through the openai SDK: forced calls, streamed call deltas, history."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest

WEATHER_PARAMS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": WEATHER_PARAMS,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Current time in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 40}},
                "required": ["city"],
            },
        },
    },
]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_required_tool_choice_returns_a_valid_call(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m", messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=80, seed=1
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name in {"get_weather", "get_time"}
    params = next(t for t in TOOLS if t["function"]["name"] == call.function.name)
    jsonschema.validate(json.loads(call.function.arguments), params["function"]["parameters"])


def test_a_named_tool_choice_calls_that_function(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m",
        messages=ASK,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=80,
        temperature=0,
    )
    [call] = reply.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_PARAMS)


def test_a_streamed_call_arrives_as_openai_tool_call_deltas(client: openai.OpenAI) -> None:
    fields: dict[str, Any] = {
        "model": "m",
        "messages": ASK,
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "max_tokens": 80,
        "temperature": 0,
    }
    plain = client.chat.completions.create(**fields)
    ids, names, arguments, finishes = set(), [], "", []
    for chunk in client.chat.completions.create(**fields, stream=True):
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                assert delta.index == 0
                if delta.id:
                    ids.add(delta.id)
                if delta.function and delta.function.name:
                    names.append(delta.function.name)
                if delta.function and delta.function.arguments:
                    arguments += delta.function.arguments
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert len(ids) == 1
    assert names == ["get_weather"]
    assert finishes == ["tool_calls"]
    [call] = plain.choices[0].message.tool_calls or []
    assert json.loads(arguments) == json.loads(call.function.arguments)


def test_history_with_calls_and_results_is_answered(client: openai.OpenAI) -> None:
    history: list[Any] = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city": "Paris", "unit": "celsius"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21}'},
    ]
    reply = client.chat.completions.create(
        model="m", messages=history, tools=TOOLS, tool_choice="none", max_tokens=20
    )
    assert reply.choices[0].message.content
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason in {"stop", "length"}


def test_auto_answers_with_either_content_or_a_valid_call(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m", messages=ASK, tools=TOOLS, max_tokens=60, temperature=0
    )
    message = reply.choices[0].message
    if message.tool_calls:
        assert reply.choices[0].finish_reason == "tool_calls"
        assert all(c.function.name in {"get_weather", "get_time"} for c in message.tool_calls)
    else:
        assert message.content


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools[0].function.name"),
        (
            {"tool_choice": "required", "response_format": {"type": "json_object"}},
            "response_format",
        ),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tool_choice": {"type": "function", "function": "get_weather"}}, "tool_choice"),
        (
            {
                "messages": [
                    *ASK,
                    {"role": "assistant", "tool_calls": [{"id": "a", "function": "x"}]},
                ]
            },
            "messages[1].tool_calls[0].function",
        ),
    ],
)
def test_bad_tool_requests_are_a_400_naming_the_field(
    client: openai.OpenAI, fields: dict[str, Any], param: str
) -> None:
    request: dict[str, Any] = {"model": "m", "messages": ASK, "tools": TOOLS, **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**request)
    assert caught.value.param == param


def test_a_forced_call_cut_by_max_tokens_is_a_call_with_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m",
        messages=ASK,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=24,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert call.function.arguments.startswith("{")


def test_streamed_calls_carry_the_logprobs_the_plain_reply_has(client: openai.OpenAI) -> None:
    fields: dict[str, Any] = {
        "model": "m",
        "messages": ASK,
        "tools": TOOLS,
        "tool_choice": "required",
        "max_tokens": 80,
        "temperature": 0,
        "logprobs": True,
    }
    plain = client.chat.completions.create(**fields)
    streamed = [
        token
        for chunk in client.chat.completions.create(**fields, stream=True)
        for choice in chunk.choices
        for token in (choice.logprobs.content or [] if choice.logprobs else [])
    ]
    assert plain.choices[0].logprobs is not None
    expected = plain.choices[0].logprobs.content or []
    assert expected
    assert [t.token for t in streamed] == [t.token for t in expected]
