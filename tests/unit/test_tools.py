"""Tool plans, the forced-call schema, and reading calls out of replies."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from conversion.errors import InvalidRequestError
from conversion.tools import ReplyShaper, call_schema, parse_tool_calls, plan_tools

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}


def test_no_tools_or_none_means_plain_content() -> None:
    assert plan_tools(None, None) is None
    assert plan_tools([WEATHER], "none") is None


def test_tools_default_to_auto_and_a_named_choice_allows_only_that_function() -> None:
    auto = plan_tools([WEATHER, TIME], None)
    assert auto is not None
    assert auto.mode == "auto"
    assert len(auto.allowed) == 2
    named = plan_tools([WEATHER, TIME], {"type": "function", "function": {"name": "get_time"}})
    assert named is not None
    assert named.mode == "required"
    assert [f.name for f in named.allowed] == ["get_time"]
    assert [f.name for f in named.functions] == ["get_weather", "get_time"]


@pytest.mark.parametrize(
    ("tools", "choice", "param"),
    [
        (None, "required", "tool_choice"),
        (None, "auto", "tool_choice"),
        ([WEATHER], "sometimes", "tool_choice"),
        ([WEATHER], {"type": "function", "function": {"name": "nope"}}, "tool_choice"),
        ([{"type": "retrieval"}], None, "tools[0].type"),
        ([{"type": "function", "function": {}}], None, "tools[0].function.name"),
        ([{"type": "function", "function": {"name": "has space"}}], None, "tools[0].function.name"),
        (
            [{"type": "function", "function": {"name": "f", "parameters": []}}],
            None,
            "tools[0].function.parameters",
        ),
        ([WEATHER, WEATHER], None, "tools"),
        ([WEATHER], {"type": "function", "function": "get_weather"}, "tool_choice"),
        ([WEATHER], {"type": "function", "function": ["get_weather"]}, "tool_choice"),
        ([{"type": "function", "function": {"name": "f\n"}}], None, "tools[0].function.name"),
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}],
            None,
            "tools[0].function.parameters",
        ),
    ],
)
def test_bad_tools_are_a_400_naming_the_field(tools: Any, choice: Any, param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        plan_tools(tools, choice)
    assert caught.value.param == param


def test_the_forced_call_schema_accepts_exactly_valid_calls() -> None:
    plan = plan_tools([WEATHER, TIME], "required")
    assert plan is not None
    schema = call_schema(plan)
    jsonschema.validate({"name": "get_weather", "arguments": {"city": "Oslo"}}, schema)
    jsonschema.validate({"name": "get_time", "arguments": {}}, schema)
    for bad in (
        {"name": "get_weather", "arguments": {}},
        {"name": "other", "arguments": {}},
        {"arguments": {"city": "Oslo"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


@pytest.mark.parametrize(
    "reply",
    [
        '{"name": "get_weather", "arguments": {"city": "Oslo"}}',
        '  <tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>\n',
        '<tool_call>\n{"name": "get_weather", "parameters": {"city": "Oslo"}}\n</tool_call>',
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}',
    ],
)
def test_calls_are_read_from_the_formats_models_write(reply: str) -> None:
    calls = parse_tool_calls(reply, ["get_weather"])
    assert calls is not None
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Oslo"}


@pytest.mark.parametrize(
    "reply",
    [
        "It is sunny in Oslo.",
        '{"name": "unknown", "arguments": {}}',
        '{"name": "get_weather", "arguments": [1]}',
        '<tool_call>{"name": "get_weather", "arguments": {}}</tool_call> and some chat',
        '{"name": "get_weather", "arguments": {"city": ',
    ],
)
def test_anything_else_is_not_a_call(reply: str) -> None:
    assert parse_tool_calls(reply, ["get_weather"]) is None


def test_two_tagged_calls_are_two_calls() -> None:
    reply = (
        '<tool_call>{"name": "a", "arguments": {}}</tool_call>\n'
        '<tool_call>{"name": "b", "arguments": {"x": 1}}</tool_call>'
    )
    calls = parse_tool_calls(reply, ["a", "b"])
    assert calls is not None
    assert [c.name for c in calls] == ["a", "b"]


def test_shaper_streams_content_once_it_cannot_be_a_call() -> None:
    shaper = ReplyShaper(plan_tools([WEATHER], "auto"))
    assert shaper.feed(" ") == ""
    assert shaper.feed("<to") == ""  # could still be <tool_call>
    assert shaper.feed("day") == " <today"
    assert shaper.feed(" more") == " more"
    assert shaper.finish("stop") == ("", [], "stop")


def test_shaper_holds_a_call_and_turns_it_into_calls() -> None:
    shaper = ReplyShaper(plan_tools([WEATHER], "auto"))
    for piece in ['{"name": "get_weather", ', '"arguments": {"city": "Oslo"}}']:
        assert shaper.feed(piece) == ""
    content, calls, finish_reason = shaper.finish("stop")
    assert finish_reason == "tool_calls"
    assert content == ""
    assert [c.name for c in calls] == ["get_weather"]


def test_shaper_gives_back_held_text_that_was_not_a_call() -> None:
    shaper = ReplyShaper(plan_tools([WEATHER], "auto"))
    assert shaper.feed('{"answer": 42}') == ""
    assert shaper.finish("stop") == ('{"answer": 42}', [], "stop")


def test_without_a_plan_everything_is_content() -> None:
    shaper = ReplyShaper(None)
    assert shaper.feed('{"name": "get_weather"}') == '{"name": "get_weather"}'
    assert shaper.finish("length") == ("", [], "length")


def test_a_forced_call_cut_by_max_tokens_is_still_a_call() -> None:
    shaper = ReplyShaper(plan_tools([WEATHER], "required"))
    shaper.feed('{"name": "get_weather", "arguments": {"city": "Os')
    content, calls, finish_reason = shaper.finish("length")
    assert content == ""
    assert finish_reason == "length"
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", '{"city": "Os')]


def test_an_auto_reply_cut_mid_call_stays_content() -> None:
    shaper = ReplyShaper(plan_tools([WEATHER], "auto"))
    shaper.feed('{"name": "get_weather", "arguments": {"ci')
    assert shaper.finish("length") == ('{"name": "get_weather", "arguments": {"ci', [], "length")


def test_parameter_definitions_move_to_the_root_where_their_refs_point() -> None:
    located = {
        "type": "function",
        "function": {
            "name": "locate",
            "parameters": {
                "type": "object",
                "properties": {"place": {"$ref": "#/$defs/Place"}},
                "required": ["place"],
                "$defs": {
                    "Place": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    }
                },
            },
        },
    }
    plan = plan_tools([located], "required")
    assert plan is not None
    schema = call_schema(plan)
    jsonschema.validate({"name": "locate", "arguments": {"place": {"city": "Oslo"}}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "locate", "arguments": {"place": {}}}, schema)
