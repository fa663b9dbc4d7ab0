"""The `switch` scenario of `bench.py`: two models behind one endpoint, three ways.

    python scripts/bench.py --scenarios switch --out docs/benchmarks/switch

Two GGUFs (`--model`, default the embedded SmolLM2, and `--switch-model`, default
Gemma-3-270M) served with the same threads, context per sequence and slots by:

- `ours-multi`: our server with a catalog of both (`models.max_loaded = 2`), one process,
  continuous batching per model;
- `llama-server-router`: llama.cpp's `llama-server` in router mode (`--models-dir` with
  both, `--models-max 2`); each model runs in a child `llama-server` that inherits the
  router's command line (threads, context, slots);
- `ours-single`: our server with one model, restarted with the other one on every
  switch (stop, start, wait until healthy): what switching costs without a catalog.

Measured, per round (the servers take turns, the order reversing every other round):

- `warm`: closed-loop clients (`--switch-concurrency`) on each model in turn, both models
  resident (`ours-single`: the only one), aggregate tokens/s;
- `cold`: time to first token of a request for a model that is not loaded: right after
  `POST /models/unload` of it (and its state reading `unloaded`), or, for `ours-single`,
  from the stop of the server running the other model (stop + start + first token);
- `alternate`: N clients (`--switch-clients`) each alternating requests between the two
  models, both resident, aggregate tokens/s.

Every request is a streamed `/v1/completions` of one plain prompt that runs long on base
and instruct models alike (counting: greedy, every reply stops at `max_tokens`; not
`ignore_eos`, which only llama-server has), so no chat template is involved and both
servers do the same work; `finish=length` in the tables shows it held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_output
import bench_report as report
import httpx
from bench_args import int_list, name_list
from bench_load import RequestResult, Target, make_client, stream_request
from bench_servers import ROOT, RunningServer, ServerSpec, build_llama_server, start_server
from bench_servers import server_command as _server_command
from bench_switch_report import SERVERS, ratios, render, summarize, write_markdown

__all__ = ("PROMPT", "SERVERS", "add_arguments", "run", "stream_completion")

PROMPT = "The numbers from 1 to 1000, separated by commas:\n1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"
"""Greedy, both models count on well past any `max_tokens` used here."""
GEMMA = ROOT / ".venv" / "models" / "gemma-3-270m-q4_k_m.gguf"
SETTINGS = ("model", "threads", "ctx", "slots", "requests_per_client", "rounds", "timeout")
"""The settings of `bench.py` this scenario uses (besides its own `--switch-*`)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `--switch-*` options of `bench.py`."""
    add = parser.add_argument
    add("--switch-model", type=Path, default=GEMMA, help="switch: the second GGUF")
    add("--switch-model-id", default="gemma", help="switch: the second model's id")
    add("--switch-chat-format", default="gemma", help="switch: its chat_format (ours)")
    add(
        "--switch-servers",
        type=name_list(SERVERS),
        default=",".join(SERVERS),
        help="switch: which of " + ", ".join(SERVERS),
    )
    add("--switch-concurrency", type=int_list, default="1,4", help="switch: warm clients")
    add("--switch-clients", type=int_list, default="2,4", help="switch: alternating clients")
    add("--switch-requests", type=int, default=3, help="switch: requests per alternating client")
    add("--switch-tokens", type=int, default=64, help="switch: max_tokens (warm, alternate)")
    add("--switch-cold", type=int, default=4, help="switch: cold switches per round")
    add("--switch-cold-tokens", type=int, default=8, help="switch: max_tokens of a cold request")
    add(
        "--switch-alone",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="switch: the warm cells again with the other model unloaded (multi-model servers)",
    )


# -- requests -----------------------------------------------------------------------------


async def stream_completion(
    client: httpx.AsyncClient, target: Target, max_tokens: int, client_index: int = 0
) -> RequestResult:
    """One streamed `/v1/completions` of `PROMPT` for `target.model`, timed; a failure
    is recorded in the result, never raised."""
    body = {
        "model": target.model,
        "prompt": PROMPT,
        "max_tokens": max_tokens,
        "temperature": target.temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return await stream_request(client, target, "/completions", body, client_index=client_index)


async def _clients(
    target: Target,
    models: Callable[[int, int], str],
    clients: int,
    requests: int,
    max_tokens: int,
) -> list[RequestResult]:
    """`clients` users in a closed loop, request k of user i for model `models(i, k)`."""
    async with make_client(target, clients) as client:

        async def user(index: int) -> list[RequestResult]:
            out = []
            for k in range(requests):
                aimed = dataclasses.replace(target, model=models(index, k))
                out.append(await stream_completion(client, aimed, max_tokens, index))
            return out

        per_user = await asyncio.gather(*(user(i) for i in range(clients)))
    return [result for results in per_user for result in results]


def _run_clients(
    base_url: str,
    models: Callable[[int, int], str],
    clients: int,
    requests: int,
    max_tokens: int,
    timeout: float,
) -> list[RequestResult]:
    target = Target(base_url, "", 0.0, timeout)
    return asyncio.run(_clients(target, models, clients, requests, max_tokens))


def _one(base_url: str, model: str, max_tokens: int, timeout: float) -> RequestResult:
    return _run_clients(base_url, lambda _i, _k: model, 1, 1, max_tokens, timeout)[0]


# -- model control (the same API on both multi-model servers) -------------------------------


def _states(root: str) -> dict[str, str]:
    """Each listed model's state: ours' `state`, llama-server's `status.value`."""
    data = httpx.get(f"{root}/v1/models", timeout=30, trust_env=False).json().get("data") or []
    return {
        str(entry["id"]): str(entry.get("state") or (entry.get("status") or {}).get("value"))
        for entry in data
    }


