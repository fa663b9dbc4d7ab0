"""Self-speculation from n-grams: a slot guesses its next tokens from its own sequence.

A decode step reads every weight once, whatever it evaluates, so where a step is bound
by reading the weights (a large model, a GPU) a few guessed tokens checked in the same
step cost little. Where it is bound by arithmetic they cost more: on the 2-vCPU EPYC
here, SmolLM2-135M decoded one token at a depth of 700 in 11 ms, 2 in 21 ms, 5 in 45 ms
and 17 in 111 ms (`scripts/bench_step_cost.py`; README, Performance). Replies that
repeat their input -- a document handed back with a change, code refactored, an answer
quoting its source, JSON echoing keys -- are full of tokens that a lookup of the last
few tokens in the prompt and the reply so far predicts; there only long drafts that
stand pay.

`NgramIndex` remembers where each n-gram of a slot's tokens last ended; `Drafter`
proposes the tokens that followed the most recent earlier occurrence of the sequence's
last n tokens, and decides how many from what a guess costs on this machine and how
often this slot's guesses have stood: a slot whose guesses keep failing stops guessing
(and tries again after a while), so free chat pays little.

The worker (`DecodeLoop`) checks the guesses in the step that evaluates the slot's
next token, by sampling each position with the request's own sampler chain, exactly as
it would have without guesses: a guess stands while it equals the sampled token. So a
reply is the reply without speculation, token for token (with the same seed, the same
random draws), grammars included (a guess the grammar forbids is never sampled), and
the guesses only decide how many tokens one step yields -- as far as llama.cpp computes
a position's logits checked beside guesses as it does alone. With the reference paths
`model.batch_invariant` keeps ggml's CPU backend on (`native`), SmolLM2 and Gemma-3-270M
do at any length; as a model or a llama.cpp built another way may not,
`speculative.mode = auto` asks the model first (`shape_probe`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ("Drafter", "NgramIndex")

MIN_DRAFT = 2
"""Fewer guesses than this are not worth a step's extra pass (measured: on a CPU the
first guessed token costs almost a plain step, the later ones about half of one)."""
FIRST_DRAFT = 8
"""The size of a slot's first draft; each draft that stands whole doubles the next."""
PRIOR = (8.0, 10.0)
"""Pseudo-counts (guesses that stood, guesses made) a request starts from: 0.8."""
DECAY = 0.8
"""Weight of the past in those counts at each draft: the recent drafts decide."""
RECOVER = 0.97
"""Each step a slot does not guess, the gap between its guesses made and guesses that
stood shrinks by this factor, so a slot that stopped guessing tries again after a
while (sooner after fewer failures)."""
DEFAULT_THRESHOLD = 0.5
"""The share of guesses that must stand to be worth their cost before steps were
measured."""
MAX_THRESHOLD = 0.75
"""Past this break-even no slot guesses: a guess then costs over 3/4 of what a plain
step spends per token, so even drafts that stand whole save under a quarter of the
steps -- less than the step times here vary, and less than the split passes llama.cpp
adds for unequal drafts. Measured with four clients on the edit bench before this cap:
guessing ran at 0.92x no guessing (108.1 against 117.8 tok/s)."""
RETRY_AFTER = 256
"""Capped steps after which a slot makes one small draft anyway, to measure again what
a guess costs (a draft of `FIRST_DRAFT` tokens every 256 steps: under 2% of the time)."""


