"""`response_format`: replies constrained by a grammar parse, and match the schema."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.api.test_chat_api import assert_error, sse_events

Client = AsyncTestClient[Litestar]
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"},
        "pets": {"type": "array", "items": {"enum": ["cat", "dog", "fish"]}, "maxItems": 3},
    },
    "required": ["name", "age", "pets"],
    "additionalProperties": False,
}
ASK: list[Any] = [{"role": "user", "content": "Describe a person called Ada as JSON."}]


@pytest.mark.parametrize("stream", [False, True])
async def test_json_schema_replies_validate(client: Client, stream: bool) -> None:
    body = {
        "messages": ASK,
        "max_tokens": 300,
        "temperature": 0.7,
        "seed": 3,
        "stream": stream,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON, "strict": True},
        },
    }
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    if stream:
        chunks = sse_events(response.text)[:-1]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        finish = chunks[-1]["choices"][0]["finish_reason"]
    else:
        text = response.json()["choices"][0]["message"]["content"]
        finish = response.json()["choices"][0]["finish_reason"]
    assert finish == "stop"
    jsonschema.validate(json.loads(text), PERSON)


async def test_json_object_replies_are_json_objects(client: Client) -> None:
    body = {
        "messages": [{"role": "user", "content": "Answer in JSON: is water wet?"}],
        "max_tokens": 120,
        "temperature": 0.7,  # greedy, this 135M model nests objects without end
        "seed": 1,
        "n": 3,  # sampled, some runs nest past the cap too: three, batched together
        "response_format": {"type": "json_object"},
    }
    reply = (await client.post("/v1/chat/completions", json=body)).json()
    finished = [c for c in reply["choices"] if c["finish_reason"] == "stop"]
    assert finished, reply["choices"]
    for choice in finished:
        assert isinstance(json.loads(choice["message"]["content"]), dict)


async def test_a_schema_the_grammar_cannot_express_is_400(client: Client) -> None:
    body = {
        "messages": ASK,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"$ref": "https://example.com/remote.json"}},
        },
    }
    response = await client.post("/v1/chat/completions", json=body)
    assert_error(response, 400, param="response_format.json_schema.schema.$ref")


@pytest.mark.parametrize("strict", [True, False])
async def test_a_strict_schema_with_a_keyword_no_grammar_enforces_is_400(
    client: Client, strict: bool
) -> None:
    """Strict promises a matching reply: `minimum` cannot be kept, so it is refused by
    path. Not strict, it is accepted (and not enforced), as on OpenAI."""
    age = {"type": "integer", "minimum": 0}
    schema = {**PERSON, "properties": {**PERSON["properties"], "age": age}}
    body = {
        "messages": ASK,
        "max_tokens": 120,
        "temperature": 0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "p", "schema": schema, "strict": strict},
        },
    }
    response = await client.post("/v1/chat/completions", json=body)
    if strict:
        assert_error(
            response, 400, param="response_format.json_schema.schema.properties.age.minimum"
        )
    else:
        assert response.status_code == 200, response.text
