"""`ModelRouter`: the catalog's models loaded on demand, one engine each, in one process.

Every route that generates or counts asks `acquire(model)` for the engine of the model a
request names, and holds a lease on it until its response has ended (the access-log
middleware releases it, after the last byte of a stream). A model that is not loaded is
loaded first, once however many requests wait for it (`app.models.lifecycle` carries
loads and unloads out).

Room is made by unloading the least recently used idle models (no lease, nothing running
or queued, loaded at least `models.min_resident` seconds ago) until both
`models.max_loaded` and `models.max_memory` hold. When nothing can go, the request waits,
counted against `server.queue_size` and its `limits.request_timeout`, then gets 503 with
Retry-After; requests for a loaded model never wait behind it. The churn bound: a model
alternated with more models than fit still keeps `min_resident` seconds of use.

All state is touched on the event loop only; engines load and close in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

import anyio

from app.engine.base import Engine
from app.engine.cpu_turns import CpuTurns
from app.models.lifecycle import EngineFactory, Residents
from app.models.memory import (
    Footprint,
    ModelFileError,
    estimate_footprint,
    physical_memory,
)
from app.models.resident import Lease, Resident, Served
from config.catalog import Catalog, CatalogModel
from config.settings import Settings
from conversion.errors import (
    ModelBusyError,
    ModelLoadFailedError,
    ModelNotFoundError,
    ModelNotReadyError,
    ServerBusyError,
)

__all__ = ("EngineFactory", "ModelRouter")

logger = logging.getLogger("llm_service.models")

MEMORY_SHARE = 0.7
"""Share of physical memory the resident models may take unless `models.max_memory` says."""
_POLL = 0.25
"""Seconds between looks at engines' activity, which changes without telling the router."""


