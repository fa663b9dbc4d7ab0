"""`/v1/messages` and `/v1/messages/count_tokens`: Anthropic's Messages API. HTTP only;
the logic is in `app.serving.anthropic`. Errors use Anthropic's envelope."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK

from app.errors import ANTHROPIC_EXCEPTION_HANDLERS, error_responses
from app.metrics import Metrics
from app.models.registry import ModelRouter
from app.routes.served import serve
from app.serving.anthropic import count_tokens, create_message
from app.sse import StreamingOperation, sse_response
from conversion.anthropic.wire import (
    AnthropicErrorBody,
    CountTokensRequest,
    InputTokens,
    Message,
    MessagesRequest,
)

__all__ = ("count_message_tokens", "messages")


@post(
    "/messages",
    status_code=HTTP_200_OK,
    operation_class=StreamingOperation,
    exception_handlers=ANTHROPIC_EXCEPTION_HANDLERS,
    responses=error_responses(400, 401, 413, 500, 503, envelope=AnthropicErrorBody),
)
async def messages(
    request: Request[Any, Any, Any],
    data: JSONBody[MessagesRequest],
    models: NamedDependency[ModelRouter],
    metrics: NamedDependency[Metrics],
) -> Response[Message] | Stream:
    """Create a message (Anthropic's Messages API), streamed as typed SSE events when
    `stream` is true."""
    served = await serve(models, request, data.model)
    result = await create_message(request, data, served.engine, served.settings, metrics)
    if isinstance(result, Message):
        return Response(result, status_code=HTTP_200_OK)
    return sse_response(result)


@post(
    "/messages/count_tokens",
    status_code=HTTP_200_OK,
    exception_handlers=ANTHROPIC_EXCEPTION_HANDLERS,
    responses=error_responses(400, 401, 413, 500, 503, envelope=AnthropicErrorBody),
)
async def count_message_tokens(
    request: Request[Any, Any, Any],
    data: JSONBody[CountTokensRequest],
    models: NamedDependency[ModelRouter],
) -> InputTokens:
    """Count the prompt tokens a message request would read."""
    served = await serve(models, request, data.model)
    return await count_tokens(data, served.engine, served.settings)
