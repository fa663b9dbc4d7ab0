"""The configured bounds on one request (`limits.*`), checked before any model work.

Each breach is a 400 naming the field, so a client sees what to change; the body size
is enforced earlier, by the web framework (413).
"""

from __future__ import annotations

from config.settings import LimitSettings
from conversion.errors import InvalidRequestError
from conversion.wire import ChatCompletionRequest

__all__ = ("check_limits",)


def check_limits(req: ChatCompletionRequest, limits: LimitSettings) -> None:
    if len(req.messages) > limits.max_messages:
        raise InvalidRequestError(
            f"Too many messages: {len(req.messages)}; this server accepts at most "
            f"{limits.max_messages} per request.",
            param="messages",
        )
    for field in ("max_completion_tokens", "max_tokens"):
        value = getattr(req, field)
        if limits.max_tokens is not None and value is not None and value > limits.max_tokens:
            raise InvalidRequestError(
                f"{field} is too large: {value}. This server generates at most "
                f"{limits.max_tokens} completion tokens per request.",
                param=field,
            )
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or ())
    for index, stop in enumerate(stops):
        if len(stop) > limits.max_stop_length:
            where = "stop" if isinstance(req.stop, str) else f"stop[{index}]"
            raise InvalidRequestError(
                f"A stop string is too long: {len(stop)} characters; at most "
                f"{limits.max_stop_length} are accepted.",
                param=where,
            )
