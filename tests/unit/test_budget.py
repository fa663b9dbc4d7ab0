"""The prompt budget beside decoding comes from measured step costs (no model needed)."""

from __future__ import annotations

from app.engine.budget import PROMPT_SHARE, PromptBudget

T0, SHARED, ALONE = 0.021, 0.0037, 0.0027
"""Three streams' decode step; a prompt token in small pieces beside them; alone."""


def measured() -> PromptBudget:
    budget = PromptBudget(n_batch=512)
    budget.observe(T0, decode_tokens=3, prompt_tokens=0)
    budget.observe(T0 + SHARED * 16, decode_tokens=3, prompt_tokens=16)
    budget.observe(ALONE * 512, decode_tokens=0, prompt_tokens=512)
    return budget


def test_pieces_keep_the_prompt_at_its_share_of_the_speed_alone() -> None:
    budget = measured()
    k = budget.tokens(3)
    speed = k / (T0 + SHARED * k)
    assert speed >= PROMPT_SHARE / ALONE  # so ~1.5x its time alone at most
    assert (k - 1) / (T0 + SHARED * (k - 1)) < PROMPT_SHARE / ALONE  # the smallest such


def test_a_dearer_streams_step_asks_for_bigger_pieces() -> None:
    budget = measured()
    budget.observe(0.010, decode_tokens=1, prompt_tokens=0)
    assert budget.tokens(1) < budget.tokens(3)


def test_before_measuring_a_first_guess_and_without_alone_steps_the_shared_cost() -> None:
    budget = PromptBudget(n_batch=512)
    assert budget.tokens(2) == 32
    budget.observe(0.020, decode_tokens=2, prompt_tokens=0)
    budget.observe(0.020 + 0.004 * 32, decode_tokens=2, prompt_tokens=32)
    assert budget.tokens(2) == 10  # 2/3 * 20 ms / (4 ms - 2/3 * 4 ms)


def test_when_sharing_cannot_reach_the_share_the_prompt_goes_whole() -> None:
    budget = PromptBudget(n_batch=256)
    budget.observe(0.020, decode_tokens=2, prompt_tokens=0)
    budget.observe(0.020 + 0.009 * 32, decode_tokens=2, prompt_tokens=32)
    budget.observe(0.003 * 256, decode_tokens=0, prompt_tokens=256)
    assert budget.tokens(2) == 256


def test_tiny_pieces_and_unknown_decode_costs_say_nothing() -> None:
    budget = PromptBudget(n_batch=512)
    budget.observe(1.0, decode_tokens=2, prompt_tokens=64)  # the decode part is unknown
    budget.observe(0.020, decode_tokens=2, prompt_tokens=0)
    budget.observe(1.0, decode_tokens=2, prompt_tokens=3)  # a last, tiny piece
    assert budget.shared_per_token is None
