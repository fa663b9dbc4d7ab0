"""`POST /v1/chat/completions`: HTTP only; the logic is in `app.serving`."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK

from app.errors import error_responses
from app.metrics import Metrics
from app.models.registry import ModelRouter
from app.routes.served import serve
from app.routes.unknown_fields import log_unknown_fields
from app.serving import create_chat_completion
from app.sse import StreamingOperation, sse_response
from conversion.chat.wire import ChatCompletion, ChatCompletionRequest

__all__ = ("chat_completions",)

_KNOWN_FIELDS = frozenset(ChatCompletionRequest.__struct_fields__)


@post(
    "/chat/completions",
    status_code=HTTP_200_OK,
    responses=error_responses(400, 401, 413, 500, 503),
    operation_class=StreamingOperation,
)
async def chat_completions(
    request: Request[Any, Any, Any],
    data: JSONBody[ChatCompletionRequest],
    models: NamedDependency[ModelRouter],
    metrics: NamedDependency[Metrics],
) -> Response[ChatCompletion] | Stream:
    """Create a chat completion (OpenAI-compatible), streamed as SSE when `stream` is true."""
    await log_unknown_fields(request, _KNOWN_FIELDS)
    served = await serve(models, request, data.model)
    result = await create_chat_completion(request, data, served.engine, served.settings, metrics)
    if isinstance(result, ChatCompletion):
        return Response(result, status_code=HTTP_200_OK)
    return sse_response(result)
