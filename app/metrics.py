"""Prometheus metrics (`GET /metrics`) and the per-request numbers the access log prints.

One registry per app (no module-level collectors), so two apps in one process, as in
the tests, never share counts. Token events pass through `observe`, which times them
once for both the histograms and the request's log line.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conversion.generation import Finished, GenerationEvent, TextDelta

if TYPE_CHECKING:
    from app.models.registry import ModelRouter
    from app.models.resident import Lease

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
    model: str = ""
    """The catalog id of the model that served it ("" for routes without one)."""
    leases: list[Lease] = field(default_factory=list)
    """Holds on models, released once the response has ended (`app.access_log`)."""


class Metrics:
    """The app's collectors, labelled by the model that served each request. Queue
    depth, active generations and the models' state are read from the router when
    scraped, so they cost nothing per request."""

    def __init__(self, models: ModelRouter) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        m = ["model"]
        self.requests = Counter(
            "llm_requests",
            "HTTP requests by route, status and model",
            ["route", "status", "model"],
            registry=r,
        )
        self.prompt_tokens = Counter("llm_prompt_tokens", "Prompt tokens", m, registry=r)
        self.cached_tokens = Counter(
            "llm_cached_prompt_tokens", "Prompt tokens reused from the KV cache", m, registry=r
        )
        self.completion_tokens = Counter(
            "llm_completion_tokens", "Completion tokens", m, registry=r
        )
        self.draft_tokens = Counter(
            "llm_draft_tokens", "Tokens guessed by speculative decoding", m, registry=r
        )
        self.accepted_draft_tokens = Counter(
            "llm_draft_tokens_accepted",
            "Guessed tokens that stood (each saved a decode step)",
            m,
            registry=r,
        )
        self.ttft = Histogram(
            "llm_time_to_first_token_seconds",
            "Request arrival to first text (a model's load included)",
            m,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "llm_inter_token_latency_seconds",
            "Gap between text events of one reply",
            m,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens_per_second = Histogram(
            "llm_generation_tokens_per_second",
            "Completion tokens per second of each reply, after its first token",
            m,
            buckets=_RATE_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "llm_queue_wait_seconds",
            "Time a generation waited in the queue for a slot",
            m,
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
        queue = Gauge("llm_queue_depth", "Requests waiting for a slot, all models", registry=r)
        queue.set_function(lambda: float(sum(e.queue_depth() for e in models.engines())))
        active = Gauge("llm_active_generations", "Requests generating now, all models", registry=r)
        active.set_function(lambda: float(sum(e.active() for e in models.engines())))
        r.register(_ModelCollector(models))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ModelCollector(Collector):
    """Per-model gauges and counters, read from the router when scraped."""

    def __init__(self, models: ModelRouter) -> None:
        self.models = models

    def collect(self) -> Iterator[Metric]:
        router = self.models
        state = GaugeMetricFamily(
            "llm_model_state", "1 for the state each catalog model is in", labels=["model", "state"]
        )
        memory = GaugeMetricFamily(
            "llm_model_memory_bytes",
            "A resident model's memory: its estimate from the GGUF, and what loading took",
            labels=["model", "kind"],
        )
        load = GaugeMetricFamily(
            "llm_model_load_seconds", "Time a resident model took to load", labels=["model"]
        )
        queue = GaugeMetricFamily(
            "llm_model_queue_depth", "Requests waiting for a slot, by model", labels=["model"]
        )
        for model in router.catalog.models.values():
            resident = router.state_of(model.id)
            state.add_metric([model.id, resident.state if resident else "unloaded"], 1.0)
            if resident is None or resident.engine is None:
                continue
            memory.add_metric([model.id, "estimate"], float(resident.estimate))
            if resident.measured is not None:
                memory.add_metric([model.id, "measured"], float(resident.measured))
            load.add_metric([model.id], resident.engine.load_seconds)
            queue.add_metric([model.id], float(resident.engine.queue_depth()))
        loads = CounterMetricFamily(
            "llm_model_loads", "Model loads by outcome", labels=["model", "outcome"]
        )
        for (model_id, outcome), count in router.residents.loads.items():
            loads.add_metric([model_id, outcome], float(count))
        unloads = CounterMetricFamily(
            "llm_model_unloads",
            "Models unloaded, by reason (evicted: to make room; idle: keep_alive; request)",
            labels=["model", "reason"],
        )
        for (model_id, reason), count in router.residents.unloads.items():
            unloads.add_metric([model_id, reason], float(count))
        yield from (state, memory, load, queue, loads, unloads)


async def observe(
    events: AsyncIterator[GenerationEvent], stats: RequestStats, metrics: Metrics
) -> AsyncIterator[GenerationEvent]:
    """Pass one generation's events through, timing them into `stats` and `metrics`.

    A request with several choices runs several generations: the log line adds their
    token counts up and keeps the first token's time."""
    first = last = None
    label = stats.model
    async for item in events:
        now = time.perf_counter()
        if isinstance(item, TextDelta):
            if first is None:
                first = now
                metrics.ttft.labels(label).observe(now - stats.started)
                if stats.ttft is None:
                    stats.ttft = now - stats.started
            elif last is not None:
                metrics.itl.labels(label).observe(now - last)
            last = now
        elif isinstance(item, Finished):
            metrics.queue_wait.labels(label).observe(item.queued_seconds)
            stats.prompt_tokens = (stats.prompt_tokens or 0) + item.prompt_tokens
            stats.cached_tokens = (stats.cached_tokens or 0) + item.cached_tokens
            stats.completion_tokens = (stats.completion_tokens or 0) + item.completion_tokens
            stats.draft_tokens += item.draft_tokens
            stats.accepted_draft_tokens += item.accepted_draft_tokens
            stats.finish_reason = item.finish_reason
            metrics.draft_tokens.labels(label).inc(item.draft_tokens)
            metrics.accepted_draft_tokens.labels(label).inc(item.accepted_draft_tokens)
            metrics.prompt_tokens.labels(label).inc(item.prompt_tokens)
            metrics.cached_tokens.labels(label).inc(item.cached_tokens)
            metrics.completion_tokens.labels(label).inc(item.completion_tokens)
            if first is not None and last is not None and last > first:
                metrics.tokens_per_second.labels(label).observe(
                    (item.completion_tokens - 1) / (last - first)
                )
        yield item