def _unload(root: str, model: str, timeout: float = 60.0) -> float:
    """Unload `model` and wait until the server lists it as unloaded; the seconds that took."""
    began = time.perf_counter()
    response = httpx.post(
        f"{root}/models/unload", json={"model": model}, timeout=timeout, trust_env=False
    )
    if response.status_code != 200:
        raise RuntimeError(f"unload {model}: HTTP {response.status_code}: {response.text[:200]}")
    deadline = time.monotonic() + timeout
    while (state := _states(root).get(model)) != "unloaded":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{model} still {state} {timeout:.0f}s after its unload")
        time.sleep(0.05)
    return time.perf_counter() - began


# -- the servers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """Both models and what every server gets alike."""

    ids: tuple[str, str]
    paths: tuple[Path, Path]
    chat_formats: tuple[str, str]
    spec: ServerSpec
    work: Path
    """Scratch folder: our catalog file, llama-server's models folder."""
    log_dir: Path


def _ours(spec: ServerSpec, port: int) -> list[str]:
    """Our server as `bench.py` runs it, speculative decoding off: llama-server guesses
    nothing by default, and n-gram guesses would thrive on a counting prompt."""
    return [*_server_command("ours", spec, port), "--speculative-mode", "off"]


def _ours_single(setup: Setup, which: int) -> Callable[[int], list[str]]:
    spec = dataclasses.replace(setup.spec, model=setup.paths[which])
    chat = ("--model-chat-format", setup.chat_formats[which]) if setup.chat_formats[which] else ()
    return lambda port: [*_ours(spec, port), "--model-id", setup.ids[which], *chat]


def _catalog(setup: Setup) -> Path:
    """`LLM_SERVICE_CONFIG` for `ours-multi`: the second model as a catalog entry (the
    first is `--model-path`, the default model)."""
    chat = setup.chat_formats[1]
    lines = [
        "[models]",
        "max_loaded = 2",
        "keep_alive = 3600",
        "",
        "[[models.entries]]",
        f"id = {json.dumps(setup.ids[1])}",
        f"path = {json.dumps(str(setup.paths[1]))}",
        *(("[models.entries.model]", f"chat_format = {json.dumps(chat)}") if chat else ()),
    ]
    path = setup.work / "catalog.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _router(setup: Setup) -> Callable[[int], list[str]]:
    """llama-server in router mode: a folder of both GGUFs under the ids (a model's name
    is its file name without `.gguf`); every other argument passes to each child."""
    folder = setup.work / "models"
    folder.mkdir(exist_ok=True)
    for model_id, path in zip(setup.ids, setup.paths, strict=True):
        link = folder / f"{model_id}.gguf"
        link.unlink(missing_ok=True)
        link.symlink_to(path)
    spec, threads = setup.spec, str(setup.spec.threads)
    return lambda port: [
        *(str(build_llama_server()), "--host", "127.0.0.1", "--port", str(port)),
        *("--models-dir", str(folder), "--models-max", "2"),
        *("-t", threads, "-tb", threads),
        *("-np", str(spec.slots), "-c", str(spec.ctx_per_seq * spec.slots)),
        *("--no-webui", "-cram", "0"),
    ]


