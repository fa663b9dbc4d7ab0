"""`POST /v1/completions` (legacy text completions): HTTP only; logic in `app.serving`."""

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
from app.serving.completions import create_completion
from app.sse import StreamingOperation, sse_response
from conversion.completions.wire import Completion, CompletionRequest

__all__ = ("completions",)


@post(
    "/completions",
    status_code=HTTP_200_OK,
    responses=error_responses(400, 401, 413, 500, 503),
    operation_class=StreamingOperation,
)
async def completions(
    request: Request[Any, Any, Any],
    data: JSONBody[CompletionRequest],
    models: NamedDependency[ModelRouter],
    metrics: NamedDependency[Metrics],
) -> Response[Completion] | Stream:
    """Create a text completion of a raw prompt (OpenAI's legacy API), SSE when `stream`."""
    served = await serve(models, request, data.model)
    result = await create_completion(request, data, served.engine, served.settings, metrics)
    if isinstance(result, Completion):
        return Response(result, status_code=HTTP_200_OK)
    return sse_response(result)
