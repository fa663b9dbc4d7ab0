"""How many prompt tokens ride along in a decode step while other requests stream.

A long prompt admitted while others stream must neither wait behind them (its time to
first token) nor freeze them (their inter-token latency). The prompt is read in equal
pieces, every step carrying a token for each stream and `tokens` of the prompt, so the
streams slow down evenly for as long as the prompt takes instead of stopping, and the
prompt keeps `PROMPT_SHARE` of the speed it has alone: a prompt's time to first token
stays within 1.5x of its time alone.

The piece size comes from the measured cost of steps: a step with `k` prompt tokens
beside the streams costs about `t0 + cm * k` (`t0`: a plain decode step for them;
`cm`: what a prompt token adds to it), and a prompt read alone costs `ca` per token
(less than `cm` on a CPU: a big batch uses the cores better). The prompt's speed in
shared steps, `k / (t0 + cm * k)`, reaches the share `s` of `1 / ca` from
`k = s * t0 / (ca - s * cm)` on. Measured on a 2-vCPU EPYC with SmolLM2: `t0` ~21 ms for
three streams, `cm` ~3.7 ms in small pieces, `ca` ~2.7 ms in 512-token pieces, so
pieces of ~64 tokens and steps of ~0.25 s while such a prompt is read. All three are
running means of real steps, so the size follows the model, the machine and the depth.
"""

from __future__ import annotations

import math

__all__ = ("PROMPT_SHARE", "PromptBudget")

PROMPT_SHARE = 2 / 3
"""The share of its speed alone a prompt keeps while others stream."""
_FIRST_GUESS = 32
"""Tokens per piece before any step was measured."""
_MIN_SAMPLE = 8
"""Smaller pieces (a prompt's last) are dominated by fixed costs: not used to estimate."""


def _mean(known: float | None, value: float) -> float:
    return value if known is None else 0.8 * known + 0.2 * value


class PromptBudget:
    """How many prompt tokens a step that also decodes for other slots may carry."""

    def __init__(self, n_batch: int) -> None:
        self.n_batch = n_batch
        self.decode_steps: dict[int, float] = {}
        """Running mean of a plain decode step, by the number of generating slots."""
        self.shared_per_token: float | None = None
        """What a prompt token adds to a step that also decodes (`cm`)."""
        self.alone_per_token: float | None = None
        """A prompt token's cost when prompts are read alone (`ca`)."""

    def tokens(self, decoding: int) -> int:
        """Prompt tokens for a step that also decodes for `decoding` slots."""
        t0, shared = self.decode_steps.get(decoding), self.shared_per_token
        if t0 is None or shared is None:
            return min(_FIRST_GUESS, self.n_batch)
        alone = self.alone_per_token if self.alone_per_token is not None else shared
        room = alone - PROMPT_SHARE * shared
        if room <= 0:  # shared steps never reach the share: read as fast as possible
            return self.n_batch
        return max(1, min(self.n_batch, math.ceil(PROMPT_SHARE * t0 / room - 1e-9)))

    def observe(self, seconds: float, decode_tokens: int, prompt_tokens: int) -> None:
        """One step's time, and what it carried."""
        if prompt_tokens == 0:
            self.decode_steps[decode_tokens] = _mean(self.decode_steps.get(decode_tokens), seconds)
        elif prompt_tokens < _MIN_SAMPLE:
            return  # a prompt's last, tiny piece: mostly fixed costs
        elif decode_tokens == 0:
            self.alone_per_token = _mean(self.alone_per_token, seconds / prompt_tokens)
        elif (base := self.decode_steps.get(decode_tokens)) is not None:
            added = max(seconds - base, 0.0) / prompt_tokens
            self.shared_per_token = _mean(self.shared_per_token, added)
