"""`logit_bias`: -100 bans a token, +100 all but forces it, bad ids are a 400."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.api.test_chat_api import assert_error

Client = AsyncTestClient[Litestar]
ASK: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Say hello to me."}],
    "max_tokens": 6,
    "temperature": 0,
}


async def first_token(client: Client, text: str) -> int:
    return int((await client.post("/tokenize", json={"content": text})).json()["tokens"][0])


async def reply(client: Client, **fields: Any) -> str:
    response = await client.post("/v1/chat/completions", json={**ASK, **fields})
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


async def test_minus_100_bans_the_token_greedy_decoding_would_pick(client: Client) -> None:
    plain = await reply(client)
    banned = await first_token(client, plain)
    biased = await reply(client, logit_bias={str(banned): -100})
    assert biased != plain
    assert await first_token(client, biased) != banned


async def test_plus_100_makes_greedy_decoding_pick_the_token(client: Client) -> None:
    banana = await first_token(client, "banana")
    piece = (await client.post("/detokenize", json={"tokens": [banana]})).json()["content"]
    biased = await reply(client, logit_bias={str(banana): 100})
    assert biased.startswith(piece * 3)  # every step picks it


async def test_ids_outside_the_vocabulary_are_400(client: Client) -> None:
    response = await client.post(
        "/v1/chat/completions", json={**ASK, "logit_bias": {"99999999": 5}}
    )
    assert_error(response, 400, param="logit_bias")
