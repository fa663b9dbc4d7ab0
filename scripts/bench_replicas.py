"""Replicas behind HAProxy: turn-N time to first token with cache affinity against round
robin, side by side in one run, plus what a capacity model needs (memory per replica,
the proxy's CPU per request and per streamed token).

    .venv/bin/python scripts/bench_replicas.py --out docs/benchmarks/replicas

Three replicas (`scripts/replicas.py`, 1 thread each) and two HAProxy instances in front
of the same replicas, one with the shipped configuration and one with
`LLM_PROXY_BALANCE=roundrobin`. Each round runs 8 concurrent conversations through each
proxy in turn (the order alternates per round); a conversation opens with a document of
its own (so nothing is shared between conversations or runs) and then asks short
follow-ups, resending the whole history as OpenAI clients do. The requests carry no
`prompt_cache_key` or `user`: the proxy routes by the conversation's start, the case
that needs nothing from the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from bench_load import Message, RequestResult, Target, make_client, stream_chat
from bench_scenarios import SYSTEM, big_document
from replicas import Proxy, Replica

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.model_source import embedded_model_path  # noqa: E402

MODES = ("affinity", "roundrobin")


async def conversation(
    target: Target, index: int, tag: str, document: str, turns: int, max_tokens: int
) -> list[RequestResult]:
    history: list[Message] = [
        SYSTEM,
        {"role": "user", "content": f"Conversation {tag}-{index}.\n{document}"},
    ]
    results = []
    async with make_client(target, 1) as client:
        for turn in range(turns):
            if turn:
                history.append({"role": "user", "content": f"Tell me more about point {turn}."})
            result = await stream_chat(client, target, list(history), max_tokens)
            results.append(result)
            history.append({"role": "assistant", "content": result.text})
    return results


async def run_mode(
    proxy: Proxy, tag: str, document: str, args: argparse.Namespace
) -> list[list[RequestResult]]:
    target = Target(base_url=proxy.base_url, model="any", timeout=600)
    runs = [
        conversation(target, i, tag, document, args.turns, args.max_tokens)
        for i in range(args.conversations)
    ]
    return list(await asyncio.gather(*runs))


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def summarize(runs: dict[str, list[list[list[RequestResult]]]], turns: int) -> dict[str, Any]:
    """Per turn, the median TTFT of every conversation of every round, per mode."""
    by_turn: list[dict[str, Any]] = []
    for turn in range(turns):
        row: dict[str, Any] = {"turn": turn + 1}
        for mode, rounds in runs.items():
            results = [conv[turn] for round_ in rounds for conv in round_]
            ttfts = [r.ttft for r in results if r.ttft is not None]
            row[f"{mode}_ttft_ms"] = _ms(_median(ttfts))
            row[f"{mode}_prompt_tokens"] = _median([r.prompt_tokens or 0 for r in results])
            row[f"{mode}_errors"] = sum(r.error is not None for r in results)
        a, b = row["affinity_ttft_ms"], row["roundrobin_ttft_ms"]
        row["roundrobin_over_affinity"] = round(b / a, 2) if a and b else None
        by_turn.append(row)
    later = {
        mode: [
            r.ttft for round_ in rounds for conv in round_ for r in conv[1:] if r.ttft is not None
        ]
        for mode, rounds in runs.items()
    }
    medians = {mode: _median(values) for mode, values in later.items()}
    a, b = medians["affinity"], medians["roundrobin"]
    return {
        "turns": by_turn,
        "later_turns_median_ttft_ms": {mode: _ms(v) for mode, v in medians.items()},
        "later_turns_ratio": round(b / a, 2) if a and b else None,
    }


def render(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    lines = [
        "# Replicas behind HAProxy: cache affinity against round robin",
        "",
        f"Measured by `scripts/bench_replicas.py` on {doc['machine']['cpu']} "
        f"({doc['machine']['cpus']} vCPUs), {doc['replicas']} replicas of 1 thread, "
        f"{doc['slots']} slots each; {doc['conversations']} concurrent conversations of "
        f"{doc['turns_per_conversation']} turns, {doc['rounds']} rounds, both proxies in "
        "every round (order alternating). Model: SmolLM2-135M-Instruct Q4_1.",
        "",
        "| Turn | Prompt tokens | TTFT affinity (ms) | TTFT round robin (ms) "
        "| Round robin / affinity |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in s["turns"]:
        lines.append(
            f"| {row['turn']} | {row['affinity_prompt_tokens']:.0f} | {row['affinity_ttft_ms']} "
            f"| {row['roundrobin_ttft_ms']} | {row['roundrobin_over_affinity']} |"
        )
    later = s["later_turns_median_ttft_ms"]
    errors = sum(row[f"{m}_errors"] for row in s["turns"] for m in MODES)
    lines += [
        "",
        f"Turns 2 and later, median TTFT: affinity {later['affinity']} ms, round robin "
        f"{later['roundrobin']} ms: **{s['later_turns_ratio']}x**. Failed requests: {errors}.",
        "",
        "## For the capacity model",
        "",
        f"- Memory per replica (RSS after the run, this model): "
        f"{', '.join(f'{m:.0f} MiB' for m in doc['replica_rss_mib'])}.",
        f"- HAProxy CPU beyond its idle rate (health checks: "
        f"{doc['proxy']['idle_cpu_seconds_per_second'] * 1000:.2f} ms/s): "
        f"{doc['proxy']['cpu_ms_per_request']:.3f} ms per request, or "
        f"{doc['proxy']['cpu_us_per_chunk']:.1f} µs per streamed chunk if all of it is "
        f"counted per chunk (over {doc['proxy']['requests']} requests, "
        f"{doc['proxy']['chunks']} chunks).",
        "",
    ]
    return "\n".join(lines)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    model = embedded_model_path()
    assert model is not None, "the embedded model is not installed (scripts/dev.py installs it)"
    logs = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    flags = [
        *("--model", str(model), "--model-n-threads", "1"),
        *("--model-n-parallel", str(args.slots), "--model-n-ctx", str(args.n_ctx)),
        *("--server-log-level", "warning"),
    ]
    replicas = [
        Replica(f"replica{i}", [*flags, "--responses-dir", str(logs / f"s{i}")], logs)
        for i in (1, 2, 3)
    ]
    proxies = {
        "affinity": Proxy(replicas, args.slots, logs),
        "roundrobin": Proxy(replicas, args.slots, logs, balance="roundrobin"),
    }
    document, tokens = big_document(args.document_tokens, model)
    print(f"document: {tokens} tokens; logs in {logs}", flush=True)
    runs: dict[str, list[list[list[RequestResult]]]] = {mode: [] for mode in MODES}
    try:
        for replica in replicas:
            replica.start()
        for proxy in proxies.values():
            proxy.start()
        # Warm-up: one short request per replica (lazy initialisation is not measured).
        await run_mode(
            proxies["roundrobin"],
            "warmup",
            "Hello.",
            argparse.Namespace(conversations=3, turns=1, max_tokens=4),
        )
        # HAProxy's own CPU while idle (health checks), to take out of its cost per request.
        idle_cpu = proxies["affinity"].cpu_seconds()
        await asyncio.sleep(args.idle_seconds)
        idle_rate = (proxies["affinity"].cpu_seconds() - idle_cpu) / args.idle_seconds
        cpu = 0.0
        for round_ in range(args.rounds):
            order = MODES if round_ % 2 == 0 else MODES[::-1]
            for mode in order:
                started = time.monotonic()
                cpu_before = proxies[mode].cpu_seconds()
                results = await run_mode(proxies[mode], f"r{round_}-{mode}", document, args)
                elapsed = time.monotonic() - started
                if mode == "affinity":
                    cpu += proxies[mode].cpu_seconds() - cpu_before - idle_rate * elapsed
                runs[mode].append(results)
                print(f"round {round_ + 1} {mode}: {elapsed:.1f} s", flush=True)
        affinity_results = [r for round_ in runs["affinity"] for conv in round_ for r in conv]
        chunks = sum(len(r.chunk_times) for r in affinity_results)
        rss = [psutil.Process(r.proc.pid).memory_info().rss / 2**20 for r in replicas if r.proc]
    finally:
        for proxy in proxies.values():
            proxy.stop()
        for replica in replicas:
            replica.stop()
    return {
        "machine": {
            "cpu": _cpu_name(),
            "cpus": psutil.cpu_count(),
        },
        "replicas": len(replicas),
        "slots": args.slots,
        "conversations": args.conversations,
        "turns_per_conversation": args.turns,
        "rounds": args.rounds,
        "document_tokens": tokens,
        "summary": summarize(runs, args.turns),
        "replica_rss_mib": [round(m, 1) for m in rss],
        "proxy": {
            "requests": len(affinity_results),
            "chunks": chunks,
            "cpu_seconds": round(cpu, 3),
            "idle_cpu_seconds_per_second": round(idle_rate, 5),
            "cpu_ms_per_request": cpu * 1000 / max(1, len(affinity_results)),
            "cpu_us_per_chunk": cpu * 1e6 / max(1, chunks),
        },
    }


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--document-tokens", type=int, default=600)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    doc = asyncio.run(bench(args))
    report = render(doc)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
