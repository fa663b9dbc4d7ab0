"""How many prompt tokens ride along in a decode step while other requests stream."""

from __future__ import annotations

__all__ = ("PROMPT_STEP_COST", "PromptBudget")

PROMPT_STEP_COST = 2.5
"""A decode step that also reads prompt tokens may take this many plain steps: the
streams' worst inter-token gap stays under 3x their usual one, and a long prompt still
advances by several tokens per step."""


class PromptBudget:
    """How many prompt tokens a step that also decodes for other slots may carry.

    A feedback loop rather than a cost model: reading prompt tokens beside decoding
    costs a fixed graph pass plus a per-token part, both machine-dependent. The budget
    grows while such steps stay under `PROMPT_STEP_COST` plain decode steps and shrinks
    when they go over.
    """

    def __init__(self, n_batch: int) -> None:
        self.n_batch = n_batch
        self.decode_steps: dict[int, float] = {}
        """Running mean of a plain decode step, by the number of generating slots."""
        self.tokens = min(16, n_batch)

    def observe(self, seconds: float, decode_tokens: int, prompt_tokens: int) -> None:
        known = self.decode_steps.get(decode_tokens, 0.0)
        if prompt_tokens == 0:
            self.decode_steps[decode_tokens] = 0.8 * known + 0.2 * seconds if known else seconds
        elif decode_tokens and known and prompt_tokens >= self.tokens:
            if seconds > PROMPT_STEP_COST * known:
                self.tokens = max(2, self.tokens * 4 // 5)
            else:
                self.tokens = min(self.n_batch, self.tokens * 5 // 4 + 1)
