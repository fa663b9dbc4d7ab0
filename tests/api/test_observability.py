"""Request ids, processing time, the access log line and /metrics."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import metric_total

SECRET_PROMPT = "my secret prompt text"
BODY = {"messages": [{"role": "user", "content": SECRET_PROMPT}], "max_tokens": 3, "temperature": 0}


async def test_every_response_carries_a_request_id_and_processing_time(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.post("/v1/chat/completions", json=BODY)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert int(response.headers["openai-processing-ms"]) >= 0
    echoed = await client.get("/v1/models", headers={"x-request-id": "req-42.a"})
    assert echoed.headers["x-request-id"] == "req-42.a"
    unsafe = await client.get("/v1/models", headers={"x-request-id": "bad id\n"})
    assert unsafe.headers["x-request-id"] != "bad id\n"
    for error in (
        await client.post("/v1/chat/completions", json={"messages": []}),
        await client.get("/v1/no-such-path"),  # not routed: no middleware ran
        await client.delete("/v1/models"),
    ):
        assert error.status_code in (400, 404, 405)
        assert re.fullmatch(r"[0-9a-f]{32}", error.headers["x-request-id"])


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.mark.parametrize("stream", [False, True])
async def test_one_log_line_per_request_with_its_numbers_and_no_text(
    client: AsyncTestClient[Litestar], stream: bool
) -> None:
    logger, seen = logging.getLogger("llm_service.access"), _Lines()
    logger.addHandler(seen)
    try:
        response = await client.post("/v1/chat/completions", json={**BODY, "stream": stream})
    finally:
        logger.removeHandler(seen)
    assert len(seen.lines) == 1
    (line,) = seen.lines
    assert f"request_id={response.headers['x-request-id']}" in line
    assert f"route=/v1/chat/completions model={reply_model(response, stream)} status=200" in line
    assert re.search(r"prompt_tokens=\d+ cached_tokens=\d+ completion_tokens=[1-3] ", line)
    assert re.search(r"ttft_ms=\d+ duration_ms=\d+ finish_reason=(stop|length) ", line)
    assert line.endswith("client_disconnected=false")
    assert SECRET_PROMPT not in line


def reply_model(response: Any, stream: bool) -> str:
    """The `model` a reply names, streamed or not."""
    if not stream:
        return str(response.json()["model"])
    first = next(line for line in response.text.splitlines() if line.startswith("data: {"))
    return str(json.loads(first.removeprefix("data: "))["model"])


async def test_metrics_count_requests_tokens_and_latencies(
    client: AsyncTestClient[Litestar],
) -> None:
    reply = (await client.post("/v1/chat/completions", json=BODY)).json()
    text = (await client.get("/metrics")).text
    model = f'model="{reply["model"]}"'
    requests = f'llm_requests_total{{{model},route="/v1/chat/completions",status="200"}} 1.0'
    assert requests in text
    completion = float(re.search(rf"^llm_completion_tokens_total{{{model}}} (\S+)$", text, re.M)[1])  # type: ignore[index]
    assert completion == reply["usage"]["completion_tokens"]
    prompt = float(re.search(rf"^llm_prompt_tokens_total{{{model}}} (\S+)$", text, re.M)[1])  # type: ignore[index]
    assert prompt == reply["usage"]["prompt_tokens"]
    assert f"llm_time_to_first_token_seconds_count{{{model}}} 1.0" in text
    assert "llm_inter_token_latency_seconds_bucket" in text
    assert "llm_queue_depth 0.0" in text
    assert "llm_active_generations 0.0" in text
    assert f'llm_model_state{{{model},state="loaded"}} 1.0' in text
    load = float(re.search(rf"^llm_model_load_seconds{{{model}}} (\S+)$", text, re.M)[1])  # type: ignore[index]
    assert load > 0


async def test_messages_are_logged_only_when_asked(client_for: Any) -> None:
    logger, seen = logging.getLogger("llm_service.prompts"), _Lines()
    logger.addHandler(seen)
    try:
        async with client_for() as client:
            await client.post("/v1/chat/completions", json=BODY)
        assert seen.lines == []
        async with client_for(log_prompts=True) as client:
            response = await client.post("/v1/chat/completions", json=BODY)
    finally:
        logger.removeHandler(seen)
    (line,) = seen.lines
    assert line.startswith(f"request_id={response.headers['x-request-id']} messages=")
    assert SECRET_PROMPT in line


async def test_speculative_guesses_show_in_the_log_line_and_the_metrics(
    client_for: Any,
) -> None:
    async with client_for(speculative={"mode": "ngram"}) as client:
        await _guesses_are_reported(client)


async def _guesses_are_reported(client: AsyncTestClient[Litestar]) -> None:
    passage = "The keeper climbed the spiral stairs at dusk and trimmed the wick of the lamp."
    echo = {
        "messages": [{"role": "user", "content": f"Repeat exactly: {passage} {passage}"}],
        "max_tokens": 60,
        "temperature": 0,
    }
    before = (await client.get("/metrics")).text
    logger, seen = logging.getLogger("llm_service.access"), _Lines()
    logger.addHandler(seen)
    try:
        await client.post("/v1/chat/completions", json=echo)
        await client.post("/v1/chat/completions", json={**BODY, "max_tokens": 1})
    finally:
        logger.removeHandler(seen)
    after = (await client.get("/metrics")).text
    drafted = metric_total(after, "llm_draft_tokens_total") - metric_total(
        before, "llm_draft_tokens_total"
    )
    stood = metric_total(after, "llm_draft_tokens_accepted_total") - metric_total(
        before, "llm_draft_tokens_accepted_total"
    )
    assert 0 < stood <= drafted
    share = re.search(r" draft_acceptance=(\S+) ", seen.lines[0])
    assert share is not None
    assert share[1] == f"{stood / drafted:.2f}"  # the log line's two decimals
    assert " draft_acceptance=- " in seen.lines[1]  # one token: nothing to guess after it
