"""Tool plans: which functions a reply may or must call (reading calls: test_families)."""

from __future__ import annotations

from typing import Any

import pytest

from conversion.errors import InvalidRequestError
from conversion.tools import plan_tools

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
