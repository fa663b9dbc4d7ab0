"""OpenAI messages -> the turn's messages -> chat-template messages."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from conversion.chat.messages import to_turn_messages
from conversion.chat.wire import ChatCompletionRequest
from conversion.errors import InvalidRequestError
from conversion.families import ToolSyntax
from conversion.turn import template_messages


def render(messages: list[dict[str, Any]], *, native_tools: bool = True) -> list[dict[str, Any]]:
    req = msgspec.convert({"messages": messages}, ChatCompletionRequest)
    turn_messages = to_turn_messages(req.messages)
    return template_messages(turn_messages, native_tools=native_tools, syntax=ToolSyntax())


def test_roles_and_string_content() -> None:
    out = render(
        [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "U", "name": "ann"},
            {"role": "assistant", "content": "A"},
            {"role": "tool", "content": "T", "tool_call_id": "call_1"},
        ]
    )
    assert out == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U", "name": "ann"},
        {"role": "assistant", "content": "A"},
        {"role": "tool", "content": "T", "tool_call_id": "call_1"},
    ]


def test_developer_is_rendered_as_system() -> None:
    assert render([{"role": "developer", "content": "be brief"}]) == [
        {"role": "system", "content": "be brief"}
    ]


def test_text_parts_are_joined_on_separate_lines() -> None:
    parts = [{"type": "text", "text": "Hello"}, {"type": "text", "text": "world"}]
    assert render([{"role": "user", "content": parts}])[0]["content"] == "Hello\nworld"


def test_null_assistant_content_becomes_empty_and_tool_calls_are_kept() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    out = render([{"role": "assistant", "content": None, "tool_calls": [call]}])
    # Hugging Face templates expect the arguments as an object, OpenAI sends a string
    parsed = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
    assert out == [{"role": "assistant", "content": "", "tool_calls": [parsed]}]


def test_without_template_tool_support_calls_and_results_are_written_as_text() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    out = render(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        native_tools=False,
    )
    assert out[1] == {
        "role": "assistant",
        "content": '<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>',
    }
    assert out[2] == {"role": "user", "content": "<tool_response>\n42\n</tool_response>"}


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
    ],
)
def test_non_text_parts_are_rejected_naming_the_part(part: dict[str, Any]) -> None:
    content = [{"type": "text", "text": "look"}, part]
    with pytest.raises(InvalidRequestError) as caught:
        render([{"role": "system", "content": "s"}, {"role": "user", "content": content}])
    assert caught.value.param == "messages[1].content[1].type"
    assert part["type"] in caught.value.message


@pytest.mark.parametrize("function", ["x", 5, {"arguments": "{}"}])
def test_history_tool_calls_must_name_a_function(function: object) -> None:
    call = {"id": "a", "type": "function", "function": function}
    with pytest.raises(msgspec.ValidationError, match=r"messages\[0\]\.tool_calls\[0\]"):
        render([{"role": "assistant", "content": None, "tool_calls": [call]}])