@contextlib.contextmanager
def _started(
    name: str, setup: Setup, command: Callable[[int], list[str]], env: dict[str, str] | None = None
) -> Iterator[RunningServer]:
    with start_server(
        name, setup.spec, setup.log_dir, command=command, env=env, settle=0.0, poll=0.05
    ) as server:
        yield server


# -- the measurements ---------------------------------------------------------------------


def _metrics(results: list[RequestResult], origin: float | None = None) -> dict[str, Any]:
    metrics = report.level_metrics(results)
    first = min((r.start for r in results), default=0.0) if origin is None else origin
    return {"metrics": metrics, "requests": [report.request_record(r, first) for r in results]}


def _say(label: str, what: str, metrics: dict[str, Any]) -> None:
    print(
        f"    {label} {what}: {metrics.get('tokens_per_s') or 0:.1f} tok/s, "
        f"{metrics.get('errors')} errors, finish {metrics.get('finish_reasons')}",
        flush=True,
    )


def _warm(base_url: str, model: str, args: argparse.Namespace, label: str) -> dict[str, Any]:
    out = {}
    for clients in args.switch_concurrency:
        results = _run_clients(
            base_url,
            lambda _i, _k: model,
            clients,
            args.requests_per_client,
            args.switch_tokens,
            args.timeout,
        )
        out[str(clients)] = _metrics(results)
        _say(label, f"warm {model} c={clients}", out[str(clients)]["metrics"])
    return out


