"""Structured outputs through the openai SDK's own helpers always parse (issue 18).

A property test over fixed seeds: pydantic models through `chat.completions.parse`
and `.stream`, and forced calls of a `pydantic_function_tool`. Every reply that ends
with `stop` (or a complete call) must parse with the standard library's strict
`json.loads` and validate against the schema sent. Half the requests push the model
towards raw newlines and tabs with `logit_bias`: a grammar that let control characters
into strings produced them in most of those replies.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, Field

from tests.e2e.conftest import LiveServer

SEEDS = range(4)
"""As many requests as the server has slots: they run as one batch."""
ASK = [{"role": "user", "content": "Invent a person with a pet, as JSON."}]


class Colour(Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Pet(BaseModel):
    name: str
    nickname: str | None


class Person(BaseModel):
    name: str
    age: int
    colour: Colour
    pets: list[Pet] = Field(max_length=2)


SCHEMA = to_strict_json_schema(Person)


@pytest.fixture(scope="module")
def control_bias(live: LiveServer) -> dict[str, int]:
    """+8 on the tokens of a raw newline and tab."""
    ids: set[int] = set()
    for text in ("\n", "\t", "\n\n"):
        reply = httpx.post(f"{live.root}/tokenize", json={"content": text})
        ids.update(reply.json()["tokens"])
    return {str(token): 8 for token in ids}


def _check(text: str) -> None:
    value = json.loads(text)  # strict: control characters inside strings are refused
    jsonschema.validate(value, SCHEMA)
    Person.model_validate(value)


def _warm(live: LiveServer, **fields: Any) -> None:
    """Read the prompt the seeds share once, before they run: requests that arrive
    together each read it themselves (the engine copies a shared start only from a slot
    that already holds it), which tripled this module's time."""
    with live.client() as client:
        client.chat.completions.create(**{**_kwargs(0, {}), **fields, "max_tokens": 1})


def _kwargs(seed: int, bias: dict[str, int]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": "m",
        "messages": ASK,
        "temperature": 0.9,
        "seed": seed,
        "max_tokens": 160,
    }
    if seed % 2:
        kwargs["logit_bias"] = bias
    return kwargs


def test_parse_replies_always_parse(live: LiveServer, control_bias: dict[str, int]) -> None:
    def one(seed: int) -> str:
        with live.client() as client:
            try:
                reply = client.chat.completions.parse(
                    response_format=Person, **_kwargs(seed, control_bias)
                )
            except openai.LengthFinishReasonError:
                return "length"
            choice = reply.choices[0]
            assert choice.finish_reason == "stop"
            assert choice.message.parsed is not None
            _check(choice.message.content or "")
            return "stop"

    _warm(live)
    with ThreadPoolExecutor(4) as pool:
        finishes = list(pool.map(one, SEEDS))
    assert finishes.count("stop") >= len(finishes) // 2, finishes


def test_streamed_replies_always_parse(live: LiveServer, control_bias: dict[str, int]) -> None:
    def one(seed: int) -> str:
        kwargs = _kwargs(seed, control_bias)
        try:
            with (
                live.client() as client,
                client.chat.completions.stream(response_format=Person, **kwargs) as stream,
            ):
                text = "".join(e.delta for e in stream if e.type == "content.delta")
                final = stream.get_final_completion()
        except openai.LengthFinishReasonError:
            return "length"
        assert final.choices[0].finish_reason == "stop"
        assert final.choices[0].message.content == text
        _check(text)
        return "stop"

    _warm(live)
    with ThreadPoolExecutor(4) as pool:
        finishes = list(pool.map(one, SEEDS))
    assert finishes.count("stop") >= len(finishes) // 2, finishes


def test_forced_pydantic_tool_calls_always_parse(
    live: LiveServer, control_bias: dict[str, int]
) -> None:
    tool = openai.pydantic_function_tool(Person, name="save_person")
    forced: Any = {"type": "function", "function": {"name": "save_person"}}

    def one(seed: int) -> str:
        with live.client() as client:
            reply = client.chat.completions.create(
                tools=[tool],
                tool_choice=forced,
                **_kwargs(seed, control_bias),
            )
        choice = reply.choices[0]
        if choice.finish_reason == "length":
            return "length"
        assert choice.finish_reason == "tool_calls"
        [call] = choice.message.tool_calls or []
        assert call.function.name == "save_person"
        _check(call.function.arguments)
        return "stop"

    _warm(live, tools=[tool], tool_choice=forced)
    with ThreadPoolExecutor(4) as pool:
        finishes = list(pool.map(one, SEEDS))
    assert finishes.count("stop") >= len(finishes) // 2, finishes
