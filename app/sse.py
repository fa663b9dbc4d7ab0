"""Server-sent-event framing, byte for byte what OpenAI clients parse.

Each event is `data: <json>\\n\\n`; the stream ends with `data: [DONE]\\n\\n`. A failure
after the first byte cannot change the status any more, so it is sent in-band as one
`data: {"error": ...}` event (the OpenAI SDK raises `APIError` on it), then [DONE].
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar.response import Stream

from app.errors import to_openai_error

__all__ = ("DONE", "MEDIA_TYPE", "error_event", "event", "sse_response")

MEDIA_TYPE = "text/event-stream"
DONE = b"data: [DONE]\n\n"
_encoder = msgspec.json.Encoder()


def event(payload: Any) -> bytes:
    return b"data: " + _encoder.encode(payload) + b"\n\n"


def error_event(exc: Exception) -> bytes:
    return event(to_openai_error(None, exc).to_body())


def sse_response(body: AsyncIterator[bytes]) -> Stream:
    """The streamed response, unbuffered by proxies (nginx honours X-Accel-Buffering)."""
    return Stream(
        body,
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
