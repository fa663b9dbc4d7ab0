"""Bounded soak: a few hundred mixed requests at concurrency 8 against our server.

Mixed means streamed and not, short and longer replies, requests that must fail with a
4xx, and clients that hang up mid-stream. It reports unexpected errors (anything but the
intended 4xx and a 503 from a full queue), latency percentiles, and the server's RSS
before and after, then does 200 streams cancelled after their first token and reports
RSS again: a slot, task or buffer that leaks shows up as growth.

    .venv/bin/python scripts/soak.py --requests 400 --out docs/soak
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import default_model
from bench_servers import ServerSpec, start_server

TOPICS = ("rivers", "owls", "trains", "tea", "maps", "bridges", "glass", "clocks")
BAD_BODIES: list[dict[str, Any]] = [
    {"messages": []},
    {"messages": [{"role": "user"}], "n": 3},
    {"messages": [{"role": "user", "content": "hi"}], "temperature": 7},
    {"messages": "hello"},
]


def _body(rng: random.Random) -> tuple[dict[str, Any], str]:
    """A random request and what it is for: ok, bad (expects 4xx) or hangup."""
    roll = rng.random()
    if roll < 0.1:
        return rng.choice(BAD_BODIES), "bad"
    topic = rng.choice(TOPICS)
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": f"Tell me about {topic}."}],
        "max_tokens": rng.choice((8, 32, 96)),
        "temperature": rng.choice((0, 0.7)),
        "stream": roll < 0.7,
    }
    if roll < 0.3:
        body["stream"] = True
        return body, "hangup"
    return body, "ok"


async def _one(client: httpx.AsyncClient, body: dict[str, Any], kind: str) -> dict[str, Any]:
    started = time.perf_counter()
    record: dict[str, Any] = {"kind": kind}
    try:
        if body.get("stream"):
            async with client.stream("POST", "/chat/completions", json=body) as response:
                record["status"] = response.status_code
                async for line in response.aiter_lines():
                    if kind == "hangup" and line.startswith("data: {"):
                        break  # leaving the block closes the connection mid-stream
                    if '"error"' in line:
                        record["inband_error"] = line
        else:
            response = await client.post("/chat/completions", json=body)
            record["status"] = response.status_code
    except httpx.HTTPError as exc:
        record["transport_error"] = repr(exc)
    record["seconds"] = time.perf_counter() - started
    return record


def _unexpected(record: dict[str, Any]) -> bool:
    status = record.get("status")
    if "transport_error" in record or "inband_error" in record:
        return True
    if record["kind"] == "bad":
        return not (status is not None and 400 <= status < 500)
    return status not in (200, 503)


async def _soak(base_url: str, requests: int, concurrency: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    work = [_body(rng) for _ in range(requests)]
    results: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            while work:
                body, kind = work.pop()
                results.append(await _one(client, body, kind))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


async def _cancel_many(base_url: str, count: int) -> None:
    body = {"messages": [{"role": "user", "content": "Write a long story."}], "stream": True}
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        for _ in range(count):
            await _one(client, body, "hangup")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--cancelled", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", type=Path, default=default_model())
    parser.add_argument("--out", type=Path, default=None, help="writes OUT/soak.{json,md}")
    args = parser.parse_args(argv)
    spec = ServerSpec(model=args.model, threads=2, ctx_per_seq=4096, slots=4)
    logs = Path(tempfile.mkdtemp(prefix="llm-service-soak-"))
    with start_server("ours", spec, logs) as server:
        rss_start = server.sample_rss()
        started = time.perf_counter()
        results = asyncio.run(_soak(server.base_url, args.requests, args.concurrency, args.seed))
        soak_seconds = time.perf_counter() - started
        rss_after_soak = server.sample_rss()
        asyncio.run(_cancel_many(server.base_url, args.cancelled))
        time.sleep(1)
        rss_after_cancels = server.sample_rss()
        peak = server.peak_rss
    unexpected = [r for r in results if _unexpected(r)]
    served = [r["seconds"] for r in results if r["kind"] == "ok" and r.get("status") == 200]
    mib = 1024 * 1024
    report = {
        "command": " ".join(["python", "scripts/soak.py", *(argv or sys.argv[1:])]),
        "requests": len(results),
        "by_kind": {k: sum(r["kind"] == k for r in results) for k in ("ok", "bad", "hangup")},
        "busy_503": sum(r.get("status") == 503 for r in results),
        "unexpected_errors": len(unexpected),
        "unexpected_examples": unexpected[:5],
        "latency_p50_s": statistics.median(served),
        "latency_p99_s": _percentile(served, 0.99),
        "soak_seconds": soak_seconds,
        "rss_mib": {
            "start": rss_start / mib,
            "after_soak": rss_after_soak / mib,
            "after_cancelled_streams": rss_after_cancels / mib,
            "peak": peak / mib,
        },
        "cancelled_streams": args.cancelled,
    }
    print(f"server log: {logs}", file=sys.stderr)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "soak.json").write_text(text + "\n")
        rss = report["rss_mib"]
        (args.out / "soak.md").write_text(
            f"# Soak\n\n```\n{report['command']}\n```\n\n"
            f"- {report['requests']} requests at concurrency {args.concurrency} "
            f"({report['by_kind']}), {soak_seconds:.0f} s\n"
            f"- unexpected errors: {report['unexpected_errors']}; 503 busy: {report['busy_503']}\n"
            f"- latency of served requests: p50 {report['latency_p50_s']:.2f} s, "
            f"p99 {report['latency_p99_s']:.2f} s\n"
            f"- server RSS: {rss['start']:.0f} MiB at start, {rss['after_soak']:.0f} after the "
            f"soak, {rss['after_cancelled_streams']:.0f} after {args.cancelled} cancelled "
            f"streams (peak {rss['peak']:.0f})\n"
        )
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
