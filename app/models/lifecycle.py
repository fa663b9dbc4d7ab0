"""`Residents`: the models that have an engine (or a failure), and their transitions:
loading, settling, failing, unloading. Which model to load or unload, and when, is the
router's business (`app.models.registry`); this module carries it out.

Loads run in tasks of their own (a client that leaves does not abandon a load others
wait for), one at a time (the CPU, and a clean RSS difference), in worker threads, so
the event loop and other models' streams carry on. Everything here runs on the event
loop; engines load and close in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import anyio

from app.engine.base import Engine
from app.engine.cpu_turns import CpuTurns
from app.models.memory import process_rss
from app.models.resident import Resident
from config.catalog import CatalogModel
from config.loader import SettingsError
from conversion.errors import ModelLoadFailedError

__all__ = ("EngineFactory", "Residents")

logger = logging.getLogger("llm_service.models")

EngineFactory = Callable[[CatalogModel, CpuTurns], Engine]


class Residents:
    """Resident models by id, with the counts `/metrics` shows."""

    def __init__(self, make_engine: EngineFactory, turns: CpuTurns, default_id: str) -> None:
        self.by_id: dict[str, Resident] = {}
        self.turns = turns
        self.default_id = default_id
        self.default_failed = False
        """The default model failed to load (`python -m app` then exits with 1)."""
        self.loads: dict[tuple[str, str], int] = {}
        """(model, outcome: loaded|failed) -> count."""
        self.unloads: dict[tuple[str, str], int] = {}
        """(model, reason: evicted|idle|request) -> count."""
        self.changed = asyncio.Event()
        """Set (and replaced) whenever a model settles, goes, or is released."""
        self._make_engine = make_engine
        self._loading = asyncio.Lock()
        self._tasks: set[asyncio.Future[object]] = set()

    def engines(self) -> list[Engine]:
        return [r.engine for r in self.by_id.values() if r.engine is not None]

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def released(self, resident: Resident) -> None:
        """A request's lease ended (`Lease.release`)."""
        resident.leases -= 1
        resident.last_used = time.monotonic()
        self.notify()

    def spawn(self, work: Awaitable[object]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for engine in self.engines():
            await anyio.to_thread.run_sync(engine.close)
        self.by_id.clear()
        self.turns.close()

    # --- transitions ----------------------------------------------------------------------

    def fail(self, model: CatalogModel, why: str) -> ModelLoadFailedError:
        """Record that `model` cannot be loaded (until its file changes); the error its
        requests get."""
        resident = Resident(model, None, 0, "failed", error=why, signature=model.signature())
        resident.settled.set()
        self.by_id[model.id] = resident
        self._failed(model, why)
        return resident.failure()

    def adopt(self, model: CatalogModel, engine: Engine) -> None:
        """An engine made elsewhere (the tests' shared ones) as the model's: start it."""
        resident = Resident(model, engine, 0)
        self.by_id[model.id] = resident
        engine.start()
        self.spawn(self._settle_adopted(resident, engine))

    def begin_load(self, model: CatalogModel, victims: list[Resident], estimate: int) -> None:
        """Claim the model's place now (later requests wait on it), then unload the
        victims and load it in a task of its own."""
        try:
            engine = self._make_engine(model, self.turns)
        except (SettingsError, OSError) as exc:  # e.g. its template file gone since start-up
            self.fail(model, f"{type(exc).__name__}: {exc}")
            return
        for victim in victims:
            victim.state = "unloading"
            victim.settled = asyncio.Event()
        resident = Resident(model, engine, estimate)
        self.by_id[model.id] = resident
        self.spawn(self._load(resident, victims))

    async def unload(self, resident: Resident, reason: str) -> None:
        """Close its engine (in a thread: it joins the worker) and free its place."""
        resident.state = "unloading"
        engine = resident.engine
        before = process_rss()
        if engine is not None:
            await anyio.to_thread.run_sync(engine.close)
        self.by_id.pop(resident.model.id, None)
        self._count(self.unloads, resident.model.id, reason)
        logger.info(
            "Model %r unloaded (%s); the process's memory went from %.0f to %.0f MiB",
            resident.model.id,
            reason,
            before / 2**20,
            process_rss() / 2**20,
        )
        resident.settled.set()
        self.notify()

    async def _load(self, resident: Resident, victims: list[Resident]) -> None:
        for victim in victims:
            await self.unload(victim, "evicted")
        engine = resident.engine
        assert engine is not None
        async with self._loading:
            before = process_rss()
            engine.start()
            state = await anyio.to_thread.run_sync(engine.wait_loaded)
            grown = process_rss() - before
        self._settle(resident, engine, state, grown)

    async def _settle_adopted(self, resident: Resident, engine: Engine) -> None:
        state = await anyio.to_thread.run_sync(engine.wait_loaded)
        self._settle(resident, engine, state, None)

    def _settle(self, resident: Resident, engine: Engine, state: str, grown: int | None) -> None:
        """The load ended in `state`; `grown`: what the process's RSS grew by meanwhile."""
        model = resident.model
        if state == "ready":
            resident.state = "loaded"
            resident.loaded_at = resident.last_used = time.monotonic()
            resident.measured = grown
            self._count(self.loads, model.id, "loaded")
            if grown is not None and resident.estimate and grown > resident.estimate * 1.25:
                logger.warning(
                    "Model %r took %.0f MiB, more than its estimate of %.0f MiB",
                    model.id,
                    grown / 2**20,
                    resident.estimate / 2**20,
                )
        elif resident.state == "loading":  # failed (not closed by a shutdown)
            resident.state = "failed"
            resident.error = getattr(engine, "load_error", None) or "see the server log"
            resident.signature = model.signature()
            resident.engine = None
            self._failed(model, resident.error)
            self.spawn(anyio.to_thread.run_sync(engine.close))
        resident.settled.set()
        self.notify()

    def _failed(self, model: CatalogModel, why: str) -> None:
        self._count(self.loads, model.id, "failed")
        self.default_failed |= model.id == self.default_id
        logger.error("Model %r cannot be loaded: %s", model.id, why)

    @staticmethod
    def _count(counts: dict[tuple[str, str], int], model_id: str, label: str) -> None:
        counts[model_id, label] = counts.get((model_id, label), 0) + 1