class ModelRouter:
    """See the module docstring. `start()` in the app's lifespan, `close()` at its end."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        make_engine: EngineFactory,
        *,
        default_engine: Engine | None = None,
        turns: CpuTurns | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.max_memory = settings.models.max_memory or int(physical_memory() * MEMORY_SHARE)
        self.residents = Residents(
            make_engine, turns if turns is not None else CpuTurns(), catalog.default_id
        )
        self.draining = False
        self._given_default = default_engine
        self._room_waiters = 0
        self._footprints: dict[tuple[str, tuple[int, int]], Footprint] = {}

    # --- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Load the default model now (a given engine is already the default's) and
        begin unloading models idle past their `keep_alive`."""
        default = self.catalog.default
        if self._given_default is not None:
            self.residents.adopt(default, self._given_default)
        else:
            with contextlib.suppress(ModelLoadFailedError):  # recorded: the server stops
                self.residents.begin_load(default, [], await self._estimate(default))
        self.residents.spawn(self._expire_idle())
        self.residents.spawn(anyio.to_thread.run_sync(self._estimate_all))

    def _estimate_all(self) -> None:
        """Read every catalog model's header now, in a thread: a first load must not do
        it while other models stream (Gemma 3's 262k vocabulary strings hold the GIL for
        a while, and every stream's step needs it)."""
        for model in list(self.catalog.models.values()):
            self.footprint(model)

    async def default_settled(self) -> str:
        """Wait until the default model's first load has ended; its state then."""
        resident = self.residents.by_id.get(self.catalog.default_id)
        if resident is None:
            return "unloaded"
        await resident.settled.wait()
        return resident.state

    @property
    def default_failed(self) -> bool:
        return self.residents.default_failed

    def default_engine(self) -> Engine | None:
        """The default model's engine while it is loading or loaded."""
        resident = self.residents.by_id.get(self.catalog.default_id)
        return resident.engine if resident is not None else None

    def engines(self) -> list[Engine]:
        return self.residents.engines()

    def state_of(self, model_id: str) -> Resident | None:
        return self.residents.by_id.get(model_id)

    def drain(self, grace: float) -> None:
        """Shutting down: no more loads; running generations get `grace` seconds."""
        self.draining = True
        for engine in self.engines():
            engine.drain(grace)

    async def close(self) -> None:
        await self.residents.close()

    # --- requests -----------------------------------------------------------------------

    def resolve(self, name: str | None) -> CatalogModel:
        """The catalog model a request's `model` names; an unknown name is the default
        model's request, unless `models.unknown = "error"`."""
        found = self.catalog.find(name)
        if found is not None:
            return found
        if self.settings.models.unknown == "error" and name:
            raise ModelNotFoundError(
                f"The model '{name}' does not exist. GET /v1/models lists the models served.",
                param="model",
            )
        return self.catalog.default

    async def acquire(self, name: str | None, leases: list[Lease]) -> Served:
        """The engine for `name`, loaded if need be, with a lease added to `leases`."""
        return await self.acquire_model(self.resolve(name), leases)

    async def acquire_model(self, model: CatalogModel, leases: list[Lease]) -> Served:
        timeout = self.settings.limits.request_timeout
        deadline = time.monotonic() + (timeout if timeout is not None else math.inf)
        residents = self.residents
        waiting = False
        try:
            while True:
                if self.draining:
                    raise ModelNotReadyError("The server is shutting down.")
                resident = residents.by_id.get(model.id)
                if resident is not None and resident.state == "loaded":
                    assert resident.engine is not None
                    resident.leases += 1
                    resident.last_used = time.monotonic()
                    leases.append(Lease(resident, residents.released))
                    return Served(model, resident.engine)
                if resident is not None and resident.state == "failed":
                    if resident.signature == model.signature():
                        raise resident.failure()
                    del residents.by_id[model.id]  # its file changed: try it again
                    continue
                if resident is not None:  # loading or unloading: wait for it to settle
                    await self._wait(resident.settled, deadline, model)
                    continue
                estimate = await self._estimate(model)  # raises, recording why, if it cannot fit
                if model.id in residents.by_id:  # another request began loading it meanwhile
                    continue
                victims = self._victims(estimate)
                if victims is None:
                    if not waiting:
                        self._check_queue(model)
                        waiting = True
                        self._room_waiters += 1
                    await self._wait(residents.changed, deadline, model)
                    continue
                residents.begin_load(model, victims, estimate)
        finally:
            if waiting:
                self._room_waiters -= 1

    async def load(self, model_id: str) -> Resident:
        """Load a model as a request for it would (`POST /models/load`)."""
        model = await self.require(model_id)
        leases: list[Lease] = []
        await self.acquire_model(model, leases)
        for lease in leases:
            lease.release()
        return leases[0].resident

    async def unload(self, model_id: str) -> bool:
        """Unload a model now (`POST /models/unload`); False if it was not loaded, 409
        while requests use it."""
        model = await self.require(model_id)
        resident = self.residents.by_id.get(model.id)
        if resident is None or resident.state == "failed":
            if resident is not None:
                del self.residents.by_id[model.id]  # forget the failure: try again
            return False
        if resident.state != "loaded":
            await resident.settled.wait()
            return await self.unload(model_id)
        if resident.busy():
            raise ModelBusyError(
                f"The model '{model.id}' is serving requests; unload it once they end.",
                param="model",
            )
        await self.residents.unload(resident, "request")
        return True

    async def require(self, model_id: str) -> CatalogModel:
        """A catalog model by id or alias (admin routes: an unknown one is an error); a
        name not found reads the download folder again first, in a thread."""
        found = self.catalog.find(model_id)
        if found is None:
            found = (await anyio.to_thread.run_sync(self.rescan)).find(model_id)
        if found is None:
            raise ModelNotFoundError(
                f"The model '{model_id}' is not in the catalog.", param="model"
            )
        return found

    def rescan(self) -> Catalog:
        """Read the download folder again (new downloads appear, deleted ones go)."""
        self.catalog = self.catalog.rescan(self.settings)
        return self.catalog

    # --- room -----------------------------------------------------------------------------

    def footprint(self, model: CatalogModel) -> Footprint | None:
        """The model's estimated memory and context, from its GGUF's header (read once
        per file version and settings); None when the file cannot be read."""
        try:
            return self._footprint(model)
        except ModelFileError:
            return None

    def _footprint(self, model: CatalogModel) -> Footprint:
        settings = model.settings.model
        key = (model.id, model.signature())
        known = self._footprints.get(key)
        if known is None:
            known = estimate_footprint(
                model.path,
                n_ctx=settings.n_ctx,
                n_parallel=settings.n_parallel,
                kv_cache_type=settings.kv_cache_type,
                embeddings=settings.embeddings,
                n_batch=settings.n_batch,
                flash_attn=settings.flash_attn == "on"
                or (settings.flash_attn == "auto" and settings.batch_invariant),
            )
            self._footprints[key] = known
        return known

    async def _estimate(self, model: CatalogModel) -> int:
        """Its estimate in bytes; `ModelLoadFailedError` (recorded) when it cannot be read
        or cannot fit even alone. The header is read in a thread: Gemma 3's holds 262k
        vocabulary strings, and the event loop is streaming other models' replies."""
        settings = model.settings.model
        try:
            footprint = await anyio.to_thread.run_sync(self._footprint, model)
        except ModelFileError as exc:
            raise self.residents.fail(model, str(exc)) from exc
        if footprint.total > self.max_memory:
            raise self.residents.fail(
                model,
                f"it needs about {footprint.total / 2**20:,.0f} MiB (weights"
                f" {footprint.weights / 2**20:,.0f}, KV cache {footprint.kv_cache / 2**20:,.0f}"
                f" for {settings.n_parallel} x {footprint.context_length} tokens), more than"
                f" models.max_memory ({self.max_memory / 2**20:,.0f} MiB) even alone; lower"
                " its n_ctx or n_parallel, or raise models.max_memory",
            )
        return footprint.total

    def _victims(self, estimate: int) -> list[Resident] | None:
        """The idle models to unload, least recently used first, so that one more model
        of `estimate` bytes fits; None when that cannot be done now."""
        live = [r for r in self.residents.by_id.values() if r.state != "failed"]
        over_count = len(live) + 1 - self.settings.models.max_loaded
        over_bytes = sum(r.charge for r in live) + estimate - self.max_memory
        now = time.monotonic()
        victims: list[Resident] = []
        for resident in sorted(live, key=lambda r: r.last_used):
            if over_count <= 0 and over_bytes <= 0:
                break
            if (
                resident.state == "loaded"
                and not resident.busy()
                and now - resident.loaded_at >= self.settings.models.min_resident
            ):
                victims.append(resident)
                over_count -= 1
                over_bytes -= resident.charge
        return victims if over_count <= 0 and over_bytes <= 0 else None

    # --- waiting --------------------------------------------------------------------------

    async def _expire_idle(self) -> None:
        """Unload models other than the default idle past their `keep_alive`."""
        while True:
            await asyncio.sleep(1.0)
            try:
                await self._unload_idle()
            except Exception:  # never let one failure end the expiry for good
                logger.exception("Unloading idle models failed")

    async def _unload_idle(self) -> None:
        now = time.monotonic()
        for resident in list(self.residents.by_id.values()):
            keep = resident.model.keep_alive
            if (
                keep is not None
                and resident.state == "loaded"
                and resident.model.id != self.catalog.default_id
                and not resident.busy()
                and now - resident.last_used >= keep
            ):
                await self.residents.unload(resident, "idle")

    async def _wait(self, event: asyncio.Event, deadline: float, model: CatalogModel) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            resident = self.residents.by_id.get(model.id)
            if resident is not None and resident.state == "loading":
                raise ModelNotReadyError(
                    f"The model '{model.id}' is still loading; try again shortly.",
                    retry_after=5.0,
                )
            raise ServerBusyError(
                f"The model '{model.id}' could not be loaded in time: the loaded models"
                " are all busy and no more fit (models.max_loaded, models.max_memory).",
                retry_after=10.0,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), min(_POLL, left))

    def _check_queue(self, model: CatalogModel) -> None:
        if self._room_waiters >= self.settings.server.queue_size:
            raise ServerBusyError(
                f"Too many requests wait for a model to load ('{model.id}' among them).",
                retry_after=10.0,
            )
