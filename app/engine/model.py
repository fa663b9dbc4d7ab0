"""The loaded GGUF: weights, one llama.cpp context with a KV stream per slot, vocabulary.

llama-cpp-python's `Llama` class drives a single sequence, so the batching engine builds
on its thin wrappers (`LlamaModel`) and the raw C API instead. The context is created
with one *separate* KV stream per slot (`kv_unified = false`): llama.cpp then computes
each sequence's attention over its own cache only, so what else is in the batch cannot
change a sequence's numbers (with a unified cache, other sequences' cells shift how
the sums are grouped, and greedy replies drift with the load). llama.cpp's CPU kernels
still pick code paths by batch shape and context length, so with the default f16 cache
that independence holds for the cases the tests check, not in every last bit; the
q8_0 cache makes attention take one path always (see `kv_cache_type`).
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import llama_cpp
from llama_cpp._internals import LlamaModel

from app.engine.attention import choose_flash_attn
from app.engine.cpu_turns import CpuTurns
from app.engine.measurements import cpu_identity, file_identity
from app.engine.native import amx_guard_needed, cpu_kernel_paths, system_info
from app.engine.template import ChatTemplate
from config.settings import ModelSettings
from conversion.errors import InvalidRequestError

__all__ = ("LoadedModel",)

logger = logging.getLogger("llm_service.engine")

T = TypeVar("T")
_KV_TYPE = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0}


def _now(work: Callable[[], T]) -> T:
    return work()


class LoadedModel:
    """Owns the native model and context; freed by `close()` (worker thread only)."""

    def __init__(
        self, path: str, settings: ModelSettings, threads: int, turns: CpuTurns | None = None
    ) -> None:
        """`turns`: where the start-up measurement of attention decodes (`cpu_turns`)."""
        # llama.cpp logs every tensor and graph at load; keep its errors only, unless
        # the operator asked for debug logs.
        native_log = logging.getLogger("llama-cpp-python")
        native_log.setLevel(logging.DEBUG if logger.isEnabledFor(logging.DEBUG) else logging.ERROR)
        started = time.perf_counter()
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = (
            0x7FFFFFFF if settings.n_gpu_layers == -1 else settings.n_gpu_layers
        )
        self.system_info = system_info()
        self.amx_guard = amx_guard_needed(self.system_info, allow_amx=settings.amx_kernels)
        # Extra buffer types are how weights reach repacked (and AMX) kernels.
        model_params.use_extra_bufts = not (self.amx_guard or settings.batch_invariant)
        self.kernel_paths = cpu_kernel_paths(settings.batch_invariant)
        self.model = LlamaModel(path_model=path, params=model_params, verbose=False)
        self.vocab = self.model.vocab
        self.n_vocab = self.model.n_vocab()
        self.slots = settings.n_parallel
        self.n_ctx_seq = settings.n_ctx or self.model.n_ctx_train()
        # one decode call carries a token of every slot besides prompt tokens
        self.n_batch = max(settings.n_batch, self.slots)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = self.n_ctx_seq * self.slots
        params.n_batch = params.n_ubatch = self.n_batch
        params.n_seq_max = self.slots
        params.kv_unified = False
        params.n_threads = threads
        params.n_threads_batch = settings.n_threads_batch or threads
        kv_type = _KV_TYPE[settings.kv_cache_type]
        run = turns.run if turns is not None else _now
        self.attention = run(
            lambda: choose_flash_attn(
                self.model.model,
                path,
                settings.flash_attn,
                threads,
                kv_type,
                self.system_info,
                gpu=settings.n_gpu_layers != 0,
                batch_invariant=settings.batch_invariant,
            )
        )
        self.flash_attn_type = self.attention.flash_attn
        params.flash_attn_type = self.flash_attn_type
        params.type_k = params.type_v = kv_type
        params.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model.model, params)
        if self.ctx is None:
            self.model.close()  # type: ignore[no-untyped-call]
            raise RuntimeError(
                f"llama.cpp could not create a context of {self.n_ctx_seq} tokens x "
                f"{self.slots} slots (out of memory, or kv_cache_type={settings.kv_cache_type!r}"
                " without flash attention?)"
            )
        self.n_ctx_seq = int(llama_cpp.llama_n_ctx_seq(self.ctx))  # as llama.cpp sized it
        self.compute_identity = {
            "model": file_identity(path),
            "cpu": cpu_identity(self.system_info),
            "threads": [params.n_threads, params.n_threads_batch],
            "kv_type": kv_type,
            "flash_attn": self.flash_attn_type,
            "context": [self.n_ctx_seq, self.slots, self.n_batch],
            "gpu_layers": settings.n_gpu_layers,
            "extra_bufts": model_params.use_extra_bufts,
            "cpu_kernels": str(self.kernel_paths),
        }
        """What decides the numbers this context computes: the key its measurements are
        kept under (`measurements`)."""
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        try:
            self.template = ChatTemplate(self.model, settings)
        except BaseException:
            self.close()
            raise
        self.load_seconds = time.perf_counter() - started
        self._pieces: dict[int, bytes] = {}
        self.visible = self._marker_tokens(self.template.family.markers)
        """Special tokens whose text replies keep (the family's markers)."""

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        """Thread-safe (reads the vocabulary only): routes call it beside decoding."""
        return list(self.model.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def detokenize(self, tokens: list[int]) -> str:
        """Text of `tokens`, special tokens included; invalid UTF-8 is replaced."""
        for index, token in enumerate(tokens):
            if not 0 <= token < self.n_vocab:
                raise InvalidRequestError(
                    f"Token {token} is not in the model's vocabulary of {self.n_vocab}.",
                    param=f"tokens[{index}]",
                )
        return bytes(self.model.detokenize(tokens, special=True)).decode("utf-8", "replace")

    def _marker_tokens(self, markers: tuple[str, ...]) -> frozenset[int]:
        found = set()
        for marker in markers:
            tokens = list(self.model.tokenize(marker.encode(), add_bos=False, special=True))
            if len(tokens) == 1:
                found.add(tokens[0])
        return frozenset(found)

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def piece(self, token: int) -> bytes:
        """The bytes of one token (maybe part of a UTF-8 character); cached, so a long
        reply costs the same per token as a short one. Special tokens show no text,
        except the family's markers (`visible`), which parsing needs."""
        piece = self._pieces.get(token)
        if piece is None:
            size = 64
            buf = ctypes.create_string_buffer(size)
            special = token in self.visible
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, size, 0, special)
            if n < 0:
                size = -n
                buf = ctypes.create_string_buffer(size)
                n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, size, 0, special)
            piece = self._pieces[token] = buf.raw[:n]
        return piece

    def forget(self, seq: int, keep: int = 0) -> None:
        """Drop a sequence's cached tokens from position `keep` on."""
        llama_cpp.llama_memory_seq_rm(self.memory, seq, keep, -1)

    def copy(self, source: int, target: int) -> None:
        """Make `target`'s cache a copy of `source`'s (a whole KV stream: llama.cpp
        copies streams, not ranges; cut the copy with `forget`)."""
        llama_cpp.llama_memory_seq_cp(self.memory, source, target, -1, -1)

    def close(self) -> None:
        if self.ctx is not None:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        self.model.close()  # type: ignore[no-untyped-call]
