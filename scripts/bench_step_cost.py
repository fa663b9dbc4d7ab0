"""What a decode step costs against how many tokens of one sequence it evaluates.

Speculative decoding checks guessed tokens in the step that evaluates a sequence's next
token; whether that pays depends on how a step's time grows with its tokens on this
machine. This reads a prompt of `--depth` tokens into a one-sequence context (the
engine's settings: flash attention, no weight repacking) and times steps of 1, 2, 3, 5,
9, 17, 33 and 65 tokens after it, every token with logits as when guesses are checked
(a larger step, `--sizes`, is read as a piece of prompt: logits for its last token).

    .venv/bin/python scripts/bench_step_cost.py --depth 700

With several `--paths` it compares ggml's CPU kernel paths side by side: each round
runs the measurement once per path, each in a process of its own (the variables are
read when the library starts), in alternating order, and prints the medians over the
rounds with their ratio to the first path. `reference` is what `model.batch_invariant`
runs with the llama.cpp `scripts/dev.py` builds (GGML_CPU_USE_REF=1,
GGML_CPU_TILED_MM=0), `tiled-mm-off` what it runs with any other llama.cpp, and
`by-shape` llama.cpp's own choice.

    .venv/bin/python scripts/bench_step_cost.py --depth 700 --sizes 1,9,65,512 \
        --paths reference,by-shape --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import llama_cpp
from llama_cpp._internals import LlamaModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.engine.native import REFERENCE_ENVIRONMENT, TILED_MATMUL_VARIABLE  # noqa: E402
from config.model_source import embedded_model_path  # noqa: E402

SIZES = "1,2,3,5,9,17,33,65"
PATHS: dict[str, dict[str, str]] = {
    "reference": REFERENCE_ENVIRONMENT,
    "tiled-mm-off": {TILED_MATMUL_VARIABLE: "0"},
    "by-shape": {},
}
"""ggml's CPU kernel paths, as the environment of the process that measures them."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=embedded_model_path())
    parser.add_argument("--depth", type=int, default=700, help="tokens before the steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kv", choices=("f16", "q8_0"), default="f16")
    parser.add_argument("--repeats", type=int, default=12, help="steps per size (median)")
    parser.add_argument("--sizes", default=SIZES, help="tokens per step, comma-separated")
    parser.add_argument("--paths", default="", help=f"compare kernel paths: {','.join(PATHS)}")
    parser.add_argument("--rounds", type=int, default=3, help="with --paths: rounds")
    parser.add_argument("--json", action="store_true", help="print {size: ms} only")
    args = parser.parse_args(argv)
    args.sizes = ",".join(size.strip() for size in args.sizes.split(",") if size.strip())
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.paths:
        return compare(args, [path for path in args.paths.split(",") if path])
    times = measure(args, sizes)
    if args.json:
        print(json.dumps(times))
        return 0
    print(f"{args.model.name}, depth {args.depth}, {args.threads} threads, {args.kv} KV")
    one = times[sizes[0]]
    for size in sizes:
        ms = times[size]
        print(f"  {size:3d} tokens: {ms:7.1f} ms  ({ms / one:5.2f}x {sizes[0]} token(s))")
    return 0


def compare(args: argparse.Namespace, paths: list[str]) -> int:
    """Measure each path in its own process, round after round in alternating order, and
    print the median step times side by side."""
    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        raise SystemExit(f"--paths: unknown {unknown}; known: {', '.join(PATHS)}")
    command = [
        *(sys.executable, __file__, "--json", "--model", str(args.model)),
        *("--depth", str(args.depth), "--threads", str(args.threads), "--kv", args.kv),
        *("--repeats", str(args.repeats), "--sizes", args.sizes),
    ]
    runs: dict[str, list[dict[str, float]]] = {path: [] for path in paths}
    for round_ in range(args.rounds):
        for path in paths if round_ % 2 == 0 else reversed(paths):
            env = {k: v for k, v in os.environ.items() if k not in REFERENCE_ENVIRONMENT}
            done = subprocess.run(
                command, env={**env, **PATHS[path]}, capture_output=True, text=True, check=True
            )
            runs[path].append(json.loads(done.stdout.splitlines()[-1]))
    print(
        f"{args.model.name}, depth {args.depth}, {args.threads} threads, {args.kv} KV, "
        f"median of {args.rounds} rounds (ms per step; ratio to {paths[0]})"
    )
    print(f"  {'tokens':>6}" + "".join(f"  {path:>14}" for path in paths))
    for size in args.sizes.split(","):
        medians = [statistics.median(run[size] for run in runs[path]) for path in paths]
        cells = "".join(f"  {ms:8.1f} {ms / medians[0]:4.2f}x" for ms in medians)
        print(f"  {size:>6}{cells}")
    return 0


def measure(args: argparse.Namespace, sizes: list[int]) -> dict[int, float]:
    """The median time of a step of each size after `args.depth` tokens, in ms."""
    model_params = llama_cpp.llama_model_default_params()
    model_params.use_extra_bufts = False
    model = LlamaModel(path_model=str(args.model), params=model_params, verbose=False)
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = args.depth + max(sizes)
    params.n_batch = params.n_ubatch = 512
    params.n_seq_max = 1
    params.n_threads = params.n_threads_batch = args.threads
    params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    kv = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0}[args.kv]
    params.type_k = params.type_v = kv
    ctx = llama_cpp.llama_init_from_model(model.model, params)
    memory = llama_cpp.llama_get_memory(ctx)
    batch = llama_cpp.llama_batch_init(max(512, *sizes), 0, 1)

    def decode(tokens: list[int], start: int) -> None:
        """Logits for every token of a step up to 65 tokens (guesses are checked in at
        most 63), for the last only of a larger one: a piece of prompt."""
        batch.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, start + i, 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = len(tokens) <= 65 or i == len(tokens) - 1
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    try:
        for start in range(0, args.depth, 512):
            n = min(512, args.depth - start)
            decode([100 + (start + j) % 1000 for j in range(n)], start)
        times = {}
        for size in sizes:
            samples = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                decode([200 + j for j in range(size)], args.depth)
                samples.append(time.perf_counter() - started)
                llama_cpp.llama_memory_seq_rm(memory, 0, args.depth, -1)
            times[size] = statistics.median(samples) * 1000
        return times
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
        model.close()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    sys.exit(main())
