"""The llama.cpp library under the suite: it must not crash on this CPU (issue: AMX).

These run first (see tests/conftest.py; with two workers, first in one of them) and
stop the session when they fail, so a library that would die with "Illegal instruction"
gives one clear failure that says how to rebuild, instead of killing pytest halfway
through with SIGILL.
"""

from __future__ import annotations

import logging
import platform
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

import app.engine.model as model_module
from app.engine import native
from app.engine.model import LoadedModel
from app.engine.native import (
    AMX_REBUILD_HINT,
    KernelPaths,
    cpu_kernel_paths,
    has_amx_kernels,
    reads_use_ref,
    system_info,
)
from config import ModelSettings
from tests.conftest import TEST_THREADS

ROOT = Path(__file__).resolve().parents[2]
AMX_INFO = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
    "AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | "
    "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "
)

# Loads the model as the engine does (guard included) and reads a 200-token prompt in
# one batch: large matrix products are where ggml routes work to its AMX kernels.
PROBE = """
import sys, llama_cpp
from app.engine.model import LoadedModel
from config import ModelSettings
threads = int(sys.argv[2])
settings = ModelSettings(path=sys.argv[1], n_ctx=512, n_parallel=1, n_threads=threads)
model = LoadedModel(sys.argv[1], settings, threads)
tokens = model.tokenize("The quick brown fox jumps over the lazy dog. " * 20, add_bos=True)[:200]
ids = (llama_cpp.llama_token * len(tokens))(*tokens)  # kept alive: the batch points at it
code = llama_cpp.llama_decode(model.ctx, llama_cpp.llama_batch_get_one(ids, len(tokens)))
assert code == 0, f"llama_decode returned {code}"
print("guard", model.amx_guard)
model.close()
"""


