"""Sentence embeddings from the served (causal) GGUF: the mean of its last hidden states.

The `Embedder` shares the loaded weights and makes its own llama.cpp context with
`embeddings = true`, so embedding never touches the generation context or its slots;
two contexts over one model, used from two threads, is fine in llama.cpp. The context
is made on the first request, not at load: it costs one more sequence of KV cache plus
a compute buffer, which users who never embed should not pay.

Pooling is done here, not by llama.cpp (`LLAMA_POOLING_TYPE_MEAN`): llama.cpp pools
within one micro-batch only, so its mean needs `n_ubatch >= n_ctx`, and it sizes the
compute buffer for the logits of a whole micro-batch: n_ctx x n_vocab floats, 0.8 GB at
4096 tokens for a 49k vocabulary, 2.5 GB for a 152k one. With `LLAMA_POOLING_TYPE_NONE`
llama.cpp returns every token's hidden state; the input is read in `n_batch` pieces,
exactly as a prompt is (causal attention: a token's state does not depend on what comes
after it, so the pieces give the same states as one pass), and the states are averaged
here. That matches llama.cpp's own mean to ~1e-6 at the generation context's buffer size.

Vectors are L2-normalized, as OpenAI's are, so a dot product is the cosine similarity;
they are rounded to float32, so the `float` and `base64` encodings carry equal values.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import llama_cpp
import numpy as np

from app.engine.batch import set_token
from app.engine.cpu_turns import CpuTurns
from app.engine.model import _KV_TYPE, LoadedModel
from config.settings import ModelSettings
from conversion.errors import (
    ContextLengthExceededError,
    InternalError,
    InvalidRequestError,
    ModelNotReadyError,
)
from conversion.inputs import item_param

__all__ = ("Embedder", "EmbeddingCancelledError")

logger = logging.getLogger("llm_service.engine")


class EmbeddingCancelledError(Exception):
    """The request was abandoned (its client left); nobody reads the result."""


class Embedder:
    """Embeds token lists one at a time under its own lock; `close()` before the model."""

    def __init__(
        self, model: LoadedModel, settings: ModelSettings, threads: int, turns: CpuTurns
    ) -> None:
        """`turns`: the CPU threads every decode runs on (`cpu_turns`)."""
        self._turns = turns
        self._model = model
        self._settings = settings
        self._threads = threads
        self.size = int(llama_cpp.llama_model_n_embd_out(model.model.model))
        """Dimensions of every vector."""
        self._n_batch = min(model.n_batch, model.n_ctx_seq)
        self._lock = threading.Lock()
        """Held while embedding and while freeing: a free never races a decode."""
        self._closing = False
        """Set (without the lock) first on close: an embedding in flight stops at its
        next piece instead of holding the shutdown up."""
        self._ctx: llama_cpp.llama_context_p | None = None
        self._batch: Any = None
        """A `llama_batch`; `Any` because llama-cpp-python types its cells as ctypes
        values where ctypes takes (and worker.py passes) plain ints."""

    def embed(
        self, inputs: list[list[int]], cancelled: Callable[[], bool] = lambda: False
    ) -> list[list[float]]:
        """One unit vector per token list. Blocking; serialized by the lock. Once
        `cancelled()` is true the work stops at the next piece (and frees the lock for
        the next request) with `EmbeddingCancelledError`."""
        self._check(inputs)
        with self._lock:
            self._check_open()
            if self._ctx is None:
                self._open()
            try:
                return [self._embed_one(tokens, cancelled) for tokens in inputs]
            finally:
                llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._ctx), True)

    def close(self) -> None:
        """Free the context (waits for an embedding in flight; later calls get 503)."""
        self._closing = True
        with self._lock:
            if self._batch is not None:
                llama_cpp.llama_batch_free(self._batch)
                self._batch = None
            if self._ctx is not None:
                llama_cpp.llama_free(self._ctx)
                self._ctx = None

    def _check(self, inputs: list[list[int]]) -> None:
        """The request's faults, before any work (reads only immutable model facts)."""
        n_vocab, n_ctx = self._model.n_vocab, self._model.n_ctx_seq
        for index, tokens in enumerate(inputs):
            param = item_param("input", index, len(inputs))
            if not tokens:
                raise InvalidRequestError("An input must not be empty.", param=param)
            for position, token in enumerate(tokens):
                if not 0 <= token < n_vocab:
                    raise InvalidRequestError(
                        f"Token {token} (position {position}) is not in the model's "
                        f"vocabulary of {n_vocab}.",
                        param=param,
                    )
            if len(tokens) > n_ctx:
                raise ContextLengthExceededError(
                    f"This model's maximum context length is {n_ctx} tokens; an input of "
                    f"{len(tokens)} tokens is too long to embed.",
                    param=param,
                )

    def _check_open(self) -> None:
        if self._closing:
            raise ModelNotReadyError("The server is shutting down.")

    def _open(self) -> None:
        model, settings = self._model, self._settings
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = model.n_ctx_seq
        params.n_batch = params.n_ubatch = self._n_batch
        params.n_seq_max = 1
        params.embeddings = True
        params.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_NONE  # pooled here, see above
        params.n_threads = self._threads
        params.n_threads_batch = settings.n_threads_batch or self._threads
        params.flash_attn_type = self._model.flash_attn_type  # the generation context's
        params.type_k = params.type_v = _KV_TYPE[settings.kv_cache_type]
        params.no_perf = True
        ctx = llama_cpp.llama_init_from_model(model.model.model, params)
        if ctx is None:
            logger.error("llama.cpp could not create the embedding context")
            raise InternalError("The server could not set up embeddings (out of memory?).")
        self._ctx = ctx
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        logger.info(
            "Embedding context ready: %d tokens, %d per decode", model.n_ctx_seq, self._n_batch
        )

    def _embed_one(self, tokens: list[int], cancelled: Callable[[], bool]) -> list[float]:
        ctx, batch = self._ctx, self._batch
        assert ctx is not None
        assert batch is not None
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        total = np.zeros(self.size, dtype=np.float64)
        for start in range(0, len(tokens), self._n_batch):
            self._check_open()
            if cancelled():
                raise EmbeddingCancelledError
            piece = tokens[start : start + self._n_batch]
            batch.n_tokens = len(piece)
            for offset, token in enumerate(piece):  # every state out
                set_token(batch, offset, token, start + offset, 0, True)
            status = self._turns.run(lambda: llama_cpp.llama_decode(ctx, batch))
            states = llama_cpp.llama_get_embeddings(ctx)
            if status != 0 or not states:
                logger.error("llama_decode failed with status %d while embedding", status)
                raise InternalError("Embedding failed.")
            rows = np.ctypeslib.as_array(states, shape=(len(piece), self.size))
            total += rows.sum(axis=0, dtype=np.float64)
        # the mean's direction: dividing by the count first would cancel out here
        norm = float(np.linalg.norm(total))
        vector = total / norm if norm > 0 else total
        return [float(x) for x in vector.astype(np.float32)]
