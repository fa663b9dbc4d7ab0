"""Serial engine: one llama-cpp-python model, one generation at a time, FIFO queue.

A single worker thread owns the `Llama` object: it loads the model, then takes
requests from a bounded queue in arrival order and generates each to completion, so
no request ever cuts another off (unlike llama-cpp-python's server). The event loop
never waits on llama.cpp: routes that do not generate (/health, /v1/models) stay
instant, and tokens reach the loop through `call_soon_threadsafe`.

Cancellation is a flag the worker checks after every token, so a disconnected client
costs at most one more token; a request still waiting is removed from the queue at once.

Prompt reuse is limited to whole `n_batch` chunks of the previous *prompt*: llama.cpp's
logits are not bit-identical across batch shapes, so re-reading only the tail of a
prompt (as `Llama.generate` does by itself) makes a temperature-0 reply depend on what
ran before it. Reusing only chunks that a fresh evaluation would compute the same way
keeps every reply reproducible, and still skips the bulk of a long shared prefix
(a long system prompt or document).
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import random
import threading
import time

import llama_cpp
from llama_cpp import Llama

from app.engine.base import ChatPrompt, EngineState, Finished, TextDelta
from app.engine.jobs import Job, JobHandle, JobQueue, JobRecord
from app.engine.template import ChatTemplate, check_template_settings
from config.model_source import ModelChoice, served_model_id
from config.settings import ModelSettings
from conversion.errors import (
    InternalError,
    ModelLoadFailedError,
    ModelNotReadyError,
    OpenAIError,
)
from conversion.messages import TemplateMessage
from conversion.requests import GenerationParams
from conversion.text import TextAssembler

__all__ = ("LlamaEngine", "default_threads")

logger = logging.getLogger("llm_service.engine")


def default_threads() -> int:
    """All cores on small machines; half of them (≈ physical cores) on bigger ones."""
    cores = os.cpu_count() or 1
    return cores if cores <= 4 else cores // 2


def _llama_seed(seed: int | None) -> int:
    """OpenAI seeds are any integer; llama.cpp takes uint32 where 0xFFFFFFFF means random."""
    if seed is None:
        return random.randrange(0xFFFFFFFF)
    return min(seed & 0xFFFFFFFF, 0xFFFFFFFE)


class LlamaEngine:
    """See the module docstring. Create, then `start()`; `close()` when done."""

    def __init__(self, choice: ModelChoice, settings: ModelSettings, *, queue_size: int) -> None:
        check_template_settings(settings)
        self.model_id = served_model_id(settings, choice.path)
        self.created = int(choice.path.stat().st_mtime)
        self._choice = choice
        self._settings = settings
        self._state: EngineState = "loading"
        self._loaded = threading.Event()
        self._queue = JobQueue(queue_size)
        self._thread = threading.Thread(target=self._work, name="llm-engine", daemon=True)
        self._llama: Llama | None = None
        self._template: ChatTemplate | None = None
        self._pieces: dict[int, bytes] = {}
        self._cached_prompt: list[int] = []

    # --- event-loop side ----------------------------------------------------------------

    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def context_length(self) -> int:
        return self._llama.n_ctx() if self._llama is not None else 0

    @property
    def records(self) -> collections.deque[JobRecord]:
        return self._queue.records

    def queue_depth(self) -> int:
        return self._queue.depth()

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

    def tokenize_chat(self, messages: list[TemplateMessage]) -> ChatPrompt:
        self.check_ready()
        llama, template = self._llama, self._template
        assert llama is not None
        assert template is not None
        prompt, has_special, stop = template.render(messages)
        tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=not has_special, special=True)
        return ChatPrompt(tokens, stop)

    def submit(self, prompt: list[int], params: GenerationParams) -> JobHandle:
        self.check_ready()
        return self._queue.submit(prompt, params)

    def close(self) -> None:
        if self._state != "failed":  # keep "failed": `python -m app` exits 1 on it
            self._state = "closed"
        self._queue.close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)

    # --- worker thread ------------------------------------------------------------------

    def _load(self) -> None:
        choice, settings = self._choice, self._settings
        threads = settings.n_threads or default_threads()
        started = time.perf_counter()
        llama = Llama(
            model_path=str(choice.path),
            n_ctx=settings.n_ctx,
            n_batch=settings.n_batch,
            n_threads=threads,
            n_threads_batch=settings.n_threads_batch or threads,
            n_gpu_layers=settings.n_gpu_layers,
            verbose=False,
        )
        self._template = ChatTemplate(llama, settings)
        self._llama = llama
        # Logged only now: while `Llama()` loads (verbose=False), llama-cpp-python points
        # the process's stdout and stderr at /dev/null, and a line logged then is lost.
        # The embedded fallback is a 135M demo model, so that case is a warning.
        log = logger.warning if choice.origin == "embedded" else logger.info
        log(
            "Model %r ready in %.2fs from %s (%s): context %d tokens, %d threads, "
            "chat template: %s",
            self.model_id,
            time.perf_counter() - started,
            choice.path.name,
            choice.reason,
            llama.n_ctx(),
            threads,
            self._template.description,
        )

    def _work(self) -> None:
        try:
            self._load()
            if self._state == "loading":  # not closed meanwhile
                self._state = "ready"
        except Exception:
            logger.exception("Loading the model from %s failed", self._choice.path)
            self._state = "failed"
        finally:
            self._loaded.set()  # after the state is final: wait_loaded() returns it
        try:
            while self._state != "failed" and (job := self._queue.take()) is not None:
                self._run(job)
        except BaseException:
            logger.exception("The engine's worker thread died")
            self._state = "failed"
            raise
        finally:  # never leave requests waiting on a dead worker
            self._queue.close()
            if self._llama is not None:
                self._llama.close()

    def _piece(self, token: int) -> bytes:
        """The bytes of one token (may be part of a UTF-8 character); cached per token."""
        piece = self._pieces.get(token)
        if piece is None:
            assert self._llama is not None
            vocab = self._llama._model.vocab
            size = 64
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_token_to_piece(vocab, token, buf, size, 0, False)
            if n < 0:
                size = -n
                buf = ctypes.create_string_buffer(size)
                n = llama_cpp.llama_token_to_piece(vocab, token, buf, size, 0, False)
            piece = self._pieces[token] = buf.raw[:n]
        return piece

    def _reusable_prefix(self, prompt: list[int], n_batch: int) -> int:
        """Tokens of the KV cache this prompt may keep (see the module docstring)."""
        cached = self._cached_prompt
        limit = min(len(cached) // n_batch * n_batch, (len(prompt) - 1) // n_batch * n_batch)
        same = 0
        while same < limit and cached[same] == prompt[same]:
            same += 1
        return same // n_batch * n_batch

    def _prefill(self, job: Job, reused: int) -> bool:
        """Evaluate the prompt up to its last chunk, checking for cancellation between
        chunks (a long prompt takes seconds); `Llama.generate` evaluates the last chunk,
        so chunk boundaries are those of a fresh evaluation. False if cancelled."""
        llama = self._llama
        assert llama is not None
        n_batch = llama.n_batch
        llama.n_tokens = reused  # Llama.generate keeps exactly this much of its cache
        last_chunk = (len(job.prompt) - 1) // n_batch * n_batch
        for begin in range(reused, last_chunk, n_batch):
            if job.cancelled:
                break
            llama.eval(job.prompt[begin : begin + n_batch])
        self._cached_prompt = job.prompt[: llama.n_tokens]
        return not job.cancelled

    def _run(self, job: Job) -> None:
        llama = self._llama
        assert llama is not None
        reused = self._reusable_prefix(job.prompt, llama.n_batch)
        cancelled_after = None
        try:
            outcome = self._decode(job) if self._prefill(job, reused) else None
        except Exception as exc:
            logger.exception("Generation failed")
            llama.reset()  # type: ignore[no-untyped-call]
            self._cached_prompt = []
            job.put(exc if isinstance(exc, OpenAIError) else InternalError("Generation failed."))
            outcome = "failed"
        if outcome is None:
            outcome = "cancelled"
            cancelled_after = job.completion_tokens - (job.tokens_at_cancel or 0)
        evaluated = max(0, min(llama.n_tokens, len(job.prompt)) - reused)
        self.records.append(
            JobRecord(
                outcome,
                len(job.prompt),
                reused,
                evaluated,
                job.completion_tokens,
                cancelled_after,
            )
        )

    def _decode(self, job: Job) -> str | None:
        """Generate and stream the reply; its finish reason, or None if cancelled."""
        llama = self._llama
        assert llama is not None
        self._cached_prompt = job.prompt
        params = job.params
        limit = llama.n_ctx() - len(job.prompt)
        if params.max_tokens is not None:
            limit = min(limit, params.max_tokens)
        llama.set_seed(_llama_seed(params.sampling.seed))
        assembler = TextAssembler(params.stop)
        vocab = llama._model.vocab
        finish = "length"
        tokens = llama.generate(
            job.prompt,
            temp=params.sampling.temperature,
            top_p=params.sampling.top_p,
            top_k=0,
            min_p=0.0,
            typical_p=1.0,
            repeat_penalty=1.0,
        )
        try:
            for token in tokens:
                if job.cancelled:
                    return None
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                job.completion_tokens += 1
                text = assembler.feed(self._piece(token))
                if text:
                    job.put(TextDelta(text))
                if assembler.stopped:
                    finish = "stop"
                    break
                if job.completion_tokens >= limit:
                    break
        finally:
            tokens.close()
        if tail := assembler.finish():
            job.put(TextDelta(tail))
        job.put(Finished(finish, len(job.prompt), job.completion_tokens))  # type: ignore[arg-type]
        return finish
