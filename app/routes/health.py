"""`GET /health`: 200 while the default model is loaded or may be loaded on demand; 503
while it first loads, 500 if it failed."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from app.errors import error_responses
from app.models.registry import ModelRouter
from conversion.errors import ModelNotReadyError

__all__ = ("health",)


@get("/health", sync_to_thread=False, responses=error_responses(500, 503))
def health(models: NamedDependency[ModelRouter]) -> dict[str, str]:
    """Readiness: never waits behind a generation (reads the router's state only). A
    default model unloaded to make room for others is still servable: 200."""
    if models.draining:
        raise ModelNotReadyError("The server is shutting down.")
    default = models.catalog.default_id
    resident = models.state_of(default)
    if resident is not None and resident.state == "failed":
        raise resident.failure()
    if resident is not None and resident.state != "unloading" and resident.engine is not None:
        resident.engine.check_ready()
    return {"status": "ok", "model": default}
