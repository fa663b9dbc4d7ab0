"""`GET /health`: 200 once the model can serve; 503 while loading, 500 if loading failed."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from app.engine.base import Engine
from app.errors import error_responses

__all__ = ("health",)


@get("/health", sync_to_thread=False, responses=error_responses(500, 503))
def health(engine: NamedDependency[Engine]) -> dict[str, str]:
    """Readiness: never waits behind a generation (reads the engine's state only)."""
    engine.check_ready()
    return {"status": "ok", "model": engine.model_id}
