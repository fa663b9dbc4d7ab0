"""`POST /models/load`, `/models/unload` and `/models/pull`: managing the catalog's
models by hand. Outside /v1 (as in llama.cpp's router), behind the same API keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import anyio
import msgspec
from litestar import post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK

from app.errors import error_responses
from app.models.pull import pull
from app.models.registry import ModelRouter
from app.routes.models import describe
from app.sse import StreamingOperation, event, sse_response
from config.settings import Settings
from conversion.errors import PermissionDeniedError
from conversion.wire import Model, ModelAction, PullRequest

__all__ = ("load_model", "pull_model", "unload_model")


@post("/models/load", status_code=HTTP_200_OK, responses=error_responses(400, 401, 404, 500, 503))
async def load_model(data: JSONBody[ModelAction], models: NamedDependency[ModelRouter]) -> Model:
    """Load a model (making room as a request would) and answer once it is loaded."""
    resident = await models.load(data.model)
    return await anyio.to_thread.run_sync(describe, models, resident.model)


@post("/models/unload", status_code=HTTP_200_OK, responses=error_responses(400, 401, 404, 409))
async def unload_model(data: JSONBody[ModelAction], models: NamedDependency[ModelRouter]) -> Model:
    """Unload a model now, freeing its memory; 409 while requests use it. Its next
    request loads it again."""
    model = await models.require(data.model)
    await models.unload(model.id)
    return await anyio.to_thread.run_sync(describe, models, model)


@post(
    "/models/pull",
    status_code=HTTP_200_OK,
    responses=error_responses(400, 401, 403),
    operation_class=StreamingOperation,
)
async def pull_model(
    data: JSONBody[PullRequest],
    models: NamedDependency[ModelRouter],
    settings: NamedDependency[Settings],
) -> Stream:
    """Download a GGUF from the Hugging Face Hub into the download folder (`model.dir`),
    with progress as server-sent events; once done it is in the catalog, under the id
    its last event names. Off unless `models.allow_pull` (it writes to disk on request).
    The Hub is huggingface-hub's (`HF_ENDPOINT`), never one a request names."""
    if not settings.models.allow_pull:
        raise PermissionDeniedError(
            "Pulling models is turned off on this server (models.allow_pull = false).",
            code="pull_disabled",
        )
    events = pull(data.repo, data.file, Path(settings.model.dir))  # bad input: 400 here

    async def body() -> AsyncIterator[bytes]:
        async with aclosing(events):
            async for update in events:
                if update.status == "done" and isinstance(update.path, str):
                    found = await anyio.to_thread.run_sync(_catalog_id, models, update.path)
                    update = msgspec.structs.replace(update, model=found)
                yield event(update)

    return sse_response(body())


def _catalog_id(models: ModelRouter, path: str) -> str | msgspec.UnsetType:
    catalog = models.rescan()
    pulled = Path(path).resolve()
    found = (m.id for m in catalog.models.values() if m.path.resolve() == pulled)
    return next(found, msgspec.UNSET)
