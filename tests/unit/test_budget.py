"""The prompt budget beside decoding comes from measured step costs (no model needed)."""

from __future__ import annotations

import pytest

from app.engine.budget import STEP_LIMIT, PromptBudget

T0, PER_TOKEN = 0.021, 0.0037
"""Three streams' decode step; what a prompt token adds to it (measured here)."""


def measured() -> PromptBudget:
    budget = PromptBudget(n_batch=512)
    budget.observe(T0, decode_tokens=3, prompt_tokens=0)
    budget.observe(T0 + PER_TOKEN * 16, decode_tokens=3, prompt_tokens=16)
    return budget


def test_pieces_are_the_biggest_that_keep_steps_within_the_limit() -> None:
    k = measured().tokens(3)
    assert T0 + PER_TOKEN * k <= STEP_LIMIT * T0  # the streams' gap
    assert T0 + PER_TOKEN * (k + 1) > STEP_LIMIT * T0


def test_a_dearer_streams_step_allows_bigger_pieces() -> None:
    budget = measured()
    budget.observe(0.010, decode_tokens=1, prompt_tokens=0)
    assert budget.tokens(1) < budget.tokens(3)


def test_before_measuring_a_first_guess() -> None:
    budget = PromptBudget(n_batch=512)
    assert budget.tokens(2) == 16
    budget.observe(0.020, decode_tokens=2, prompt_tokens=0)
    assert budget.tokens(2) == 16  # the per-token cost is still unknown


def test_alone_steps_tiny_pieces_and_unknown_decode_costs_say_nothing() -> None:
    budget = PromptBudget(n_batch=512)
    budget.observe(1.0, decode_tokens=2, prompt_tokens=64)  # the decode part is unknown
    budget.observe(2.0, decode_tokens=0, prompt_tokens=512)  # a prompt alone
    budget.observe(0.020, decode_tokens=2, prompt_tokens=0)
    budget.observe(1.0, decode_tokens=2, prompt_tokens=3)  # a last, tiny piece
    assert budget.per_token is None


def test_a_guess_must_beat_what_it_costs_against_a_plain_steps_yield() -> None:
    budget = PromptBudget(512)
    assert budget.guess_threshold(1, default=0.5) == 0.5  # nothing measured yet
    for _ in range(30):
        budget.observe(0.010, 1, 0)  # a plain step for one slot: 10 ms per token
        budget.observe(0.010 + 16 * 0.004, 1, 16)  # 4 ms per extra token
        budget.observe(0.024, 4, 0)  # four slots: 6 ms per token
    assert budget.guess_threshold(1, default=0.5) == pytest.approx(0.4)
    assert budget.guess_threshold(4, default=0.5) == pytest.approx(4 * 0.004 / 0.024)
    assert budget.guess_threshold(8, default=0.5) == 0.5  # that many never measured


def test_guesses_are_measured_apart_from_prompt_tokens() -> None:
    budget = PromptBudget(512)
    for _ in range(30):
        budget.observe(0.010, 1, 0)
        budget.observe(0.010 + 16 * 0.004, 1, 16)  # a prompt token adds 4 ms
        budget.observe(0.010 + 8 * 0.006, 1, 0, guesses=8)  # a guess 6 ms (its logits)
        budget.observe(0.5, 1, 16, guesses=8)  # both: not attributable, ignored
    assert budget.per_token == pytest.approx(0.004)
    assert budget.guess_threshold(1, default=0.5) == pytest.approx(0.6)
