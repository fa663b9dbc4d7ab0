"""`POST /v1/chat/completions`: HTTP only; the logic is in `app.serving`."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK

from app.engine.base import Engine
from app.errors import error_responses
from app.metrics import Metrics
from app.serving import create_chat_completion
from app.sse import StreamingOperation, sse_response
from config.settings import Settings
from conversion.chat.wire import ChatCompletion, ChatCompletionRequest

__all__ = ("chat_completions",)

logger = logging.getLogger("llm_service.requests")
_KNOWN_FIELDS = frozenset(ChatCompletionRequest.__struct_fields__)
_field_names = msgspec.json.Decoder(dict[str, msgspec.Raw])


async def _log_unknown_fields(request: Request[Any, Any, Any]) -> None:
    """Unknown fields are tolerated (clients send newer ones); say so at debug level."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    unknown = sorted(set(_field_names.decode(await request.body())) - _KNOWN_FIELDS)
    if unknown:
        logger.debug("Ignoring unknown request fields: %s", ", ".join(unknown))


@post(
    "/chat/completions",
    status_code=HTTP_200_OK,
    responses=error_responses(400, 401, 413, 500, 503),
    operation_class=StreamingOperation,
)
async def chat_completions(
    request: Request[Any, Any, Any],
    data: JSONBody[ChatCompletionRequest],
    engine: NamedDependency[Engine],
    settings: NamedDependency[Settings],
    metrics: NamedDependency[Metrics],
) -> Response[ChatCompletion] | Stream:
    """Create a chat completion (OpenAI-compatible), streamed as SSE when `stream` is true."""
    await _log_unknown_fields(request)
    result = await create_chat_completion(request, data, engine, settings, metrics)
    if isinstance(result, ChatCompletion):
        return Response(result, status_code=HTTP_200_OK)
    return sse_response(result)
