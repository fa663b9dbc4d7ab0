"""The `switch` scenario's results: per-round cells combined, the ratios the targets of
issue 26 are read from, and the text and Markdown tables (`bench_switch.py` runs it)."""

from __future__ import annotations

import functools
import json
import statistics
from pathlib import Path
from typing import Any

import bench_output
import bench_report as report

__all__ = ("METHOD", "SERVERS", "ratios", "render", "summarize", "write_markdown")

SERVERS = ("ours-multi", "llama-server-router", "ours-single")
METHOD = (
    "How (`scripts/bench_switch.py`):",
    "",
    "- `ours-multi`: one process, both models in its catalog (`models.max_loaded = 2`); "
    "`llama-server-router`: `llama-server --models-dir` (both GGUFs, named by their ids) "
    "`--models-max 2`, each model a child process inheriting `-t/-tb/-np/-c`; "
    "`ours-single`: one model per process, restarted on each switch. Ours runs with "
    "speculative decoding off (llama-server guesses nothing by default).",
    "- Every request: streamed `/v1/completions` of a counting prompt, greedy, "
    "`max_tokens` fixed (every reply ends for length: see `finish`).",
    "- Warm: closed-loop clients on one model, both resident (both served a request "
    "first), and again with the other model unloaded (`resident: one`). Cold: "
    "`POST /models/unload`, wait for `unloaded` in `/v1/models`, then time to first "
    "token of a request for it (`ours-single`: from the stop of the other model's "
    "server: stop + start + first token). Alternating: each client's next request is "
    "for the other model.",
    "- Per-round cells are combined by their median; cold switches are pooled over rounds.",
)


def _p(values: list[float], q: float) -> float | None:
    return report.percentile(values, q)


