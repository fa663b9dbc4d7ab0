"""Flash attention or not: measured on this machine for this model, not assumed.

llama.cpp's CPU flash-attention kernel is not faster everywhere: on one Intel Xeon
`llama-bench` decoded SmolLM2 at 16 tok/s with it and 35 without at a depth of 2,048
tokens (80 vs 66 at depth 0), while on an AMD EPYC the two paths were within 10% of each
other at every depth. So with `model.flash_attn = "auto"` (on a CPU) the engine times
both: a throwaway one-sequence context per path reads a prompt of `_DEPTH` tokens and
decodes a few tokens after it and after a short one, and the path with the lower total
time per token wins. The answer depends on the machine, the model, the thread count
and the KV cache type, so it is kept (`measurements`) and measured again only when
one of them changes (a few seconds, once).

The measurement only runs when `model.batch_invariant` is off. Without flash attention
llama.cpp multiplies queries by keys with one kernel for a single token and another for
a batch, and they round differently: a greedy reply then changes with what the cache
held or what ran beside it (seen on both CPUs: a streamed reply after a reused prefix
differed from the same request read whole). With flash attention every query row takes
the same path, so `auto` keeps it on while replies must not depend on the load.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import llama_cpp

from app.engine.measurements import cache_file, cpu_identity, file_identity, recall, remember

__all__ = ("AttentionChoice", "choose_flash_attn")

logger = logging.getLogger("llm_service.engine")

_DEPTH = 1024
"""Context depth of the long-context probe (bounded by the model's context)."""
_DECODES = 8
"""Tokens decoded per probe."""
_FLASH = {
    True: llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED,
    False: llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED,
}


def _identity(path: str, threads: int, kv_type: int, system_info: str) -> dict[str, Any]:
    return {
        "model": file_identity(path),
        "cpu": cpu_identity(system_info),
        "threads": threads,
        "kv_type": kv_type,
    }


def _seconds_per_token(
    model: Any, flash: bool, threads: int, kv_type: int, depth: int
) -> tuple[float, float]:
    """(decode time per token after a prompt of `depth` tokens plus after a short one,
    the time per token of reading that prompt in full batches)."""
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = depth + 2 * _DECODES + 64
    params.n_batch = params.n_ubatch = min(512, params.n_ctx)
    params.n_seq_max = 1
    params.n_threads = params.n_threads_batch = threads
    params.flash_attn_type = _FLASH[flash]
    params.type_k = params.type_v = kv_type
    params.no_perf = True
    ctx = llama_cpp.llama_init_from_model(model, params)
    if ctx is None:
        return float("inf"), float("inf")
    batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
    memory = llama_cpp.llama_get_memory(ctx)
    token = 1 if llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model)) > 1 else 0
    try:
        total, reading = 0.0, 0.0
        for prompt in (depth, 16):
            llama_cpp.llama_memory_seq_rm(memory, 0, 0, -1)
            pos = 0
            read_from = time.perf_counter()
            while pos < prompt:  # fill the cache; its contents do not matter for timing
                n = min(params.n_batch, prompt - pos)
                for i in range(n):
                    batch.token[i], batch.pos[i], batch.logits[i] = token, pos + i, i == n - 1
                    batch.n_seq_id[i], batch.seq_id[i][0] = 1, 0
                batch.n_tokens = n
                llama_cpp.llama_decode(ctx, batch)
                pos += n
            if prompt == depth:
                reading = (time.perf_counter() - read_from) / depth
            started = time.perf_counter()
            for _ in range(_DECODES):
                batch.token[0], batch.pos[0], batch.logits[0] = token, pos, True
                batch.n_seq_id[0], batch.seq_id[0][0] = 1, 0
                batch.n_tokens = 1
                llama_cpp.llama_decode(ctx, batch)
                pos += 1
            total += (time.perf_counter() - started) / _DECODES
        return total, reading
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)


@dataclass(frozen=True, slots=True)
class AttentionChoice:
    flash_attn: int
    """llama.cpp's flash-attention type for the contexts."""
    why: str


def choose_flash_attn(
    model: Any,
    path: str,
    setting: str,
    threads: int,
    kv_type: int,
    system_info: str,
    *,
    gpu: bool,
    batch_invariant: bool,
) -> AttentionChoice:
    """The flash-attention type for `model.flash_attn = setting`, and why."""
    if setting in ("on", "off"):
        return AttentionChoice(_FLASH[setting == "on"], f"flash attention {setting} (configured)")
    if kv_type != llama_cpp.GGML_TYPE_F16:
        return AttentionChoice(_FLASH[True], "flash attention on (a quantized KV cache needs it)")
    if gpu:
        auto = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
        return AttentionChoice(auto, "flash attention as llama.cpp chooses (GPU)")
    if batch_invariant:
        return AttentionChoice(
            _FLASH[True],
            "flash attention on (model.batch_invariant: the other path rounds one token"
            " differently from a batch, so replies would depend on the load)",
        )
    identity = _identity(path, threads, kv_type, system_info)
    known = recall("attention", identity)
    if known is None:
        depth = max(64, min(_DEPTH, int(llama_cpp.llama_model_n_ctx_train(model)) // 2))
        measured = {
            flash: _seconds_per_token(model, flash, threads, kv_type, depth)
            for flash in (True, False)
        }
        flash = measured[True][0] < measured[False][0]
        known = {"flash_attn": flash, "depth": depth}
        known["ms_per_token"] = {str(k).lower(): round(v[0] * 1000, 2) for k, v in measured.items()}
        known["prompt_ms_per_token"] = round(measured[flash][1] * 1000, 3)  # for the record
        remember("attention", identity, known)
    flash = bool(known["flash_attn"])
    ms = known.get("ms_per_token", {})
    why = (
        f"flash attention {'on' if flash else 'off'} (measured here: a token decoded after "
        f"{known.get('depth')} tokens and one after 16 took together {ms.get('true')} ms "
        f"with it and {ms.get('false')} ms without; cached in {cache_file()})"
    )
    return AttentionChoice(_FLASH[flash], why)
