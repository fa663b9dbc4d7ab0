"""How cost grows with length: time to first token and decode speed against depth.

One request per depth, one client: a distinct document of about `depth` tokens (so no
server can reuse another depth's cache) and a short reply. The time to first token is
the cost of reading the prompt; the decode speed after it is the cost of attention
over that many tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench_load import Message, RequestResult, Target, make_client, stream_chat
from bench_scenarios import SYSTEM, big_document

__all__ = ("depth_documents", "depth_metrics", "depths", "write_depth_chart")


def depth_documents(points: list[int], model: Path | None) -> list[tuple[int, str]]:
    """A document per depth, each starting differently."""
    documents = []
    for depth in points:
        text, _ = big_document(max(depth, 16), model)
        documents.append((depth, f"Document number {depth}, read it carefully.\n{text}"))
    return documents


async def depths(
    target: Target, documents: list[tuple[int, str]], max_tokens: int
) -> list[RequestResult]:
    async with make_client(target, 1) as client:
        results = []
        for _, document in documents:
            messages: list[Message] = [SYSTEM, {"role": "user", "content": document}]
            results.append(await stream_chat(client, target, messages, max_tokens))
        return results


def depth_metrics(results: list[RequestResult], points: list[int]) -> list[dict[str, Any]]:
    rows = []
    for depth, r in zip(points, results, strict=True):
        decode = r.end - r.chunk_times[0] if r.chunk_times else 0.0
        tokens = (r.completion_tokens or len(r.chunk_times)) - 1
        rows.append(
            {
                "depth": depth,
                "prompt_tokens": r.prompt_tokens,
                "ttft_ms": round(r.ttft * 1000, 1) if r.ttft is not None else None,
                "decode_tokens_per_s": tokens / decode if decode > 0 and tokens > 0 else None,
                "errors": int(r.error is not None),
            }
        )
    return rows


def write_depth_chart(doc: dict[str, Any], path: Path) -> bool:
    """TTFT and decode speed against depth, a line per server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = {
        name: server["summary"]["depth"]
        for name, server in doc["servers"].items()
        if server.get("summary") and server["summary"].get("depth")
    }
    if not lines:
        return False
    figure, (ttft, speed) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, points in lines.items():
        x = [p.get("prompt_tokens") or p["depth"] for p in points]
        ttft.plot(x, [p.get("ttft_ms") or float("nan") for p in points], "o-", label=name)
        speed.plot(
            x, [p.get("decode_tokens_per_s") or float("nan") for p in points], "o-", label=name
        )
    for axes, label in ((ttft, "time to first token (ms)"), (speed, "decode tokens/s after it")):
        axes.set_xlabel("prompt tokens (depth)")
        axes.set_ylabel(label)
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        axes.legend()
    figure.suptitle(f"{Path(doc['model']['path']).name}: cost against depth, one client")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
