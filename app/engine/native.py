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

ggml's CPU backend also has paths whose rounding depends on how many tokens a step
holds, so that a position's logits depend on how a sequence was cut into steps (a prompt
read whole or in pieces, a prefix reused from the cache, guesses checked in one step):
- K-quant weights (Q2_K…Q6_K, IQ…) times 8 or more tokens take a "tiled" kernel, fewer
  the row-by-row one (1e-6 relative on Gemma-3-270M Q4_K_M, which Gemma's large
  activations turn into logits 1.2 apart);
- flash attention over an f16 cache takes a tiled path for 64 or more query rows in a
  step, whatever sequences they belong to (a 188-token Gemma prompt read whole or as
  40 + 148 tokens: logits 1.13 apart; SmolLM2, 560 tokens read as 512 + 48 or as
  300 + 260: 0.63 apart),
  and, when a step is one token over 512 or more cells, sums it in per-thread pieces
  (by the code; no drift from this one was measured here);
- operator fusion.
ggml has a switch that keeps all of them on the reference path, `use_ref`, but llama.cpp
creates its backends itself and offers no setting for it: the llama.cpp that
`scripts/llama_build.py` compiles reads it from `GGML_CPU_USE_REF` when a backend starts
(the one edit it makes to the vendored source). `cpu_kernel_paths` sets that, and
llama.cpp's own `GGML_CPU_TILED_MM=0` (read once per process at the first matrix
product), which switches off the first of the three in any build. Both must be set
before the first model loads. Whether the installed library reads the first is told by
its CPU backend holding the variable's name: a llama.cpp built another way (a GPU
build, a wheel from elsewhere) keeps only the K-quant kernel fixed, and says so.
"""

from __future__ import annotations

import functools
import logging
import mmap
import os
import re
from enum import StrEnum
from pathlib import Path

import llama_cpp

__all__ = (
    "AMX_REBUILD_HINT",
    "REFERENCE_ENVIRONMENT",
    "KernelPaths",
    "amx_guard_needed",
    "cpu_kernel_paths",
    "has_amx_kernels",
    "reads_use_ref",
    "system_info",
)

TILED_MATMUL_VARIABLE = "GGML_CPU_TILED_MM"
"""llama.cpp's own: "0" keeps K-quant products of any batch on the row-by-row kernel."""
USE_REF_VARIABLE = "GGML_CPU_USE_REF"
"""Ours (`scripts/llama_build.py`): "1" starts each CPU backend with `use_ref` set."""
REFERENCE_ENVIRONMENT = {TILED_MATMUL_VARIABLE: "0", USE_REF_VARIABLE: "1"}
"""What `model.batch_invariant` sets (and `scripts/bench_step_cost.py` measures)."""

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


class KernelPaths(StrEnum):
    """Which of ggml's CPU paths the process computes with."""

    REFERENCE = "reference"
    """Every step shape on the reference paths: batch-size independent."""
    ROW_BY_ROW_MATMUL = "row-by-row K-quant products"
    """Only the K-quant products fixed: a llama.cpp without our edit."""
    BY_STEP_SHAPE = "by step shape"
    """llama.cpp's tiled and split paths, chosen by each step's shape."""

    @property
    def described(self) -> str:
        """What the start-up log says of it."""
        return _DESCRIBED[self]


_DESCRIBED = {
    KernelPaths.REFERENCE: (
        "ggml's reference paths for every step shape (GGML_CPU_USE_REF=1, GGML_CPU_TILED_MM=0)"
    ),
    KernelPaths.ROW_BY_ROW_MATMUL: (
        "the row-by-row kernel for K-quant products of any batch (GGML_CPU_TILED_MM=0); "
        "this llama.cpp does not read GGML_CPU_USE_REF, so flash attention still takes "
        "tiled and split paths by step shape (build it with scripts/dev.py install for "
        "replies independent of the load at any length)"
    ),
    KernelPaths.BY_STEP_SHAPE: "llama.cpp's tiled and split paths, chosen by each step's shape",
}


@functools.cache
def reads_use_ref() -> bool:
    """Whether the loaded llama.cpp reads `GGML_CPU_USE_REF`: the variable's name is a
    string in its CPU backend's library (or in llama's own, when linked in) only when
    our build's edit is compiled in. Asked once per process; False when the library
    cannot be found, which the log then reports as a llama.cpp without the edit."""
    name = getattr(getattr(llama_cpp.llama_cpp, "_lib", None), "_name", None)
    if not isinstance(name, str):
        return False
    library = Path(name)
    candidates = {library}
    if library.parent.is_dir():
        candidates.update(p for p in library.parent.iterdir() if "ggml-cpu" in p.name)
    return any(_contains(path, USE_REF_VARIABLE.encode()) for path in candidates)


def _contains(path: Path, needle: bytes) -> bool:
    try:
        with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return data.find(needle) != -1
    except (OSError, ValueError):  # missing, unreadable, or empty (mmap refuses those)
        return False


def cpu_kernel_paths(batch_invariant: bool) -> KernelPaths:
    """With `batch_invariant`, keep every step shape on ggml's reference paths as far as
    the installed llama.cpp allows (see the module docstring), and return how the
    process runs, as its environment says. One process, one setting (the server runs
    one engine): `GGML_CPU_TILED_MM` is read at the process's first matrix product, so
    an engine that computed before a batch-invariant one was made leaves the tiled
    kernel on, and an engine that is not batch invariant, made after one that is,
    inherits both variables (and says so: the log reports the environment)."""
    if batch_invariant:
        os.environ.update(REFERENCE_ENVIRONMENT)
    if os.environ.get(TILED_MATMUL_VARIABLE) != "0":
        return KernelPaths.BY_STEP_SHAPE
    if os.environ.get(USE_REF_VARIABLE) == "1" and reads_use_ref():
        return KernelPaths.REFERENCE
    return KernelPaths.ROW_BY_ROW_MATMUL
