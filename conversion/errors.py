"""The errors a request can end in, each carrying its HTTP status and OpenAI type/code.

Classified by exception class, never by message text: the class says the status, so a
handler needs no guessing. They live here, free of any web framework, because the
translation layer raises most of them and the engine raises the rest.
"""

from __future__ import annotations

from typing import ClassVar

from conversion.wire import ErrorBody, ErrorDetail

__all__ = (
    "AuthenticationError",
    "ContextLengthExceededError",
    "InternalError",
    "InvalidRequestError",
    "ModelLoadFailedError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "NotFoundError",
    "OpenAIError",
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


class NotFoundError(OpenAIError):
    status_code = 404
    error_type = "invalid_request_error"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class _RetryLater(OpenAIError):
    """503: the server is fine but cannot take this request now; try again shortly."""

    status_code = 503
    error_type = "server_error"
    retry_after_seconds: ClassVar[int] = 1

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class ServerBusyError(_RetryLater):
    default_code = "server_busy"


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
