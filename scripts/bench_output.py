"""What `bench.py` writes: tables for people (stdout and Markdown), JSON for machines and
a PNG chart (tokens/s and time to first token against concurrency, a line per server).

Everything here reads the run's document (a plain dict, exactly what goes into the
JSON), so a chart or a table can be redrawn later from a saved JSON alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ("render_tables", "write_chart", "write_json", "write_markdown")

Doc = dict[str, Any]
MIB = 1024 * 1024


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _summaries(doc: Doc) -> dict[str, Doc]:
    return {
        name: server["summary"]
        for name, server in doc["servers"].items()
        if server.get("summary") is not None
    }


def _sweep(summaries: dict[str, Doc], markdown: bool, scenario: str = "sweep") -> str | None:
    headers = ["server", "conc", "tok/s", "req/s", "TTFT p50 ms", "TTFT p90 ms", "ITL p50 ms"]
    headers += ["stream tok/s min-max", "max/min", "errors", "truncated"]
    edit = scenario == "edit"
    if edit:
        headers.append("drafts accepted")
    rows = []
    for name, summary in summaries.items():
        for level, m in (summary.get(scenario) or {}).items():
            spread = f"{_fmt(m.get('stream_tps_min'))}-{_fmt(m.get('stream_tps_max'))}"
            rows.append(
                [
                    *(name, level, _fmt(m.get("tokens_per_s")), _fmt(m.get("requests_per_s"), 2)),
                    *(_fmt(m.get("ttft_p50_ms"), 0), _fmt(m.get("ttft_p90_ms"), 0)),
                    *(_fmt(m.get("itl_p50_ms")), spread, _fmt(m.get("stream_tps_ratio"), 2)),
                    *(_fmt(m.get("errors")), _fmt(m.get("truncated"))),
                    *((_fmt(m.get("draft_acceptance"), 2),) if edit else ()),
                ]
            )
    return _table(headers, rows, markdown) if rows else None


def _memory(summaries: dict[str, Doc], markdown: bool) -> str | None:
    rows = [
        [name, _fmt(s["idle_rss"] / MIB), _fmt(s["peak_rss"] / MIB)]
        for name, s in summaries.items()
        if s.get("peak_rss")
    ]
    return _table(["server", "idle RSS MiB", "peak RSS MiB"], rows, markdown) if rows else None


def _multiturn(summaries: dict[str, Doc], markdown: bool) -> str | None:
    turns = {name: s["multiturn"] for name, s in summaries.items() if s.get("multiturn")}
    if not turns:
        return None
    headers = ["turn", *(f"{name} TTFT ms (prompt/cached/reused tok)" for name in turns)]
    rows = []
    for i in range(max(len(t) for t in turns.values())):
        row = [str(i + 1)]
        for per_turn in turns.values():
            t = per_turn[i] if i < len(per_turn) else {}
            sizes = "/".join(
                _fmt(t.get(key), 0) for key in ("prompt_tokens", "cached_tokens", "reused_tokens")
            )
            row.append(f"{_fmt(t.get('ttft_ms'), 0)} ({sizes})")
        rows.append(row)
    failed = [sum(t.get("errors", 0) + t.get("truncated", 0) for t in ts) for ts in turns.values()]
    rows.append(["errors+truncated", *map(str, failed)])
    return _table(headers, rows, markdown)


def _interference(summaries: dict[str, Doc], markdown: bool) -> str | None:
    headers = ["server", "ITL p50 ms", "ITL p99 ms", "p99/p50", "max ms", "gaps"]
    headers += ["all p50 ms", "all p99 ms", "big TTFT ms", "big prompt tok", "errors"]
    rows = []
    for name, s in summaries.items():
        m = s.get("interference")
        if m:
            rows.append(
                [
                    *(name, _fmt(m.get("window_itl_p50_ms")), _fmt(m.get("window_itl_p99_ms"))),
                    *(_fmt(m.get("window_p99_over_p50"), 2), _fmt(m.get("window_itl_max_ms"))),
                    *(_fmt(m.get("window_gaps"), 0), _fmt(m.get("overall_itl_p50_ms"))),
                    *(_fmt(m.get("overall_itl_p99_ms")), _fmt(m.get("big_ttft_ms"), 0)),
                    *(_fmt(m.get("big_prompt_tokens"), 0), _fmt(m.get("errors"))),
                ]
            )
    return _table(headers, rows, markdown) if rows else None


def _long(summaries: dict[str, Doc], markdown: bool) -> str | None:
    rows = []
    for name, s in summaries.items():
        m = s.get("long")
        if not m:
            continue
        for length, r in (m.get("replies") or {}).items():
            rows.append(
                [
                    *(name, length, _fmt(r.get("completion_tokens"), 0)),
                    *(str(r.get("finish_reason")), _fmt(r.get("tokens_per_s"))),
                    *(_fmt(r.get("decode_tokens_per_s")), _fmt(m.get("long_over_short_tps"), 3)),
                    *(_fmt(r.get("errors")), _fmt(r.get("truncated"))),
                ]
            )
    headers = ["server", "max_tokens", "tokens", "finish", "tok/s", "decode tok/s", "long/short"]
    headers += ["errors", "truncated"]
    return _table(headers, rows, markdown) if rows else None


def _depth(summaries: dict[str, Doc], markdown: bool) -> str | None:
    rows = []
    for name, s in summaries.items():
        for point in s.get("depth") or ():
            rows.append(
                [
                    name,
                    _fmt(point.get("depth"), 0),
                    _fmt(point.get("prompt_tokens"), 0),
                    _fmt(point.get("ttft_ms"), 0),
                    _fmt(point.get("decode_tokens_per_s")),
                ]
            )
    if not rows:
        return None
    headers = ["server", "depth", "prompt tok", "TTFT ms", "decode tok/s"]
    return _table(headers, rows, markdown)


def _edit(summaries: dict[str, Doc], markdown: bool) -> str | None:
    return _sweep(summaries, markdown, "edit")


def _burst(summaries: dict[str, Doc], markdown: bool) -> str | None:
    rows = []
    for name, s in summaries.items():
        m = s.get("burst")
        if m:
            rows.append(
                [
                    *(name, _fmt(m.get("requests"), 0), _fmt(m.get("errors"), 0)),
                    *(_fmt(m.get("elapsed_s")), _fmt(m.get("latency_p50_ms"), 0)),
                    _fmt(m.get("latency_p99_ms"), 0),
                ]
            )
    headers = ["server", "requests", "errors", "drain s", "latency p50 ms", "latency p99 ms"]
    return _table(headers, rows, markdown) if rows else None


def render_tables(doc: Doc, markdown: bool = False) -> str:
    """All result tables, each under a title, plus which servers were skipped and why."""
    summaries = _summaries(doc)
    sections = []
    for title, make in (
        ("Concurrency sweep (closed loop)", _sweep),
        ("Memory", _memory),
        ("Multi-turn: time to first token per turn", _multiturn),
        ("Interference: a long prompt admitted while streams decode", _interference),
        ("Long vs short replies (one client)", _long),
        ("Cost against depth: a new prompt of that many tokens, one client", _depth),
        ("Edit: a ~400-token passage handed back with one change", _edit),
        ("Burst: requests sent at once, each answered or an error", _burst),
    ):
        body = make(summaries, markdown)
        if body:
            sections.append(f"## {title}\n\n{body}" if markdown else f"{title}\n{body}")
    for name, server in doc["servers"].items():
        if server.get("reason"):
            sections.append(f"{server['status']} {name}: {server['reason']}")
    return "\n\n".join(sections)


def write_json(doc: Doc, path: Path) -> None:
    path.write_text(json.dumps(doc, indent=2) + "\n")


def write_markdown(doc: Doc, path: Path, chart: Path | None) -> None:
    """The tables and the exact command, for a docs page or a pull request."""
    model, settings = doc["model"], doc["settings"]
    lines = [
        f"# Benchmark: {Path(model['path']).name}",
        "",
        "```",
        doc["command"],
        "```",
        "",
        f"- Model: `{Path(model['path']).name}` (sha256 `{model.get('sha256')}`)",
        f"- Machine: {doc['machine']['platform']}, {doc['machine']['cpu_count']} CPUs",
        f"- Settings: {json.dumps(settings)}",
        f"- Versions: {json.dumps({n: s.get('version') for n, s in doc['servers'].items()})}",
        "",
    ]
    if chart is not None:
        lines += [f"![tokens/s and TTFT against concurrency]({chart.name})", ""]
    lines.append(render_tables(doc, markdown=True))
    path.write_text("\n".join(lines) + "\n")


def write_chart(doc: Doc, path: Path) -> bool:
    """Two panels against concurrency, a line per server; False when there is nothing
    to draw (no sweep ran)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = {name: s["sweep"] for name, s in _summaries(doc).items() if s.get("sweep") is not None}
    if not lines:
        return False
    figure, (rate, ttft) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, sweep in lines.items():
        levels = [int(level) for level in sweep]
        rate.plot(levels, [m.get("tokens_per_s") or float("nan") for m in sweep.values()], "o-")
        ttft.plot(levels, [m.get("ttft_p50_ms") or float("nan") for m in sweep.values()], "o-")
        rate.lines[-1].set_label(name)
        ttft.lines[-1].set_label(name)
    levels = sorted({int(level) for sweep in lines.values() for level in sweep})
    for axes, label in ((rate, "completion tokens/s (aggregate)"), (ttft, "median TTFT (ms)")):
        axes.set_xscale("log", base=2)
        axes.set_xticks(levels, [str(level) for level in levels])
        axes.set_xlabel("concurrent clients")
        axes.set_ylabel(label)
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        axes.legend()
    settings = doc["settings"]
    figure.suptitle(
        f"{Path(doc['model']['path']).name}: {settings['threads']} threads, "
        f"max_tokens {settings['max_tokens']}, median of {settings['rounds']} round(s)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
