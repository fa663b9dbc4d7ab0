"""Faults the real model cannot produce on demand, injected around the real engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest

import app.serving.stream as stream_module
from conversion.errors import ModelNotReadyError
from conversion.generation import GenerationEvent
from tests.api.conftest import ClientFactory
from tests.api.test_chat_api import HELLO, assert_error
from tests.conftest import DelegatingEngine

SECRET = "/secret/internal/path.gguf"


class _Wrapped(DelegatingEngine):
    """Delegates everything to the real engine unless a test overrides it."""


class FailsMidStream(_Wrapped):
    """The first generation raises after two events; later ones are left alone."""

    last: Any = None

    def submit(self, prompt: list[int], params: Any, owner: str | None = None) -> Any:
        real = self.inner.submit(prompt, params, owner)
        if self.last is not None:
            return real

        class Broken:
            cancelled = False

            def cancel(self) -> None:
                Broken.cancelled = True
                real.cancel()

            async def events(self) -> AsyncIterator[GenerationEvent]:
                count = 0
                async for item in real.events():
                    yield item
                    count += 1
                    if count == 2:
                        raise RuntimeError(SECRET)

        self.last = Broken()
        return self.last


def fails_once() -> tuple[list[FailsMidStream], Callable[[Any], FailsMidStream]]:
    """A wrapper for `client_for`, and the list that holds the engine it made."""
    wrapped: list[FailsMidStream] = []

    def wrap(engine: Any) -> FailsMidStream:
        wrapped.append(FailsMidStream(engine))
        return wrapped[0]

    return wrapped, wrap


class ExplodesOnTokenize(_Wrapped):
    def tokenize_chat(self, *args: Any) -> Any:
        raise RuntimeError(SECRET)


class StillLoading(_Wrapped):
    """A model that has not loaded yet: as the real engine does then, every call a
    request makes is refused."""

    @property
    def state(self) -> Any:
        return "loading"

    def check_ready(self) -> None:
        raise ModelNotReadyError("The model is still loading; try again shortly.")

    def check_params(self, params: Any) -> Any:
        self.check_ready()

    def tokenize_chat(self, *args: Any) -> Any:
        self.check_ready()

    def submit(self, prompt: list[int], params: Any, owner: str | None = None) -> Any:
        self.check_ready()


async def test_error_after_the_stream_started_is_one_in_band_event(
    client_for: ClientFactory,
) -> None:
    wrapped, wrap = fails_once()
    async with client_for(wrap) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={"messages": HELLO, "stream": True, "max_tokens": 20, "temperature": 0},
        )
        assert response.status_code == 200
        frames = response.text.split("\n\n")
        assert frames[-2:] == ["data: [DONE]", ""]
        events = [msgspec.json.decode(f.removeprefix("data: ")) for f in frames[:-2]]
        errors = [e for e in events if "error" in e]
        assert len(errors) == 1
        assert events[-1] is errors[0]
        assert errors[0]["error"]["type"] == "server_error"
        assert SECRET not in response.text
        assert wrapped[0].last.cancelled  # the generation was stopped, not left running
        # and the server keeps serving
        after = await client.post("/v1/chat/completions", json={"messages": HELLO, "max_tokens": 2})
        assert after.status_code == 200


async def test_a_responses_stream_that_breaks_ends_with_response_failed(
    client_for: ClientFactory,
) -> None:
    wrapped, wrap = fails_once()
    async with client_for(wrap) as client:
        body = {"input": "Hello", "stream": True, "max_output_tokens": 20, "temperature": 0}
        response = await client.post("/v1/responses", json=body)
        assert response.status_code == 200
        events = [
            msgspec.json.decode(frame.split("\ndata: ")[1])
            for frame in response.text.split("\n\n")
            if frame
        ]
        kinds = [event["type"] for event in events]
        assert kinds[0] == "response.created"
        assert kinds[-1] == "response.failed"
        assert "response.completed" not in kinds
        failed = events[-1]["response"]
        assert failed["status"] == "failed"
        assert failed["error"]["code"] == "internal_error"
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        assert SECRET not in response.text
        assert wrapped[0].last.cancelled
        after = await client.post("/v1/responses", json={"input": "Hi", "max_output_tokens": 2})
        assert after.status_code == 200


async def test_internal_errors_are_500_in_the_envelope_without_internals(
    client_for: ClientFactory,
) -> None:
    async with client_for(ExplodesOnTokenize) as client:
        response = await client.post("/v1/chat/completions", json={"messages": HELLO})
        error = assert_error(response, 500, code="internal_error")
        assert error["type"] == "server_error"
        assert SECRET not in response.text


async def test_while_loading_health_and_chat_answer_503_with_retry_after(
    client_for: ClientFactory,
) -> None:
    async with client_for(StillLoading, wait_ready=False) as client:
        for response in (
            await client.get("/health"),
            await client.post("/v1/chat/completions", json={"messages": HELLO}),
            await client.post("/v1/responses", json={"input": "Hello"}),
        ):
            assert_error(response, 503, code="model_not_ready")
            assert response.headers["retry-after"] == "1"
        assert (await client.get("/v1/models")).status_code == 200  # configuration only


class FailsAfterAWhile(_Wrapped):
    """A generation that has nothing to say for `DELAY` seconds, then fails: a prompt
    that takes long to read, and a fault after it."""

    DELAY = 0.5

    def submit(self, prompt: list[int], params: Any, owner: str | None = None) -> Any:
        class Slow:
            def cancel(self) -> None:
                pass

            async def events(self) -> AsyncIterator[GenerationEvent]:
                await asyncio.sleep(FailsAfterAWhile.DELAY)
                raise RuntimeError(SECRET)
                yield  # an async generator

        return Slow()


@pytest.mark.parametrize("wait", [0.05, 5.0])
async def test_a_stream_with_nothing_to_say_begins_once_the_first_event_is_late(
    client_for: ClientFactory, monkeypatch: pytest.MonkeyPatch, wait: float
) -> None:
    """Claude Code gives up on a request that sends no byte for 300 s, as long as a big
    prompt can take to read on a CPU: past `FIRST_EVENT_WAIT` the stream begins (its
    `message_start`, then pings) and a failure is an in-band event; within it, a failure
    is still the HTTP status it was."""
    monkeypatch.setattr(stream_module, "FIRST_EVENT_WAIT", wait)
    body = {"messages": HELLO, "max_tokens": 8, "stream": True}
    async with client_for(FailsAfterAWhile) as client:
        response = await client.post("/v1/messages", json=body)
    assert SECRET not in response.text
    if wait > FailsAfterAWhile.DELAY:
        assert response.status_code == 500
        assert response.json()["error"]["type"] == "api_error"
        return
    assert response.status_code == 200
    kinds = [frame.split("\n")[0] for frame in response.text.split("\n\n") if frame]
    assert kinds[:2] == ["event: message_start", "event: ping"]
    assert kinds[-1] == "event: error"
