"""`POST /v1/embeddings` with the real model: vector properties, input shapes, errors,
and the embedder's life cycle inside the engine."""

from __future__ import annotations

import asyncio
import base64
import math
import threading
import time
from array import array
from pathlib import Path
from typing import Any

import llama_cpp
import msgspec
import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from llama_cpp._internals import LlamaModel

from app.main import create_app
from conversion.errors import ModelNotReadyError
from tests.api.conftest import ClientFactory, started_client
from tests.api.test_chat_api import assert_error
from tests.api.test_engine import make_engine
from tests.conftest import TEST_THREADS, make_settings

Client = AsyncTestClient[Litestar]
N_EMBD = 576  # SmolLM2-135M's hidden size
N_CTX = 1024  # make_settings' context per slot
SMALL_CTX = 256
"""A context a quarter of make_settings' (llama.cpp rounds it up to a multiple of 256):
the test of its limit reads a quarter of the tokens (one CPU thread reads ~100 a
second)."""
SIMILAR = [  # (a, b, unrelated): a is closer to b than to unrelated, by a clear margin
    ("The cat sat on the mat.", "A cat was sitting on the rug.", "Tax filings are due in April."),
    (
        "How do I bake bread at home?",
        "What is a simple recipe for homemade bread?",
        "The stock market fell sharply today.",
    ),
    (
        "I love playing football with my friends.",
        "Soccer is my favourite sport to play with friends.",
        "The invoice must be paid within thirty days.",
    ),
]


async def embed(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/embeddings", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def vectors(client: Client, value: Any) -> list[list[float]]:
    data = (await embed(client, {"input": value}))["data"]
    assert [item["index"] for item in data] == list(range(len(data)))
    return [item["embedding"] for item in data]


async def tokens_of(client: Client, text: str) -> list[int]:
    counted = (await client.post("/tokenize", json={"content": text, "add_special": True})).json()
    result: list[int] = counted["tokens"]
    return result


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))  # unit vectors


async def test_vectors_have_the_model_size_and_unit_length(client: Client) -> None:
    body = await embed(client, {"input": ["Hello there.", "Embeddings, please!"], "model": "x"})
    assert body["object"] == "list"
    model = (await client.get("/v1/models")).json()["data"][0]["id"]
    assert body["model"] == model
    for item in body["data"]:
        assert item["object"] == "embedding"
        assert len(item["embedding"]) == N_EMBD
        assert math.sqrt(sum(x * x for x in item["embedding"])) == pytest.approx(1, abs=1e-5)
    assert body["data"][0]["embedding"] != body["data"][1]["embedding"]


async def test_identical_inputs_give_identical_vectors(client: Client) -> None:
    twice = await vectors(client, ["Same words.", "Same words."])
    alone = await vectors(client, "Same words.")
    assert twice[0] == twice[1] == alone[0]


async def test_a_batch_equals_each_input_embedded_alone_in_order(client: Client) -> None:
    texts = ["First, a short one.", "Second: " + "a longer sentence " * 20, "Third!"]
    together = await vectors(client, texts)
    for text, vector in zip(texts, together, strict=True):
        assert (await vectors(client, text))[0] == pytest.approx(vector, abs=1e-6)


@pytest.mark.parametrize(("a", "b", "unrelated"), SIMILAR)
async def test_similar_sentences_are_closer_than_unrelated_ones(
    client: Client, a: str, b: str, unrelated: str
) -> None:
    va, vb, vu = await vectors(client, [a, b, unrelated])
    assert cosine(va, vb) > cosine(va, vu) + 0.05
    assert cosine(va, vb) > cosine(vb, vu) + 0.05


async def test_token_arrays_embed_like_their_text_and_usage_counts_tokens(client: Client) -> None:
    texts = ["Héllo, 世界!", "Count these tokens, please."]
    tokens = [await tokens_of(client, text) for text in texts]
    by_text = await embed(client, {"input": texts})
    by_tokens = await embed(client, {"input": tokens})
    assert by_tokens["data"] == by_text["data"]
    total = sum(len(t) for t in tokens)
    assert by_text["usage"] == {"prompt_tokens": total, "total_tokens": total}
    assert by_tokens["usage"] == by_text["usage"]
    one = await embed(client, {"input": tokens[1]})  # a flat token array is one input
    assert one["data"][0]["embedding"] == by_text["data"][1]["embedding"]
    assert one["usage"]["prompt_tokens"] == len(tokens[1])


async def test_base64_carries_the_same_floats(client: Client) -> None:
    texts = ["Encode me twice.", "And me."]
    floats = await embed(client, {"input": texts, "encoding_format": "float"})
    packed = await embed(
        client, {"input": texts, "encoding_format": "base64", "dimensions": N_EMBD}
    )
    for plain, encoded in zip(floats["data"], packed["data"], strict=True):
        assert isinstance(encoded["embedding"], str)
        decoded = array("f", base64.b64decode(encoded["embedding"])).tolist()
        assert decoded == plain["embedding"]
    assert packed["usage"] == floats["usage"]