@pytest.mark.native_library
def test_the_installed_llama_cpp_reads_a_prompt_without_crashing(model_path: Path) -> None:
    info = system_info()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(model_path), str(TEST_THREADS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (
        f"llama.cpp died reading a prompt (exit {done.returncode}; -4 is SIGILL, "
        f"'Illegal instruction'). Its system info: {info}. Rebuild it with "
        f"{AMX_REBUILD_HINT}.\n{done.stderr[-2000:]}"
    )
    # the guard is on exactly when the library has the kernels
    assert done.stdout.split()[-1] == str(has_amx_kernels(info))


@pytest.mark.native_library
def test_on_x86_64_linux_the_library_has_no_amx_kernels_or_the_guard_is_on() -> None:
    if not (sys.platform.startswith("linux") and platform.machine() == "x86_64"):
        pytest.skip("AMX exists on x86-64 only; dev.py's flags apply to GCC/Clang there")
    info = system_info()
    assert "AVX2 = 1" in info or "AVX = 1" in info, f"not an x86 CPU build? {info}"
    if has_amx_kernels(info):
        assert not ModelSettings().amx_kernels, (
            f"This llama.cpp has ggml's AMX kernels ({info}) and the guard is off by "
            f"default; rebuild with {AMX_REBUILD_HINT}."
        )


class _RecordingLlamaModel:
    """The real LlamaModel, remembering the parameters it was given."""

    seen: ClassVar[list[object]] = []

    def __new__(cls, *args: object, params: object, **kwargs: object) -> object:
        cls.seen.append(params)
        return _real_llama_model(*args, params=params, **kwargs)


_real_llama_model = model_module.LlamaModel


@pytest.mark.parametrize("allow", [False, True])
def test_a_library_reporting_amx_loads_without_extra_buffers_unless_allowed(
    model_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    allow: bool,
) -> None:
    """A library with the kernels cannot be had on this CPU on demand, so its report is
    substituted; the load and a decode after it are real."""
    monkeypatch.setattr(model_module, "system_info", lambda: AMX_INFO)
    monkeypatch.setattr(model_module, "LlamaModel", _RecordingLlamaModel)
    _RecordingLlamaModel.seen.clear()
    settings = ModelSettings(
        path=str(model_path),
        n_ctx=256,
        n_parallel=1,
        n_threads=TEST_THREADS,
        amx_kernels=allow,
        batch_invariant=False,  # which also turns the extra buffer types off
        flash_attn="on",  # not measured: that is not what this test is about (25 s)
    )
    with caplog.at_level(logging.WARNING, logger="llm_service.engine"):
        model = LoadedModel(str(model_path), settings, TEST_THREADS)
    try:
        assert model.amx_guard is (not allow)
        (params,) = _RecordingLlamaModel.seen
        assert params.use_extra_bufts is allow  # type: ignore[attr-defined]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        if allow:
            assert "model.amx_kernels is on" in warnings[0]
        else:
            assert "Illegal instruction" in warnings[0]
            assert "scripts/dev.py install --rebuild" in warnings[0]
        assert model.tokenize("Hello", add_bos=False)
    finally:
        model.close()


def test_no_amx_report_means_no_guard_and_no_warning(
    model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if has_amx_kernels(system_info()):
        pytest.skip("this library has the kernels; the test above covers it")
    settings = ModelSettings(path=str(model_path), n_ctx=256, n_parallel=1)
    with caplog.at_level(logging.WARNING, logger="llm_service.engine"):
        model = LoadedModel(str(model_path), settings, TEST_THREADS)
    try:
        assert model.amx_guard is False
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        model.close()


def test_the_amx_report_is_read_from_llama_cpps_feature_list() -> None:
    assert has_amx_kernels(AMX_INFO)
    assert not has_amx_kernels(AMX_INFO.replace("AMX_INT8 = 1", "AMX_INT8 = 0"))
    assert not has_amx_kernels(AMX_INFO.replace("AMX_INT8 = 1 | ", ""))
    assert not has_amx_kernels("CPU : NOAMX_INT8 = 1 | ")


@pytest.mark.parametrize("invariant", [True, False])
def test_batch_invariance_loads_the_weights_without_repacking(
    model_path: Path, monkeypatch: pytest.MonkeyPatch, invariant: bool
) -> None:
    monkeypatch.setattr(model_module, "LlamaModel", _RecordingLlamaModel)
    _RecordingLlamaModel.seen.clear()
    settings = ModelSettings(  # flash attention set: the load, not its timing, matters
        path=str(model_path), n_ctx=256, n_parallel=1, batch_invariant=invariant, flash_attn="on"
    )
    model = LoadedModel(str(model_path), settings, TEST_THREADS)
    try:
        (params,) = _RecordingLlamaModel.seen
        expected = not invariant and not has_amx_kernels(system_info())
        assert params.use_extra_bufts is expected  # type: ignore[attr-defined]
    finally:
        model.close()


def _clear_kernel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset the kernel variables for one test; afterwards each is as it was, set or not
    (setenv records the first value, whatever the test writes after it)."""
    for variable in (native.TILED_MATMUL_VARIABLE, native.USE_REF_VARIABLE):
        monkeypatch.setenv(variable, "")
        monkeypatch.delenv(variable)


def test_the_installed_llama_cpp_reads_the_reference_path_switch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`scripts/dev.py install` builds llama.cpp with the edit that reads
    GGML_CPU_USE_REF (scripts/llama_build.py); without it Gemma's replies depend on how
    a prompt is cut into steps (tests/e2e/test_second_model.py)."""
    _clear_kernel_variables(monkeypatch)
    assert cpu_kernel_paths(batch_invariant=False) is KernelPaths.BY_STEP_SHAPE
    assert reads_use_ref(), (
        "this llama.cpp does not read GGML_CPU_USE_REF: install it with "
        "`python3 scripts/dev.py install` (its build applies scripts/llama_build.py's "
        "SOURCE_EDITS)"
    )
    assert cpu_kernel_paths(batch_invariant=True) is KernelPaths.REFERENCE


def test_a_library_without_the_switch_is_told_from_one_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A llama.cpp built elsewhere cannot be installed beside ours on demand: a folder
    of stand-in libraries is what `reads_use_ref` looks into instead."""
    library = tmp_path / "libllama.so"
    library.write_bytes(b"\x7fELF llama")
    backend = tmp_path / "libggml-cpu.so"
    backend.write_bytes(b"\x7fELF ggml GGML_CPU_TILED_MM")
    (tmp_path / "libggml-base.so").write_bytes(b"GGML_CPU_USE_REF")  # not the CPU backend
    monkeypatch.setattr(native.llama_cpp.llama_cpp._lib, "_name", str(library))
    _clear_kernel_variables(monkeypatch)
    reads_use_ref.cache_clear()
    try:
        assert not reads_use_ref()
        assert cpu_kernel_paths(batch_invariant=True) is KernelPaths.ROW_BY_ROW_MATMUL
        assert "does not read GGML_CPU_USE_REF" in KernelPaths.ROW_BY_ROW_MATMUL.described
        backend.write_bytes(b"\x7fELF ggml GGML_CPU_TILED_MM\0GGML_CPU_USE_REF\0")
        reads_use_ref.cache_clear()
        assert reads_use_ref()
        assert cpu_kernel_paths(batch_invariant=True) is KernelPaths.REFERENCE
    finally:
        reads_use_ref.cache_clear()  # the real library's answer again