class NgramIndex:
    """Where each n-gram of a growing token sequence last ended, for lookups of the
    sequence's own end. The n-gram that ends the sequence is held back until the next
    token comes, so a lookup finds an earlier occurrence, never itself."""

    def __init__(self, n: int, tokens: Iterable[int] = ()) -> None:
        self.n = n
        self.tokens: list[int] = []
        self._ends: dict[tuple[int, ...], int] = {}
        self.extend(tokens)

    def extend(self, tokens: Iterable[int]) -> None:
        seq, n, ends = self.tokens, self.n, self._ends
        for token in tokens:
            if len(seq) >= n:
                ends[tuple(seq[-n:])] = len(seq) - 1
            seq.append(token)

    def follow(self, count: int) -> list[int]:
        """`count` tokens that followed the last earlier occurrence of the sequence's
        final n-gram (none if it has not occurred before). Where that occurrence is
        so recent that what followed it runs into the sequence's end, the sequence is
        repeating a stretch (a loop, a table's rows): the draft goes on repeating it,
        as a lookup of each drafted token's own n-gram would."""
        seq = self.tokens
        if count <= 0 or len(seq) < self.n:
            return []
        end = self._ends.get(tuple(seq[-self.n :]))
        if end is None:
            return []
        draft = seq[end + 1 : end + 1 + count]
        period = len(seq) - end - 1
        while len(draft) < count:
            draft.append(draft[len(draft) - period])
        return draft


@dataclass
class Drafter:
    """One slot's guesses for the current request, and how well they have done.

    Whether to guess comes from two numbers. `threshold`, from the engine's measurements:
    what one guessed token costs relative to what a plain step yields per token (a step
    for `d` slots costing `t0` yields `d` tokens; a guessed token adds `c`; so guessing
    pays while more than `c * d / t0` of the guesses stand). And `share`, this slot's
    recent record of guesses that stood. How many: text that repeats its input repeats
    it in runs, to the edit or the end of the quote, so a draft that stood whole doubles
    the next (up to `max_draft`: llama.cpp's checks cost less per token the more tokens
    a step carries), and one cut short shrinks the next to what stood.
    """

    index: NgramIndex
    max_draft: int
    size: int = FIRST_DRAFT
    """How many tokens the next draft may have."""
    stood: float = PRIOR[0]
    """Guesses that stood, recent ones weighing most."""
    made: float = PRIOR[1]
    """Guesses made, likewise."""
    proposed: int = 0
    """Guessed tokens so far (counted as proposed)."""
    accepted: int = 0
    """Of those, the ones that stood (the worker counts them as it checks)."""
    capped: int = 0
    """Steps in a row on which guessing cost more than `MAX_THRESHOLD` allows."""

    @classmethod
    def for_prompt(cls, prompt: list[int], n: int, max_draft: int) -> Drafter:
        return cls(NgramIndex(n, prompt), max_draft, size=min(FIRST_DRAFT, max_draft))

    @property
    def share(self) -> float:
        """The recent share of this slot's guesses that stood."""
        return self.stood / self.made

    def budget(self, room: int, threshold: float = DEFAULT_THRESHOLD) -> int:
        """How many tokens to guess after the next one (`room`: the most it may be)."""
        size = min(self.size, room)
        if threshold > MAX_THRESHOLD:
            # A guess's cost is only measured on steps with guesses: every RETRY_AFTER
            # capped steps one small draft measures it again, so a cost measured high
            # once (a busy machine) does not stop guessing for good.
            self.capped += 1
            if self.capped < RETRY_AFTER:
                return 0
            threshold, size = MAX_THRESHOLD, min(size, FIRST_DRAFT)
        self.capped = 0
        if self.share <= threshold or size < MIN_DRAFT:
            self.made = self.stood + (self.made - self.stood) * RECOVER
            return 0
        return size

    def propose(self, room: int, threshold: float = DEFAULT_THRESHOLD) -> list[int]:
        """An n-gram draft to check after the next token, counted as proposed."""
        draft = self.index.follow(self.budget(room, threshold))
        self.proposed += len(draft)
        return draft

    def adapt(self, drafted: int, accepted: int) -> None:
        """Record how a draft did: `accepted` of `drafted` stood."""
        if drafted == 0:
            return
        self.stood = DECAY * self.stood + accepted
        self.made = DECAY * self.made + drafted
        if accepted == drafted:
            self.size = min(self.max_draft, 2 * self.size)
        else:
            self.size = max(MIN_DRAFT, accepted + 1)
