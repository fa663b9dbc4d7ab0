"""The rest of the OpenAI surface through the openai SDK."""

from __future__ import annotations

import httpx
import openai

from tests.e2e.conftest import LiveServer


def test_logit_bias_through_the_sdk(live: LiveServer, client: openai.OpenAI) -> None:
    tokens = httpx.post(f"{live.root}/tokenize", json={"content": "banana"}).json()["tokens"]
    messages = [{"role": "user", "content": "Say hello."}]
    forced = client.chat.completions.create(
        model="m", messages=messages, max_tokens=4, temperature=0, logit_bias={tokens[0]: 100}
    )
    plain = client.chat.completions.create(
        model="m", messages=messages, max_tokens=4, temperature=0
    )
    assert forced.choices[0].message.content != plain.choices[0].message.content
    piece = httpx.post(f"{live.root}/detokenize", json={"tokens": tokens[:1]}).json()["content"]
    assert (forced.choices[0].message.content or "").startswith(piece)
