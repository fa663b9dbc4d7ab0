"""`/tokenize` and `/detokenize` with the real model."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.api.conftest import ClientFactory
from tests.api.test_chat_api import assert_error

Client = AsyncTestClient[Litestar]
CHAT: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Héllo, 世界! How many tokens is this?"},
]


async def test_tokenized_messages_count_like_the_chat_prompt(client: Client) -> None:
    counted = (await client.post("/tokenize", json={"messages": CHAT})).json()
    assert counted["count"] == len(counted["tokens"])
    chat = await client.post("/v1/chat/completions", json={"messages": CHAT, "max_tokens": 1})
    assert counted["count"] == chat.json()["usage"]["prompt_tokens"]
    assert counted["model"] == chat.json()["model"]


async def test_content_round_trips_through_detokenize(client: Client) -> None:
    text = "Héllo, 世界! 🙂 <|im_start|> tokens"
    tokens = (await client.post("/tokenize", json={"content": text})).json()["tokens"]
    with_bos = (await client.post("/tokenize", json={"content": text, "add_special": True})).json()
    assert len(with_bos["tokens"]) >= len(tokens)
    back = (await client.post("/detokenize", json={"tokens": tokens})).json()
    assert back["content"] == text


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/tokenize", {}, "content"),
        ("/tokenize", {"content": "a", "messages": CHAT}, "content"),
        ("/tokenize", {"messages": []}, "messages"),
        ("/detokenize", {"tokens": [1, 10**9]}, "tokens[1]"),
        ("/detokenize", {"tokens": [-5]}, "tokens[0]"),
        ("/detokenize", {"tokens": "abc"}, "tokens"),
    ],
)
async def test_bad_token_requests_are_400_naming_the_field(
    client: Client, path: str, body: dict[str, Any], param: str
) -> None:
    assert_error(await client.post(path, json=body), 400, param=param)


async def test_token_helpers_need_the_api_key_when_keys_are_set(client_for: ClientFactory) -> None:
    async with client_for(api_keys=["k"]) as client:
        assert (await client.post("/tokenize", json={"content": "a"})).status_code == 401
        ok = await client.post(
            "/detokenize", json={"tokens": [1]}, headers={"Authorization": "Bearer k"}
        )
        assert ok.status_code == 200
