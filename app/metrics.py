"""Prometheus metrics (`GET /metrics`) and the per-request numbers the access log prints.

One registry per app (no module-level collectors), so two apps in one process, as in
the tests, never share counts. Token events pass through `observe`, which times them
once for both the histograms and the request's log line.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from app.engine.base import Engine
from conversion.generation import Finished, GenerationEvent, TextDelta

__all__ = ("Metrics", "RequestStats", "observe")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_RATE_BUCKETS = (1, 5, 10, 20, 40, 60, 80, 100, 150, 200, 400)
_WAIT_BUCKETS = (0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


@dataclass
class RequestStats:
    """What one request did, for its access-log line; filled as it runs."""

    request_id: str
    started: float
    """`time.perf_counter()` when the request arrived."""
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    completion_tokens: int | None = None
    ttft: float | None = None
    draft_tokens: int = 0
    """Tokens speculative decoding guessed for this request, and how many stood."""
    accepted_draft_tokens: int = 0
    finish_reason: str | None = None
    refused: str | None = None
    """The code of a 503 refusal (`server_busy`, `model_not_ready`)."""
    status: int = 0
    logged: bool = False


class Metrics:
    """The app's collectors. Queue depth and active generations are read from the
    engine when scraped, so they cost nothing per request."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llm_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.prompt_tokens = Counter("llm_prompt_tokens", "Prompt tokens", registry=r)
        self.cached_tokens = Counter(
            "llm_cached_prompt_tokens", "Prompt tokens reused from the KV cache", registry=r
        )
        self.completion_tokens = Counter("llm_completion_tokens", "Completion tokens", registry=r)
        self.draft_tokens = Counter(
            "llm_draft_tokens", "Tokens guessed by speculative decoding", registry=r
        )
        self.accepted_draft_tokens = Counter(
            "llm_draft_tokens_accepted",
            "Guessed tokens that stood (each saved a decode step)",
            registry=r,
        )
        self.ttft = Histogram(
            "llm_time_to_first_token_seconds",
            "Request arrival to first text",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "llm_inter_token_latency_seconds",
            "Gap between text events of one reply",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens_per_second = Histogram(
            "llm_generation_tokens_per_second",
            "Completion tokens per second of each reply, after its first token",
            buckets=_RATE_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "llm_queue_wait_seconds",
            "Time a generation waited in the queue for a slot",
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.refusals = Counter(
            "llm_refused_requests",
            "Requests refused for now, by cause (server_busy: the queue is full;"
            " rate_limit_exceeded: the key's share of it is; model_not_ready: loading or"
            " shutting down)",
            ["cause"],
            registry=r,
        )
        queue = Gauge("llm_queue_depth", "Requests waiting for a slot", registry=r)
        queue.set_function(lambda: float(engine.queue_depth()))
        active = Gauge("llm_active_generations", "Requests generating now", registry=r)
        active.set_function(lambda: float(engine.active()))
        load = Gauge("llm_model_load_seconds", "Time the model took to load", registry=r)
        load.set_function(lambda: engine.load_seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def observe(
    events: AsyncIterator[GenerationEvent], stats: RequestStats, metrics: Metrics
) -> AsyncIterator[GenerationEvent]:
    """Pass one generation's events through, timing them into `stats` and `metrics`.

    A request with several choices runs several generations: the log line adds their
    token counts up and keeps the first token's time."""
    first = last = None
    async for item in events:
        now = time.perf_counter()
        if isinstance(item, TextDelta):
            if first is None:
                first = now
                metrics.ttft.observe(now - stats.started)
                if stats.ttft is None:
                    stats.ttft = now - stats.started
            elif last is not None:
                metrics.itl.observe(now - last)
            last = now
        elif isinstance(item, Finished):
            metrics.queue_wait.observe(item.queued_seconds)
            stats.prompt_tokens = (stats.prompt_tokens or 0) + item.prompt_tokens
            stats.cached_tokens = (stats.cached_tokens or 0) + item.cached_tokens
            stats.completion_tokens = (stats.completion_tokens or 0) + item.completion_tokens
            stats.draft_tokens += item.draft_tokens
            stats.accepted_draft_tokens += item.accepted_draft_tokens
            stats.finish_reason = item.finish_reason
            metrics.draft_tokens.inc(item.draft_tokens)
            metrics.accepted_draft_tokens.inc(item.accepted_draft_tokens)
            metrics.prompt_tokens.inc(item.prompt_tokens)
            metrics.cached_tokens.inc(item.cached_tokens)
            metrics.completion_tokens.inc(item.completion_tokens)
            if first is not None and last is not None and last > first:
                metrics.tokens_per_second.observe((item.completion_tokens - 1) / (last - first))
        yield item
