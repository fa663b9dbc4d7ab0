"""How a route gets the model a request names: `serve(models, request, name)`.

The lease it takes lives in the request's access-log record, whose middleware releases
it after the response's last byte, streamed or not, so a model is never unloaded under
a reply and never kept for one that has ended.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import anyio
import msgspec
from litestar import Request

from app.access_log import request_stats
from app.models.registry import ModelRouter
from app.models.resident import Served
from app.store import ResponseStore

__all__ = ("continued_model", "serve")

_WORTH_ADJUSTING = 0.05
"""Seconds: shorter waits (a model already loaded) leave the settings as they are."""


async def serve(models: ModelRouter, request: Request[Any, Any, Any], name: str | None) -> Served:
    """The engine and settings of the model `name` picks (loading it if need be)."""
    stats = request_stats(request.scope)
    if stats is None:  # every routed request passes the access-log middleware
        raise RuntimeError("serve() outside the access-log middleware would leak its lease")
    served = await models.acquire(name, stats.leases)
    stats.model = served.model.id
    return _minus_wait(served, time.perf_counter() - stats.started)


def _minus_wait(served: Served, waited: float) -> Served:
    """`limits.request_timeout` counts from the request's arrival: a wait for the model to
    load (or for room to load it) comes off what its generation may take."""
    limits = served.settings.limits
    if limits.request_timeout is None or waited < _WORTH_ADJUSTING:
        return served
    left = max(limits.request_timeout - waited, _WORTH_ADJUSTING)
    settings = msgspec.structs.replace(
        served.settings, limits=msgspec.structs.replace(limits, request_timeout=left)
    )
    model = dataclasses.replace(served.model, settings=settings)
    return Served(model, served.engine)


async def continued_model(
    models: ModelRouter, store: ResponseStore, name: str | None, previous_id: str | None
) -> str | None:
    """The model a Responses request runs on: the one it names, if the catalog has it;
    else, continuing a stored response, the model that wrote that one (a client that
    sends `gpt-4o` with `previous_response_id` stays with the conversation's model)."""
    if previous_id is None or models.catalog.find(name) is not None:
        return name
    earlier = await anyio.to_thread.run_sync(_stored_model, store, previous_id)
    return earlier if earlier is not None and models.catalog.find(earlier) else name


def _stored_model(store: ResponseStore, response_id: str) -> str | None:
    """The model a stored response names (None if unknown: the request's own handling
    then answers 400, naming `previous_response_id`)."""
    stored = store.get(response_id)
    model = json.loads(stored.body).get("model") if stored is not None else None
    return model if isinstance(model, str) else None
