"""How much memory a GGUF model takes once loaded, told from its file before loading it.

The registry keeps the resident models within `models.max_memory` by these estimates, so
they come before a load and err high: they count what a model can grow to while serving
(its largest decode step, and an embedding), not what loading it touches at first. Each
term mirrors how the llama.cpp of llama-cpp-python 0.3.36 sizes its buffers for the
contexts `app/engine/model.py` and `app/engine/embedding.py` create (file names below are
of its `src/`). GPU offload and recurrent layers are not modelled (both only lower usage).

The header is read here, not with the `gguf` package (ggml-org's gguf-py): its
`GGUFReader` turns every key/value and tensor into numpy views, 3 s for SmolLM2's header
and 16 s for Gemma 3's 262k-token vocabulary; the numbers needed here take 20-50 ms.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import psutil  # type: ignore[import-untyped]

from config.catalog import model_files

__all__ = ("Footprint", "ModelFileError", "estimate_footprint", "physical_memory", "process_rss")

_SCALARS = {**dict(enumerate("BbHhIif?")), 10: "Q", 11: "q", 12: "d"}
"""GGUF value types 0-7 and 10-12 and their struct formats; 8 is a string, 9 an array."""
_U64 = struct.Struct("<Q")
_KEEP = 4096
"""Arrays up to this long are kept (per-layer head counts, SWA patterns); longer ones
(the vocabulary) only by their length."""
_KV_BYTES = {"f16": (2, 1), "q8_0": (34, 32)}
"""Bytes per KV cache element, as a fraction: q8_0 blocks hold 32 values in 34 bytes."""
_SWA_PATTERN = {"gemma2": 2, "gemma3": 6, "cohere2": 4}
"""`load_swa_pattern(ml, n)` in `models/<arch>.cpp` where the GGUF has no
`sliding_window_pattern`: of every n layers the last has full attention."""
_HOST = 16 << 20
_HOST_PER_TOKEN = 128
_PER_CONTEXT = 8 << 20
"""Memory beside the buffers, measured: loads of SmolLM2 (49k tokens) and Gemma 3
(262k) took 19 and 40 MiB more than their weights, KV caches and output buffers; a
context's graphs and scheduler take a few MiB. llama.cpp's vocabulary (strings, maps)
grows with the tokens; threads, graphs and Python's side do not."""


class ModelFileError(ValueError):
    """The model's file is missing, unreadable, truncated or not a GGUF."""


class _Long(NamedTuple):
    """An array too long to keep (`_KEEP`): only its length."""

    length: int


@dataclass(frozen=True)
class Footprint:
    """A model's estimated resident memory in bytes, and the context it gets."""

    weights: int
    """Every file of the model: llama.cpp mmaps them, and a decode touches every page
    (the token embeddings too where, as in both test models, they are the output)."""
    kv_cache: int
    compute: int
    """Compute and output buffers of the contexts at their largest (a step whose every
    token is an output), and host memory beside them."""
    context_length: int
    """Tokens per sequence, as llama.cpp sizes them (`LoadedModel.n_ctx_seq`)."""
    training_context: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute


