"""Wire shapes and pure helpers of `POST /v1/embeddings`.

OpenAI's `input` is a string, a list of strings, one token array, or a list of token
arrays. msgspec cannot tell `list[str]` from `list[int]` in a union, so the schema
takes a list of strings-or-ints-or-token-arrays and `split_input` checks that a list
is all of one kind. Token arrays are used as sent (no begin-of-text token is added),
as OpenAI does; strings are tokenized like a prompt.

Errors name `input` when the request has one input and `input[i]` when it has
several (`conversion.inputs.item_param`), also for what only the engine can check
(token ids beyond the vocabulary, inputs longer than the context), so a client sees
which one to fix.

`base64` is what the openai SDK asks for when its caller sets no format: the
little-endian float32 bytes of the vector, which the SDK decodes back to floats.
"""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Annotated, Literal

from msgspec import Meta

from conversion.errors import InvalidRequestError
from conversion.inputs import TextOrTokens, TextsOrTokens, texts_or_token_lists
from conversion.wire import WireRequest, WireResponse

__all__ = (
    "MAX_INPUTS",
    "MAX_REQUEST_TOKENS",
    "Embedding",
    "EmbeddingInput",
    "EmbeddingList",
    "EmbeddingRequest",
    "EmbeddingUsage",
    "check_dimensions",
    "check_request_tokens",
    "embedding_list",
    "encode_embedding",
    "split_input",
)

MAX_INPUTS = 2048
"""OpenAI's bound on the inputs of one request."""
MAX_REQUEST_TOKENS = 300_000
"""OpenAI's bound on the tokens of all inputs of one request: it also bounds how long
one request holds the embedder (minutes on a laptop CPU at this size)."""

EmbeddingInput = TextOrTokens
"""One input: text to tokenize, or token ids to embed as they are."""


class EmbeddingRequest(WireRequest, kw_only=True):
    input: TextsOrTokens
    model: str | None = None
    """The catalog model to embed with (an unknown name is the default model)."""
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Meta(ge=1)] | None = None
    """Only the model's own embedding size is accepted (see `check_dimensions`)."""
    user: str | None = None


class Embedding(WireResponse, kw_only=True):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(WireResponse, kw_only=True):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(WireResponse, kw_only=True):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


def split_input(value: TextsOrTokens) -> list[EmbeddingInput]:
    """The request's inputs, one per vector to return; 400 for empty or mixed ones."""
    items = texts_or_token_lists(value, "input")
    if len(items) > MAX_INPUTS:
        raise InvalidRequestError(
            f"`input` has {len(items)} items; at most {MAX_INPUTS} are allowed.", param="input"
        )
    return items


def check_request_tokens(count: int) -> None:
    if count > MAX_REQUEST_TOKENS:
        raise InvalidRequestError(
            f"The inputs have {count} tokens in all; at most {MAX_REQUEST_TOKENS} are "
            "allowed per request.",
            param="input",
        )


def check_dimensions(dimensions: int | None, size: int) -> None:
    """`dimensions` may only restate the model's size: shortening the vectors of a model
    not trained for it (as OpenAI's text-embedding-3 models are) would make them
    meaningless, so a different value is refused rather than quietly ignored."""
    if dimensions is not None and dimensions != size:
        raise InvalidRequestError(
            f"This model's embeddings have {size} dimensions and cannot be shortened; "
            f"leave `dimensions` out or set it to {size}.",
            param="dimensions",
        )


def encode_embedding(
    vector: list[float], encoding_format: Literal["float", "base64"] | None
) -> list[float] | str:
    """The vector as JSON floats, or as base64 of its little-endian float32 bytes."""
    if encoding_format != "base64":
        return vector
    packed = array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def embedding_list(
    vectors: list[list[float]],
    prompt_tokens: int,
    model: str,
    encoding_format: Literal["float", "base64"] | None,
) -> EmbeddingList:
    """The response body: vectors in input order, and the tokens they took."""
    data = [
        Embedding(index=index, embedding=encode_embedding(vector, encoding_format))
        for index, vector in enumerate(vectors)
    ]
    usage = EmbeddingUsage(prompt_tokens=prompt_tokens, total_tokens=prompt_tokens)
    return EmbeddingList(data=data, model=model, usage=usage)
