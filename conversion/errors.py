"""The errors a request can end in, each carrying its HTTP status and OpenAI type/code.

Classified by exception class, never by message text: the class says the status, so a
handler needs no guessing. They live here, free of any web framework, because the
translation layer raises most of them and the engine raises the rest.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from conversion.wire import ErrorBody, ErrorDetail

__all__ = (
    "AuthenticationError",
    "ContextLengthExceededError",
    "InternalError",
    "InvalidRequestError",
    "ModelBusyError",
    "ModelLoadFailedError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "NotFoundError",
    "OpenAIError",
    "PermissionDeniedError",
    "ServerBusyError",
)


class OpenAIError(Exception):
    """Base: an error answered with OpenAI's `{"error": {...}}` envelope."""

    status_code: int = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        if status_code is not None:
            self.status_code = status_code

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers (e.g. Retry-After)."""
        return {}

    def to_body(self) -> ErrorBody:
        return ErrorBody(
            error=ErrorDetail(
                message=self.message, type=self.error_type, param=self.param, code=self.code
            )
        )


class InvalidRequestError(OpenAIError):
    """A client mistake in the request: 400, the SDK raises `BadRequestError`."""

    status_code = 400
    error_type = "invalid_request_error"


class ContextLengthExceededError(InvalidRequestError):
    default_code = "context_length_exceeded"


class AuthenticationError(OpenAIError):
    """A missing or wrong API key: 401, the SDK raises `AuthenticationError`."""

    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(OpenAIError):
    """403: a route this server's settings turn off (the openai SDK's
    `PermissionDeniedError`)."""

    status_code = 403
    error_type = "invalid_request_error"


class NotFoundError(OpenAIError):
    status_code = 404
    error_type = "invalid_request_error"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class ModelBusyError(OpenAIError):
    """409: a model asked to unload while requests are using it."""

    status_code = 409
    error_type = "invalid_request_error"
    default_code = "model_busy"


_MOST_RETRY_AFTER = 60.0
"""The longest wait a refusal asks for: the openai SDKs ignore a longer one (and fall
back to their own short backoff), so a longer queue is better told 60 s."""


class _RetryLater(OpenAIError):
    """503: the server is fine but cannot take this request now; try again after
    `retry_after` seconds, which `Retry-After` (whole seconds) and `retry-after-ms` say
    (the openai SDKs read the latter first, and wait as told up to 60 s)."""

    status_code = 503
    error_type = "server_error"
    retry_after: float = 1.0

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        if retry_after is not None:
            self.retry_after = min(max(retry_after, 0.1), _MOST_RETRY_AFTER)

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Retry-After": str(max(1, math.ceil(self.retry_after))),
            "retry-after-ms": str(round(self.retry_after * 1000)),
        }


class ServerBusyError(_RetryLater):
    default_code = "server_busy"


class KeyShareExceededError(_RetryLater):
    """429: this API key already holds its share of the queue (OpenAI answers a key
    over its limits with 429 `rate_limit_exceeded`, which its SDKs retry too)."""

    status_code = 429
    error_type = "requests"
    default_code = "rate_limit_exceeded"


class ModelNotReadyError(_RetryLater):
    default_code = "model_not_ready"


class ModelLoadFailedError(OpenAIError):
    """The model could not be loaded: not worth retrying (no Retry-After)."""

    status_code = 500
    error_type = "server_error"
    default_code = "model_load_failed"


class InternalError(OpenAIError):
    """Anything unexpected: logged with its traceback, answered without internals."""

    status_code = 500
    error_type = "server_error"
    default_code = "internal_error"
