"""System messages for templates that do not take them where a client puts them.

Clients put system messages first, and some (Claude Code, chat clients) between turns
too. Six of llama-cpp-python's built-in formats (`gemma` among them) drop every system
message with only a debug log; most others keep the first and drop later ones; some Jinja
templates raise on them. Dropped, a system prompt (and the tool descriptions the server
writes into it) would be lost without a word. So the template is asked once what it
keeps (`SystemSupport`, `app.engine.template`) and the messages are rearranged before
rendering so that every system text reaches the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from conversion.generation import TemplateMessage

__all__ = ("SystemSupport", "fit_system_messages")

SystemSupport = Literal["anywhere", "leading", "none"]
"""Where a template renders system messages: wherever they are, only a leading one, or
nowhere."""


def _joined(texts: Sequence[object]) -> str:
    return "\n\n".join(str(text) for text in texts if text)


def fit_system_messages(
    messages: Sequence[TemplateMessage], support: SystemSupport
) -> list[TemplateMessage]:
    """The messages arranged for a template with this `support`:
    - `leading`: later system messages' text joins the leading system message (made if
      there is none);
    - `none`: the leading system text opens the first message of the conversation, as
      Gemma's own template does, and each later one opens the next user message (or
      closes the last one, when none follows); alone, it becomes a user message.
    Messages without system text are returned as they are."""
    if support == "anywhere" or not any(m["role"] == "system" for m in messages):
        return list(messages)
    if support == "leading":
        text = _joined([m["content"] for m in messages if m["role"] == "system"])
        others = [m for m in messages if m["role"] != "system"]
        return [{"role": "system", "content": text}, *others] if text else others
    out: list[TemplateMessage] = []
    pending = ""
    for message in messages:
        if message["role"] == "system":
            pending = _joined([pending, message["content"]])
            continue
        if pending and (not out or message["role"] == "user"):
            message = {**message, "content": _joined([pending, message["content"]]) or pending}
            pending = ""
        out.append(message)
    if pending:
        users = [i for i, m in enumerate(out) if m["role"] == "user"]
        if users:
            last = out[users[-1]]
            out[users[-1]] = {**last, "content": _joined([last["content"], pending])}
        else:
            out.append({"role": "user", "content": pending})
    return out
