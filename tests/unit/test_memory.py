"""Footprints read from GGUF headers (`app/models/memory.py`): no model is loaded here.

The exact numbers are llama.cpp's own: what the llama.cpp of llama-cpp-python 0.3.36 logged
creating these contexts ("KV buffer size", "n_ctx_seq").
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from app.models.memory import (
    Footprint,
    ModelFileError,
    estimate_footprint,
    physical_memory,
    process_rss,
)

MiB = 2**20


def footprint(path: Path, n_ctx: int = 4096, n_parallel: int = 4, **options: object) -> Footprint:
    settings: dict[str, object] = {"kv_cache_type": "f16", "embeddings": False, **options}
    return estimate_footprint(path, n_ctx=n_ctx, n_parallel=n_parallel, **settings)  # type: ignore[arg-type]


def gguf(metadata: dict[str, object]) -> bytes:
    """A GGUF v3 file of these key/values and no tensors."""

    def text(value: str) -> bytes:
        return struct.pack("<Q", len(value.encode())) + value.encode()

    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata))
    for key, value in metadata.items():
        out += text(key)
        if isinstance(value, str):
            out += struct.pack("<I", 8) + text(value)
        elif isinstance(value, list):
            out += struct.pack("<IIQ", 9, 7, len(value)) + bytes(map(bool, value))
        else:
            assert isinstance(value, int)
            out += struct.pack("<II", 4, value)
    return out


TINY = {
    "general.architecture": "gemma3",
    "gemma3.block_count": 6,
    "gemma3.embedding_length": 64,
    "gemma3.context_length": 2048,
    "gemma3.feed_forward_length": 128,
    "gemma3.attention.head_count": 4,
    "gemma3.attention.head_count_kv": 2,
    "gemma3.vocab_size": 1000,
}
"""A small Gemma 3 header: head size 64 / 4 = 16, so 2 x 2 x 16 = 64 KV elements a cell
and layer."""


def test_smollm2(model_path: Path) -> None:
    result = footprint(model_path)
    assert result.weights == model_path.stat().st_size
    assert result.kv_cache == 360 * MiB  # 30 layers x 3 KV heads x 64 x 2 x 4096 x 4
    assert (result.context_length, result.training_context) == (4096, 8192)
    assert 100 * MiB < result.compute < 300 * MiB
    assert result.total == result.weights + result.kv_cache + result.compute


def test_gemma_keeps_full_sliding_window_layers(gemma_path: Path) -> None:
    """`LoadedModel` leaves llama.cpp's `swa_full` on: its 15 sliding-window layers hold
    every cell, as its 3 global ones do (llama.cpp: 48 + 240 MiB)."""
    result = footprint(gemma_path)
    assert result.weights == gemma_path.stat().st_size
    assert result.kv_cache == (48 + 240) * MiB
    assert result.training_context == 32768
    # told swa_full = false, llama.cpp makes those layers 512 + 512 cells (1024 per slot)
    windowed = footprint(gemma_path, swa_full=False)
    assert windowed.kv_cache == (48 + 60) * MiB < result.kv_cache


@pytest.mark.parametrize("name", ["smollm2", "gemma"])
def test_kv_cache_scales_with_cells(name: str, model_path: Path, gemma_path: Path) -> None:
    path = model_path if name == "smollm2" else gemma_path
    one = footprint(path, n_ctx=1024, n_parallel=1).kv_cache
    assert footprint(path, n_ctx=4096, n_parallel=1).kv_cache == 4 * one
    assert footprint(path, n_ctx=1024, n_parallel=4).kv_cache == 4 * one
    assert footprint(path, n_ctx=4096, n_parallel=4).kv_cache == 16 * one
    # q8_0 stores 32 values in 34 bytes instead of 64
    assert footprint(path, n_ctx=1024, n_parallel=1, kv_cache_type="q8_0").kv_cache == (
        one * 17 // 32
    )
    # the embeddings context: one more sequence of cells
    assert footprint(path, n_ctx=1024, n_parallel=4, embeddings=True).kv_cache == 5 * one


def test_context_as_llama_cpp_sizes_it(model_path: Path) -> None:
    assert footprint(model_path, n_ctx=0).context_length == 8192  # the training context
    # 3 x 1000 -> 3072 cells (padded to 256), 1024 a sequence
    assert footprint(model_path, n_ctx=1000, n_parallel=3).context_length == 1024


def test_compute_grows_with_the_batch_and_without_flash_attention(model_path: Path) -> None:
    small = footprint(model_path, n_batch=64).compute
    assert small < footprint(model_path).compute < footprint(model_path, n_batch=2048).compute
    # without flash attention the scores of 9 heads over 16384 cells outgrow the logits
    long = {"n_ctx": 16384, "n_parallel": 1}
    assert footprint(model_path, **long, flash_attn=False).compute > (
        footprint(model_path, **long).compute + 200 * MiB
    )


def test_swa_pattern_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(gguf(TINY))
    full = 6 * 64 * 2 * 2048  # 6 layers, 64 elements of 2 bytes, 2048 cells
    assert footprint(path, n_ctx=0, n_parallel=1, n_batch=64).kv_cache == full
    path.write_bytes(gguf({**TINY, "gemma3.attention.sliding_window": 128}))
    # the default pattern 6: layers 0-4 slide over pad(128 + 64, 256) = 256 cells
    assert footprint(path, n_ctx=0, n_parallel=1, n_batch=64, swa_full=False).kv_cache == (
        64 * 2 * (2048 + 5 * 256)
    )
    flags = [True, False, True, False, True, False]  # per-layer flags win over the default
    path.write_bytes(gguf({**TINY, "gemma3.attention.sliding_window": 128, **pattern(flags)}))
    assert footprint(path, n_ctx=0, n_parallel=1, n_batch=64, swa_full=False).kv_cache == (
        64 * 2 * (3 * 2048 + 3 * 256)
    )


def pattern(flags: list[bool]) -> dict[str, object]:
    return {"gemma3.attention.sliding_window_pattern": flags}


def test_split_model_counts_every_part(tmp_path: Path) -> None:
    first = tmp_path / "tiny-00001-of-00003.gguf"
    first.write_bytes(gguf(TINY))
    (tmp_path / "tiny-00002-of-00003.gguf").write_bytes(b"\0" * 1000)
    with pytest.raises(ModelFileError, match=r"tiny-00003-of-00003\.gguf"):
        footprint(first)
    (tmp_path / "tiny-00003-of-00003.gguf").write_bytes(b"\0" * 500)
    assert footprint(first).weights == first.stat().st_size + 1500


def test_garbage_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_bytes(b"this is not a model, only some text in a file")
    with pytest.raises(ModelFileError, match=r"notes\.gguf: not a GGUF file"):
        footprint(path)
    path.write_bytes(b"GGUF")
    with pytest.raises(ModelFileError, match=r"notes\.gguf: too short"):
        footprint(path)
    path.write_bytes(gguf(TINY).replace(struct.pack("<I", 3), struct.pack("<I", 1), 1))
    with pytest.raises(ModelFileError, match="version 1"):
        footprint(path)
    with pytest.raises(ModelFileError, match=r"missing\.gguf"):
        footprint(tmp_path / "missing.gguf")


def test_truncated_header_is_refused(tmp_path: Path, gemma_path: Path) -> None:
    path = tmp_path / "cut.gguf"
    with gemma_path.open("rb") as file:
        path.write_bytes(file.read(200_000))  # ends inside the vocabulary
    with pytest.raises(ModelFileError, match=r"cut\.gguf: truncated or corrupt GGUF header"):
        footprint(path)


def test_a_header_without_needed_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bare.gguf"
    path.write_bytes(gguf({"general.architecture": "llama"}))
    with pytest.raises(ModelFileError, match=r"bare\.gguf: .*llama\.block_count"):
        footprint(path)


def test_process_memory() -> None:
    assert 10 * MiB < process_rss() < physical_memory()
