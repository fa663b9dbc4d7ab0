"""The core chat paths on a second architecture: Gemma-3-270M (Q4_K_M, sliding-window
attention, a base GGUF without a chat template), served with `model.chat_format =
gemma`. Kept short: the first model's suite covers the paths in depth."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from tests.conftest import TEST_THREADS, EnginePool
from tests.e2e.conftest import LiveServer, serve

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = [
    "Tell me about the sea.",
    "Explain gravity.",
    "Describe a mountain.",
    "Why is the sky blue?",
]


@pytest.fixture(scope="module")
def gemma(engine_pool: EnginePool, gemma_path: Path) -> Iterator[LiveServer]:
    yield from serve(engine_pool, gemma_path, model={"chat_format": "gemma"})


@pytest.fixture
def client(gemma: LiveServer) -> Iterator[openai.OpenAI]:
    with gemma.client() as c:
        yield c


def ask(client: openai.OpenAI, question: str, **extra: Any) -> Any:
    return client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": question}],
        temperature=0,
        max_tokens=extra.pop("max_tokens", 40),
        **extra,
    )


def test_without_a_chat_template_the_server_refuses_to_start(gemma_path: Path) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "app", "--port", "0", "--model", str(gemma_path)),
            *("--model-n-threads", str(TEST_THREADS)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "no chat template" in done.stderr
    assert "model.chat_format" in done.stderr


def test_chat_streamed_and_not_agree(client: openai.OpenAI) -> None:
    plain = ask(client, QUESTIONS[0])
    assert plain.model == "gemma-3-270m-q4_k_m"
    assert plain.choices[0].message.content
    stream = ask(client, QUESTIONS[0], stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage == plain.usage


def test_the_same_request_again_gives_the_same_reply(client: openai.OpenAI) -> None:
    """Greedy, on the module's engine (f16 cache): a request, then another that shares
    its system prompt, then the first again, whose prompt is now partly cached and so
    read in other steps, non-streamed and streamed: one reply. (Issue 25: llama.cpp's
    tiled K-quant kernel for 8+ tokens rounded differently from the one-token kernel,
    and the second reply differed; model.batch_invariant now turns it off.)"""
    system = {"role": "system", "content": "You are a concise teacher of computing."}

    def reply(question: str, **extra: Any) -> Any:
        return client.chat.completions.create(
            model="m",
            messages=[system, {"role": "user", "content": question}],
            temperature=0,
            max_tokens=40,
            **extra,
        )

    first = reply("Explain what a CPU does in two sentences.").choices[0].message.content
    reply("Name three rivers in Europe.")
    again = reply("Explain what a CPU does in two sentences.").choices[0].message.content
    chunks = reply("Explain what a CPU does in two sentences.", stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert again == first
    assert streamed == first


def _replies(gemma_path: Path, *, together: bool) -> list[str | None]:
    """The greedy replies to QUESTIONS, one at a time or four at once, from an engine
    of its own with the default f16 cache (before issue 25's fix, llama.cpp's tiled
    K-quant kernel for batches of 8+ tokens made them depend on the load)."""
    server = serve(None, gemma_path, model={"chat_format": "gemma"})
    live = next(server)
    try:
        with live.client() as client:
            if not together:
                return [ask(client, q).choices[0].message.content for q in QUESTIONS]
            with ThreadPoolExecutor(4) as pool:
                return list(
                    pool.map(lambda q: ask(client, q).choices[0].message.content, QUESTIONS)
                )
    finally:
        server.close()  # stops the server


def test_replies_do_not_depend_on_the_load(gemma_path: Path) -> None:
    """Greedy replies alone equal the same replies four at a time (batch invariance:
    Q4_K weights are not repacked and take one kernel for every batch size, see
    model.batch_invariant). Each way on a fresh engine, so neither inherits a cache."""
    assert _replies(gemma_path, together=True) == _replies(gemma_path, together=False)


def test_a_forced_call_and_a_json_schema_reply_are_valid(client: openai.OpenAI) -> None:
    params = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"],
        "additionalProperties": False,
    }
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": params}}
    called = ask(
        client,
        "Weather in Rome?",
        tools=[tool],
        tool_choice="required",
        max_tokens=60,
    )
    [call] = called.choices[0].message.tool_calls or []
    jsonschema.validate(json.loads(call.function.arguments), params)
    formatted = ask(
        client,
        "Name a city as JSON.",
        max_tokens=60,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": params, "strict": True},
        },
    )
    assert formatted.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(formatted.choices[0].message.content or ""), params)


def test_the_responses_api_on_gemma(client: openai.OpenAI) -> None:
    response = client.responses.create(model="m", input=QUESTIONS[1], max_output_tokens=20)
    assert response.output_text
    assert response.usage is not None
    assert response.usage.output_tokens <= 20
