"""The decode loop the engine's worker thread runs: the loop llama-server runs.

Each step it admits waiting requests into free slots (the slot whose cache shares the
longest prefix with the prompt, so a chat's next turn only evaluates what is new), puts
one token of every generating slot into a batch, fills the rest with prompt tokens of
slots still reading their prompt, makes one `llama_decode` call, and samples each
slot's next token with that request's own native sampler chain.

While others stream, a prompt is read in equal pieces sized from the measured cost of
steps (`budget`), so that it keeps most of its speed alone while the running streams
slow down evenly instead of freezing for seconds. Alone, a prompt is read `n_batch`
tokens at a time.

Text reaches the event loop via `Job.put` (`call_soon_threadsafe`), once per slot and
step, whatever the step yielded (several tokens where speculative guesses stood). A
cancelled request (client gone) or one past its deadline leaves its slot at the next
step.

Everything here runs on the worker thread only, so the slots, the batch, the prompt
budget and the clock need no lock; the event loop only reads `active()`.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Literal

import llama_cpp

from app.engine.batch import set_token
from app.engine.budget import PromptBudget
from app.engine.cpu_turns import CpuTurns
from app.engine.draft import DraftModel
from app.engine.jobs import JobQueue, JobRecord
from app.engine.logprobs import token_logprob
from app.engine.model import LoadedModel
from app.engine.sampling import RequestSampler
from app.engine.slots import Slot, pick_slot
from app.engine.speculation import DEFAULT_THRESHOLD, Drafter
from app.engine.text import TextAssembler
from app.engine.thinking import Thinking
from config.settings import SpeculativeSettings
from conversion.errors import InternalError
from conversion.generation import Finished, TextDelta

__all__ = ("DecodeLoop",)

logger = logging.getLogger("llm_service.engine")


class DecodeLoop:
    """Slots, batch and prompt budget over a loaded model; `run()`, then `close()`.

    Made once the model has loaded, so it never sees a half-built model; the engine
    keeps the model's lifetime and frees it after `close()`.
    """

    def __init__(
        self,
        model: LoadedModel,
        queue: JobQueue,
        n_batch: int,
        speculative: SpeculativeSettings | None = None,
        draft: DraftModel | None = None,
        turns: CpuTurns | None = None,
    ) -> None:
        """`n_batch` is the configured one, which caps the prompt budget (the model's
        own `n_batch` may be raised to hold a token of every slot). `draft`, the draft
        model of `speculative.mode = "draft"`, is the loop's to free. `turns` is shared
        by the loops of every loaded model."""
        self._turns = turns if turns is not None else CpuTurns()
        self._speculative = speculative or SpeculativeSettings(mode="off")  # resolved
        self._draft = draft
        self._model = model
        self._queue = queue
        self._slots = [Slot(seq) for seq in range(model.slots)]
        self._clock = itertools.count(1)
        self._budget = PromptBudget(n_batch)
        self._batch = llama_cpp.llama_batch_init(model.n_batch, 0, 1)

    def active(self) -> int:
        """Slots holding a job (read from the event loop: a snapshot is enough)."""
        return sum(slot.job is not None for slot in self._slots)

    def run(self) -> None:
        """Step while any slot runs, sleep while none does; return once the queue is
        closed and every slot is free."""
        while True:
            self._admit()
            if any(slot.job is not None for slot in self._slots):
                self._turns.run(self._step)  # on the CPU thread, in turns (cpu_turns)
            elif not self._queue.wait():
                return

    def close(self) -> None:
        """Record the jobs still in slots as cancelled and free the batch. Call it after
        `JobQueue.close()`, which has already told their clients."""
        for slot in self._slots:
            if slot.job is not None:
                self._end(slot, "cancelled")
        llama_cpp.llama_batch_free(self._batch)
        if self._draft is not None:
            self._draft.close()

    def _admit(self) -> None:
        model = self._model
        for expired in self._queue.take_expired(time.monotonic()):  # out of time waiting
            expired.put(Finished("length", len(expired.prompt), 0, queued_seconds=expired.waited))
        free = [slot for slot in self._slots if slot.job is None]
        while free and (job := self._queue.take_nowait()) is not None:
            params = job.params
            try:
                sampler = RequestSampler(
                    params.sampling, model.n_vocab, model.vocab, params.grammar
                )
            except ValueError:  # never leave a request without an answer, nor the loop
                logger.exception("Could not build the sampler for a request")
                self._queue.finish(job, JobRecord("failed", len(job.prompt), 0, 0, 0, None))
                job.put(InternalError("Generation failed."))
                continue
            busy = [slot for slot in self._slots if slot.job is not None]
            place = pick_slot(free, job.prompt, busy)
            slot, keep = place.slot, place.keep
            free.remove(slot)
            if place.copy_from is not None:
                model.copy(place.copy_from.seq, slot.seq)
                slot.cached = place.copy_from.cached[:keep]
            model.forget(slot.seq, keep)
            del slot.cached[keep:]
            slot.job, slot.reused, slot.last_used = job, keep, next(self._clock)
            slot.sampler = sampler
            slot.thinking = Thinking(params.thinking) if params.thinking is not None else None
            slot.assembler = TextAssembler(job.params.stop)
            slot.limit = model.n_ctx_seq - len(job.prompt)
            if job.params.max_tokens is not None:
                slot.limit = min(slot.limit, job.params.max_tokens)
            spec = self._speculative
            if spec.mode != "off":  # the n-gram index is kept in draft mode too
                slot.drafter = Drafter.for_prompt(job.prompt, spec.ngram, spec.max_draft)

    def _add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        i = int(self._batch.n_tokens)
        set_token(self._batch, i, token, pos, seq, logits)
        self._batch.n_tokens = i + 1
        return i

    def _step(self) -> None:
        """One decode call for every running slot (see the module docstring)."""
        model = self._model
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
        # Guesses wait while a prompt is being read: its tokens are sure work.
        spare = 0 if reading else model.n_batch - len(decoding)
        drafts = self._drafts(decoding, spare)
        for slot in decoding:
            assert slot.next_token is not None
            pos = len(slot.cached)
            slot.logits_index = self._add(slot.next_token, pos, slot.seq, True)
            for offset, token in enumerate(drafts[slot.seq], start=1):
                self._add(token, pos + offset, slot.seq, True)
        budget = model.n_batch - int(self._batch.n_tokens)
        if decoding:
            budget = min(budget, self._budget.tokens(len(decoding)))
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
        if not fed and not decoding:
            return
        started = time.perf_counter()
        status = llama_cpp.llama_decode(model.ctx, self._batch)
        if status != 0:
            self._fail([*(s for s, _ in fed), *decoding], status)
            return
        guessed = sum(len(d) for d in drafts.values())
        self._budget.observe(
            time.perf_counter() - started,
            len(decoding),
            self._batch.n_tokens - len(decoding) - guessed,
            guessed,
        )
        for slot in decoding:
            self._verify(slot, drafts[slot.seq])
        for slot, tokens in fed:
            slot.cached.extend(tokens)
            if slot.logits_index >= 0:  # the prompt's end: the reply's first token
                self._emit(slot, self._sample(slot))
                slot.logits_index = -1
        for slot in running:
            self._flush(slot)

    def _drafts(self, decoding: list[Slot], spare: int) -> dict[int, list[int]]:
        """Each generating slot's guesses for this step, within its reply cap, its
        context and what is left of the batch (`spare` tokens): its n-gram draft, or
        what the draft model proposes for as many tokens as the slot may guess."""
        drafts: dict[int, list[int]] = {slot.seq: [] for slot in decoding}
        wanted: dict[int, tuple[list[int], int, int]] = {}
        threshold = self._budget.guess_threshold(len(decoding), DEFAULT_THRESHOLD)
        for slot in decoding:
            drafter, job = slot.drafter, slot.job
            if drafter is None or job is None or slot.next_token is None:
                continue
            room = min(
                spare,
                slot.limit - job.completion_tokens - 1,  # the step's own token counts 1
                self._model.n_ctx_seq - len(slot.cached) - 2,
            )
            if room <= 0:
                continue
            if self._draft is None:
                drafts[slot.seq] = drafter.propose(room, threshold)
                spare -= len(drafts[slot.seq])
            elif count := drafter.budget(room, threshold):
                wanted[slot.seq] = (slot.cached, slot.next_token, count)
                spare -= count
        if self._draft is not None and wanted:
            try:
                drafts.update(self._draft.draft(wanted))
            except RuntimeError:  # the draft model failed: generate without guesses
                logger.exception("The draft model failed; its cache starts again")
                self._draft.reset()
            for slot in decoding:
                if slot.drafter is not None:
                    slot.drafter.proposed += len(drafts[slot.seq])
        return drafts

    def _verify(self, slot: Slot, guesses: list[int]) -> None:
        """Sample the slot's next token, and after each guess that equals what was
        sampled, the token after it, from the logits the step computed for each; keep
        the guesses that stood, drop the rest from the KV cache. The samples are what
        one step per token would have drawn (same chain, same order, same logits)."""
        assert slot.next_token is not None
        drafter, first = slot.drafter, slot.logits_index
        slot.cached.append(slot.next_token)
        accepted = 0
        for offset in range(len(guesses) + 1):
            slot.logits_index = first + offset
            token = self._sample(slot)
            guessed = offset < len(guesses) and guesses[offset] == token
            if guessed:
                slot.cached.append(token)  # its keys and values came with this step
                accepted += 1
            if drafter is not None:  # counted before `_emit` may end the job
                drafter.accepted += guessed
            self._emit(slot, token)  # may end the job (and free its samplers)
            if slot.job is None or not guessed:
                break
        slot.logits_index = -1
        if drafter is not None:
            drafter.adapt(len(guesses), accepted)
        if accepted < len(guesses):  # what follows is not this sequence's any more
            self._model.forget(slot.seq, len(slot.cached))

    def _sample(self, slot: Slot) -> int:
        """The slot's token at `logits_index`, from the request's sampler (without its
        grammar while the reply is, or may be, thinking: the grammar waits for the
        answer)."""
        assert slot.sampler is not None
        return slot.sampler.sample(
            self._model.ctx, slot.logits_index, constrained=slot.thinking is None
        )

    def _emit(self, slot: Slot, token: int) -> None:
        """Turn one sampled token into text for the client, and end the job if due."""
        model, job, assembler = self._model, slot.job, slot.assembler
        assert job is not None
        assert assembler is not None
        if slot.drafter is not None:  # every sampled token, before the job may end
            slot.drafter.index.extend((token,))
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
        piece = model.piece(token)
        if slot.thinking is not None:
            piece = self._think(slot, piece)
        if piece and (text := assembler.feed(piece)):
            self._send(slot, text)
        if assembler.stopped:
            self._finish(slot, "stop")
        elif job.completion_tokens >= slot.limit:
            self._finish(slot, "length")
        else:
            slot.next_token = token

    def _send(self, slot: Slot, text: str, thinking: bool = False) -> None:
        """Hold `text`, with the log-probabilities of the tokens behind it, for the
        client until the step ends (`_flush`), joined to the delta before it if both are
        answer or both thinking: the tokens of guesses that stood reach the client as
        one event and one stream chunk, not one each, which on a 2-vCPU machine spread
        them out behind the decoding threads."""
        delta = TextDelta(text, tuple(slot.pending), thinking)
        slot.pending.clear()
        box = slot.outbox
        if box and box[-1].thinking == delta.thinking:
            last = box[-1]
            text, logprobs = last.text + delta.text, last.logprobs + delta.logprobs
            box[-1] = TextDelta(text, logprobs, last.thinking)
        else:
            box.append(delta)

    def _flush(self, slot: Slot) -> None:
        if slot.job is not None:
            for delta in slot.outbox:
                slot.job.put(delta)
        slot.outbox.clear()

    def _think(self, slot: Slot, piece: bytes) -> bytes:
        """A token of a reply that is (or may be) thinking: send the thinking text;
        return the bytes that belong to the answer (none until the thinking ends)."""
        thinking, job = slot.thinking, slot.job
        assert thinking is not None
        assert job is not None
        text, answer = thinking.feed(piece)
        if text:
            self._send(slot, text, thinking=True)
        if answer is None:
            return b""
        slot.reasoning_tokens, slot.thinking = thinking.tokens, None  # the answer begins
        return answer

    def _finish(self, slot: Slot, reason: Literal["stop", "length"]) -> None:
        job, assembler = slot.job, slot.assembler
        assert job is not None
        assert assembler is not None
        thinking = slot.thinking
        if thinking is not None and thinking.phase == "undecided":
            # it never opened: what it held back (a prefix of the start marker) is answer
            if text := assembler.feed(thinking.finish().encode()):
                self._send(slot, text)
        elif thinking is not None:  # cut off while thinking: what was thought is sent
            if tail := thinking.finish():
                self._send(slot, tail, thinking=True)
            slot.reasoning_tokens = thinking.tokens
        # Held log-probabilities go with the held text; with no text they belong to
        # the start of a character the cap cut off (or to a stop string): dropped too.
        if tail := assembler.finish():
            self._send(slot, tail)
        drafter = slot.drafter
        finished = Finished(
            reason,
            len(job.prompt),
            job.completion_tokens,
            slot.reused,
            slot.reasoning_tokens,
            assembler.matched,
            drafter.proposed if drafter is not None else 0,
            drafter.accepted if drafter is not None else 0,
            job.waited,
        )
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
        self._flush(slot)  # the text before the end
        slot.release()
        self._queue.finish(job, record)
        if last is not None:
            job.put(last)

    def _fail(self, slots: list[Slot], status: int) -> None:
        """A decode call failed: end the jobs in it with a 500 and drop their caches
        (what llama.cpp kept of the batch is unknown); the other slots go on."""
        logger.error("llama_decode failed with status %d for %d slots", status, len(slots))
        for slot in slots:
            if slot.job is not None:
                self._model.forget(slot.seq)
                slot.cached.clear()
                self._end(slot, "failed", InternalError("Generation failed."))
