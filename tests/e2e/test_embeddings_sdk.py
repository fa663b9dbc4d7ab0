"""`/v1/embeddings` through the real openai SDK, as applications call it."""

from __future__ import annotations

import math
import time

import httpx
import openai
import pytest

from tests.e2e.conftest import LiveServer

N_EMBD = 576  # SmolLM2-135M's hidden size


def test_float_embeddings_through_the_sdk(live: LiveServer, client: openai.OpenAI) -> None:
    result = client.embeddings.create(
        model="anything", input="An embedding, please.", encoding_format="float"
    )
    assert result.object == "list"
    assert result.model == live.engine.model_id
    [item] = result.data
    assert item.index == 0
    assert len(item.embedding) == N_EMBD
    assert math.fsum(x * x for x in item.embedding) == pytest.approx(1, abs=1e-5)
    tokens = httpx.post(
        f"{live.root}/tokenize", json={"content": "An embedding, please.", "add_special": True}
    ).json()["count"]
    assert result.usage.prompt_tokens == result.usage.total_tokens == tokens


def test_the_sdk_default_base64_decodes_to_the_float_vectors(client: openai.OpenAI) -> None:
    """Without `encoding_format` the SDK asks for base64 and decodes it itself."""
    texts = ["First text.", "Second, longer text for the list input."]
    default = client.embeddings.create(model="m", input=texts)
    floats = client.embeddings.create(model="m", input=texts, encoding_format="float")
    assert [d.index for d in default.data] == [0, 1]
    for decoded, plain in zip(default.data, floats.data, strict=True):
        assert decoded.embedding == plain.embedding
    assert default.usage == floats.usage


def test_token_array_input_through_the_sdk(live: LiveServer, client: openai.OpenAI) -> None:
    text = "Tokens in, vector out."
    tokens = httpx.post(
        f"{live.root}/tokenize", json={"content": text, "add_special": True}
    ).json()["tokens"]
    by_tokens = client.embeddings.create(model="m", input=[tokens, tokens[:3]])
    by_text = client.embeddings.create(model="m", input=text)
    assert by_tokens.data[0].embedding == by_text.data[0].embedding
    assert by_tokens.usage.prompt_tokens == len(tokens) + 3


def test_sdk_errors_are_bad_requests_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="m", input="a", dimensions=64)
    assert caught.value.status_code == 400
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["param"] == "dimensions"
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="m", input=[])


async def test_async_client_embeds_too(live: LiveServer) -> None:
    async with live.async_client() as client:
        result = await client.embeddings.create(model="m", input=["async", "client"])
    assert [len(d.embedding) for d in result.data] == [N_EMBD, N_EMBD]


def test_a_client_that_leaves_frees_the_embedder_for_the_next(live: LiveServer) -> None:
    long = ["many words " * 250] * 40  # ~20,000 tokens: tens of seconds of work here
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{live.base_url}/embeddings", json={"input": long}, timeout=1)
    started = time.monotonic()
    reply = httpx.post(f"{live.base_url}/embeddings", json={"input": "hello"}, timeout=60)
    assert reply.status_code == 200
    assert time.monotonic() - started < 10  # not behind the abandoned request


def test_a_wrong_dimensions_is_refused_before_any_work(live: LiveServer) -> None:
    started = time.monotonic()
    reply = httpx.post(
        f"{live.base_url}/embeddings",
        json={"input": ["many words " * 250] * 40, "dimensions": 8},
        timeout=60,
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "dimensions"
    assert time.monotonic() - started < 5
