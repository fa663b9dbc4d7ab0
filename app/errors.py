"""Every exception, on every route, becomes OpenAI's error envelope.

`to_openai_error` is the one place that decides how an exception is answered;
`EXCEPTION_HANDLERS` plugs it into Litestar, and `app.sse.error_event` reuses it for
failures after a stream has started. Anthropic's routes answer the same classification
in Anthropic's envelope (`ANTHROPIC_EXCEPTION_HANDLERS`).
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    SerializationException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap

from app.access_log import request_stats
from app.disconnect import ClientDisconnectedError
from conversion.anthropic.output import error_body
from conversion.errors import InternalError, InvalidRequestError, NotFoundError, OpenAIError
from conversion.wire import ErrorBody

__all__ = (
    "ANTHROPIC_EXCEPTION_HANDLERS",
    "EXCEPTION_HANDLERS",
    "V1_PATHS",
    "error_responses",
    "error_response",
    "to_openai_error",
)

logger = logging.getLogger("llm_service.errors")

_ERROR_MEANINGS = {
    400: "Invalid request (the error names the field)",
    401: "Missing or wrong API key (when the server has keys)",
    403: "Turned off by the server's settings",
    404: "No such model, stored response or path",
    409: "The model is serving requests (it cannot be unloaded now)",
    413: "Request body too large",
    500: "Server error, or the model could not be loaded (the error says why)",
    503: "Busy, loading or shutting down; retry after `Retry-After` seconds",
}


def error_responses(*codes: int, envelope: type[Any] = ErrorBody) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the error statuses a route answers, in the route's error
    envelope (OpenAI's unless told), replacing Litestar's default validation-error
    shape in the schema."""
    return {
        code: ResponseSpec(data_container=envelope, description=_ERROR_MEANINGS[code])
        for code in codes
    }


V1_PATHS = (
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/models",
    "/responses",
    "/messages",
)
"""Paths served under /v1; a request for one of them without /v1 gets a hint."""


def _validation_error(exc: ValidationException) -> InvalidRequestError:
    """msgspec's message and path (`messages[0].role`) -> OpenAI's message and `param`."""
    problems = exc.extra if isinstance(exc.extra, list) else []
    if not problems:
        return InvalidRequestError(str(exc.detail))
    first = problems[0]
    message = str(first.get("message", exc.detail))
    key = first.get("key")
    param = str(key) if key and key != "data" else None
    if message.startswith("Object missing required field `"):
        field = message.split("`")[1]
        param = f"{param}.{field}" if param else field
        message = f"Missing required parameter: '{param}'."
    elif key == "data":  # the body itself: empty, or not a JSON object
        message = "The request body must be a JSON object."
    elif param is not None:
        message = f"Invalid value for '{param}': {message}."
    return InvalidRequestError(message, param=param)


def _not_found(request: Request[Any, Any, Any]) -> NotFoundError:
    path = request.url.path
    message = f"Invalid URL ({request.method} {path})."
    bare = path.rstrip("/")
    if bare in V1_PATHS or bare.startswith("/models/"):
        message += (
            f" Did you mean /v1{bare}? The client's base_url must end with /v1, "
            f'e.g. base_url="{request.base_url}v1".'
        )
    return NotFoundError(message, code="unknown_url")


def to_openai_error(request: Request[Any, Any, Any] | None, exc: Exception) -> OpenAIError:
    """Classify any exception by its type; unknown ones are logged and become a 500."""
    if isinstance(exc, OpenAIError):
        return exc
    if isinstance(exc, ClientDisconnectedError):
        logger.info("Client disconnected before the response; its generation was stopped")
        return InvalidRequestError(
            "Client closed the request.", code="client_disconnected", status_code=499
        )
    if isinstance(exc, ValidationException):
        return _validation_error(exc)
    if isinstance(exc, NotFoundException) and request is not None:
        return _not_found(request)
    if isinstance(exc, MethodNotAllowedException) and request is not None:
        return InvalidRequestError(
            f"Method {request.method} is not allowed on {request.url.path}.",
            code="method_not_allowed",
            status_code=405,
        )
    if isinstance(exc, UnicodeDecodeError):  # raised by the JSON body decoder
        return InvalidRequestError(f"The request body is not valid UTF-8: {exc.reason}.")
    if isinstance(exc, RecursionError):  # ditto, for absurdly deep nesting
        return InvalidRequestError("The request body's JSON is nested too deeply.")
    if isinstance(exc, HTTPException) and 400 <= exc.status_code < 500:
        return InvalidRequestError(_client_message(exc), status_code=exc.status_code)
    logger.error("Unhandled error", exc_info=exc)
    return InternalError("The server had an error while processing your request.")


def _client_message(exc: HTTPException) -> str:
    if isinstance(exc.__cause__, SerializationException):
        return f"We could not parse the JSON body of your request: {exc.detail}."
    return str(exc.detail)


def _classified(request: Request[Any, Any, Any] | None, exc: Exception) -> OpenAIError:
    """`to_openai_error`, and a refusal's code (429, 503) noted for the access log's count."""
    error = to_openai_error(request, exc)
    stats = request_stats(request.scope) if request is not None else None
    if stats is not None and error.status_code in (429, 503):
        stats.refused = error.code
    return error


def error_response(request: Request[Any, Any, Any] | None, exc: Exception) -> Response[ErrorBody]:
    error = _classified(request, exc)
    return Response(
        error.to_body(),
        status_code=error.status_code,
        headers=error.headers,
        media_type=MediaType.JSON,
    )


def _handle(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    return error_response(request, exc)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {Exception: _handle}


def _anthropic(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The same classification, in Anthropic's envelope (for its routes)."""
    error = _classified(request, exc)
    return Response(
        error_body(error),
        status_code=error.status_code,
        headers=error.headers,
        media_type=MediaType.JSON,
    )


ANTHROPIC_EXCEPTION_HANDLERS: ExceptionHandlersMap = {Exception: _anthropic}
