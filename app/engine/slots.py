"""Slots: one per sequence the engine can generate at once, each with its own KV cache.

A slot outlives its requests: when one ends, the tokens it leaves in the slot's cache
(prompt and reply) stay there, so the next turn of the same chat, which resends that
history, only has to evaluate what is new. `pick_slot` is the policy and is pure, so
it is tested without a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from app.engine.jobs import Job
from app.engine.sampling import RequestSampler
from app.engine.speculation import Drafter
from app.engine.text import TextAssembler
from app.engine.thinking import Thinking
from conversion.generation import TextDelta, TokenLogprob

__all__ = (
    "CONTINUE_SLACK",
    "COPY_WORTH",
    "Placement",
    "Slot",
    "common_prefix",
    "pick_slot",
)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the shared start of two token lists."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the common case (a resent history) at C speed
        return n
    low, high = 0, n  # invariant: a[:low] == b[:low] and a[:high] != b[:high]
    while high - low > 1:
        mid = (low + high) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid
    return low


@dataclass(eq=False)
class Slot:
    seq: int
    """llama.cpp sequence id, and so the KV stream this slot owns."""
    cached: list[int] = field(default_factory=list)
    """Tokens whose keys and values are in this slot's KV cache, in position order."""
    last_used: int = 0
    job: Job | None = None
    sampler: RequestSampler | None = None
    assembler: TextAssembler | None = None
    reused: int = 0
    """Prompt tokens the current job found already cached."""
    limit: int = 0
    """Most completion tokens the current job may generate."""
    next_token: int | None = None
    """Sampled but not yet fed back: its KV is computed by the next decode step."""
    logits_index: int = -1
    """Where this slot's logits sit in the current batch; -1 when it has none."""
    pending: list[TokenLogprob] = field(default_factory=list)
    """Log-probabilities of tokens whose text the assembler still holds back."""
    thinking: Thinking | None = None
    """While the job's reply is (or may be) thinking: where it stands in it."""
    reasoning_tokens: int = 0
    """Tokens of the current job's thinking, once it has ended."""
    drafter: Drafter | None = None
    """Guesses of the next tokens, when speculative decoding is on."""
    outbox: list[TextDelta] = field(default_factory=list)
    """Text of the current step not yet handed to the client (see `DecodeLoop._send`)."""

    @property
    def prefilling(self) -> bool:
        return self.job is not None and len(self.cached) < len(self.job.prompt)

    def release(self) -> None:
        """End the job; the cache stays for the next request to reuse."""
        if self.sampler is not None:
            self.sampler.close()
        self.job, self.sampler, self.assembler, self.next_token = None, None, None, None
        self.thinking, self.reasoning_tokens = None, 0
        self.logits_index, self.drafter = -1, None
        self.pending.clear()
        self.outbox.clear()


COPY_WORTH = 16
"""Shared tokens from which copying another slot's cache beats evaluating them again.
llama.cpp copies whole KV streams (`n_ctx` tokens of keys and values, ~94 MB for the
4,096-token SmolLM2 default, ~2 GB for a 7B model), which still takes less time than a
CPU needs to evaluate 16 prompt tokens of the same model."""
CONTINUE_SLACK = 64
"""Cached tokens a prompt may leave unused and still count as continuing the slot (a
reply cut by a stop string holds tokens the client never saw, so never resends)."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a request goes, how many cached tokens it keeps, and whose cache they are."""

    slot: Slot
    keep: int
    copy_from: Slot | None = None
    """Another free slot whose cache is copied into `slot` first (then cut to `keep`)."""


def pick_slot(free: Sequence[Slot], prompt: Sequence[int], busy: Sequence[Slot] = ()) -> Placement:
    """Place `prompt` in one of the free slots.

    A slot whose cache the prompt continues (all of it but `CONTINUE_SLACK` tokens, e.g.
    a chat resending its history) wins, the longest match first. Otherwise the prompt
    goes to an empty slot, else to the least recently used one, so that a new
    conversation sharing only a system prompt does not evict another's history; if
    another slot, free or `busy` generating, shares a longer start (the system prompt
    and tools of a batch job's requests, a document), that part of its cache is copied
    over rather than evaluated again: what a busy slot has cached is final, and the
    copy is made between decode steps.

    At least the last prompt token is always evaluated again: its logits give the first
    reply token.
    """

    def keep(slot: Slot) -> int:
        return max(0, min(common_prefix(slot.cached, prompt), len(prompt) - 1))

    matches = [(keep(slot), slot) for slot in free if slot.cached]
    continued = [
        (k, slot) for k, slot in matches if k > 0 and len(slot.cached) - k <= CONTINUE_SLACK
    ]
    if continued:
        best_keep, best = max(continued, key=lambda pair: (pair[0], -pair[1].last_used))
        return Placement(best, best_keep)
    empty = [slot for slot in free if not slot.cached]
    target = empty[0] if empty else min(free, key=lambda slot: slot.last_used)
    own = keep(target) if target.cached else 0
    donors = [(k, slot) for k, slot in matches if slot is not target]
    donors += [(keep(slot), slot) for slot in busy if slot.cached]
    if donors:
        donor_keep, donor = max(donors, key=lambda pair: pair[0])
        if donor_keep >= own + COPY_WORTH:
            return Placement(target, donor_keep, donor)
    return Placement(target, own)
