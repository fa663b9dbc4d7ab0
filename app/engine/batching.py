"""Continuous-batching engine: up to `n_parallel` requests share every llama.cpp decode.

One worker thread loads the model, then runs the decode loop of `worker.DecodeLoop`
(one `llama_decode` per step for every running slot; prompts read beside the streams
within a measured budget) until the engine closes. This module is the other side: the
calls routes make on the event loop or in their threads, and the engine's life cycle.

The event loop never waits on llama.cpp (ctypes releases the GIL during decode), so
/health and /v1/models stay instant; tokens reach the loop via `call_soon_threadsafe`.

State goes `loading` -> `ready`, or `failed` if loading fails or the worker dies;
`drain()`/`close()` make it `closed` but keep `failed`, which `python -m app` exits 1
on. Route threads tokenize under `_model_lock`, which the worker also holds to free the
model, and check the state inside it: once closed, nothing reads a freed vocabulary.
The embedder is made at load and closed by the worker before the model is freed.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from app.engine.base import ChatPrompt, EngineState
from app.engine.cpu_turns import CpuTurns
from app.engine.draft import DraftModel
from app.engine.embedding import Embedder
from app.engine.grammar import grammar_for, grammar_for_structure
from app.engine.jobs import JobHandle, JobQueue, JobRecord
from app.engine.measurements import cache_file, recall, remember
from app.engine.model import LoadedModel
from app.engine.sampling import check_sampling
from app.engine.shape_probe import logit_drift
from app.engine.template import check_template_settings
from app.engine.worker import DecodeLoop
from config.loader import SettingsError
from config.model_source import ModelChoice, served_model_id
from config.settings import ModelSettings, SpeculativeSettings
from conversion.errors import (
    InvalidRequestError,
    ModelLoadFailedError,
    ModelNotReadyError,
)
from conversion.families import FALLBACK, Family
from conversion.generation import GenerationParams, TemplateMessage

__all__ = ("BatchingEngine", "check_engine_settings", "default_threads")

logger = logging.getLogger("llm_service.engine")


def check_engine_settings(settings: ModelSettings, speculative: SpeculativeSettings) -> None:
    """`SettingsError` naming the setting when the template or the draft model setting
    is unusable: called at start-up for every catalog model, before any loads."""
    check_template_settings(settings)
    if speculative.mode == "draft" and settings.draft_path is None:
        raise SettingsError(
            "Invalid setting speculative.mode: `draft` needs model.draft_path (the GGUF"
            " of a small model with the served model's vocabulary)."
        )


def default_threads() -> int:
    """All cores on small machines; half of them (≈ physical cores) on bigger ones."""
    cores = os.cpu_count() or 1
    return cores if cores <= 4 else cores // 2


class BatchingEngine:
    """See the module docstring. Create, then `start()`; `close()` when done."""

    def __init__(
        self,
        choice: ModelChoice,
        settings: ModelSettings,
        *,
        queue_size: int,
        queue_tokens: int | None = None,
        speculative: SpeculativeSettings | None = None,
        turns: CpuTurns | None = None,
    ) -> None:
        """`turns`: the CPU threads every decode of every loaded model runs on
        (`cpu_turns`); without it the engine has its own."""
        self._speculative = speculative if speculative is not None else SpeculativeSettings()
        check_engine_settings(settings, self._speculative)
        self._turns = turns if turns is not None else CpuTurns()
        self._owns_turns = turns is None
        self.model_id = served_model_id(settings, choice.path)
        self.created = int(choice.path.stat().st_mtime)
        self._choice = choice
        self._settings = settings
        self._state: EngineState = "loading"
        self._loaded = threading.Event()
        self._queue = JobQueue(queue_size, settings.n_parallel, queue_tokens)
        self._thread = threading.Thread(target=self._work, name="llm-engine", daemon=True)
        self._model: LoadedModel | None = None
        self._model_lock = threading.Lock()
        """Held while tokenizing (route threads) and while freeing the model."""
        self._decoder: DecodeLoop | None = None
        """Set at load; owns the slots and the decode batch, which only the worker touches."""
        self._embedder: Embedder | None = None
        """Set at load when `model.embeddings` is on; its context is made on first use."""
        self.load_error: str | None = None
        """Why loading failed (the exception's text), for the requests that waited."""

    # --- event-loop side ----------------------------------------------------------------

    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def context_length(self) -> int:
        return self._model.n_ctx_seq if self._model is not None else 0

    @property
    def records(self) -> collections.deque[JobRecord]:
        return self._queue.records

    def queue_depth(self) -> int:
        return self._queue.depth()

    def active(self) -> int:
        return self._decoder.active() if self._decoder is not None else 0

    @property
    def load_seconds(self) -> float:
        return self._model.load_seconds if self._model is not None else 0.0

    def check_ready(self) -> None:
        if self._state == "ready":
            return
        if self._state == "failed":
            raise ModelLoadFailedError(
                "The model is not available (loading failed or the engine stopped); "
                "see the server log."
            )
        if self._state == "closed":
            raise ModelNotReadyError("The server is shutting down.")
        raise ModelNotReadyError("The model is still loading; try again shortly.")

    def wait_loaded(self) -> EngineState:
        self._loaded.wait()
        return self._state

    def start(self) -> None:
        self._thread.start()

    @property
    def renders_tools(self) -> bool:
        return self._model is not None and self._model.template.renders_tools

    @property
    def family(self) -> Family:
        return self._model.template.family if self._model is not None else FALLBACK

    def tokenize_chat(
        self,
        messages: list[TemplateMessage],
        tools: list[dict[str, Any]] | None = None,
        template_kwargs: dict[str, Any] | None = None,
        suffix: str = "",
    ) -> ChatPrompt:
        with self._model_lock:  # the worker must not free the vocabulary meanwhile
            self.check_ready()
            model = self._model
            assert model is not None
            prompt, has_special, stop = model.template.render(messages, tools, template_kwargs)
            prompt += suffix
            return ChatPrompt(model.tokenize(prompt, add_bos=not has_special), stop, prompt)

    def tokenize_text(self, text: str, *, add_special: bool) -> list[int]:
        with self._model_lock:
            self.check_ready()
            assert self._model is not None
            return self._model.tokenize(text, add_bos=add_special)

    def detokenize(self, tokens: list[int]) -> str:
        with self._model_lock:
            self.check_ready()
            assert self._model is not None
            return self._model.detokenize(tokens)

    @property
    def embedding_size(self) -> int | None:
        return self._embedder.size if self._embedder is not None else None

    def embed(
        self, inputs: list[list[int]], cancelled: Callable[[], bool] = lambda: False
    ) -> list[list[float]]:
        return self._ready_embedder().embed(inputs, cancelled)  # not under _model_lock

    def _ready_embedder(self) -> Embedder:
        self.check_ready()
        if self._embedder is None:
            raise InvalidRequestError(
                "Embeddings are turned off on this server (model.embeddings = false).",
                code="embeddings_disabled",
            )
        return self._embedder

    def check_params(self, params: GenerationParams) -> GenerationParams:
        if params.grammar is None and params.structure is not None:
            grammar = grammar_for_structure(params.structure)
            params = dataclasses.replace(params, grammar=grammar)
        elif params.grammar is None and params.json_schema is not None:
            grammar = grammar_for(params.json_schema, params.schema_param)
            params = dataclasses.replace(params, grammar=grammar)
        with self._model_lock:
            self.check_ready()
            assert self._model is not None
            check_sampling(params, self._model.n_vocab, self._model.vocab)
        return params

    def submit(
        self, prompt: list[int], params: GenerationParams, owner: str | None = None
    ) -> JobHandle:
        self.check_ready()
        return self._queue.submit(prompt, params, owner)

    def drain(self, grace: float) -> None:
        """Stop admitting (new requests get 503), and give running generations `grace`
        seconds before they end with `finish_reason: "length"`."""
        if self._state != "failed":  # also while loading: it must not become ready
            self._state = "closed"
        self._queue.drain(time.monotonic() + grace)

    def close(self) -> None:
        if self._state != "failed":  # keep "failed": `python -m app` exits 1 on it
            self._state = "closed"
        self._queue.close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)

    # --- worker thread ------------------------------------------------------------------

    def _load(self) -> None:
        threads = self._settings.n_threads or default_threads()
        model = LoadedModel(str(self._choice.path), self._settings, threads, self._turns)
        self._model = model
        if self._settings.embeddings:
            self._embedder = Embedder(model, self._settings, threads, self._turns)
        draft = None
        if self._speculative.mode == "draft":
            assert self._settings.draft_path is not None
            draft = DraftModel(  # a failure here fails the load; `_work` frees the model
                self._settings.draft_path,
                model.model,
                slots=model.slots,
                n_ctx_seq=model.n_ctx_seq,
                threads=threads,
                n_batch=model.n_batch,
                n_gpu_layers=self._settings.n_gpu_layers,
                flash_attn_type=model.flash_attn_type,
            )
        speculative, why = self._resolve_speculation(model)
        self._decoder = DecodeLoop(
            model, self._queue, self._settings.n_batch, speculative, draft, self._turns
        )
        # Logged only now: while the model loads (verbose=False), llama-cpp-python points
        # the process's stdout and stderr at /dev/null, and a line logged then is lost.
        # The embedded fallback is a 135M demo model, so that case is a warning.
        log = logger.warning if self._choice.origin == "embedded" else logger.info
        log(
            "Model %r ready in %.2fs from %s (%s): %d slots x %d context tokens, "
            "%d threads, chat template: %s",
            self.model_id,
            model.load_seconds,
            self._choice.path.name,
            self._choice.reason,
            model.slots,
            model.n_ctx_seq,
            threads,
            model.template.description,
        )
        family = model.template.family
        unknown_tools = family is FALLBACK and model.template.renders_tools
        family_log = logger.warning if unknown_tools else logger.info
        family_log(
            "Chat family: %s (%s)%s",
            family.name,
            family.detected_by,
            "; tool calls are read and forced as Hermes <tool_call> JSON"
            if family is FALLBACK
            else "",
        )
        logger.info("llama.cpp system info: %s", model.system_info)
        logger.info("Attention: %s", model.attention.why)
        logger.info("CPU kernels: %s", model.kernel_paths.described)
        logger.info(
            "Speculative decoding: %s (%s)",
            "off"
            if speculative.mode == "off"
            else f"{speculative.mode}, up to {speculative.max_draft} guesses per slot and step"
            + (f" from {self._settings.draft_path}" if speculative.mode == "draft" else ""),
            why,
        )

    def _resolve_speculation(self, model: LoadedModel) -> tuple[SpeculativeSettings, str]:
        """The speculative settings the decode loop runs with, and why. `auto` guesses
        from n-grams unless the model's logits depend on the shape of the step that
        computes them (`shape_probe`) while `model.batch_invariant` asks for replies
        that do not depend on the load: guesses change step shapes with the load."""
        spec = self._speculative
        if spec.mode != "auto":
            return spec, "as configured"
        if not self._settings.batch_invariant:
            return msgspec.structs.replace(spec, mode="ngram"), "auto; batch_invariant is off"
        known = recall("shape_probe", model.compute_identity)
        if known is not None and isinstance(known.get("drift"), float):
            drift, source = known["drift"], f"; probed before, kept in {cache_file()}"
        else:
            try:
                drift, source = self._turns.run(lambda: logit_drift(model)), ""
            except Exception:  # only an optimisation: serve without it rather than fail
                logger.exception("Probing how this model's logits depend on the step failed")
                return msgspec.structs.replace(spec, mode="off"), "auto; the probe failed"
            remember("shape_probe", model.compute_identity, {"drift": drift})
        if drift == 0.0:
            return msgspec.structs.replace(spec, mode="ngram"), (
                f"auto; a position's logits here do not depend on the step's shape{source}"
            )
        return msgspec.structs.replace(spec, mode="off"), (
            f"auto; a position's logits here moved by up to {drift:.2g} with the step's"
            " shape, so guesses would make replies depend on the load (model.batch_invariant)"
            f"{source}"
        )

    def _work(self) -> None:
        """Load, run the decode loop until the queue closes, then free the slots, the
        embedder and last the model, whose weights the embedder's context uses."""
        try:
            self._load()
            if self._state == "loading":  # not closed meanwhile
                self._state = "ready"
        except Exception as exc:
            logger.exception("Loading the model from %s failed", self._choice.path)
            self.load_error = f"{type(exc).__name__}: {exc}"
            self._state = "failed"
        finally:
            self._loaded.set()  # after the state is final: wait_loaded() returns it
        try:
            if self._state != "failed":  # loaded: _decoder is set
                assert self._decoder is not None
                self._decoder.run()
        except BaseException:
            logger.exception("The engine's worker thread died")
            self._state = "failed"
            raise
        finally:  # never leave requests waiting on a dead worker
            self._queue.close()
            if self._decoder is not None:
                self._decoder.close()
            if self._embedder is not None:  # waits for an embedding in flight
                self._embedder.close()
            if self._model is not None:
                with self._model_lock:  # state is closed or failed: no new tokenizing
                    self._model.close()
            if self._owns_turns:
                self._turns.close()
