"""The Responses API through real clients: the openai SDK (sync, async, the stream
helper, `parse`) and the openai-agents SDK running an agent with a function tool."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import EnginePool
from tests.e2e.conftest import LiveServer, serve
from tests.e2e.test_concurrency import COUNT, Streamer, assert_sane_retry_after

ASK = "What is 2+2? Answer with a number only."
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 30}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def test_create_gives_output_text_and_usage(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4.1", input=ASK, temperature=0)
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.model == "SmolLM2-135M-Instruct.Q4_1"
    assert response.output_text
    assert response.output_text == response.output[0].content[0].text  # type: ignore[union-attr]
    assert response.usage is not None
    assert response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


async def test_the_async_client_works_too(live: LiveServer) -> None:
    async with openai.AsyncOpenAI(base_url=live.base_url, api_key="k", max_retries=0) as client:
        response = await client.responses.create(
            model="m", input=ASK, instructions="Be brief.", temperature=0
        )
    assert response.output_text
    assert response.instructions == "Be brief."


def test_streamed_text_and_usage_equal_the_plain_reply(client: openai.OpenAI) -> None:
    plain = client.responses.create(model="m", input=ASK, temperature=0)
    deltas = []
    with client.responses.stream(model="m", input=ASK, temperature=0) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == plain.output_text
    assert final.usage == plain.usage
    assert final.status == "completed"

    raw = client.responses.create(model="m", input=ASK, temperature=0, stream=True)
    kinds = [event.type for event in raw]  # plain iteration of the same stream
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"


class Answer(BaseModel):
    city: str
    sunny: bool


def test_parse_returns_the_pydantic_model(client: openai.OpenAI) -> None:
    response = client.responses.parse(
        model="m",
        input="Is it sunny in Rome? Answer as JSON.",
        text_format=Answer,
        temperature=0,
        max_output_tokens=60,
    )
    assert isinstance(response.output_parsed, Answer)
    assert response.text.format.type == "json_schema"  # type: ignore[union-attr]


def test_a_forced_call_round_trip(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model="m",
        input="What is the weather in Paris?",
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
        temperature=0,
    )
    [call] = first.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert call.call_id.startswith("call_")
    second = client.responses.create(
        model="m",
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            call.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"},
        ],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="none",
        temperature=0,
        max_output_tokens=40,
    )
    assert second.output[0].type == "message"
    assert second.output_text


def test_a_stored_conversation_continues_like_a_resent_one(client: openai.OpenAI) -> None:
    """Three turns by `previous_response_id` give the replies that resending the whole
    history gives (greedy), and the stored chain reuses the engine's cache."""
    questions = ["Name a fruit.", "Name another one.", "Which is sweeter?"]
    previous = None
    history: list[Any] = []
    for question in questions:
        chained = client.responses.create(
            model="m",
            input=question,
            previous_response_id=previous,
            temperature=0,
            max_output_tokens=24,
        )
        history.append({"role": "user", "content": question})
        resent = client.responses.create(
            model="m", input=history, temperature=0, max_output_tokens=24, store=False
        )
        assert chained.output_text == resent.output_text
        assert chained.usage is not None
        assert resent.usage is not None
        assert chained.usage.input_tokens == resent.usage.input_tokens
        assert chained.previous_response_id == previous
        history += [item.model_dump(exclude_none=True) for item in chained.output]
        previous = chained.id
    stored = client.responses.retrieve(previous or "")
    assert stored.output_text == chained.output_text
    items = client.responses.input_items.list(previous or "")
    assert [item.content[0].text for item in items.data] == [questions[-1]]  # type: ignore[union-attr]
    client.responses.delete(previous or "")
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(previous or "")


@pytest.fixture
def store_dir(tmp_path: Path) -> str:
    return str(tmp_path / "store")


