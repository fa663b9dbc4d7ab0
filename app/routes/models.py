"""`GET /v1/models` and `GET /v1/models/{id}`: the catalog and each model's state. Never
waits on a model (the download folder is read again, so a new download shows)."""

from __future__ import annotations

import anyio
import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath

from app.errors import error_responses
from app.models.registry import ModelRouter
from config.catalog import CatalogModel
from conversion.errors import ModelNotFoundError
from conversion.wire import Model, ModelList

__all__ = ("describe", "get_model", "list_models")

OWNER = "llm-service"


def describe(models: ModelRouter, model: CatalogModel) -> Model:
    """A catalog model as `/v1/models` shows it. Blocking (reads its GGUF's header once)."""
    resident = models.state_of(model.id)
    footprint = models.footprint(model)
    try:
        created = int(model.path.stat().st_mtime)
    except OSError:
        created = 0
    return Model(
        id=model.id,
        created=created,
        owned_by=OWNER,
        state=resident.state if resident is not None else "unloaded",
        aliases=list(model.aliases),
        context_length=footprint.context_length
        if footprint is not None
        else model.settings.model.n_ctx,
        default=model.id == models.catalog.default_id,
        error=resident.error if resident is not None and resident.error else msgspec.UNSET,
    )


@get("/models", responses=error_responses(401))
async def list_models(models: NamedDependency[ModelRouter]) -> ModelList:
    """Every model this server can serve, loaded or not, the default first."""
    catalog = await anyio.to_thread.run_sync(models.rescan)
    described = await anyio.to_thread.run_sync(
        lambda: [describe(models, m) for m in catalog.models.values()]
    )
    return ModelList(data=sorted(described, key=lambda m: not m.default))


@get("/models/{model_id:path}", responses=error_responses(401, 404))
async def get_model(model_id: FromPath[str], models: NamedDependency[ModelRouter]) -> Model:
    """Describe one model by id or alias; ids may contain `/`."""
    wanted = model_id.lstrip("/")
    found = models.catalog.find(wanted) or (await anyio.to_thread.run_sync(models.rescan)).find(
        wanted
    )
    if found is None:
        raise ModelNotFoundError(
            f"The model '{wanted}' does not exist. GET /v1/models lists the models served.",
            param="model",
        )
    return await anyio.to_thread.run_sync(describe, models, found)
