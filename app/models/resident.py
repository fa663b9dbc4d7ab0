"""What the router knows of one catalog model it has loaded, is loading or failed to load,
and the lease a request holds on it while it is served."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from app.engine.base import Engine
from config.catalog import CatalogModel
from config.settings import Settings
from conversion.errors import ModelLoadFailedError

__all__ = ("Lease", "Resident", "ResidentState", "Served")

ResidentState = Literal["loading", "loaded", "unloading", "failed"]


@dataclass(eq=False)
class Resident:
    """A model with an engine (or a failure) in the router. Touched on the event loop
    only; the engine itself loads and closes in worker threads."""

    model: CatalogModel
    engine: Engine | None
    estimate: int
    """Bytes the model is expected to take (`app.models.memory`)."""
    state: ResidentState = "loading"
    measured: int | None = None
    """Resident memory the process grew by while it loaded."""
    loaded_at: float = 0.0
    last_used: float = field(default_factory=time.monotonic)
    leases: int = 0
    """Requests being served by it (from acquiring it to the end of their response)."""
    error: str | None = None
    signature: tuple[int, int] = (0, 0)
    """Its files' size and time when it failed: it is tried again once they change."""
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once loading (or unloading) has ended."""

    @property
    def charge(self) -> int:
        """Memory it is counted for: the larger of its estimate and what it took."""
        return max(self.estimate, self.measured or 0)

    def busy(self) -> bool:
        """Serving, or holding a generation: never unloaded."""
        engine = self.engine
        return self.leases > 0 or (
            engine is not None and (engine.active() > 0 or engine.queue_depth() > 0)
        )

    def failure(self) -> ModelLoadFailedError:
        return ModelLoadFailedError(
            f"The model '{self.model.id}' could not be loaded: {self.error}",
            param="model",
        )


@dataclass(frozen=True)
class Served:
    """What a request is served with: the engine and the settings of its model."""

    model: CatalogModel
    engine: Engine

    @property
    def settings(self) -> Settings:
        return self.model.settings


@dataclass(eq=False)
class Lease:
    """A request's hold on a model; `release()` once its response has ended (safe twice)."""

    resident: Resident
    on_release: Callable[[Resident], None]
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.on_release(self.resident)
