"""`/v1/responses`: create, read, delete and list input items. HTTP only; the logic is
in `app.serving.responses` and `app.store`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK

from app.errors import error_responses
from app.metrics import Metrics
from app.models.registry import ModelRouter
from app.routes.served import continued_model, serve
from app.serving.responses import create_response
from app.sse import StreamingOperation, sse_response
from app.store import ResponseStore
from conversion.errors import InvalidRequestError
from conversion.responses.wire import (
    DeletedResponse,
    InputItemList,
    ResponsesRequest,
)
from conversion.responses.wire import Response as ResponseObject

__all__ = ("create", "delete_response", "list_input_items", "retrieve")


@post(
    "/responses",
    status_code=HTTP_200_OK,
    responses=error_responses(400, 401, 413, 500, 503),
    operation_class=StreamingOperation,
)
async def create(
    request: Request[Any, Any, Any],
    data: JSONBody[ResponsesRequest],
    models: NamedDependency[ModelRouter],
    store: NamedDependency[ResponseStore],
    metrics: NamedDependency[Metrics],
) -> Response[ResponseObject] | Stream:
    """Create a model response (OpenAI's Responses API), streamed as typed SSE events
    when `stream` is true.

    The `llm-response-id` header names the response before its body: a proxy in front
    of several replicas records which one stored it, and sends the requests that name
    it (`previous_response_id`, `GET`/`DELETE`) there (see `deploy/haproxy.cfg`).
    `llm-omitted-tools` names the hosted tools left out of what the model saw."""
    name = await continued_model(models, store, data.model, data.previous_response_id)
    served = await serve(models, request, name)
    headers, result = await create_response(
        request, data, served.engine, served.settings, store, metrics
    )
    if isinstance(result, ResponseObject):
        return Response(result, status_code=HTTP_200_OK, headers=headers)
    return sse_response(result, headers=headers)


@get("/responses/{response_id:str}", responses=error_responses(400, 401, 404))
async def retrieve(
    response_id: FromPath[str],
    store: NamedDependency[ResponseStore],
    stream: FromQuery[bool] = False,
) -> Response[bytes]:
    """A stored response, as it was served."""
    if stream:
        raise InvalidRequestError(
            "Replaying a stored response as a stream is not supported.", param="stream"
        )
    found = await anyio.to_thread.run_sync(store.require, response_id)
    return Response(found.body, media_type="application/json")


@delete(
    "/responses/{response_id:str}", status_code=HTTP_200_OK, responses=error_responses(401, 404)
)
async def delete_response(
    response_id: FromPath[str], store: NamedDependency[ResponseStore]
) -> DeletedResponse:
    """Delete a stored response (its items go with it)."""
    await anyio.to_thread.run_sync(store.delete, response_id)
    return DeletedResponse(id=response_id)


@get("/responses/{response_id:str}/input_items", responses=error_responses(400, 401, 404))
async def list_input_items(
    response_id: FromPath[str],
    store: NamedDependency[ResponseStore],
    after: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    order: FromQuery[Literal["asc", "desc"]] = "desc",
) -> InputItemList:
    """The items of a stored response's input, newest first by default (OpenAI's page)."""
    items, more = await anyio.to_thread.run_sync(
        lambda: store.input_items(response_id, after=after, limit=limit, order=order)
    )
    return InputItemList(
        data=items,
        first_id=items[0].get("id") if items else None,
        last_id=items[-1].get("id") if items else None,
        has_more=more,
    )
