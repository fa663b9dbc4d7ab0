"""The configured bounds on one request (`limits.*`), checked and applied before any
model work.

Each breach is a 400 naming the field, so a client sees what to change; the body size
is enforced earlier, by the web framework (413).
"""

from __future__ import annotations

import dataclasses

from config.settings import LimitSettings
from conversion.errors import InvalidRequestError
from conversion.generation import GenerationParams

__all__ = (
    "apply_limits",
    "check_choices",
    "check_max_tokens",
    "check_message_count",
    "check_stop_lengths",
)


def apply_limits(params: GenerationParams, limits: LimitSettings) -> GenerationParams:
    """The time limit, and the `max_tokens` ceiling for requests that set no cap (the
    explicit caps above it were refused by each protocol's `check_max_tokens`)."""
    max_tokens = params.max_tokens
    if limits.max_tokens is not None and (max_tokens is None or max_tokens > limits.max_tokens):
        max_tokens = limits.max_tokens
    return dataclasses.replace(params, time_limit=limits.request_timeout, max_tokens=max_tokens)


def check_choices(count: int, limits: LimitSettings, param: str = "n") -> None:
    """`count` generations for one request (n, times the prompts of a completion)."""
    if count > limits.max_choices:
        raise InvalidRequestError(
            f"Too many choices: this request asks for {count} generations; this server "
            f"makes at most {limits.max_choices} per request.",
            param=param,
        )


def check_message_count(count: int, limits: LimitSettings, param: str) -> None:
    if count > limits.max_messages:
        raise InvalidRequestError(
            f"Too many messages: {count}; this server accepts at most "
            f"{limits.max_messages} per request.",
            param=param,
        )


def check_max_tokens(field: str, value: int | None, limits: LimitSettings) -> None:
    if limits.max_tokens is not None and value is not None and value > limits.max_tokens:
        raise InvalidRequestError(
            f"{field} is too large: {value}. This server generates at most "
            f"{limits.max_tokens} completion tokens per request.",
            param=field,
        )


def check_stop_lengths(stop: str | list[str] | None, limits: LimitSettings) -> None:
    stops = [stop] if isinstance(stop, str) else list(stop or ())
    for index, text in enumerate(stops):
        if len(text) > limits.max_stop_length:
            raise InvalidRequestError(
                f"A stop string is too long: {len(text)} characters; at most "
                f"{limits.max_stop_length} are accepted.",
                param="stop" if isinstance(stop, str) else f"stop[{index}]",
            )
