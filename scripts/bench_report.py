"""Metrics for `bench.py`: from raw per-request results to per-cell numbers, and from
per-round numbers to one summary per server.

Tokens are what the server reported in `usage` (see `RequestResult.tokens_source` for
the fall-backs when it reports none), never estimated from text. Over rounds a metric
is the median of its per-round values, so one disturbed round does not skew it, while
counts (errors, truncated replies, requests) are summed, so none is hidden.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bench_load import RequestResult
from bench_scenarios import InterferenceRun

__all__ = (
    "aggregate",
    "interference_metrics",
    "level_metrics",
    "long_metrics",
    "multiturn_metrics",
    "percentile",
    "request_record",
)

Metrics = dict[str, Any]
SUM_KEYS = frozenset(
    {"requests", "errors", "truncated", "retried", "finish_reasons", "tokens_source"}
)
"""Counts: summed over rounds rather than taking the median."""


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


def request_record(result: RequestResult, origin: float) -> Metrics:
    """One request, compactly, for the JSON's raw data (times in s from `origin`)."""
    return {
        "client": result.client,
        "start": round(result.start - origin, 4),
        "end": round(result.end - origin, 4),
        "ttft_ms": _ms(result.ttft),
        "completion_tokens": result.completion_tokens,
        "tokens_source": result.tokens_source,
        "prompt_tokens": result.prompt_tokens,
        "cached_tokens": result.cached_tokens,
        "chunks": len(result.chunk_times),
        "finish_reason": result.finish_reason,
        "truncated": result.truncated,
        "error": result.error or result.inband_error,
        "retried": result.retried,
    }


def _stream_rate(result: RequestResult) -> float | None:
    """Tokens/s of one request as its user sees it: from sending to the last byte,
    waiting in a queue included (a server that serves one at a time is unfair here)."""
    elapsed = result.end - result.start
    return result.tokens / elapsed if result.error is None and elapsed > 0 else None


def level_metrics(results: list[RequestResult]) -> Metrics:
    """One concurrency level: aggregate throughput over the level's wall time (first
    request sent to last reply ended), latency spreads, and fairness between streams."""
    if not results:
        return {"requests": 0}
    elapsed = max(r.end for r in results) - min(r.start for r in results)
    good = [r for r in results if r.error is None]
    tokens = sum(r.tokens for r in good)
    ttfts = [t for r in good if (t := r.ttft) is not None]
    itls = [gap for r in good for gap in r.itls]
    rates = [rate for r in good if (rate := _stream_rate(r)) is not None]
    low, high = (min(rates), max(rates)) if rates else (None, None)
    return {
        "requests": len(results),
        "errors": len(results) - len(good),
        "truncated": sum(r.truncated for r in results),
        "retried": sum(r.retried for r in results),
        "completion_tokens": tokens,
        "elapsed_s": elapsed,
        "tokens_per_s": tokens / elapsed if elapsed > 0 else None,
        "requests_per_s": len(good) / elapsed if elapsed > 0 else None,
        "ttft_p50_ms": _ms(percentile(ttfts, 50)),
        "ttft_p90_ms": _ms(percentile(ttfts, 90)),
        "itl_p50_ms": _ms(percentile(itls, 50)),
        "itl_p90_ms": _ms(percentile(itls, 90)),
        "stream_tps_min": low,
        "stream_tps_max": high,
        "stream_tps_ratio": _ratio(high, low),
        "finish_reasons": dict(Counter(str(r.finish_reason) for r in good)),
        "tokens_source": dict(Counter(r.tokens_source for r in good)),
    }


def burst_metrics(results: list[RequestResult]) -> Metrics:
    """A burst: the level's numbers, the time to drain it and each request's latency
    (sent to last token) at the median and the 99th percentile."""
    latencies = [r.end - r.start for r in results if r.error is None]
    return {
        **level_metrics(results),
        "latency_p50_ms": _ms(percentile(latencies, 50)),
        "latency_p99_ms": _ms(percentile(latencies, 99)),
    }


