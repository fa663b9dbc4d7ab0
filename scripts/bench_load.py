"""Load generation for `bench.py`: streamed chat completions against any OpenAI base URL.

Speaks HTTP and server-sent events with httpx directly rather than through the openai
SDK, so that each content chunk is timestamped as its line arrives (no SDK parsing
between the socket and the clock), and so that a server that leaves out usage, the
finish reason or `[DONE]` is measured and flagged instead of rejected. Everything
goes through `/v1/chat/completions`, the one endpoint every competitor (and ours)
serves.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = (
    "Message",
    "RequestResult",
    "Target",
    "closed_loop",
    "fetch_model_id",
    "make_client",
    "reused_counter",
    "stream_chat",
)

Message = dict[str, str]


@dataclass(frozen=True, slots=True)
class Target:
    """Where requests go and what every request carries alike."""

    base_url: str
    """Ends in `/v1`."""
    model: str
    temperature: float = 0.0
    """0 = greedy, so that every server does the very same work."""
    timeout: float = 300.0
    """Seconds for a whole request, first byte to `[DONE]`."""


@dataclass(slots=True)
class RequestResult:
    """One streamed request, as the client saw it (times are `time.perf_counter()`)."""

    start: float
    max_tokens: int
    client: int = 0
    end: float = 0.0
    chunk_times: list[float] = field(default_factory=list)
    """When each non-empty `delta.content` arrived; the first is the first token."""
    text: str = ""
    completion_tokens: int | None = None
    tokens_source: str = "none"
    """`usage` (what the server counted), `max_tokens` (no usage, but the reply stopped
    for length, so it is exactly that many) or `chunks` (no usage: content chunks,
    about one per token on the servers we know)."""
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    """`usage.prompt_tokens_details.cached_tokens`, else llama-server's `timings.cache_n`."""
    reused_tokens: int | None = None
    """Prompt tokens the server really took from its cache (ours: from its metrics)."""
    finish_reason: str | None = None
    done: bool = False
    """Saw `data: [DONE]`."""
    error: str | None = None
    """The request failed: HTTP status, transport error or timeout."""
    inband_error: str | None = None
    """The server reported an error inside a 200 stream."""
    responded: bool = False
    """Response headers arrived."""
    retried: bool = False
    """Sent twice: the first try met a keep-alive connection the server had closed."""

    @property
    def ttft(self) -> float | None:
        return self.chunk_times[0] - self.start if self.chunk_times else None

    @property
    def itls(self) -> list[float]:
        return [later - earlier for earlier, later in itertools.pairwise(self.chunk_times)]

    @property
    def truncated(self) -> bool:
        """Answered (HTTP 200) but the stream was cut or went wrong midway."""
        if self.error is not None:
            return False
        return self.finish_reason is None or not self.done or self.inband_error is not None

    @property
    def tokens(self) -> int:
        return self.completion_tokens or 0


def make_client(target: Target, connections: int) -> httpx.AsyncClient:
    """A client with enough connections for every simulated user; ignores proxy variables
    (`trust_env=False`): the servers are on loopback and a proxy would skew timings."""
    limits = httpx.Limits(max_connections=connections + 2, max_keepalive_connections=connections)
    timeout = httpx.Timeout(target.timeout, connect=10.0)
    return httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False)


async def fetch_model_id(base_url: str) -> str:
    """The first id `/models` lists: what we put in `model` (servers differ on whether
    they check it)."""
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        try:
            response = await client.get(base_url + "/models")
            data = response.json().get("data") or []
            return str(data[0]["id"]) if data else "default"
        except (httpx.HTTPError, ValueError, KeyError, AttributeError, IndexError):
            return "default"


def _consume(line: str, now: float, result: RequestResult, pieces: list[str]) -> None:
    """Apply one SSE line (a chat or a text completion chunk) to `result`."""
    if line.startswith("error:"):
        result.inband_error = line[6:].strip()[:300] or "error event"
        return
    if not line.startswith("data:"):
        return
    payload = line[5:].strip()
    if payload == "[DONE]":
        result.done = True
        return
    try:
        event: Any = json.loads(payload)
    except ValueError:
        result.inband_error = f"unparsable event: {payload[:100]}"
        return
    if not isinstance(event, dict):
        return
    if event.get("error"):
        result.inband_error = json.dumps(event["error"])[:300]
    for choice in (event.get("choices") or [])[:1]:
        content = (choice.get("delta") or {}).get("content") or choice.get("text")
        if content:
            result.chunk_times.append(now)
            pieces.append(content)
        if choice.get("finish_reason"):
            result.finish_reason = str(choice["finish_reason"])
    usage = event.get("usage")
    if isinstance(usage, dict):
        if usage.get("completion_tokens") is not None:
            result.completion_tokens = int(usage["completion_tokens"])
            result.tokens_source = "usage"
        if usage.get("prompt_tokens") is not None:
            result.prompt_tokens = int(usage["prompt_tokens"])
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        if cached is not None:
            result.cached_tokens = int(cached)
    timings = event.get("timings")
    if isinstance(timings, dict) and result.cached_tokens is None and "cache_n" in timings:
        result.cached_tokens = int(timings["cache_n"])


