"""The rest of the OpenAI surface through the openai SDK."""

from __future__ import annotations

import json

import httpx
import jsonschema
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


def test_json_schema_response_format_through_the_sdk(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 30}, "rainy": {"type": "boolean"}},
        "required": ["city", "rainy"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Is it rainy in London? Answer in JSON."}],
        max_tokens=200,
        temperature=0.7,
        seed=2,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "weather", "schema": schema, "strict": True},
        },
    )
    assert reply.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), schema)