def estimate_footprint(
    path: Path,
    *,
    n_ctx: int,
    n_parallel: int,
    kv_cache_type: Literal["f16", "q8_0"],
    embeddings: bool,
    n_batch: int = 512,
    flash_attn: bool = True,
    swa_full: bool = True,
) -> Footprint:
    """The footprint of the model whose (first) file is `path`, loaded with these
    `ModelSettings` values. `flash_attn`: whether the context may use it (False errs
    high); `swa_full`: llama.cpp's context parameter, true by default and left so by
    `LoadedModel`. Raises `ModelFileError`."""
    files = model_files(path)
    try:
        weights = sum(file.stat().st_size for file in files)
    except OSError as exc:
        raise ModelFileError(f"{exc.filename}: cannot read it ({exc.strerror})") from exc
    h = _Hparams(files[0], _read_header(files[0]))
    # llama_context's constructor: n_batch clamped to the context asked for, n_ctx
    # padded to 256 and split into a stream per sequence (kv_unified = false), each
    # padded to 256 again; LoadedModel: n_ctx 0 is the training context.
    wanted = n_ctx or h.n_ctx_train
    ubatch = min(wanted * n_parallel, max(n_batch, n_parallel))
    per_seq = _pad(_pad(wanted * n_parallel) // n_parallel)
    kv = h.kv_bytes(per_seq, n_parallel, ubatch, kv_cache_type, swa_full)
    compute = h.buffers(per_seq, ubatch, flash_attn, embeddings=False)
    compute += _HOST + _HOST_PER_TOKEN * h.n_vocab
    if embeddings:  # Embedder: one sequence of as many cells, n_batch <= its n_ctx
        e_ubatch = min(per_seq, max(n_batch, n_parallel))
        kv += h.kv_bytes(per_seq, 1, e_ubatch, kv_cache_type, swa_full)
        compute += h.buffers(per_seq, e_ubatch, flash_attn, embeddings=True)
    return Footprint(weights, kv, compute, per_seq, h.n_ctx_train)


def process_rss() -> int:
    """Resident set size of this process in bytes (mmapped weights count once touched)."""
    return int(psutil.Process().memory_info().rss)


def physical_memory() -> int:
    """Total physical memory of the machine in bytes."""
    return int(psutil.virtual_memory().total)


def _pad(n: int, to: int = 256) -> int:
    return -(-n // to) * to


class _Hparams:
    """The header's numbers the estimate needs, read as llama.cpp reads them."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self._path, self._meta = path, meta
        arch = self._get("general.architecture", kind=str)
        self.n_layer = self._get(f"{arch}.block_count")
        self.n_embd = self._get(f"{arch}.embedding_length")
        self.n_ctx_train = self._get(f"{arch}.context_length")
        moe = self._get(f"{arch}.expert_used_count", 0)  # that many FFNs per token
        moe *= self._get(f"{arch}.expert_feed_forward_length", 0)
        self.n_ff = max([*self._layers(f"{arch}.feed_forward_length", 0), moe])
        self.n_head = max(self._layers(f"{arch}.attention.head_count", 0))
        self.n_head_kv = self._layers(f"{arch}.attention.head_count_kv", self.n_head)
        head = self.n_embd // max(self.n_head, 1)
        self.k_len = self._get(f"{arch}.attention.key_length", head)
        self.v_len = self._get(f"{arch}.attention.value_length", head)
        tokens = meta.get("tokenizer.ggml.tokens", ())
        tokens = tokens.length if isinstance(tokens, _Long) else len(tokens)
        self.n_vocab = self._get(f"{arch}.vocab_size", tokens)
        self.n_swa = self._get(f"{arch}.attention.sliding_window", 0)
        pattern = meta.get(f"{arch}.attention.sliding_window_pattern", _SWA_PATTERN.get(arch, 0))
        if isinstance(pattern, list):  # llama.cpp: an array is the per-layer flags
            swa = [bool(flag) for flag in pattern]
        else:  # `set_swa_pattern(n, dense_first=false)`; unknown: all full (errs high)
            n = pattern if isinstance(pattern, int) and self.n_swa > 0 else 0
            swa = [n > 0 and i % n < n - 1 for i in range(self.n_layer)]
        self.swa = (swa + [False] * self.n_layer)[: self.n_layer]

    def _get(self, key: str, default: Any = None, *, kind: type = int) -> Any:
        value = self._meta.get(key, default)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ModelFileError(f"{self._path}: its GGUF header has no usable {key}")
        return value

    def _layers(self, key: str, default: int) -> list[int]:
        """A per-layer number: one for all layers, or an array of them."""
        value = self._meta.get(key, default)
        if isinstance(value, list) and len(value) >= self.n_layer:
            return [int(v) for v in value[: self.n_layer]]
        return [self._get(key, default)] * self.n_layer

    def kv_bytes(self, per_seq: int, n_seq: int, ubatch: int, kind: str, swa_full: bool) -> int:
        """llama-kv-cache.cpp: per layer a K and a V tensor of n_head_kv x head size
        elements by `kv_size` cells by one stream per sequence. llama-kv-cache-iswa.cpp:
        sliding-window layers get `pad(min(kv_size, n_swa + n_ubatch), 256)` cells per
        stream, unless `swa_full` makes them full size. (LoadedModel leaves it on, as
        it should: a windowed cache drops the cells that going back to a shorter prefix,
        as the engine's prefix reuse does, would need.)"""
        window = per_seq if swa_full else _pad(min(per_seq, self.n_swa + ubatch))
        cells = [window if swa else per_seq for swa in self.swa]
        elements = sum(
            h * (self.k_len + self.v_len) * c for h, c in zip(self.n_head_kv, cells, strict=True)
        )
        num, den = _KV_BYTES[kind]
        return int(elements * n_seq * num // den)

    def buffers(self, per_seq: int, ubatch: int, flash: bool, *, embeddings: bool) -> int:
        """One context's compute and output buffers (f32) and its graphs. Compute
        (`sched_reserve`) is reserved for `ubatch` tokens all output, and ggml-alloc puts
        the logits where a layer's tensors were, so it is the larger of a layer's peak
        (without flash attention: the scores of every head and the mask over all cells;
        SmolLM2 at 8192 and 16384 cells: 166.4 and 326.4 MiB reserved and estimated) and
        the logits with the final hidden states (SmolLM2 and Gemma 3: exact). The output
        buffer (`output_reserve`) grows to the most outputs a decode asks for, at most
        n_batch (an embedding's pieces, a step with many draft tokens): n_vocab floats
        each, and n_embd more in an embeddings context."""
        attention = (self.n_head + 1) * per_seq if not flash else 2 * self.n_head * self.k_len
        layer = ubatch * (3 * self.n_embd + self.n_ff + attention)
        logits = ubatch * (self.n_vocab + 2 * self.n_embd)
        output = ubatch * (self.n_vocab + (self.n_embd if embeddings else 0))
        return int(4 * (max(layer, logits) + output) + _PER_CONTEXT)


def _read_header(path: Path) -> dict[str, Any]:
    """The key/values of a GGUF v2/v3 header: magic, version, tensor count, key/value
    count, then the typed key/values; the tensor infos after them are not read."""
    try:
        with path.open("rb") as file:
            if path.stat().st_size < 24:
                raise ModelFileError(f"{path}: too short to be a GGUF file")
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _Parser(path, data).header()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it ({exc.strerror or exc})") from exc


class _Parser:
    def __init__(self, path: Path, data: mmap.mmap) -> None:
        self.path, self.data, self.pos = path, data, 0

    def header(self) -> dict[str, Any]:
        if self.data[:4] != b"GGUF":
            raise ModelFileError(f"{self.path}: not a GGUF file (starts with {self.data[:4]!r})")
        _, version, _, count = self.take("4sIQQ")
        if version not in (2, 3):
            raise ModelFileError(f"{self.path}: GGUF version {version} is not supported")
        meta: dict[str, Any] = {}
        try:
            for _ in range(count):
                key = self.string()
                meta[key] = self.value(self.take("I")[0])
        except (struct.error, UnicodeDecodeError) as exc:
            raise ModelFileError(f"{self.path}: truncated or corrupt GGUF header ({exc})") from exc
        return meta

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def advance(self, size: int) -> int:
        start, self.pos = self.pos, self.pos + size
        if self.pos > len(self.data):
            raise struct.error(f"{size} bytes at offset {start} run past the end of the file")
        return start

    def string(self) -> str:
        (length,) = self.take("Q")
        start = self.advance(length)
        return self.data[start : self.pos].decode("utf-8")

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.take(_SCALARS[kind])[0]
        if kind == 8:
            return self.string()
        if kind != 9:
            raise struct.error(f"unknown value type {kind} at offset {self.pos - 4}")
        item, length = self.take("IQ")
        if length <= _KEEP:
            return [self.value(item) for _ in range(length)]
        if item in _SCALARS:  # token scores and types, in one step
            self.advance(length * struct.calcsize("<" + _SCALARS[item]))
        elif item == 8:  # token texts, one by one (40 ms for Gemma 3's 262k)
            size, data, pos = _U64.unpack_from, self.data, self.pos
            for _ in range(length):
                pos += 8 + size(data, pos)[0]
            self.pos = pos
            self.advance(0)
        else:
            for _ in range(length):
                self.value(item)
        return _Long(length)
