"""What a decode step costs against how many tokens of one sequence it evaluates.

Speculative decoding checks guessed tokens in the step that evaluates a sequence's next
token; whether that pays depends on how a step's time grows with its tokens on this
machine. This reads a prompt of `--depth` tokens into a one-sequence context (the
engine's settings: flash attention, no weight repacking) and times steps of 1, 2, 3, 5,
9, 17, 33 and 65 tokens after it, every token with logits as when guesses are checked.

    .venv/bin/python scripts/bench_step_cost.py --depth 700
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import llama_cpp
from llama_cpp._internals import LlamaModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.model_source import embedded_model_path  # noqa: E402

SIZES = (1, 2, 3, 5, 9, 17, 33, 65)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=embedded_model_path())
    parser.add_argument("--depth", type=int, default=700, help="tokens before the steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kv", choices=("f16", "q8_0"), default="f16")
    parser.add_argument("--repeats", type=int, default=12, help="steps per size (median)")
    args = parser.parse_args(argv)
    model_params = llama_cpp.llama_model_default_params()
    model_params.use_extra_bufts = False
    model = LlamaModel(path_model=str(args.model), params=model_params, verbose=False)
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = args.depth + 64
    params.n_batch = params.n_ubatch = 512
    params.n_seq_max = 1
    params.n_threads = params.n_threads_batch = args.threads
    params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    kv = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0}[args.kv]
    params.type_k = params.type_v = kv
    ctx = llama_cpp.llama_init_from_model(model.model, params)
    memory = llama_cpp.llama_get_memory(ctx)
    batch = llama_cpp.llama_batch_init(512, 0, 1)

    def decode(tokens: list[int], start: int) -> None:
        batch.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, start + i, 1
            batch.seq_id[i][0], batch.logits[i] = 0, True
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    try:
        for start in range(0, args.depth, 512):
            n = min(512, args.depth - start)
            decode([100 + (start + j) % 1000 for j in range(n)], start)
        print(f"{args.model.name}, depth {args.depth}, {args.threads} threads, {args.kv} KV")
        one = None
        for size in SIZES:
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                decode([200 + j for j in range(size)], args.depth)
                times.append(time.perf_counter() - started)
                llama_cpp.llama_memory_seq_rm(memory, 0, args.depth, -1)
            ms = statistics.median(times) * 1000
            one = one or ms
            print(f"  {size:2d} tokens: {ms:6.1f} ms  ({ms / one:4.2f}x one token)")
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
        model.close()  # type: ignore[no-untyped-call]
    return 0


if __name__ == "__main__":
    sys.exit(main())