def _alternate(base_url: str, ids: tuple[str, str], args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for clients in args.switch_clients:
        results = _run_clients(
            base_url,
            lambda i, k: ids[(i + k) % 2],
            clients,
            args.switch_requests,
            args.switch_tokens,
            args.timeout,
        )
        out[str(clients)] = _metrics(results)
        _say("", f"alternate N={clients}", out[str(clients)]["metrics"])
    return out


def _cold_sample(model: str, result: RequestResult, since: float, **extra: Any) -> dict[str, Any]:
    first = result.chunk_times[0] if result.chunk_times else None
    return {
        "model": model,
        "ttft_ms": None if first is None else (first - since) * 1000,
        "request_ttft_ms": None if result.ttft is None else result.ttft * 1000,
        "completion_tokens": result.completion_tokens,
        "finish_reason": result.finish_reason,
        "error": result.error or result.inband_error,
        **extra,
    }


def _multi_round(
    name: str, server: RunningServer, setup: Setup, args: argparse.Namespace
) -> dict[str, Any]:
    """One round on a multi-model server: warm-up (loads both), warm, alternate, cold."""
    base, root = server.base_url, server.base_url.removesuffix("/v1")
    for model in setup.ids:
        warm = _one(base, model, 8, args.timeout)
        if warm.error:
            raise RuntimeError(f"warm-up of {model} failed: {warm.error}")
    record: dict[str, Any] = {"states": _states(root), "loaded_rss": server.sample_rss()}
    record["warm"] = {model: _warm(base, model, args, name) for model in setup.ids}
    record["alternate"] = _alternate(base, setup.ids, args)
    cold = []
    for index in range(args.switch_cold):
        model = setup.ids[index % 2]
        try:
            unload = _unload(root, model)
        except (RuntimeError, httpx.HTTPError, ValueError) as exc:
            cold.append({"model": model, "ttft_ms": None, "error": f"{exc}"})
            print(f"    cold {model}: {exc}", flush=True)
            continue
        result = _one(base, model, args.switch_cold_tokens, args.timeout)
        cold.append(_cold_sample(model, result, result.start, unload_ms=unload * 1000))
        print(f"    cold {model}: first token after {cold[-1]['ttft_ms'] or 0:.0f} ms", flush=True)
    record["cold"] = cold
    if args.switch_alone:
        record["warm_alone"] = {}
        for which, model in enumerate(setup.ids):
            other = setup.ids[1 - which]
            warm = _one(base, model, 8, args.timeout)  # loads it if the last step unloaded it
            if warm.error:
                raise RuntimeError(f"loading {model} failed: {warm.error}")
            _unload(root, other)
            record["warm_alone"][model] = _warm(base, model, args, f"{name} alone")
    return record


def _single_round(setup: Setup, args: argparse.Namespace) -> dict[str, Any]:
    """One round of `ours-single`: the first model, then a restart with the other model
    for each switch; the first stint on each model also runs the warm cells."""
    record: dict[str, Any] = {"warm": {}, "cold": []}
    with contextlib.ExitStack() as stack:
        for index in range(args.switch_cold + 1):
            which = index % 2
            model = setup.ids[which]
            began = time.perf_counter()
            stack.close()  # stops the server of the other model
            stopped = time.perf_counter()
            server = stack.enter_context(_started("ours-single", setup, _ours_single(setup, which)))
            ready = time.perf_counter()
            result = _one(server.base_url, model, args.switch_cold_tokens, args.timeout)
            if index:
                sample = _cold_sample(
                    model,
                    result,
                    began,
                    stop_ms=(stopped - began) * 1000,
                    start_ms=(ready - stopped) * 1000,
                )
                record["cold"].append(sample)
                print(
                    f"    restart to {model}: first token after {sample['ttft_ms'] or 0:.0f} ms "
                    f"(stop {sample['stop_ms']:.0f}, start {sample['start_ms']:.0f})",
                    flush=True,
                )
            if model not in record["warm"]:
                record["warm"][model] = _warm(server.base_url, model, args, "ours-single")
                record.setdefault("loaded_rss", {})[model] = server.sample_rss()
    return record


def _round(name: str, setup: Setup, args: argparse.Namespace) -> dict[str, Any]:
    if name == "ours-single":
        return _single_round(setup, args)
    command: Callable[[int], list[str]]
    if name == "ours-multi":
        env = {"LLM_SERVICE_CONFIG": str(_catalog(setup))}
        command = functools.partial(_ours, setup.spec)
    else:
        env, command = None, _router(setup)
    with _started(name, setup, command, env) as server:
        record = _multi_round(name, server, setup, args)
    record["peak_rss"] = server.peak_rss
    return record


def run(
    args: argparse.Namespace,
    header: dict[str, Any],
    out: Path,
    log_dir: Path,
    version: Callable[[str], str | None],
    digest: Callable[[Path], str],
) -> int:
    """The whole scenario: rounds over `args.switch_servers`, then tables and files."""
    first: Path = args.model.resolve()
    second: Path = args.switch_model.resolve()
    if not second.is_file():
        print(f"--switch-model: no GGUF at {second}", flush=True)
        return 2
    work = Path(tempfile.mkdtemp(prefix="llm-service-bench-switch-"))
    setup = Setup(
        ids=(first.name.removesuffix(".gguf"), args.switch_model_id),
        paths=(first, second),
        chat_formats=("", args.switch_chat_format),
        spec=ServerSpec(first, args.threads, args.ctx, args.slots),
        work=work,
        log_dir=log_dir,
    )
    names: list[str] = args.switch_servers
    servers: dict[str, dict[str, Any]] = {n: {"status": "ok", "rounds": []} for n in names}
    if "llama-server-router" in names:
        try:
            build_llama_server(log_dir / "llama-server-build.log")
        except RuntimeError as exc:
            print(f"skipped llama-server-router: {exc}", flush=True)
            servers["llama-server-router"].update(status="skipped", reason=str(exc))
    for name, server in servers.items():
        if server["status"] == "ok":
            server["version"] = version(name)
    for index in range(args.rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            if servers[name]["status"] != "ok":
                continue
            print(f"  round {index + 1} {name}:", flush=True)
            record: dict[str, Any] = {"round": index + 1, "loadavg": _loadavg()}
            try:
                record.update(_round(name, setup, args))
            except (RuntimeError, OSError, httpx.HTTPError, ValueError) as exc:
                print(f"    failed: {exc!r}", flush=True)
                record["error"] = f"{type(exc).__name__}: {exc}"
            servers[name]["rounds"].append(record)
    for server in servers.values():
        server["summary"] = summarize(server["rounds"])
        if server["status"] == "ok" and server["summary"] is None:
            errors = [r.get("error") for r in server["rounds"]]
            server.update(status="failed", reason=errors[-1] if errors else "no rounds ran")
    settings = {
        key: value
        for key, value in header["settings"].items()
        if key in SETTINGS or key.startswith("switch_")
    }
    doc = {
        **header,
        "settings": settings,
        "models": {
            model_id: {"path": str(path), "size_bytes": path.stat().st_size, "sha256": digest(path)}
            for model_id, path in zip(setup.ids, setup.paths, strict=True)
        },
        "servers": servers,
        "ratios": ratios(servers, setup.ids),
    }
    print("\n" + render(doc))
    json_path, markdown = (out.parent / f"{out.name}.{ext}" for ext in ("json", "md"))
    bench_output.write_json(doc, json_path)
    write_markdown(doc, markdown)
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nwrote {json_path}, {markdown}")
    return 0 if any(s["summary"] for s in servers.values()) else 1


def _loadavg() -> str | None:
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else None