def test_a_conversation_survives_a_restart(
    engine_pool: EnginePool, model_path: Path, store_dir: str
) -> None:
    def once() -> Iterator[LiveServer]:
        return serve(engine_pool, model_path, responses={"dir": store_dir})

    servers = once()
    live = next(servers)
    with live.client() as client:
        first = client.responses.create(model="m", input="Name a fruit.", max_output_tokens=8)
    next(servers, None)  # stops the server
    servers = once()
    live = next(servers)
    try:
        with live.client() as client:
            assert client.responses.retrieve(first.id).output_text == first.output_text
            second = client.responses.create(
                model="m",
                input="And another?",
                previous_response_id=first.id,
                max_output_tokens=8,
            )
            assert second.usage is not None
            assert first.usage is not None
            assert second.usage.input_tokens > first.usage.input_tokens
    finally:
        next(servers, None)


def test_errors_reach_the_sdk_as_its_exceptions(client: openai.OpenAI) -> None:
    look_ahead = {"type": "grammar", "syntax": "regex", "definition": "^(?=a)a$"}
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="m",
            input="x",
            tools=[{"type": "custom", "name": "t", "format": look_ahead}],  # type: ignore[typeddict-item]
        )
    assert caught.value.param == "tools[0].format.definition"  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError) as missing:
        client.responses.create(model="m", input="x", previous_response_id="resp_missing")
    assert missing.value.code == "previous_response_not_found"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_missing")


def test_an_agent_calls_our_function_tool_and_answers(live: LiveServer) -> None:
    """openai-agents over our Responses API: the forced first turn is a call (our
    `function_call` item), the agent runs the tool and sends its output back (a
    `function_call_output` item), and our reply to that is the final answer."""
    os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"
    from agents import (
        Agent,
        ModelSettings,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from agents.items import MessageOutputItem, ToolCallItem, ToolCallOutputItem

    set_tracing_disabled(True)
    cities: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        cities.append(city)
        return f"It is sunny and 21 degrees in {city}."

    async def run(streamed: bool) -> Any:
        async with openai.AsyncOpenAI(base_url=live.base_url, api_key="k", max_retries=0) as client:
            return await run_with(client, streamed)

    async def run_with(client: openai.AsyncOpenAI, streamed: bool) -> Any:
        agent = Agent(
            name="weather",
            instructions="You answer questions about the weather.",
            tools=[get_weather],
            model=OpenAIResponsesModel(model="local", openai_client=client),
            model_settings=ModelSettings(tool_choice="required", temperature=0, max_tokens=80),
        )
        question = "What is the weather in Paris?"
        if not streamed:
            return await Runner.run(agent, question, max_turns=4)
        result = Runner.run_streamed(agent, question, max_turns=4)
        async for _ in result.stream_events():
            pass
        return result

    for streamed in (False, True):
        cities.clear()
        result = asyncio.run(run(streamed))
        kinds = [type(item) for item in result.new_items]
        assert kinds == [ToolCallItem, ToolCallOutputItem, MessageOutputItem], kinds
        assert cities == ["Paris"]
        assert isinstance(result.final_output, str)
        assert result.final_output


@pytest.fixture
def one_slot_no_queue(engine_pool: EnginePool, model_path: Path) -> Iterator[LiveServer]:
    yield from serve(engine_pool, model_path, slots=1, queue_size=0)


def test_a_full_queue_is_a_503_with_retry_after_as_in_chat(one_slot_no_queue: LiveServer) -> None:
    live = one_slot_no_queue
    running = Streamer(live, messages=COUNT, max_tokens=300, temperature=0)
    running.start()
    assert running.started.wait(30)
    try:
        reply = httpx.post(f"{live.base_url}/responses", json={"input": "Hi"}, timeout=10)
        assert reply.status_code == 503
        assert_sane_retry_after(reply.headers)
        assert reply.json()["error"]["code"] == "server_busy"
        with live.client() as client, pytest.raises(openai.InternalServerError) as caught:
            client.responses.create(model="m", input="Hi", stream=True)
        assert caught.value.status_code == 503
    finally:
        running.hang_up.set()
        running.join(timeout=60)
