"""`/v1/embeddings`: inputs tokenized like prompts, vectors from `Engine.embed`."""

from __future__ import annotations

import threading
from typing import Any

import anyio
from litestar import Request

from app.disconnect import unless_disconnected
from app.engine.base import Engine
from conversion.embeddings import (
    EmbeddingInput,
    EmbeddingList,
    EmbeddingRequest,
    check_dimensions,
    check_request_tokens,
    embedding_list,
    split_input,
)

__all__ = ("create_embeddings",)


def _tokens(engine: Engine, items: list[EmbeddingInput]) -> list[list[int]]:
    """Texts are tokenized as a prompt is (begin-of-text token included); token arrays
    are taken as they are."""
    return [
        engine.tokenize_text(item, add_special=True) if isinstance(item, str) else item
        for item in items
    ]


async def create_embeddings(
    request: Request[Any, Any, Any], body: EmbeddingRequest, engine: Engine
) -> EmbeddingList:
    """Embed `input`, mean-pooled and normalized to unit length. A client that leaves
    frees the embedder at the next piece of input."""
    items = split_input(body.input)
    if (size := engine.embedding_size) is not None:  # else `embed` says why not
        check_dimensions(body.dimensions, size)
    tokens = await anyio.to_thread.run_sync(_tokens, engine, items)
    prompt_tokens = sum(len(item) for item in tokens)
    check_request_tokens(prompt_tokens)
    abandoned = threading.Event()
    work = anyio.to_thread.run_sync(
        lambda: engine.embed(tokens, abandoned.is_set), abandon_on_cancel=True
    )
    try:
        vectors = await unless_disconnected(request, work)
    finally:
        abandoned.set()
    return embedding_list(vectors, prompt_tokens, engine.model_id, body.encoding_format)
