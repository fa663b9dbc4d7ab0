"""`GET /v1/models` and `GET /v1/models/{id}`: answered from configuration, never from
the model, so they stay instant while a generation runs."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath

from app.engine.base import Engine
from app.errors import error_responses
from conversion.errors import ModelNotFoundError
from conversion.wire import Model, ModelList

__all__ = ("get_model", "list_models")

OWNER = "llm-service"


def _model(engine: Engine) -> Model:
    return Model(id=engine.model_id, created=engine.created, owned_by=OWNER)


@get("/models", sync_to_thread=False, responses=error_responses(401))
def list_models(engine: NamedDependency[Engine]) -> ModelList:
    """List the model this server serves (one)."""
    return ModelList(data=[_model(engine)])


@get("/models/{model_id:path}", sync_to_thread=False, responses=error_responses(401, 404))
def get_model(model_id: FromPath[str], engine: NamedDependency[Engine]) -> Model:
    """Describe one model; ids may contain `/` (e.g. `Qwen/Qwen2.5-0.5B-Instruct`)."""
    wanted = model_id.lstrip("/")
    if wanted != engine.model_id:
        raise ModelNotFoundError(
            f"The model '{wanted}' does not exist. This server serves '{engine.model_id}'.",
            param="model",
        )
    return _model(engine)
