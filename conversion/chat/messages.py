"""OpenAI messages -> the plain dicts a chat template renders.

Chat templates (Jinja, from the GGUF file) expect `{"role": str, "content": str}`, so:
text parts are joined with newlines (as vLLM does: separate parts stay separate words),
`developer` becomes `system` (templates predate that role), a
null assistant content becomes "" (templates concatenate it), and non-text parts are
refused with a 400 naming the exact part, since a text-only model cannot see them.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from msgspec import UNSET

from conversion.chat.wire import (
    AssistantMessage,
    Content,
    DeveloperMessage,
    Message,
    TextPart,
    ToolMessage,
)
from conversion.errors import InvalidRequestError
from conversion.families.syntax import ToolSyntax

__all__ = ("TemplateMessage", "to_template_messages")

_HERMES = ToolSyntax()

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


def _calls(message: AssistantMessage, native: bool, syntax: ToolSyntax) -> list[dict[str, Any]]:
    """History tool calls: kept for a template that renders them, with `arguments`
    parsed into an object as Hugging Face templates expect (OpenAI sends a string),
    and ids the template accepts."""
    calls: list[dict[str, Any]] = []
    for call in message.tool_calls or ():
        arguments = call.function.arguments
        if native and isinstance(arguments, str):
            with contextlib.suppress(ValueError):  # else the template gets the string
                arguments = json.loads(arguments)
        elif not native and not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        out: dict[str, Any] = {
            "type": call.type,
            "function": {"name": call.function.name, "arguments": arguments},
        }
        if call.id is not UNSET:
            out["id"] = syntax.history_id(call.id)
        calls.append(out)
    return calls


def to_template_messages(
    messages: list[Message], *, native_tools: bool = True, syntax: ToolSyntax = _HERMES
) -> list[TemplateMessage]:
    """`native_tools`: the template renders `tool_calls` and `tool` messages itself;
    when False calls are written as text in the family's `syntax`, and tool results as a
    user message, which templates that insist on alternating roles accept."""
    rendered: list[TemplateMessage] = []
    for index, message in enumerate(messages):
        out: TemplateMessage = {
            "role": _role(message),
            "content": _text(message.content, f"messages[{index}].content"),
        }
        if isinstance(message, ToolMessage):
            if not native_tools:
                out = {
                    "role": "user",
                    "content": f"<tool_response>\n{out['content']}\n</tool_response>",
                }
            elif message.tool_call_id is not UNSET:
                out["tool_call_id"] = syntax.history_id(message.tool_call_id)
        elif message.name is not UNSET:
            out["name"] = message.name
        if isinstance(message, AssistantMessage) and message.tool_calls:
            calls = _calls(message, native_tools, syntax)
            if native_tools:
                out["tool_calls"] = calls
            else:
                written = [
                    syntax.write(
                        str(c["function"].get("name")), str(c["function"].get("arguments", "{}"))
                    )
                    for c in calls
                ]
                out["content"] = "\n".join(filter(None, [out["content"], *written]))
        rendered.append(out)
    return rendered