def multiturn_metrics(results: list[RequestResult]) -> list[Metrics]:
    """Per turn: time to first token next to the prompt size, what the server says it
    took from its cache (`cached_tokens`) and what it really took (`reused_tokens`)."""
    return [
        {
            "turn": turn,
            "ttft_ms": _ms(r.ttft),
            "prompt_tokens": r.prompt_tokens,
            "cached_tokens": r.cached_tokens,
            "reused_tokens": r.reused_tokens,
            "completion_tokens": r.completion_tokens,
            "errors": int(r.error is not None),
            "truncated": int(r.truncated),
        }
        for turn, r in enumerate(results, start=1)
    ]


def interference_metrics(run: InterferenceRun) -> Metrics:
    """The decoding streams' inter-token latency while the big prompt was admitted (gaps
    that ended inside the window) and over the whole run, and the big prompt's TTFT."""
    low, high = run.window
    window: list[float] = []
    overall: list[float] = []
    for stream in run.streams:
        if stream.error is not None:
            continue
        for earlier, later in itertools.pairwise(stream.chunk_times):
            overall.append(later - earlier)
            if low <= later <= high:
                window.append(later - earlier)
    p50, p99 = percentile(window, 50), percentile(window, 99)
    all50, all99 = percentile(overall, 50), percentile(overall, 99)
    big = run.big
    return {
        "window_itl_p50_ms": _ms(p50),
        "window_itl_p99_ms": _ms(p99),
        "window_itl_max_ms": _ms(max(window)) if window else None,
        "window_p99_over_p50": _ratio(p99, p50),
        "window_gaps": len(window),
        "overall_itl_p50_ms": _ms(all50),
        "overall_itl_p99_ms": _ms(all99),
        "overall_p99_over_p50": _ratio(all99, all50),
        "big_ttft_ms": _ms(big.ttft),
        "big_prompt_tokens": big.prompt_tokens,
        "big_duration_ms": _ms(big.end - big.start),
        "stream_tokens": [s.completion_tokens for s in run.streams],
        "errors": sum(r.error is not None for r in [*run.streams, big]),
        "truncated": sum(r.truncated for r in [*run.streams, big]),
    }


def long_metrics(results: list[RequestResult]) -> Metrics:
    """Tokens/s per reply length (whole request, and decode only: after the first
    token), with the actual token counts, and longest over shortest."""
    replies: Metrics = {}
    for r in results:
        decode = r.end - r.chunk_times[0] if r.chunk_times else 0.0
        replies[str(r.max_tokens)] = {
            "completion_tokens": r.completion_tokens,
            "finish_reason": r.finish_reason,
            "tokens_per_s": _stream_rate(r),
            "decode_tokens_per_s": (r.tokens - 1) / decode if decode > 0 else None,
            "ttft_ms": _ms(r.ttft),
            "errors": int(r.error is not None),
            "truncated": int(r.truncated),
        }
    ordered = sorted(results, key=lambda r: r.max_tokens)
    ratio = None
    if len(ordered) >= 2:
        ratio = _ratio(_stream_rate(ordered[-1]), _stream_rate(ordered[0]))
    return {"replies": replies, "long_over_short_tps": ratio}


def aggregate(values: list[Any], key: str = "") -> Any:
    """Combine the same metric from several rounds, recursively through dicts and
    lists: counts (`SUM_KEYS`) are summed, other numbers take the median, text takes
    the most common value."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, dict) for v in present):
        keys = list(dict.fromkeys(k for v in present for k in v))
        if key in SUM_KEYS:
            return {k: sum(v.get(k, 0) for v in present) for k in keys}
        return {k: aggregate([v.get(k) for v in present], k) for k in keys}
    if all(isinstance(v, list) for v in present):
        length = max(len(v) for v in present)
        return [aggregate([v[i] for v in present if i < len(v)], key) for i in range(length)]
    numbers = [v for v in present if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) == len(present):
        if key in SUM_KEYS:
            return sum(numbers)
        middle = statistics.median(numbers)
        integral = all(isinstance(v, int) for v in numbers) and middle == int(middle)
        return int(middle) if integral else middle
    return Counter(map(str, present)).most_common(1)[0][0]
