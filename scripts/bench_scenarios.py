"""The workloads `bench.py` runs, as raw per-request results (metrics: `bench_report`).

Prompts are realistic chat requests from fixed lists in a fixed order, under one fixed
system message, and sampling is greedy: every server gets, and does, the same work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench_load import (
    Message,
    RequestResult,
    Target,
    closed_loop,
    make_client,
    reused_counter,
    stream_chat,
)

__all__ = (
    "InterferenceRun",
    "big_document",
    "interference",
    "long_replies",
    "multiturn",
    "sweep_level",
    "warm_up",
)

SYSTEM: Message = {"role": "system", "content": "You are a helpful assistant."}
TOPICS = (
    "a lighthouse keeper",
    "a lost umbrella",
    "a robot learning to paint",
    "the first snow of winter",
    "a bakery at midnight",
    "a map that changes",
    "an old violin",
    "a cat who runs a library",
    "a train that never stops",
    "a garden on the moon",
    "a forgotten birthday",
    "a clockmaker's apprentice",
    "a storm at sea",
    "a letter from the future",
    "a village without mirrors",
    "a dragon afraid of fire",
)
ESSAY_SUBJECTS = ("bridges", "printing", "navigation", "tea", "clocks", "paper", "glass", "maps")


def story(index: int) -> list[Message]:
    return [SYSTEM, {"role": "user", "content": f"Write a short story about {TOPICS[index]}."}]


def essay(index: int) -> list[Message]:
    """A prompt that asks for far more text than any `max_tokens` we set."""
    subject = ESSAY_SUBJECTS[index % len(ESSAY_SUBJECTS)]
    ask = (
        f"Write a very long and detailed essay, at least 5,000 words, on the history of "
        f"{subject}. Give every century its own section with many examples, and do not "
        "conclude early."
    )
    return [SYSTEM, {"role": "user", "content": ask}]


async def warm_up(target: Target) -> RequestResult:
    """One short request, so lazy initialisation is not billed to the first cell."""
    async with make_client(target, 1) as client:
        return await stream_chat(client, target, story(0), 8)


async def sweep_level(
    target: Target, concurrency: int, requests_per_client: int, max_tokens: int
) -> list[RequestResult]:
    """One concurrency level of the sweep; request k of user i gets a story prompt
    that depends only on (i, k)."""

    def prompt(user: int, k: int) -> list[Message]:
        return story((user * requests_per_client + k) % len(TOPICS))

    return await closed_loop(target, concurrency, requests_per_client, max_tokens, prompt)


async def multiturn(target: Target, turns: int, max_tokens: int) -> list[RequestResult]:
    """A conversation whose history grows each turn: the client resends it all, as
    OpenAI clients do, so time to first token per turn shows whether a server reuses
    the prefix it already evaluated."""
    history: list[Message] = [
        SYSTEM,
        {"role": "user", "content": "Give me a numbered list of ten ideas for a weekend project."},
    ]
    results: list[RequestResult] = []
    async with make_client(target, 1) as client:
        for turn in range(turns):
            if turn:
                history.append({"role": "user", "content": f"Tell me more about point {turn}."})
            before = await reused_counter(client, target)
            result = await stream_chat(client, target, list(history), max_tokens)
            after = await reused_counter(client, target)
            if before is not None and after is not None:
                result.reused_tokens = int(after - before)
            else:  # the server's own count
                result.reused_tokens = result.cached_tokens
            results.append(result)
            history.append({"role": "assistant", "content": result.text})
    return results


def big_document(tokens: int, model: Path | None) -> tuple[str, int | None]:
    """A synthetic document of numbered sentences of about `tokens` tokens, then a
    request to summarise it; also its token count by the model's own tokenizer when
    the GGUF is at hand (else the size is estimated at 4 characters a token)."""

    def sentence(i: int) -> str:
        subject = ESSAY_SUBJECTS[i % len(ESSAY_SUBJECTS)]
        topic = TOPICS[(i * 7) % len(TOPICS)]
        return f"{i}. The archive's ledger {i} records a note on {subject} and {topic}."

    def document(n: int) -> str:
        body = " ".join(sentence(i) for i in range(1, n + 1))
        return body + "\n\nSummarize the text above in one sentence."

    count = _token_counter(model)
    probe = document(50)
    per_sentence = (count(probe) if count else len(probe) / 4) / 50
    text = document(max(1, round(tokens / per_sentence)))
    return text, count(text) if count else None


def _token_counter(model: Path | None) -> Callable[[str], int] | None:
    if model is None or not model.is_file():
        return None
    try:
        from llama_cpp import Llama
        from llama_cpp._utils import suppress_stdout_stderr
    except ImportError:
        return None
    # Silences llama.cpp's context warning, meaningless for a vocabulary-only load.
    with suppress_stdout_stderr(disable=False):
        llama = Llama(str(model), vocab_only=True, verbose=False)
    return lambda text: len(llama.tokenize(text.encode(), add_bos=False))


@dataclass(slots=True)
class InterferenceRun:
    streams: list[RequestResult]
    big: RequestResult
    window: tuple[float, float]
    """From 0.5 s before the big request was sent until it ended (perf_counter)."""


async def interference(
    target: Target, document: str, streams: int, stream_tokens: int, lead: float = 1.0
) -> InterferenceRun:
    """A long prompt admitted while `streams` replies decode: how much it stalls them.

    The big request goes once decoding has begun (first content of any stream: a
    server that serves one request at a time never decodes more than one) and at
    least `lead` seconds after the streams were sent.
    """
    started = time.perf_counter()
    first = asyncio.Event()
    async with make_client(target, streams + 1) as client:
        tasks = [
            asyncio.create_task(
                stream_chat(
                    client, target, essay(i), stream_tokens, client_index=i, first_token=first
                )
            )
            for i in range(streams)
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first.wait(), timeout=target.timeout)
        await asyncio.sleep(max(0.5, lead - (time.perf_counter() - started)))
        messages = [SYSTEM, {"role": "user", "content": document}]
        big = await stream_chat(client, target, messages, 16, client_index=streams)
        results = list(await asyncio.gather(*tasks))
    return InterferenceRun(results, big, (big.start - 0.5, big.end))


async def long_replies(target: Target, lengths: list[int]) -> list[RequestResult]:
    """One request per length, one client, the same essay prompt for each, so the
    only difference is how long the reply (and so the context) grows."""
    async with make_client(target, 1) as client:
        return [await stream_chat(client, target, essay(0), n) for n in lengths]


async def burst(target: Target, count: int, max_tokens: int) -> list[RequestResult]:
    """`count` short requests sent at once, as batch jobs and evaluation harnesses send
    them: what matters is that all are answered, and how long the last one waits."""
    async with make_client(target, count) as client:
        sent = [
            stream_chat(client, target, story(i % len(TOPICS)), max_tokens, client_index=i)
            for i in range(count)
        ]
        return list(await asyncio.gather(*sent))
