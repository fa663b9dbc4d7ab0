"""Server overhead, measured side by side: streamed tokens/s through HTTP vs in-process.

    python scripts/bench_overhead.py [--model PATH] [--threads 2] [--tokens 200] [--rounds 3]

Runs the same greedy chat reply (same prompt tokens, same token count) alternately
(a) in-process with llama-cpp-python's `Llama.generate`, the ceiling, and (b) through
our server (`python -m app` in a subprocess) with the OpenAI SDK streaming, so that
machine drift hits both alike. Prints the medians and their ratio. A small, quick
check; the full load benchmark (concurrency, other servers) is a separate script.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
from llama_cpp import Llama, llama_chat_format

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.model_source import embedded_model_path  # noqa: E402

MESSAGES: Any = [{"role": "user", "content": "Count from 1 to 300, separated by commas."}]


def in_process(llama: Llama, prompt: list[int], tokens: int) -> float:
    llama.reset()  # type: ignore[no-untyped-call]
    started = time.perf_counter()
    generated = llama.generate(prompt, temp=0, top_k=0, top_p=1, min_p=0, repeat_penalty=1)
    for count, _ in enumerate(generated, start=1):
        if count == tokens:
            break
    return tokens / (time.perf_counter() - started)


def through_server(client: openai.OpenAI, tokens: int) -> tuple[float, float]:
    started = time.perf_counter()
    first = 0.0
    stream = client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        max_tokens=tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = None
    for chunk in stream:
        if not first and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
        usage = chunk.usage or usage
    elapsed = time.perf_counter() - started
    assert usage is not None
    assert usage.completion_tokens == tokens, "the reply ended early; use fewer --tokens"
    return tokens / elapsed, first


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=embedded_model_path())
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "--model",
            str(args.model),
            "--port",
            str(port),
            "--model-n-threads",
            str(args.threads),
            "--server-log-level",
            "warning",
        ],
        cwd=ROOT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
        llama = Llama(
            str(args.model),
            n_ctx=4096,
            n_threads=args.threads,
            n_threads_batch=args.threads,
            verbose=False,
        )
        template = llama_chat_format.Jinja2ChatFormatter(
            llama.metadata["tokenizer.chat_template"], eos_token="", bos_token=""
        )
        prompt = llama.tokenize(
            template(messages=MESSAGES).prompt.encode(),
            add_bos=False,
            special=True,
        )
        through_server(client, 8)  # warm-up
        raw, served, ttft = [], [], []
        for _ in range(args.rounds):
            raw.append(in_process(llama, prompt, args.tokens))
            time.sleep(1)  # let this process's idle compute threads stop spinning first
            rate, first = through_server(client, args.tokens)
            time.sleep(1)
            served.append(rate)
            ttft.append(first)
        raw_rate, served_rate = statistics.median(raw), statistics.median(served)
        runs = {
            name: ", ".join(f"{r:.1f}" for r in rates)
            for name, rates in (("raw", raw), ("srv", served))
        }
        print(f"in-process Llama.generate : {raw_rate:7.1f} tok/s  (runs: {runs['raw']})")
        print(f"server, streamed (SDK)    : {served_rate:7.1f} tok/s  (runs: {runs['srv']})")
        print(f"server median TTFT        : {statistics.median(ttft) * 1000:7.0f} ms")
        print(
            f"ratio server / in-process : {served_rate / raw_rate:.3f}  "
            f"({args.tokens} tokens, {args.threads} threads, {args.rounds} rounds)"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
