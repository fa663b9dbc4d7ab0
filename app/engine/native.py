"""What the loaded llama.cpp library was compiled with, and the guard against its AMX kernels.

`scripts/dev.py` builds llama.cpp without ggml's AMX kernels, because in the llama.cpp
that llama-cpp-python 0.3.36 vendors they crash Intel Xeons that have AMX with SIGILL
("Illegal instruction": they mishandle the per-thread tile state; llama.cpp pull request
26954). A user may bring a llama-cpp-python built elsewhere, so at load the engine reads
the library's own report (`llama_print_system_info`, which lists `AMX_INT8 = 1` when the
kernels were compiled in). llama.cpp reaches those kernels only through an extra buffer
type for the weights, so loading with `use_extra_bufts = false` keeps them idle. That
also turns off ggml's weight repacking (faster Q4_0/Q4_K matrix products on AVX2), so it
is the fallback; the cure is a library built without AMX, which the warning names.

The same llama.cpp multiplies K-quant weights (Q2_K…Q6_K, IQ…) by a batch of 8 or more
tokens with its "tiled" kernel and by fewer with the row-by-row one, and the two round
differently (1e-6 relative on Gemma-3-270M Q4_K_M's attention output and Q6_K FFN, which
Gemma's large activations turn into logits 1.2 apart: an 18-token prompt read whole or
cut at 3, 12 or 17 gave different replies). `single_matmul_path` switches the tiled
kernel off with llama.cpp's own variable, `GGML_CPU_TILED_MM=0`, which it reads once per
process at its first matrix product: so before the first model loads.
"""

from __future__ import annotations

import logging
import os
import re

import llama_cpp

__all__ = (
    "AMX_REBUILD_HINT",
    "amx_guard_needed",
    "has_amx_kernels",
    "single_matmul_path",
    "system_info",
)

TILED_MATMUL_VARIABLE = "GGML_CPU_TILED_MM"

logger = logging.getLogger("llm_service.engine")

AMX_REBUILD_HINT = (
    "python3 scripts/dev.py install --rebuild (builds llama-cpp-python with "
    "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)"
)
_AMX_FEATURE = re.compile(r"\bAMX_INT8\s*=\s*1\b")


def system_info() -> str:
    """llama.cpp's one-line report of its backends and the CPU features compiled in."""
    return bytes(llama_cpp.llama_print_system_info()).decode("utf-8", "replace").strip()


def has_amx_kernels(info: str) -> bool:
    """Whether a `llama_print_system_info()` report shows ggml's AMX kernels compiled in
    (ggml reports the feature only when the build defined `__AMX_INT8__`)."""
    return _AMX_FEATURE.search(info) is not None


def amx_guard_needed(info: str, *, allow_amx: bool) -> bool:
    """Whether to load weights without extra buffer types, and say why (once, here)."""
    if not has_amx_kernels(info):
        return False
    if allow_amx:
        logger.warning(
            "This llama.cpp has ggml's AMX kernels and model.amx_kernels is on: they are "
            "used. If requests die with 'Illegal instruction', turn the setting off."
        )
        return False
    logger.warning(
        "This llama.cpp library was built with ggml's AMX kernels (its system info says "
        "AMX_INT8 = 1), which crash Intel CPUs that have AMX with 'Illegal instruction' "
        "in this llama.cpp version. The model is loaded without llama.cpp's extra buffer "
        "types so that they are never used; this also turns off weight repacking, which "
        "makes Q4_0/Q4_K models slower. Fix: rebuild without them: %s. If your llama.cpp "
        "is fixed, set model.amx_kernels = true.",
        AMX_REBUILD_HINT,
    )
    return True


def single_matmul_path(batch_invariant: bool) -> bool:
    """With `batch_invariant`, make every batch size take the row-by-row K-quant kernel
    (see the module docstring); returns whether the process runs that way. The
    variable is read once per process, so an engine that is not batch invariant and
    computed first in the same process leaves the tiled kernel on: one process, one
    setting (the server runs one engine)."""
    if batch_invariant:
        if os.environ.get(TILED_MATMUL_VARIABLE, "1") != "0":
            os.environ[TILED_MATMUL_VARIABLE] = "0"
        return True
    return os.environ.get(TILED_MATMUL_VARIABLE, "1") == "0"
