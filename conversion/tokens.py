"""Wire shapes of the `/tokenize` and `/detokenize` helpers (outside /v1).

They let a client count tokens before sending. `/tokenize` takes raw `content`, or chat
`messages` with any other field of a chat completion request (`tools`, `tool_choice`,
`reasoning_effort`, `chat_template_kwargs`, `response_format`, ...): those are mapped
by the chat request's own mapping (`conversion.chat.requests.to_turn`) and rendered as
that request would be, so the count equals its `usage.prompt_tokens`. The field names
follow llama.cpp's server (`content`, `tokens`, `add_special`).
"""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, UnsetType

from conversion.chat.wire import ChatRequestFields, Message
from conversion.wire import WireRequest, WireResponse

__all__ = ("DetokenizeRequest", "DetokenizeResponse", "TokenizeRequest", "TokenizeResponse")


class TokenizeRequest(ChatRequestFields, kw_only=True):
    """Exactly one of `content` and `messages`; the chat fields count with `messages`."""

    content: str | UnsetType = UNSET
    messages: Annotated[list[Message], Meta(min_length=1)] | UnsetType = UNSET
    add_special: bool = False
    """For `content`: add the model's begin-of-text token, as a prompt would have."""


class TokenizeResponse(WireResponse, kw_only=True):
    tokens: list[int]
    count: int
    model: str


class DetokenizeRequest(WireRequest, kw_only=True):
    tokens: list[Annotated[int, Meta(ge=0)]]
    model: str | None = None
    """Whose vocabulary (as in every request, an unknown name is the default model's)."""


class DetokenizeResponse(WireResponse, kw_only=True):
    content: str
    model: str
