"""Server-sent-event framing, byte for byte what OpenAI clients parse.

Chat and legacy completions: each event is `data: <json>\\n\\n`; the stream ends with
`data: [DONE]\\n\\n`. Typed streams (the Responses API) put `event: <type>` before each
`data:` line and have no `[DONE]`. A failure after the first byte cannot change the
status any more, so it is sent in-band: in chat as one `data: {"error": ...}` event (the
OpenAI SDK raises `APIError` on it), then [DONE]; in a typed stream as its protocol's
failure event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.response import Stream

from app.errors import to_openai_error

__all__ = (
    "DONE",
    "MEDIA_TYPE",
    "StreamingOperation",
    "error_event",
    "event",
    "sse_response",
    "typed_event",
)

MEDIA_TYPE = "text/event-stream"
DONE = b"data: [DONE]\n\n"
_encoder = msgspec.json.Encoder()


def event(payload: Any) -> bytes:
    return b"data: " + _encoder.encode(payload) + b"\n\n"


def typed_event(payload: msgspec.Struct) -> bytes:
    """A tagged Struct as an event whose `event:` line is its tag (its `type`), as the
    Responses and Anthropic APIs send them."""
    kind = str(type(payload).__struct_config__.tag)
    return b"event: " + kind.encode() + b"\ndata: " + _encoder.encode(payload) + b"\n\n"


def error_event(exc: Exception) -> bytes:
    return event(to_openai_error(None, exc).to_body())


def sse_response(body: AsyncIterator[bytes], headers: Mapping[str, str] | None = None) -> Stream:
    """The streamed response, unbuffered by proxies (nginx honours X-Accel-Buffering)."""
    return Stream(
        body,
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})},
    )


@dataclass
class StreamingOperation(Operation):
    """The OpenAPI operation of a route that answers JSON, or SSE when `stream` is true:
    its 200 response documents both media types (the schema is what clients and
    fuzzers such as schemathesis check answers against)."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            ok.content = {
                **(ok.content or {}),
                MEDIA_TYPE: OpenAPIMediaType(
                    schema=Schema(  # one event: a JSON chunk, or the closing [DONE]
                        type=OpenAPIType.OBJECT,
                        properties={"data": Schema(type=OpenAPIType.STRING)},
                        required=["data"],
                        description="Each event's `data` is a JSON chunk; the last is [DONE]",
                    )
                ),
            }
