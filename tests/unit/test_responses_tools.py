"""The Responses API's agent tools, pure: what the model is offered for namespaces and
custom tools, hosted tools left out or refused, history items mapped back to the
offered names, reasoning sealed and carried to the next assistant turn."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from conversion.custom_grammar import GBNF_STRING_KEY, string_grammar
from conversion.errors import InvalidRequestError
from conversion.families import FALLBACK
from conversion.responses.items import read_items, to_turn_messages
from conversion.responses.output import call_item
from conversion.responses.sealing import seal, unseal
from conversion.responses.tools import offered_tools
from conversion.tools import ParsedCall
from conversion.turn import HistoryCall, template_messages

KEY = b"k" * 32
FUNCTION = {"type": "function", "name": "open", "parameters": {"type": "object"}}
NAMESPACE = {"type": "namespace", "name": "files", "description": "d", "tools": [FUNCTION]}
CUSTOM = {
    "type": "custom",
    "name": "patch",
    "description": "Apply a patch.",
    "format": {"type": "grammar", "syntax": "regex", "definition": "^[+-][a-z]*$"},
}


def test_namespaced_functions_are_offered_apart_and_named_back() -> None:
    tools = offered_tools([FUNCTION, NAMESPACE, {"type": "web_search"}], "auto", "omit")
    assert tools.plan is not None
    assert [f.name for f in tools.plan.functions] == ["open", "files__open"]
    assert tools.omitted == ("web_search",)
    item = msgspec.to_builtins(call_item(ParsedCall("files__open", '{"a": 1}'), "completed", tools))
    assert (item["type"], item["name"], item["namespace"]) == ("function_call", "open", "files")
    plain = msgspec.to_builtins(call_item(ParsedCall("open", "{}"), "completed", tools))
    assert plain["name"] == "open"
    assert "namespace" not in plain


def test_a_custom_tool_is_one_string_shown_plain_and_enforced_by_its_grammar() -> None:
    tools = offered_tools([CUSTOM], {"type": "custom", "name": "patch"}, "omit")
    assert tools.plan is not None
    [function] = tools.plan.allowed
    assert function.parameters["properties"]["input"]["type"] == "string"
    assert GBNF_STRING_KEY not in json.dumps(function.parameters)  # the model never sees GBNF
    assert "^[+-][a-z]*$" in function.description
    enforced = function.arguments().schema["properties"]["input"]
    assert enforced[GBNF_STRING_KEY] == string_grammar("regex", "^[+-][a-z]*$", "p")
    item = msgspec.to_builtins(
        call_item(ParsedCall("patch", '{"input": "+abc"}'), "completed", tools)
    )
    assert (item["type"], item["input"]) == ("custom_tool_call", "+abc")
    cut = call_item(ParsedCall("patch", '{"input": "+a\\nb\\'), "incomplete", tools)
    assert msgspec.to_builtins(cut)["input"] == "+a\nb"


@pytest.mark.parametrize(
    ("tools", "choice", "param"),
    [
        ([{"type": "web_search"}], {"type": "web_search"}, "tool_choice.type"),
        ([CUSTOM], {"type": "function", "name": "patch"}, "tool_choice.name"),
        ([NAMESPACE], {"type": "custom", "name": "open"}, "tool_choice.name"),
        (
            [{"type": "namespace", "name": "n", "tools": [NAMESPACE]}],
            "auto",
            "tools[0].tools[0].type",
        ),
        ([{"type": "namespace", "tools": []}], "auto", "tools[0].name"),
        ([{"type": "teleport"}], "auto", "tools[0].type"),
        ([FUNCTION, NAMESPACE, {**FUNCTION, "name": "files__open"}], "auto", "tools"),
    ],
)
def test_what_cannot_be_offered_is_a_400_naming_it(
    tools: list[Any], choice: Any, param: str
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        offered_tools(tools, choice, "omit")
    assert refused.value.param == param


def test_hosted_tools_can_be_refused() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        offered_tools([FUNCTION, {"type": "file_search"}], "auto", "refuse")
    assert refused.value.param == "tools[1].type"


def test_allowed_tools_name_custom_and_namespaced_tools() -> None:
    choice = {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [{"type": "custom", "name": "patch"}, {"type": "function", "name": "open"}],
    }
    tools = offered_tools([NAMESPACE, CUSTOM], choice, "omit")
    assert tools.plan is not None
    assert [f.name for f in tools.plan.allowed] == ["files__open", "patch"]


def test_history_calls_go_back_under_the_offered_names() -> None:
    items = read_items(
        [
            {
                "type": "function_call",
                "call_id": "a",
                "name": "open",
                "namespace": "files",
                "arguments": "{}",
            },
            {"type": "custom_tool_call", "call_id": "b", "name": "patch", "input": 'x "y"'},
            {"type": "function_call_output", "call_id": "a", "output": "ok"},
            {"type": "custom_tool_call_output", "call_id": "b", "output": "ok"},
        ]
    )
    assert all(item["id"] for item in items)
    assistant, first, second = to_turn_messages(items)
    assert assistant.tool_calls == (
        HistoryCall("files__open", "{}", "a"),
        HistoryCall("patch", json.dumps({"input": 'x "y"'}), "b"),
    )
    assert (first.tool_call_id, second.tool_call_id) == ("a", "b")


def test_sealed_reasoning_opens_only_with_its_key_and_unchanged() -> None:
    token = seal("I think so.", KEY)
    assert unseal(token, KEY) == "I think so."
    assert unseal(token, b"x" * 32) is None
    assert unseal(token.replace(".", ".A", 1), KEY) is None
    assert unseal("llms1.é.x", KEY) is None
    assert unseal("gAAAA-openai-style", KEY) is None


def test_reasoning_goes_with_the_assistant_turn_after_it() -> None:
    items = read_items(
        [
            {"role": "user", "content": "Hi"},
            {"type": "reasoning", "summary": [], "encrypted_content": seal("plan A", KEY)},
            {"type": "function_call", "call_id": "a", "name": "open", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "a", "output": "ok"},
            {
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": "plan B"}],
            },
            {"role": "assistant", "content": "Done."},
            {"type": "reasoning", "summary": [], "encrypted_content": None},
            {"role": "user", "content": "Thanks"},
        ],
        key=KEY,
    )
    messages = to_turn_messages(items, key=KEY)
    assert [(m.role, m.reasoning) for m in messages] == [
        ("user", None),
        ("assistant", "plan A"),
        ("tool", None),
        ("assistant", "plan B"),
        ("user", None),
    ]
    rendered = template_messages(messages, native_tools=True, syntax=FALLBACK.tools)
    assert rendered[1]["reasoning_content"] == "plan A"
    assert "reasoning_content" not in rendered[0]
    with pytest.raises(InvalidRequestError) as refused:
        read_items([{"type": "reasoning", "summary": [], "encrypted_content": "x"}], key=KEY)
    assert refused.value.param == "input[0].encrypted_content"