async def test_an_input_longer_than_a_decode_call_matches_llama_cpp_mean_pooling(
    client: Client, model_path: Path
) -> None:
    """The engine reads long inputs in pieces and pools itself; llama.cpp's own mean
    pooling over one whole pass must agree (see app.engine.embedding)."""
    text = "The quick brown fox jumps over the lazy dog. " * 60
    tokens = (await tokens_of(client, text))[:530]  # more than n_batch (512)
    ours = np.array((await vectors(client, [tokens]))[0])
    model = LlamaModel(
        path_model=str(model_path), params=llama_cpp.llama_model_default_params(), verbose=False
    )
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = params.n_batch = params.n_ubatch = len(tokens)
    params.embeddings, params.pooling_type = True, llama_cpp.LLAMA_POOLING_TYPE_MEAN
    params.n_threads = params.n_threads_batch = TEST_THREADS
    ctx = llama_cpp.llama_init_from_model(model.model, params)
    batch = llama_cpp.llama_batch_init(len(tokens), 0, 1)
    try:
        batch.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, i, 1, True
            batch.seq_id[i][0] = 0
        assert llama_cpp.llama_decode(ctx, batch) == 0
        pooled = np.ctypeslib.as_array(llama_cpp.llama_get_embeddings_seq(ctx, 0), (N_EMBD,))
        reference = pooled / np.linalg.norm(pooled)
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
        model.close()  # type: ignore[no-untyped-call]
    assert float(ours @ reference) > 0.99999
    assert np.abs(ours - reference).max() < 1e-4


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, "input", None),
        ({"input": ""}, "input", None),
        ({"input": []}, "input", None),
        ({"input": ["a", ""]}, "input[1]", None),
        ({"input": [[]]}, "input", None),
        ({"input": ["a", 1]}, "input", None),
        ({"input": ["x"] * 2049}, "input", None),
        ({"input": [[7] * 147] * 2048}, "input", None),  # 301,056 tokens in all
        ({"input": [1, 10**9]}, "input", None),
        ({"input": [[1], [2, 49152]]}, "input[1]", None),
        ({"input": [3, -1]}, "input", None),
        ({"input": [7] * (N_CTX + 1)}, "input", "context_length_exceeded"),
        ({"input": ["a", "word " * 1100]}, "input[1]", "context_length_exceeded"),
        ({"input": "a", "dimensions": 256}, "dimensions", None),
        ({"input": "a", "dimensions": 0}, "dimensions", None),
        ({"input": "a", "encoding_format": "hex"}, "encoding_format", None),
    ],
)
async def test_bad_requests_are_400_naming_the_field(
    client: Client, body: dict[str, Any], param: str, code: str | None
) -> None:
    assert_error(await client.post("/v1/embeddings", json=body), 400, param=param, code=code)


async def test_an_input_of_exactly_the_context_length_is_embedded(
    client_for: ClientFactory,
) -> None:
    async with client_for(model={"n_ctx": SMALL_CTX, "n_parallel": 1}) as client:
        assert len((await vectors(client, [[7] * SMALL_CTX]))[0]) == N_EMBD
        too_long = await client.post("/v1/embeddings", json={"input": [7] * (SMALL_CTX + 1)})
        assert_error(too_long, 400, param="input", code="context_length_exceeded")


async def test_turned_off_by_setting(model_path: Path) -> None:
    settings = make_settings(model_path)
    off = msgspec.structs.replace(
        settings, model=msgspec.structs.replace(settings.model, embeddings=False)
    )
    async with started_client(create_app(off)) as client:
        response = await client.post("/v1/embeddings", json={"input": "a"})
        assert_error(response, 400, code="embeddings_disabled")


async def test_embeddings_need_the_api_key_when_keys_are_set(client_for: ClientFactory) -> None:
    async with client_for(api_keys=["k"]) as client:
        assert (await client.post("/v1/embeddings", json={"input": "a"})).status_code == 401
        ok = await client.post(
            "/v1/embeddings", json={"input": "a"}, headers={"Authorization": "Bearer k"}
        )
        assert ok.status_code == 200


async def test_the_context_is_made_on_first_use_and_refused_after_close(
    model_path: Path,
) -> None:
    engine = make_engine(model_path)
    engine.start()
    try:
        assert await asyncio.to_thread(engine.wait_loaded) == "ready"
        embedder = engine._embedder
        assert embedder is not None
        assert embedder._ctx is None  # nothing allocated for users who never embed
        tokens = engine.tokenize_text("hello", add_special=True)
        first = await asyncio.to_thread(engine.embed, [tokens])
        assert embedder._ctx is not None
        assert len(first[0]) == N_EMBD
    finally:
        await asyncio.to_thread(engine.close)
    assert embedder._ctx is None
    with pytest.raises(ModelNotReadyError):
        engine.embed([tokens])
    with pytest.raises(ModelNotReadyError):
        embedder.embed([tokens])  # even past the engine's state check


async def test_closing_stops_an_embedding_in_flight_before_freeing(model_path: Path) -> None:
    """Shutdown must neither free the model under a running decode nor wait for a
    2048-input request to end: the embedding stops at its next decode call."""
    engine = make_engine(model_path)
    engine.start()
    outcome: list[BaseException | int] = []
    assert await asyncio.to_thread(engine.wait_loaded) == "ready"
    tokens = engine.tokenize_text("One of very many inputs. " * 20, add_special=True)
    engine.embed([tokens])  # the context exists: what follows is decoding only

    def run() -> None:
        try:
            outcome.append(len(engine.embed([tokens] * 2048)))
        except ModelNotReadyError as error:
            outcome.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    await asyncio.sleep(0.5)
    started = time.monotonic()
    await asyncio.to_thread(engine.close)
    assert time.monotonic() - started < 10
    await asyncio.to_thread(worker.join, 10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], ModelNotReadyError)
