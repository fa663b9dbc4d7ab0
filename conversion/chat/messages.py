"""OpenAI chat messages -> the turn's protocol-neutral messages (`conversion.turn`).

Text parts are joined with newlines (as vLLM does: separate parts stay separate words),
`developer` becomes `system` (templates predate that role), a null assistant content
becomes "" (templates concatenate it), and non-text parts are refused with a 400 naming
the exact part, since a text-only model cannot see them.
"""

from __future__ import annotations

from msgspec import UNSET

from conversion.chat.wire import (
    AssistantMessage,
    Content,
    DeveloperMessage,
    Message,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)
from conversion.errors import InvalidRequestError
from conversion.turn import HistoryCall, TurnMessage

__all__ = ("to_turn_messages",)


def _text(content: Content | None, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for index, part in enumerate(content):
        if not isinstance(part, TextPart):
            raise InvalidRequestError(
                f"Content parts of type {type(part).__struct_config__.tag!r} are not supported: "
                "this model reads text only.",
                param=f"{param}[{index}].type",
            )
        texts.append(part.text)
    return "\n".join(texts)


def _message(message: Message, param: str) -> TurnMessage:
    text = _text(message.content, f"{param}.content")
    if isinstance(message, ToolMessage):
        call_id = None if message.tool_call_id is UNSET else message.tool_call_id
        return TurnMessage("tool", text, tool_call_id=call_id)
    name = None if message.name is UNSET else message.name
    if isinstance(message, SystemMessage | DeveloperMessage):
        return TurnMessage("system", text, name)
    if isinstance(message, UserMessage):
        return TurnMessage("user", text, name)
    assert isinstance(message, AssistantMessage)
    calls = tuple(
        HistoryCall(
            call.function.name,
            call.function.arguments,
            None if call.id is UNSET else call.id,
        )
        for call in message.tool_calls or ()
    )
    return TurnMessage("assistant", text, name, calls)


def to_turn_messages(messages: list[Message]) -> tuple[TurnMessage, ...]:
    return tuple(_message(m, f"messages[{i}]") for i, m in enumerate(messages))