async def _send(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    result: RequestResult,
    pieces: list[str],
    first_token: asyncio.Event | None,
) -> None:
    async with client.stream("POST", url, json=body) as response:
        result.responded = True
        if response.status_code != 200:
            detail = (await response.aread())[:300].decode(errors="replace")
            result.error = f"HTTP {response.status_code}: {detail}"
            return
        async for line in response.aiter_lines():
            _consume(line, time.perf_counter(), result, pieces)
            if first_token is not None and result.chunk_times:
                first_token.set()


async def stream_chat(
    client: httpx.AsyncClient,
    target: Target,
    messages: list[Message],
    max_tokens: int,
    *,
    client_index: int = 0,
    first_token: asyncio.Event | None = None,
) -> RequestResult:
    """Send one streamed chat completion and time it; never raises for a failed request
    (the failure is recorded in the result), so one bad request cannot end a run.

    `first_token` is set when the first content arrives, for scenarios that act on it.
    """
    body: dict[str, Any] = {
        "model": target.model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": target.temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return await stream_request(
        client,
        target,
        "/chat/completions",
        body,
        client_index=client_index,
        first_token=first_token,
    )


async def stream_request(
    client: httpx.AsyncClient,
    target: Target,
    path: str,
    body: dict[str, Any],
    *,
    client_index: int = 0,
    first_token: asyncio.Event | None = None,
) -> RequestResult:
    """POST the streamed request `body` to `path` under the target's base URL and time
    it; a failure is recorded in the result, never raised."""
    url = target.base_url + path
    max_tokens = int(body["max_tokens"])
    result = RequestResult(start=time.perf_counter(), max_tokens=max_tokens, client=client_index)
    pieces: list[str] = []
    try:
        async with asyncio.timeout(target.timeout):
            try:
                await _send(client, url, body, result, pieces, first_token)
            except httpx.RemoteProtocolError:
                # A reused keep-alive connection the server had just closed: the request
                # never reached it, so sending it again is safe, and fair to every server.
                if result.responded:
                    raise
                result.retried = True
                await _send(client, url, body, result, pieces, first_token)
    except (httpx.HTTPError, httpx.StreamError, TimeoutError, OSError) as exc:
        result.error = f"{type(exc).__name__}: {exc}".rstrip(": ")
    result.end = time.perf_counter()
    result.text = "".join(pieces)
    if result.completion_tokens is None and result.error is None:
        if result.finish_reason == "length":
            result.completion_tokens, result.tokens_source = max_tokens, "max_tokens"
        else:
            result.completion_tokens, result.tokens_source = len(pieces), "chunks"
    return result


async def closed_loop(
    target: Target,
    concurrency: int,
    requests_per_client: int,
    max_tokens: int,
    prompt: Callable[[int, int], list[Message]],
) -> list[RequestResult]:
    """`concurrency` users, each sending `requests_per_client` requests back to back
    (a closed loop: a new request only when the previous reply has ended), with
    `prompt(client, k)` choosing the messages so every server gets the same work."""
    async with make_client(target, concurrency) as client:

        async def user(index: int) -> list[RequestResult]:
            return [
                await stream_chat(client, target, prompt(index, k), max_tokens, client_index=index)
                for k in range(requests_per_client)
            ]

        per_user = await asyncio.gather(*(user(i) for i in range(concurrency)))
    return [result for results in per_user for result in results]


_REUSED = re.compile(r"^llm_cached_prompt_tokens_total\s+([0-9.e+]+)$", re.M)


async def reused_counter(client: httpx.AsyncClient, target: Target) -> float | None:
    """Our server's count of prompt tokens taken from its cache (exact, where
    `cached_tokens` follows OpenAI's 128-token blocks), or None for other servers."""
    root = target.base_url.removesuffix("/v1")
    try:
        response = await client.get(f"{root}/metrics")
    except httpx.HTTPError:
        return None
    match = _REUSED.search(response.text) if response.status_code == 200 else None
    return float(match[1]) if match else None
