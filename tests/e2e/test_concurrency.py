"""Batching, queueing and client disconnects against a live server.

The queue tests use one slot, so that a single long generation fills the engine.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import EnginePool
from tests.e2e.conftest import LiveServer, serve

STORY: list[Any] = [{"role": "user", "content": "Write a very long story about a dragon."}]
COUNT: list[Any] = [{"role": "user", "content": "Count from 1 to 300, separated by commas."}]


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.01)


def last_record(live: LiveServer) -> Any:
    records = live.engine.records
    return records[-1] if records else None


def new_record(live: LiveServer, seen: Any, timeout: float = 10) -> Any:
    """The engine's record of the next request to end after `seen` (`last_record`);
    the engine keeps the last 64, so a count would stop growing."""
    wait_until(lambda: last_record(live) is not seen, timeout)
    return live.engine.records[-1]


class Streamer(threading.Thread):
    """Streams one request in the background; `started` is set at the first content."""

    def __init__(self, live: LiveServer, **request: Any) -> None:
        super().__init__(daemon=True)
        self.client = live.client()
        self.request = {"model": "m", "stream": True, **request}
        self.started = threading.Event()
        self.hang_up = threading.Event()
        self.text = ""
        self.finish_reason: str | None = None

    def run(self) -> None:
        with self.client:
            for chunk in self.client.chat.completions.create(**self.request):
                if chunk.choices:
                    self.text += chunk.choices[0].delta.content or ""
                    self.finish_reason = chunk.choices[0].finish_reason or self.finish_reason
                    if self.text:
                        self.started.set()
                if self.hang_up.is_set():
                    break  # leaving the `with` closes the connection


def replies_one_at_a_time(live: LiveServer, requests: list[dict[str, Any]]) -> list[str]:
    texts = []
    for request in requests:
        streamer = Streamer(live, **request)
        streamer.run()
        texts.append(streamer.text)
    return texts


def start_together(live: LiveServer, requests: list[dict[str, Any]]) -> list[Streamer]:
    streamers = [Streamer(live, **request) for request in requests]
    for streamer in streamers:
        streamer.start()
    return streamers


def ask(live: LiveServer, **request: Any) -> Any:
    with live.client() as client:
        return client.chat.completions.create(model="m", **request)


def test_disconnect_mid_stream_stops_generation_within_one_token(live: LiveServer) -> None:
    seen = last_record(live)
    body = {"messages": COUNT, "max_tokens": 600, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{live.base_url}/chat/completions", json=body, timeout=30) as r:
        lines = r.iter_lines()
        received = [line for _, line in zip(range(8), lines, strict=False) if line]
    assert len(received) >= 3
    record = new_record(live, seen, timeout=3)  # generating all 600 tokens takes far longer
    assert record.outcome == "cancelled"
    assert record.tokens_after_cancel is not None
    assert record.tokens_after_cancel <= 1
    assert record.completion_tokens < 600
    # its place is free: the next request is served at once
    started = time.monotonic()
    ask(live, messages=STORY, max_tokens=2)
    assert time.monotonic() - started < 5


def test_disconnect_while_waiting_for_a_non_streamed_reply_stops_it(live: LiveServer) -> None:
    seen = last_record(live)
    body = {"messages": COUNT, "max_tokens": 800, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{live.base_url}/chat/completions", json=body, timeout=0.5)
    record = new_record(live, seen, timeout=5)
    assert record.outcome == "cancelled"
    assert record.tokens_after_cancel is not None
    assert record.tokens_after_cancel <= 1
    assert record.completion_tokens < 800


def test_two_concurrent_streams_produce_what_they_produce_alone(live: LiveServer) -> None:
    requests: list[dict[str, Any]] = [
        {"messages": STORY, "max_tokens": 40, "temperature": 0},
        {"messages": COUNT, "max_tokens": 40, "temperature": 0},
    ]
    alone = replies_one_at_a_time(live, requests)
    together = start_together(live, requests)
    for streamer in together:
        streamer.join(timeout=60)
    assert [s.text for s in together] == alone
    assert [s.finish_reason for s in together] == ["length", "length"]


def test_four_concurrent_replies_equal_the_same_replies_alone(live: LiveServer) -> None:
    """Greedy and fixed-seed replies must not depend on what else is in the batch."""
    requests: list[dict[str, Any]] = [
        {"messages": STORY, "max_tokens": 48, "temperature": 0},
        {"messages": COUNT, "max_tokens": 48, "temperature": 0},
        {
            "messages": [{"role": "user", "content": "Describe Paris."}],
            "max_tokens": 48,
            "temperature": 0,
        },
        {"messages": STORY, "max_tokens": 48, "temperature": 0.9, "top_p": 0.9, "seed": 11},
    ]
    alone = replies_one_at_a_time(live, requests)
    together = start_together(live, requests)
    assert all(s.started.wait(30) for s in together)
    assert all(s.is_alive() for s in together[:3])  # they stream at the same time
    for streamer in together:
        streamer.join(timeout=120)
    assert [s.text for s in together] == alone
    assert all(s.finish_reason == "length" for s in together)


def test_models_and_health_answer_at_once_during_a_generation(live: LiveServer) -> None:
    # The ends banned: the reply runs to its cap, whatever the greedy path.
    ends = live.engine.tokenize_text("<|im_end|><|endoftext|>", add_special=False)
    assert len(ends) == 2
    streamer = Streamer(
        live,
        messages=COUNT,
        max_tokens=200,
        temperature=0,
        logit_bias=dict.fromkeys(ends, -100),
    )
    streamer.start()
    assert streamer.started.wait(30)
    for path in ("/v1/models", "/health", f"/v1/models/{live.engine.model_id}"):
        started = time.monotonic()
        assert httpx.get(f"{live.root}{path}").status_code == 200
        # A fraction of the generation's few seconds (a loaded 2-vCPU CI machine once
        # took 0.66 s for /health: the bound is about waiting, not about speed).
        assert time.monotonic() - started < 1.5, path
    assert streamer.is_alive()  # still generating: nothing waited for it
    streamer.join(timeout=60)
    assert streamer.finish_reason == "length"  # and nothing cut it off


@pytest.fixture(scope="module")
def one_slot(engine_pool: EnginePool, model_path: Path) -> Iterator[LiveServer]:
    yield from serve(engine_pool, model_path, slots=1)


def test_requests_are_served_in_arrival_order(one_slot: LiveServer) -> None:
    live = one_slot
    first = Streamer(live, messages=COUNT, max_tokens=1000, temperature=0)
    first.start()
    assert first.started.wait(30)
    done: list[int] = []

    def ask_in_turn(index: int) -> None:
        ask(live, messages=STORY, max_tokens=3)
        done.append(index)

    with ThreadPoolExecutor(4) as pool:
        for index in range(4):
            depth = live.engine.queue_depth()
            pool.submit(ask_in_turn, index)
            wait_until(lambda d=depth: live.engine.queue_depth() > d)  # queued in this order
        first.hang_up.set()
    first.join(timeout=60)
    assert done == [0, 1, 2, 3]


def assert_sane_retry_after(headers: httpx.Headers) -> None:
    """A refusal says when to come back: whole seconds in `Retry-After` (at least 1, at
    most the 60 s the openai SDKs honour), the same wait in `retry-after-ms`."""
    seconds, ms = int(headers["retry-after"]), int(headers["retry-after-ms"])
    assert 1 <= seconds <= 60
    assert seconds - 1 < ms / 1000 <= seconds


@pytest.fixture
def small_queue(engine_pool: EnginePool, model_path: Path) -> Iterator[LiveServer]:
    yield from serve(engine_pool, model_path, slots=1, queue_size=1)


def test_a_full_queue_answers_503_with_retry_after_and_frees_places(
    small_queue: LiveServer,
) -> None:
    live = small_queue
    running = Streamer(live, messages=COUNT, max_tokens=200, temperature=0)
    running.start()
    assert running.started.wait(30)
    url = f"{live.base_url}/chat/completions"
    short = {"messages": STORY, "max_tokens": 2}

    # one request may wait; it gives up (client timeout) while still queued
    outcome: list[str] = []

    def give_up_while_queued() -> None:
        try:
            httpx.post(url, json=short, timeout=1.0)
            outcome.append("answered")
        except httpx.ReadTimeout:
            outcome.append("timed out")

    waiting = threading.Thread(target=give_up_while_queued, daemon=True)
    waiting.start()
    wait_until(lambda: live.engine.queue_depth() == 1)

    full = httpx.post(url, json=short, timeout=10)
    assert full.status_code == 503
    assert_sane_retry_after(full.headers)
    assert full.json()["error"]["code"] == "server_busy"
    with pytest.raises(openai.InternalServerError) as caught:
        ask(live, **short)
    assert caught.value.status_code == 503

    waiting.join(timeout=10)
    assert outcome == ["timed out"]
    wait_until(lambda: live.engine.queue_depth() == 0, timeout=5)  # its place was freed
    left = live.engine.records[-1]  # it left the queue; the model never saw it
    assert (left.outcome, left.evaluated_tokens, left.completion_tokens) == ("cancelled", 0, 0)
    admitted = ask(live, **short)
    assert admitted.choices[0].message.content is not None
    running.join(timeout=60)
    assert running.finish_reason == "length"


def test_many_hang_ups_in_a_row_leak_no_slot(live: LiveServer) -> None:
    body = {"messages": STORY, "max_tokens": 200, "temperature": 0, "stream": True}
    for _ in range(30):
        with httpx.stream("POST", f"{live.base_url}/chat/completions", json=body, timeout=30) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    break  # hang up after the first chunk
    wait_until(lambda: live.engine.active() == 0)
    assert live.engine.queue_depth() == 0
    assert ask(live, messages=STORY, max_tokens=2).choices[0].finish_reason == "length"


@pytest.fixture
def no_queue(engine_pool: EnginePool, model_path: Path) -> Iterator[LiveServer]:
    yield from serve(engine_pool, model_path, slots=1, queue_size=0)


def test_the_sdk_retries_a_503_after_retry_after_and_gets_served(no_queue: LiveServer) -> None:
    running = Streamer(no_queue, messages=COUNT, max_tokens=120, temperature=0)
    running.start()
    assert running.started.wait(30)
    started = time.monotonic()
    retrying = openai.OpenAI(base_url=no_queue.base_url, api_key="k", max_retries=8)
    with retrying as client:  # the SDK honours Retry-After: 1
        reply = client.chat.completions.create(model="m", messages=STORY, max_tokens=2)
    assert reply.choices[0].finish_reason == "length"
    assert time.monotonic() - started >= 0.5  # it did wait for the busy slot
    running.join(timeout=60)
    assert running.finish_reason == "length"


def test_a_slowloris_body_does_not_hold_up_other_requests(live: LiveServer) -> None:
    host, port = live.root.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as slow:
        slow.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"mess'
        )
        for _ in range(3):  # trickle a few bytes while another client is served
            time.sleep(0.2)
            slow.sendall(b" ")
        reply = ask(live, messages=STORY, max_tokens=2)
        assert reply.choices[0].finish_reason == "length"
    assert httpx.get(f"{live.root}/health").status_code == 200


def test_a_client_that_hangs_up_is_logged_as_disconnected(live: LiveServer) -> None:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger, keep = logging.getLogger("llm_service.access"), Keep()
    logger.addHandler(keep)
    try:
        body = {"messages": STORY, "max_tokens": 300, "temperature": 0, "stream": True}
        url = f"{live.base_url}/chat/completions"
        with httpx.stream("POST", url, json=body, timeout=30) as response:
            request_id = response.headers["x-request-id"]
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    break
        wait_until(lambda: any(request_id in line for line in lines))
    finally:
        logger.removeHandler(keep)
    (line,) = [line for line in lines if request_id in line]
    assert "status=200" in line
    assert line.endswith("client_disconnected=true")


def test_a_paused_reader_gets_every_token_and_holds_up_nobody(live: LiveServer) -> None:
    """The engine never waits for a client: a reader that stops reading only lets its
    reply queue up (at most a context's worth of small text pieces), and others are
    served meanwhile."""
    body = {"messages": COUNT, "max_tokens": 120, "temperature": 0, "stream": True}
    alone = Streamer(live, **{k: v for k, v in body.items() if k != "stream"})
    alone.run()
    url = f"{live.base_url}/chat/completions"
    text = ""
    with httpx.stream("POST", url, json=body, timeout=60) as response:
        lines = response.iter_lines()
        next(line for line in lines if line.startswith("data: {"))  # the role chunk
        other = ask(live, messages=STORY, max_tokens=2)  # served while we do not read
        wait_until(lambda: live.engine.active() == 0, timeout=30)  # finished unread
        for line in lines:
            if line.startswith("data: {") and '"content"' in line:
                text += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
    assert other.choices[0].finish_reason == "length"
    assert text == alone.text
