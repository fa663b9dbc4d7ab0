"""`POST /v1/embeddings`: HTTP only; the logic is in `app.serving.embeddings`."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from app.errors import error_responses
from app.models.registry import ModelRouter
from app.routes.served import serve
from app.serving.embeddings import create_embeddings as embed
from conversion.embeddings import EmbeddingList, EmbeddingRequest

__all__ = ("create_embeddings",)


@post("/embeddings", status_code=HTTP_200_OK, responses=error_responses(400, 401, 413, 500, 503))
async def create_embeddings(
    request: Request[Any, Any, Any],
    data: JSONBody[EmbeddingRequest],
    models: NamedDependency[ModelRouter],
) -> EmbeddingList:
    """Embed `input` (OpenAI-compatible) with the served model, mean-pooled and
    normalized to unit length."""
    served = await serve(models, request, data.model)
    return await embed(request, data, served.engine)
