"""Continuous-batching engine: up to `n_parallel` requests share every llama.cpp decode.

One worker thread owns the model and runs the loop llama-server runs. Each step it
admits waiting requests into free slots (the slot whose cache shares the longest
prefix with the prompt, so a chat's next turn only evaluates what is new), puts one
token of every generating slot into a batch, fills the rest with prompt tokens of
slots still reading their prompt, makes one `llama_decode` call, and samples each
slot's next token with that request's own native sampler chain.

While others stream, a prompt is read in pieces sized from measured costs so that a
step with prompt tokens takes about `budget.PROMPT_STEP_COST` plain decode steps: a
1,000-token prompt then slows the running streams down instead of freezing them for
seconds. Alone, a prompt is read `n_batch` tokens at a time.

The event loop never waits on llama.cpp (ctypes releases the GIL during decode), so
/health and /v1/models stay instant; tokens reach the loop via `call_soon_threadsafe`.
A cancelled request (client gone) leaves its slot at the next step.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import threading
import time
from typing import Any, Literal

import llama_cpp

from app.engine.base import ChatPrompt, EngineState, Finished, TextDelta
from app.engine.budget import PromptBudget
from app.engine.embedding import Embedder
from app.engine.jobs import JobHandle, JobQueue, JobRecord
from app.engine.logprobs import token_logprob
from app.engine.model import LoadedModel
from app.engine.sampling import check_sampling, new_sampler
from app.engine.slots import Slot, pick_slot
from app.engine.template import check_template_settings
from config.model_source import ModelChoice, served_model_id
from config.settings import ModelSettings
from conversion.errors import (
    InternalError,
    InvalidRequestError,
    ModelLoadFailedError,
    ModelNotReadyError,
)
from conversion.messages import TemplateMessage
from conversion.requests import GenerationParams
from conversion.text import TextAssembler

__all__ = ("BatchingEngine", "default_threads")

logger = logging.getLogger("llm_service.engine")


def default_threads() -> int:
    """All cores on small machines; half of them (≈ physical cores) on bigger ones."""
    cores = os.cpu_count() or 1
    return cores if cores <= 4 else cores // 2


class BatchingEngine:
    """See the module docstring. Create, then `start()`; `close()` when done."""

    def __init__(self, choice: ModelChoice, settings: ModelSettings, *, queue_size: int) -> None:
        check_template_settings(settings)
        self.model_id = served_model_id(settings, choice.path)
        self.created = int(choice.path.stat().st_mtime)
        self._choice = choice
        self._settings = settings
        self._state: EngineState = "loading"
        self._loaded = threading.Event()
        self._queue = JobQueue(queue_size, settings.n_parallel)
        self._thread = threading.Thread(target=self._work, name="llm-engine", daemon=True)
        self._model: LoadedModel | None = None
        self._model_lock = threading.Lock()
        """Held while tokenizing (route threads) and while freeing the model."""
        self._slots = [Slot(seq) for seq in range(settings.n_parallel)]
        self._clock = itertools.count(1)
        self._budget = PromptBudget(settings.n_batch)
        self._embedder: Embedder | None = None
        """Set at load when `model.embeddings` is on; its context is made on first use."""

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
        return sum(slot.job is not None for slot in self._slots)

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

    def tokenize_chat(
        self, messages: list[TemplateMessage], tools: list[dict[str, Any]] | None = None
    ) -> ChatPrompt:
        with self._model_lock:  # the worker must not free the vocabulary meanwhile
            self.check_ready()
            model = self._model
            assert model is not None
            prompt, has_special, stop = model.template.render(messages, tools)
            return ChatPrompt(model.tokenize(prompt, add_bos=not has_special), stop)

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

    def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        self.check_ready()
        if self._embedder is None:
            raise InvalidRequestError(
                "Embeddings are turned off on this server (model.embeddings = false).",
                code="embeddings_disabled",
            )
        return self._embedder.embed(inputs)  # not under _model_lock: see _work

    def submit(self, prompt: list[int], params: GenerationParams) -> JobHandle:
        self.check_ready()
        assert self._model is not None
        check_sampling(params, self._model.n_vocab, self._model.vocab)
        return self._queue.submit(prompt, params)

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
        model = LoadedModel(str(self._choice.path), self._settings, threads)
        self._model = model
        if self._settings.embeddings:
            self._embedder = Embedder(model, self._settings, threads)
        self._batch = llama_cpp.llama_batch_init(model.n_batch, 0, 1)
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
            while self._state != "failed":
                self._admit()
                if any(slot.job is not None for slot in self._slots):
                    self._step()
                elif not self._queue.wait():
                    break
        except BaseException:
            logger.exception("The engine's worker thread died")
            self._state = "failed"
            raise
        finally:  # never leave requests waiting on a dead worker
            self._queue.close()
            for slot in self._slots:
                if slot.job is not None:
                    self._end(slot, "cancelled")
            if self._model is not None:
                llama_cpp.llama_batch_free(self._batch)
                if self._embedder is not None:  # waits for an embedding in flight
                    self._embedder.close()
                with self._model_lock:  # state is closed or failed: no new tokenizing
                    self._model.close()

    def _admit(self) -> None:
        model = self._model
        assert model is not None
        for expired in self._queue.take_expired(time.monotonic()):  # out of time waiting
            expired.put(Finished("length", len(expired.prompt), 0))
        free = [slot for slot in self._slots if slot.job is None]
        while free and (job := self._queue.take_nowait()) is not None:
            try:
                sampler = new_sampler(
                    job.params.sampling, model.n_vocab, model.vocab, job.params.grammar
                )
            except ValueError:  # never leave a request without an answer, nor the loop
                logger.exception("Could not build the sampler for a request")
                self._queue.finish(job, JobRecord("failed", len(job.prompt), 0, 0, 0, None))
                job.put(InternalError("Generation failed."))
                continue
            place = pick_slot(free, job.prompt)
            slot, keep = place.slot, place.keep
            free.remove(slot)
            if place.copy_from is not None:
                model.copy(place.copy_from.seq, slot.seq)
                slot.cached = place.copy_from.cached[:keep]
            model.forget(slot.seq, keep)
            del slot.cached[keep:]
            slot.job, slot.reused, slot.last_used = job, keep, next(self._clock)
            slot.sampler = sampler
            slot.assembler = TextAssembler(job.params.stop)
            slot.limit = model.n_ctx_seq - len(job.prompt)
            if job.params.max_tokens is not None:
                slot.limit = min(slot.limit, job.params.max_tokens)

    def _add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        batch, i = self._batch, int(self._batch.n_tokens)
        batch.token[i], batch.pos[i], batch.logits[i] = token, pos, logits
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.n_tokens = i + 1
        return i

    def _step(self) -> None:
        """One decode call for every running slot (see the module docstring)."""
        model = self._model
        assert model is not None
        now = time.monotonic()
        for slot in self._slots:
            if slot.job is not None and slot.job.cancelled:
                self._end(slot, "cancelled")
            elif slot.job is not None and now > slot.job.deadline:
                self._finish(slot, "length")  # out of time: what it has, as a cap would
        running = [slot for slot in self._slots if slot.job is not None]
        decoding = [slot for slot in running if slot.next_token is not None]
        reading = sorted((s for s in running if s.prefilling), key=lambda s: s.last_used)
        self._batch.n_tokens = 0
        fed: list[tuple[Slot, list[int]]] = []
        # With a KV stream per slot llama.cpp splits a batch into passes of equally many
        # tokens per sequence over consecutive seq ids; slots are filled lowest id
        # first, so the generating ones are mostly consecutive and share one pass.
        for slot in decoding:
            assert slot.next_token is not None
            slot.logits_index = self._add(slot.next_token, len(slot.cached), slot.seq, True)
            fed.append((slot, [slot.next_token]))
        budget = model.n_batch - len(decoding)
        if decoding:
            budget = min(budget, self._budget.tokens)
        for slot in reading:
            if budget <= 0:
                break
            assert slot.job is not None
            start = len(slot.cached)
            chunk = slot.job.prompt[start : start + budget]
            last = start + len(chunk) == len(slot.job.prompt)
            for offset, token in enumerate(chunk):
                index = self._add(token, start + offset, slot.seq, False)
            if last:
                self._batch.logits[index] = True
            slot.logits_index = index if last else -1
            fed.append((slot, chunk))
            budget -= len(chunk)
        if not fed:
            return
        started = time.perf_counter()
        status = llama_cpp.llama_decode(model.ctx, self._batch)
        if status != 0:
            self._fail(fed, status)
            return
        self._budget.observe(
            time.perf_counter() - started, len(decoding), self._batch.n_tokens - len(decoding)
        )
        for slot, tokens in fed:
            slot.cached.extend(tokens)
            if slot.logits_index >= 0:
                token = int(
                    llama_cpp.llama_sampler_sample(slot.sampler, model.ctx, slot.logits_index)
                )
                self._emit(slot, token)
                slot.logits_index = -1

    def _emit(self, slot: Slot, token: int) -> None:
        """Turn one sampled token into text for the client, and end the job if due."""
        model, job, assembler = self._model, slot.job, slot.assembler
        assert model is not None
        assert job is not None
        assert assembler is not None
        if job.cancelled:
            self._end(slot, "cancelled")
            return
        if model.is_end_of_generation(token):
            self._finish(slot, "stop")
            return
        job.completion_tokens += 1
        top = job.params.logprobs
        if top is not None:
            slot.pending.append(
                token_logprob(model.ctx, slot.logits_index, token, model.n_vocab, top, model.piece)
            )
        if text := assembler.feed(model.piece(token)):
            job.put(TextDelta(text, tuple(slot.pending)))
            slot.pending.clear()
        if assembler.stopped:
            self._finish(slot, "stop")
        elif job.completion_tokens >= slot.limit:
            self._finish(slot, "length")
        else:
            slot.next_token = token

    def _finish(self, slot: Slot, reason: Literal["stop", "length"]) -> None:
        job, assembler = slot.job, slot.assembler
        assert job is not None
        assert assembler is not None
        tail = assembler.finish()
        if tail or (slot.pending and not assembler.stopped):
            job.put(TextDelta(tail, tuple(slot.pending)))
        finished = Finished(reason, len(job.prompt), job.completion_tokens, slot.reused)
        self._end(slot, reason, finished)

    def _end(self, slot: Slot, outcome: str, last: Finished | Exception | None = None) -> None:
        """Free the slot and record the outcome, then send the job's last event (so a
        client that saw the end also sees the record)."""
        job = slot.job
        assert job is not None
        after_cancel = None
        if outcome == "cancelled":
            after_cancel = job.completion_tokens - (job.tokens_at_cancel or 0)
        evaluated = max(0, min(len(slot.cached), len(job.prompt)) - slot.reused)
        record = JobRecord(
            outcome, len(job.prompt), slot.reused, evaluated, job.completion_tokens, after_cancel
        )
        slot.release()
        self._queue.finish(job, record)
        if last is not None:
            job.put(last)

    def _fail(self, fed: list[tuple[Slot, list[int]]], status: int) -> None:
        """A decode call failed: end the jobs in it with a 500 and drop their caches
        (what llama.cpp kept of the batch is unknown); the other slots go on."""
        model = self._model
        assert model is not None
        logger.error("llama_decode failed with status %d for %d slots", status, len(fed))
        for slot, _ in fed:
            if slot.job is not None:
                model.forget(slot.seq)
                slot.cached.clear()
                self._end(slot, "failed", InternalError("Generation failed."))
