"""`GET /metrics`: Prometheus text format, outside /v1 like /health (no API key)."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST

from app.metrics import Metrics

__all__ = ("metrics",)


@get("/metrics", sync_to_thread=False, include_in_schema=False)
def metrics(metrics: NamedDependency[Metrics]) -> Response[bytes]:
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