def _cold_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    good = [s for s in samples if s.get("ttft_ms") is not None and not s.get("error")]
    ttfts = [s["ttft_ms"] for s in good]
    summary: dict[str, Any] = {
        "samples": len(samples),
        "errors": len(samples) - len(good),
        "ttft_p50_ms": _p(ttfts, 50),
        "ttft_p90_ms": _p(ttfts, 90),
        "ttft_min_ms": min(ttfts, default=None),
        "ttft_max_ms": max(ttfts, default=None),
        "per_model_p50_ms": {
            model: _p([s["ttft_ms"] for s in good if s["model"] == model], 50)
            for model in dict.fromkeys(s["model"] for s in samples)
        },
    }
    for key in ("stop_ms", "start_ms", "unload_ms"):
        values = [s[key] for s in good if key in s]
        if values:
            summary[key.replace("_ms", "_p50_ms")] = _p(values, 50)
    return summary


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Per-round cells combined by `bench_report.aggregate`; cold samples pooled."""
    ran = [r for r in rounds if "error" not in r]
    if not ran:
        return None
    summary: dict[str, Any] = {}
    for key in ("warm", "warm_alone"):
        models = list(dict.fromkeys(m for r in ran for m in r.get(key, {})))
        if not models:
            continue
        summary[key] = {
            model: {
                level: report.aggregate(
                    [
                        ((r.get(key) or {}).get(model) or {}).get(level, {}).get("metrics")
                        for r in ran
                    ]
                )
                for level in dict.fromkeys(
                    lv for r in ran for lv in ((r.get(key) or {}).get(model) or {})
                )
            }
            for model in models
        }
    if any("alternate" in r for r in ran):
        levels = dict.fromkeys(lv for r in ran for lv in r.get("alternate", {}))
        summary["alternate"] = {
            level: report.aggregate(
                [r.get("alternate", {}).get(level, {}).get("metrics") for r in ran]
            )
            for level in levels
        }
    summary["cold"] = _cold_summary([s for r in ran for s in r.get("cold", [])])
    loaded = [r["loaded_rss"] for r in ran if isinstance(r.get("loaded_rss"), int)]
    summary["loaded_rss"] = statistics.median(loaded) if loaded else None
    summary["peak_rss"] = max((r.get("peak_rss") or 0 for r in ran), default=0) or None
    return summary


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


def ratios(servers: dict[str, dict[str, Any]], ids: tuple[str, str]) -> list[dict[str, Any]]:
    """Each target as measured in this run: value, target and whether it is met."""
    summary = {name: s.get("summary") or {} for name, s in servers.items()}
    multi, router, single = (summary.get(n, {}) for n in SERVERS)
    rows: list[dict[str, Any]] = []

    def add(what: str, value: float | None, target: str, met: bool | None) -> None:
        if value is not None:  # both servers of the ratio ran
            rows.append({"ratio": what, "value": value, "target": target, "met": met})

    def tps(s: dict[str, Any], *path: str) -> float | None:
        node: Any = s
        for key in path:
            node = (node or {}).get(key)
        return (node or {}).get("tokens_per_s")

    for model in ids:
        for level in (multi.get("warm") or {}).get(model, {}):
            value = _ratio(tps(multi, "warm", model, level), tps(single, "warm", model, level))
            met = None if value is None else value >= 0.97
            add(f"warm {model} c={level}: ours-multi / ours-single tok/s", value, ">= 0.97", met)
    for model in ids:
        for level in (multi.get("warm_alone") or {}).get(model, {}):
            alone = tps(multi, "warm_alone", model, level)
            value = _ratio(alone, tps(single, "warm", model, level))
            what = f"warm {model} c={level}, the other unloaded: ours-multi / ours-single tok/s"
            add(what, value, "(info)", None)
    for model in ids:
        for level in (multi.get("warm") or {}).get(model, {}):
            value = _ratio(tps(multi, "warm", model, level), tps(router, "warm", model, level))
            add(f"warm {model} c={level}: ours-multi / router tok/s", value, "(info)", None)
    cold_multi = (multi.get("cold") or {}).get("ttft_p50_ms")
    cold_router = (router.get("cold") or {}).get("ttft_p50_ms")
    cold_single = (single.get("cold") or {}).get("ttft_p50_ms")
    value = _ratio(cold_multi, cold_router)
    add(
        "cold switch TTFT p50: ours-multi / router",
        value,
        "<= 1",
        None if value is None else value <= 1,
    )
    add(
        "cold switch TTFT p50: ours-multi / restart",
        _ratio(cold_multi, cold_single),
        "(info)",
        None,
    )
    for level in multi.get("alternate") or {}:
        value = _ratio(tps(multi, "alternate", level), tps(router, "alternate", level))
        met = None if value is None else value >= 1.2
        add(f"alternate N={level}: ours-multi / router tok/s", value, ">= 1.2", met)
    return rows


def _f(value: Any, digits: int = 1) -> str:
    return bench_output._fmt(value, digits)


def render(doc: dict[str, Any], markdown: bool = False) -> str:
    table = functools.partial(_table, markdown=markdown)
    summaries = {n: s["summary"] for n, s in doc["servers"].items() if s.get("summary")}
    sections = []
    rows = []
    for name, s in summaries.items():
        for key in ("warm", "warm_alone"):
            resident = "one" if key == "warm_alone" or name == "ours-single" else "both"
            for model, levels in (s.get(key) or {}).items():
                for level, m in levels.items():
                    m = m or {}
                    rows.append(
                        [
                            *(name, resident, model, level, _f(m.get("tokens_per_s"))),
                            *(_f(m.get("ttft_p50_ms"), 0), _f(m.get("itl_p50_ms"))),
                            *(json.dumps(m.get("finish_reasons")), _f(m.get("errors"))),
                        ]
                    )
    headers = ["server", "resident", "model", "clients", "tok/s", "TTFT p50 ms", "ITL p50 ms"]
    headers += ["finish", "errors"]
    sections.append(("Warm: requests for one model", table(headers, rows)))
    rows = []
    for name, s in summaries.items():
        c = s.get("cold") or {}
        per_model = ", ".join(
            f"{k} {_f(v, 0)}" for k, v in (c.get("per_model_p50_ms") or {}).items()
        )
        rows.append(
            [
                *(name, _f(c.get("samples")), _f(c.get("ttft_p50_ms"), 0)),
                *(_f(c.get("ttft_p90_ms"), 0), _f(c.get("ttft_min_ms"), 0)),
                *(_f(c.get("ttft_max_ms"), 0), per_model),
                *(_f(c.get("unload_p50_ms"), 0), _f(c.get("stop_p50_ms"), 0)),
                *(_f(c.get("start_p50_ms"), 0), _f(c.get("errors"))),
            ]
        )
    headers = ["server", "switches", "TTFT p50 ms", "p90 ms", "min ms", "max ms"]
    headers += ["p50 per model ms", "unload p50 ms", "stop p50 ms", "start p50 ms", "errors"]
    sections.append(("Cold switch: first token for a model not loaded", table(headers, rows)))
    rows = []
    for name, s in summaries.items():
        for level, m in (s.get("alternate") or {}).items():
            m = m or {}
            rows.append(
                [
                    *(name, level, _f(m.get("tokens_per_s")), _f(m.get("ttft_p50_ms"), 0)),
                    *(_f(m.get("itl_p50_ms")), json.dumps(m.get("finish_reasons"))),
                    _f(m.get("errors")),
                ]
            )
    headers = ["server", "clients", "tok/s", "TTFT p50 ms", "ITL p50 ms", "finish", "errors"]
    sections.append(("Alternating clients: each request for the other model", table(headers, rows)))
    rows = [
        [
            name,
            _f((s.get("loaded_rss") or 0) / bench_output.MIB),
            _f((s.get("peak_rss") or 0) / bench_output.MIB),
        ]
        for name, s in summaries.items()
        if name != "ours-single"
    ]
    sections.append(
        ("Memory, both models resident", table(["server", "RSS MiB", "peak MiB"], rows))
    )
    rows = [
        [r["ratio"], _f(r["value"], 3), r["target"], {True: "yes", False: "NO", None: ""}[r["met"]]]
        for r in doc.get("ratios", [])
    ]
    sections.append(("Ratios (same run)", table(["ratio", "value", "target", "met"], rows)))
    text = "\n\n".join(
        f"## {title}\n\n{body}" if markdown else f"{title}\n{body}"
        for title, body in sections
        if body
    )
    reasons = [
        f"{s['status']} {n}: {s['reason']}" for n, s in doc["servers"].items() if s.get("reason")
    ]
    return "\n\n".join([text, *reasons])


def _table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    return bench_output._table(headers, rows, markdown) if rows else ""


def write_markdown(doc: dict[str, Any], path: Path) -> None:
    lines = [
        "# Benchmark: switching between models",
        "",
        "```",
        doc["command"],
        "```",
        "",
        *(
            f"- Model `{model_id}`: `{Path(m['path']).name}` (sha256 `{m['sha256']}`)"
            for model_id, m in doc["models"].items()
        ),
        f"- Machine: {doc['machine']['platform']}, {doc['machine']['cpu_count']} CPUs",
        f"- Settings: {json.dumps(doc['settings'])}",
        f"- Versions: {json.dumps({n: s.get('version') for n, s in doc['servers'].items()})}",
        "",
        *METHOD,
        "",
        render(doc, markdown=True),
    ]
    path.write_text("\n".join(lines) + "\n")
