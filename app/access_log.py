"""One structured log line per request, `x-request-id`, and `openai-processing-ms`.

The line is logfmt (`key=value`), easy for people and for log shippers; it names the
request id, route, the model that served it, status, token counts, time to first token,
duration, finish reason and whether the client left early. Prompt and reply text are not in it (see
`server.log_prompts` for the opt-in prompt log).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import Metrics, RequestStats

__all__ = ("AccessLog", "request_stats")

logger = logging.getLogger("llm_service.access")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def request_stats(scope: Scope) -> RequestStats | None:
    """The stats the middleware attached to this request (None outside it)."""
    stats = scope.get("state", {}).get("llm_stats")
    return stats if isinstance(stats, RequestStats) else None


def _request_id(scope: Scope) -> str:
    """The client's `x-request-id` when it is a sane token (it ends up in logs), else a
    fresh one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 128 and set(text) <= _ID_CHARS:
                return text
    return uuid.uuid4().hex


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else str(round(seconds * 1000))


class AccessLog:
    """Both halves of the access log, sharing one `Metrics`.

    `middleware` runs around routed requests: it stamps the arrival time and logs a
    request the client left before its response ended. `before_send` sees every
    response, routed or not (404, 405): it adds the headers and logs the request when
    its last body part goes out. Each request is logged once.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.middleware = _StampArrival(self)

    def stats(self, scope: Scope) -> RequestStats:
        stats = request_stats(scope)
        if stats is None:  # not routed: no middleware ran
            stats = RequestStats(_request_id(scope), time.perf_counter())
            scope.setdefault("state", {})["llm_stats"] = stats
        return stats

    async def before_send(self, message: Message, scope: Scope) -> None:
        if scope["type"] != ScopeType.HTTP:
            return
        stats = self.stats(scope)
        if message["type"] == "http.response.start":
            stats.status = message["status"]
            elapsed = round((time.perf_counter() - stats.started) * 1000)
            headers: list[Any] = list(message.get("headers", ()))
            headers += [
                (b"x-request-id", stats.request_id.encode()),
                (b"openai-processing-ms", str(elapsed).encode()),
            ]
            message["headers"] = headers
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            self.log(stats, scope, disconnected=stats.status == 499)

    def log(self, stats: RequestStats, scope: Scope, *, disconnected: bool) -> None:
        if stats.logged:
            return
        stats.logged = True
        route = str(scope.get("path_template") or "other")
        self.metrics.requests.labels(route, str(stats.status or 499), stats.model).inc()
        if stats.refused is not None:
            self.metrics.refusals.labels(stats.refused).inc()
        logger.info(
            "request_id=%s method=%s route=%s model=%s status=%s prompt_tokens=%s cached_tokens=%s "
            "completion_tokens=%s ttft_ms=%s duration_ms=%s finish_reason=%s "
            "draft_acceptance=%s client_disconnected=%s",
            stats.request_id,
            scope.get("method", "-"),
            route,
            stats.model or "-",
            stats.status or "-",
            "-" if stats.prompt_tokens is None else stats.prompt_tokens,
            "-" if stats.cached_tokens is None else stats.cached_tokens,
            "-" if stats.completion_tokens is None else stats.completion_tokens,
            _ms(stats.ttft),
            _ms(time.perf_counter() - stats.started),
            stats.finish_reason or "-",
            _acceptance(stats),
            str(disconnected).lower(),
        )


def _acceptance(stats: RequestStats) -> str:
    """Share of speculative decoding's guesses that stood, or `-` if none were made."""
    if not stats.draft_tokens:
        return "-"
    return f"{stats.accepted_draft_tokens / stats.draft_tokens:.2f}"


class _StampArrival(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, log: AccessLog) -> None:
        self.log = log

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        stats = self.log.stats(scope)
        try:
            await next_app(scope, receive, send)
        finally:  # the response did not end: the client left, or the stream broke
            self.log.log(stats, scope, disconnected=True)
            for lease in stats.leases:  # its last byte is out: the model may go idle
                lease.release()
