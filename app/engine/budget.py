"""How many prompt tokens ride along in a decode step while other requests stream.

A long prompt admitted while others stream must neither freeze them (their inter-token
latency) nor wait behind them (its time to first token). The prompt is read in equal
pieces, every step carrying a token for each stream and `tokens` of the prompt, so the
streams slow down evenly for as long as the prompt takes instead of stopping.

The piece size comes from the measured cost of steps: a step with `k` prompt tokens
beside the streams costs about `t0 + c * k` (`t0`: a plain decode step for them; `c`:
what one prompt token adds), so `k = (STEP_LIMIT - 1) * t0 / c` is the biggest piece
that keeps every step within `STEP_LIMIT` plain steps, the streams' worst gap within
that factor of their usual one. Both are running means of real steps, so the size
follows the model, the machine and the context's depth.

What the prompt gets from it depends on the machine. Where a step's cost grows slower
than linearly in `k` (a GPU; CPUs where small matrix products are memory-bound), pieces
are big and the prompt keeps most of its speed alone. On the 2-vCPU EPYC measured here
with SmolLM2 the cost is linear: `t0` ~21 ms for three streams, `c` ~3.7 ms in such
pieces against ~2.9 ms per token alone in 512-token batches, so pieces are ~11 tokens
and a 1,017-token prompt takes about 2.3x its time alone (README, Performance).
"""

from __future__ import annotations

import math

__all__ = ("STEP_LIMIT", "PromptBudget")

STEP_LIMIT = 3.0
"""A step that reads prompt tokens beside decoding takes at most this many plain steps."""
_FIRST_GUESS = 16
"""Tokens per piece before any step was measured."""
_MIN_SAMPLE = 8
"""Smaller pieces (a prompt's last) are dominated by fixed costs: not used to estimate."""


class PromptBudget:
    """How many prompt tokens a step that also decodes for other slots may carry."""

    def __init__(self, n_batch: int) -> None:
        self.n_batch = n_batch
        self.decode_steps: dict[int, float] = {}
        """Running mean of a plain decode step, by the number of generating slots."""
        self.per_token: float | None = None
        """Running mean of what a prompt token adds to a step that also decodes."""
        self.per_guess: float | None = None
        """Running mean of what a speculative guess adds to a step (prompt-free)."""

    def tokens(self, decoding: int) -> int:
        """Prompt tokens for a step that also decodes for `decoding` slots."""
        t0 = self.decode_steps.get(decoding)
        if self.per_token is None or t0 is None:
            return min(_FIRST_GUESS, self.n_batch)
        wanted = (STEP_LIMIT - 1) * t0 / max(self.per_token, 1e-6)
        return max(1, min(self.n_batch, math.floor(wanted + 1e-9)))

    def observe(
        self, seconds: float, decode_tokens: int, prompt_tokens: int, guesses: int = 0
    ) -> None:
        """One step's time, and what it carried (`guesses`: speculative guesses beside
        the decoding slots' tokens, measured apart: each needs its logits)."""
        if guesses:
            base = self.decode_steps.get(decode_tokens)
            if prompt_tokens == 0 and base is not None:
                self.per_guess = _running_mean(self.per_guess, max(seconds - base, 0.0) / guesses)
            return
        if prompt_tokens == 0:
            known = self.decode_steps.get(decode_tokens)
            self.decode_steps[decode_tokens] = _running_mean(known, seconds)
            return
        base = self.decode_steps.get(decode_tokens)
        if not decode_tokens or base is None or prompt_tokens < _MIN_SAMPLE:
            return  # alone, decode cost unknown yet, or a tiny piece of mostly fixed costs
        self.per_token = _running_mean(self.per_token, max(seconds - base, 0.0) / prompt_tokens)

    def guess_threshold(self, decoding: int, default: float) -> float:
        """The chance of standing a speculative guess needs to be worth its cost in a
        step for `decoding` slots: what a guess adds (`per_guess`, else a prompt token's
        `per_token`) over what a plain step yields per token (`t0 / decoding`).
        `default` until both were measured; at most 1 (a guess that costs more than a
        step's token never pays)."""
        t0 = self.decode_steps.get(decoding)
        per_guess = self.per_guess if self.per_guess is not None else self.per_token
        if per_guess is None or t0 is None or t0 <= 0:
            return default
        return min(1.0, per_guess * decoding / t0)


def _running_mean(known: float | None, sample: float) -> float:
    """The running means here: a new sample weighs 0.2, so a few steps follow a change
    (a longer context, a busier machine) while one odd step does not."""
    return sample if known is None else 0.8 * known + 0.2 * sample
