"""A small draft model that guesses each slot's next tokens (`speculative.mode = draft`).

The n-gram guesses of `app.engine.speculation` only help where the reply repeats its
input. A draft model -- a much smaller GGUF of the same vocabulary, e.g. a 0.5B model
for a 7B one -- guesses free text too. It keeps its own llama.cpp context with a KV
stream per slot and follows each slot's sequence: before a step, every slot that wants
guesses has the draft read whatever of its sequence the draft has not seen (once per
request, a prompt's worth; then one or two tokens a step), and then drafts greedily,
one token per draft pass for all such slots together. The target checks the guesses in
its own step exactly as it checks n-gram guesses (`DecodeLoop._verify`), so the reply
is the same with or without the draft; the draft only decides how many tokens a step
yields. It pays when a draft pass costs a small fraction of a target step, which is
why the vocabularies must match exactly: a guess is a token id of the target's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import llama_cpp
from llama_cpp._internals import LlamaModel

from app.engine.batch import logits_row, set_token
from app.engine.slots import common_prefix

__all__ = ("DraftModel", "DraftModelError")

logger = logging.getLogger("llm_service.engine")


class DraftModelError(ValueError):
    """The draft model cannot serve this target (unreadable, or another vocabulary)."""


def _token_texts(model: LlamaModel) -> list[bytes]:
    vocab = model.vocab
    return [llama_cpp.llama_vocab_get_text(vocab, token) or b"" for token in range(model.n_vocab())]


def check_same_vocabulary(target: LlamaModel, draft: LlamaModel, draft_path: str) -> None:
    """Raise `DraftModelError` unless both models spell every token id the same."""
    where = f"model.draft_path = {draft_path}"
    if target.n_vocab() != draft.n_vocab():
        raise DraftModelError(
            f"The draft model ({where}) has a vocabulary of {draft.n_vocab()} tokens and "
            f"the served model one of {target.n_vocab()}: a draft model must share the "
            "served model's tokenizer (e.g. a smaller model of the same family)."
        )
    for token, (ours, theirs) in enumerate(
        zip(_token_texts(target), _token_texts(draft), strict=True)
    ):
        if ours != theirs:
            raise DraftModelError(
                f"The draft model ({where}) spells token {token} as {theirs!r} and the "
                f"served model as {ours!r}: a draft model must share the served model's "
                "tokenizer (e.g. a smaller model of the same family)."
            )


class DraftModel:
    """The draft's weights and context; worker thread only, freed by `close()`."""

    def __init__(
        self,
        path: str,
        target: LlamaModel,
        *,
        slots: int,
        n_ctx_seq: int,
        threads: int,
        n_batch: int,
        n_gpu_layers: int,
        flash_attn_type: int,
    ) -> None:
        if not Path(path).is_file():
            raise DraftModelError(f"model.draft_path = {path} is not a file.")
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0x7FFFFFFF if n_gpu_layers == -1 else n_gpu_layers
        params.use_extra_bufts = False  # one kernel for every batch shape, as the target's
        self.model = LlamaModel(path_model=path, params=params, verbose=False)
        self.ctx = None
        try:
            check_same_vocabulary(target, self.model, path)
            context = llama_cpp.llama_context_default_params()
            context.n_ctx = n_ctx_seq * slots
            context.n_batch = context.n_ubatch = n_batch
            context.n_seq_max = slots
            context.kv_unified = False
            context.n_threads = context.n_threads_batch = threads
            context.flash_attn_type = flash_attn_type  # the target's, for the same reasons
            context.no_perf = True
            self.ctx = llama_cpp.llama_init_from_model(self.model.model, context)
            if self.ctx is None:
                raise DraftModelError(
                    f"llama.cpp could not create the draft model's context ({n_ctx_seq} "
                    f"tokens x {slots} slots) for model.draft_path = {path}."
                )
        except BaseException:
            self.close()
            raise
        self.n_vocab = self.model.n_vocab()
        self.n_batch = n_batch
        self._memory = llama_cpp.llama_get_memory(self.ctx)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._seen: list[list[int]] = [[] for _ in range(slots)]
        """The tokens each slot's draft KV stream holds."""

    def draft(self, wanted: dict[int, tuple[list[int], int, int]]) -> dict[int, list[int]]:
        """Greedy guesses per slot: `wanted[seq] = (cached, next_token, count)` -- the
        slot's evaluated tokens, the token its step evaluates next, and how many guesses
        to make after it."""
        sequences = {seq: [*cached, token] for seq, (cached, token, _) in wanted.items()}
        rows = self._catch_up(sequences)
        drafts: dict[int, list[int]] = {seq: [] for seq in wanted}
        while rows:
            following: dict[int, int] = {}
            for seq, row in rows.items():
                token = self._greedy(row)
                drafts[seq].append(token)
                ended = llama_cpp.llama_vocab_is_eog(self.model.vocab, token)
                if len(drafts[seq]) < wanted[seq][2] and not ended:  # nothing after an end
                    following[seq] = token
            if not following:
                break
            rows = self._decode(
                [(seq, token, len(self._seen[seq]), True) for seq, token in following.items()]
            )
            for seq, token in following.items():
                self._seen[seq].append(token)
        return drafts

    def _catch_up(self, sequences: dict[int, list[int]]) -> dict[int, int]:
        """Have the draft read each sequence; the logits rows of their last tokens.
        The last tokens go in one final pass together: a later pass overwrites the
        logits of an earlier one."""
        pending: dict[int, list[int]] = {}
        for seq, tokens in sequences.items():
            seen = self._seen[seq]
            keep = min(common_prefix(seen, tokens), len(tokens) - 1)
            if keep < len(seen):
                llama_cpp.llama_memory_seq_rm(self._memory, seq, keep, -1)
                del seen[keep:]
            if keep < len(tokens) - 1:
                pending[seq] = tokens[keep:-1]
        while pending:
            entries: list[tuple[int, int, int, bool]] = []
            for seq in list(pending):
                room = self.n_batch - len(entries)
                if room == 0:
                    break
                chunk, pending[seq] = pending[seq][:room], pending[seq][room:]
                start = len(self._seen[seq])
                entries += [(seq, token, start + i, False) for i, token in enumerate(chunk)]
                self._seen[seq].extend(chunk)
                if not pending[seq]:
                    del pending[seq]
            self._decode(entries)
        rows = self._decode(
            [(seq, tokens[-1], len(self._seen[seq]), True) for seq, tokens in sequences.items()]
        )
        for seq, tokens in sequences.items():
            self._seen[seq].append(tokens[-1])
        return rows

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> dict[int, int]:
        """One draft pass over `(seq, token, pos, logits)`; the rows that have logits."""
        batch, rows = self._batch, {}
        batch.n_tokens = len(entries)
        for i, (seq, token, pos, logits) in enumerate(entries):
            set_token(batch, i, token, pos, seq, logits)
            if logits:
                rows[seq] = i
        status = llama_cpp.llama_decode(self.ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode of the draft model returned {status}")
        return rows

    def reset(self) -> None:
        """Forget every sequence (after a failed pass, what the cache holds is unknown)."""
        for seq, seen in enumerate(self._seen):
            llama_cpp.llama_memory_seq_rm(self._memory, seq, 0, -1)
            seen.clear()

    def _greedy(self, row: int) -> int:
        assert self.ctx is not None  # drafting only runs between load and close
        return int(logits_row(self.ctx, row, self.n_vocab).argmax())

    def close(self) -> None:
        if getattr(self, "_batch", None) is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self.ctx is not None:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        self.model.close()  # type: ignore[no-untyped-call]
