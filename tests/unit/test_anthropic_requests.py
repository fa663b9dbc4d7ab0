"""What the current Messages API sends, mapped onto a turn: system messages between
turns, `output_config` (a JSON schema for the answer, the effort), `thinking.display`
and `context_management` (issue 23)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from config.settings import LimitSettings, SamplingDefaults
from conversion.anthropic.options import thinking_shown
from conversion.anthropic.output import MessageEvents, to_message
from conversion.anthropic.requests import to_count_turn, to_turn
from conversion.anthropic.wire import BlockDelta, CountTokensRequest, MessagesRequest
from conversion.errors import InvalidRequestError
from conversion.reply import ChoiceEnd, ChoiceReply, ContentPiece, ReasoningPiece
from conversion.turn import Turn, TurnMessage, merged_system_messages
from conversion.usage import UsagePart

DEFAULTS, LIMITS = SamplingDefaults(), LimitSettings()
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "pets": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Their pets\n\n{maxItems: 2}",  # as the SDK's parse() sends it
        },
    },
    "required": ["name", "pets"],
    "additionalProperties": False,
}


def turn(**fields: Any) -> Turn:
    body = {"max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}], **fields}
    return to_turn(msgspec.convert(body, MessagesRequest), DEFAULTS, LIMITS)


def refusal(**fields: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        turn(**fields)
    return caught.value


def test_system_messages_between_turns_stay_where_they_are() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": [{"type": "text", "text": "Use the tools."}]},
        {"role": "assistant", "content": "Hello."},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Go on."},
    ]
    got = turn(
        system=[{"type": "text", "text": "Lead.", "cache_control": {"type": "ephemeral"}}],
        messages=messages,
    )
    assert [(m.role, m.content) for m in got.messages] == [
        ("system", "Lead."),
        ("user", "Hi"),
        ("system", "Use the tools."),
        ("assistant", "Hello."),
        ("system", "Be brief."),
        ("user", "Go on."),
    ]
    assert (
        refusal(messages=[{"role": "system", "content": [{"type": "image", "source": {}}]}]).param
        == "messages[0].content[0].type"
    )
    assert refusal(messages=[{"role": "tool", "content": "x"}]).param == "messages[0].role"


def test_for_templates_that_take_one_system_message_the_later_ones_join_it_in_order() -> None:
    messages = (
        TurnMessage("system", "Lead."),
        TurnMessage("user", "Hi"),
        TurnMessage("system", "Use the tools."),
        TurnMessage("assistant", "Hello."),
        TurnMessage("system", "Be brief."),
    )
    assert merged_system_messages(messages) == (
        TurnMessage("system", "Lead.\n\nUse the tools.\n\nBe brief."),
        TurnMessage("user", "Hi"),
        TurnMessage("assistant", "Hello."),
    )
    assert merged_system_messages(messages[:2]) is None
    assert merged_system_messages(messages[1:3]) == (
        TurnMessage("system", "Use the tools."),
        TurnMessage("user", "Hi"),
    )


def test_an_output_format_is_a_strict_json_schema_for_the_answer() -> None:
    got = turn(output_config={"format": {"type": "json_schema", "schema": PERSON}})
    assert got.params.schema_param == "output_config.format.schema"
    assert got.params.json_schema is not None
    # the bound the SDK moved into the description is enforced again
    assert got.params.json_schema["properties"]["pets"]["maxItems"] == 2
    # the deprecated top-level form too
    old = turn(output_format={"type": "json_schema", "schema": PERSON})
    assert old.params.json_schema == got.params.json_schema
    assert old.params.schema_param == "output_format.schema"
    # what no grammar enforces is refused, naming its place
    unenforced = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}
    error = refusal(output_config={"format": {"type": "json_schema", "schema": unenforced}})
    assert error.param == "output_config.format.schema.properties.n.minimum"
    assert refusal(output_config={"format": {"type": "text"}}).param == "output_config.format.type"
    error = refusal(output_config={"format": {"type": "json_schema"}})
    assert error.param == "output_config.format.schema"
    assert turn().params.json_schema is None


def test_effort_and_thinking_set_the_reasoning_effort() -> None:
    assert turn().reasoning_effort is None
    assert turn(output_config={"effort": "low"}).reasoning_effort == "low"
    assert turn(output_config={"effort": "max"}).reasoning_effort == "xhigh"
    adaptive = {"type": "adaptive", "display": "omitted"}
    assert turn(thinking=adaptive, output_config={"effort": "high"}).reasoning_effort == "high"
    assert turn(thinking={"type": "enabled", "budget_tokens": 2048}).reasoning_effort == "medium"
    for off in ("disabled", "between_tools"):
        assert (
            turn(thinking={"type": off}, output_config={"effort": "high"}).reasoning_effort
            == "none"
        )
    assert refusal(output_config={"effort": "huge"}).param == "output_config.effort"
    assert refusal(output_config={"effort": {"level": 1}}).param == "output_config.effort"
    assert refusal(thinking={"type": "sometimes"}).param == "thinking.type"
    assert refusal(thinking={"type": "adaptive", "display": "full"}).param == "thinking.display"
    assert thinking_shown(None)
    assert thinking_shown({"type": "adaptive", "display": "summarized"})
    assert not thinking_shown(adaptive)


def test_clearing_earlier_thinking_is_accepted_and_other_edits_are_named() -> None:
    keep_all = {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
    assert turn(context_management=keep_all).messages == (TurnMessage("user", "Hi"),)
    other = {"edits": [keep_all["edits"][0], {"type": "clear_tool_uses_20250919"}]}
    assert refusal(context_management=other).param == "context_management.edits[1].type"


def test_a_count_reads_the_same_effort_and_format() -> None:
    body = {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "system", "content": "Brief."}],
        "output_config": {"effort": "low", "format": {"type": "json_schema", "schema": PERSON}},
    }
    counted = to_count_turn(msgspec.convert(body, CountTokensRequest), LIMITS)
    sent = turn(**body)
    assert counted.messages == sent.messages
    assert counted.reasoning_effort == sent.reasoning_effort == "low"
    assert counted.params.json_schema == sent.params.json_schema


@pytest.mark.parametrize("shown", [True, False])
def test_omitted_thinking_is_an_empty_block_streamed_or_not(shown: bool) -> None:
    """Anthropic's `display: "omitted"`: the block is there, its text is not."""
    reply = ChoiceReply("Four.", "stop", reasoning="Two and two.")
    message = to_message(reply, UsagePart(0, 9, 4), "m", (), show_thinking=shown)
    assert [(type(b).__name__, getattr(b, "thinking", None)) for b in message.content] == [
        ("ThinkingBlock", "Two and two." if shown else ""),
        ("TextBlock", None),
    ]
    writer = MessageEvents("m", 9, (), show_thinking=shown)
    events = [
        *writer.feed(ReasoningPiece(0, "Two and two.")),
        *writer.feed(ContentPiece(0, "Four.")),
        *writer.feed(ChoiceEnd(0, "stop", usage=UsagePart(0, 9, 4))),
    ]
    deltas = [type(e.delta).__name__ for e in events if isinstance(e, BlockDelta)]
    assert deltas == (["ThinkingDelta", "TextDelta"] if shown else ["TextDelta"])
    assert [type(e).__name__ for e in events].count("BlockStart") == 2
