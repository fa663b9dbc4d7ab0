"""The prompt budget beside decoding follows measured step times (no model needed)."""

from __future__ import annotations

from app.engine.budget import PROMPT_STEP_COST, PromptBudget


def test_the_budget_grows_while_steps_stay_cheap_and_shrinks_when_they_do_not() -> None:
    budget = PromptBudget(n_batch=512)
    budget.observe(0.020, decode_tokens=3, prompt_tokens=0)  # a plain step: 20 ms
    start = budget.tokens
    budget.observe(0.030, decode_tokens=3, prompt_tokens=budget.tokens)
    grown = budget.tokens
    assert grown > start
    budget.observe(0.020 * PROMPT_STEP_COST + 0.01, decode_tokens=3, prompt_tokens=grown)
    assert budget.tokens < grown


def test_steps_are_compared_with_plain_steps_of_as_many_slots() -> None:
    budget = PromptBudget(n_batch=512)
    budget.observe(0.010, decode_tokens=1, prompt_tokens=0)
    budget.observe(0.030, decode_tokens=3, prompt_tokens=0)
    start = budget.tokens
    budget.observe(0.060, decode_tokens=3, prompt_tokens=start)  # 2x a 3-slot step: fine
    assert budget.tokens > start


def test_a_step_that_did_not_use_the_whole_budget_says_nothing_about_it() -> None:
    budget = PromptBudget(n_batch=512)
    budget.observe(0.020, decode_tokens=2, prompt_tokens=0)
    start = budget.tokens
    budget.observe(1.0, decode_tokens=2, prompt_tokens=1)
    assert budget.tokens == start
