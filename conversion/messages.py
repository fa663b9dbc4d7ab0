"""OpenAI messages -> the plain dicts a chat template renders.

Chat templates (Jinja, from the GGUF file) expect `{"role": str, "content": str}`, so:
text parts are joined with newlines (as vLLM does: separate parts stay separate words),
`developer` becomes `system` (templates predate that role), a
null assistant content becomes "" (templates concatenate it), and non-text parts are
refused with a 400 naming the exact part, since a text-only model cannot see them.
"""

from __future__ import annotations

from typing import Any

from msgspec import UNSET

from conversion.errors import InvalidRequestError
from conversion.wire import (
    AssistantMessage,
    Content,
    DeveloperMessage,
    Message,
    TextPart,
    ToolMessage,
)

__all__ = ("TemplateMessage", "to_template_messages")

TemplateMessage = dict[str, Any]


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


def _role(message: Message) -> str:
    """The role a template sees; the wire role is the Struct's tag."""
    if isinstance(message, DeveloperMessage):
        return "system"
    return str(type(message).__struct_config__.tag)


def to_template_messages(messages: list[Message]) -> list[TemplateMessage]:
    rendered: list[TemplateMessage] = []
    for index, message in enumerate(messages):
        out: TemplateMessage = {
            "role": _role(message),
            "content": _text(message.content, f"messages[{index}].content"),
        }
        if isinstance(message, ToolMessage):
            if message.tool_call_id is not UNSET:
                out["tool_call_id"] = message.tool_call_id
        elif message.name is not UNSET:
            out["name"] = message.name
        if isinstance(message, AssistantMessage) and message.tool_calls:
            out["tool_calls"] = message.tool_calls
        rendered.append(out)
    return rendered
