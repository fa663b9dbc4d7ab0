"""`GET /health`: 200 once the model can serve, 503 (OpenAI envelope) before that."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from app.engine.base import Engine
from conversion.errors import ModelNotReadyError

__all__ = ("health",)


@get("/health", sync_to_thread=False)
def health(engine: NamedDependency[Engine]) -> dict[str, str]:
    """Readiness: never waits behind a generation (reads the engine's state only)."""
    if engine.state != "ready":
        raise ModelNotReadyError(f"The model is not ready (state: {engine.state}).")
    return {"status": "ok", "model": engine.model_id}
