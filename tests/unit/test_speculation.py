"""How a slot guesses its next tokens from its own sequence (no model needed)."""

from __future__ import annotations

import random

import pytest

from app.engine.speculation import (
    FIRST_DRAFT,
    MAX_THRESHOLD,
    MIN_DRAFT,
    RETRY_AFTER,
    Drafter,
    NgramIndex,
)


def naive_follow(seq: list[int], n: int, count: int) -> list[int]:
    """What followed the last earlier occurrence of the final n-gram, by a plain scan,
    going on as the sequence would if it kept repeating from there."""
    if len(seq) < n or count <= 0:
        return []
    tail = seq[-n:]
    for end in range(len(seq) - 2, n - 2, -1):
        if seq[end - n + 1 : end + 1] == tail:
            extended = list(seq)
            while len(extended) < len(seq) + count:
                extended.append(extended[end + 1 + len(extended) - len(seq)])
            return extended[len(seq) :]
    return []


def test_the_tokens_after_the_last_earlier_occurrence_are_proposed() -> None:
    index = NgramIndex(2, [1, 2, 3, 4, 9, 1, 2, 5, 6, 1, 2])
    assert index.follow(3) == [5, 6, 1]  # the later "1 2" wins over the first
    assert index.follow(1) == [5]


def test_the_sequence_end_never_matches_itself() -> None:
    assert NgramIndex(3, [7, 8, 9]).follow(4) == []
    assert NgramIndex(3, []).follow(4) == []


def test_a_recent_match_is_continued_as_a_repeating_stretch() -> None:
    index = NgramIndex(1, [4, 5, 4])
    assert index.follow(5) == [5, 4, 5, 4, 5]
    loop = NgramIndex(2, [9, 1, 2, 3, 1, 2])  # "1 2" last ended 3 tokens back
    assert loop.follow(7) == [3, 1, 2, 3, 1, 2, 3]


@pytest.mark.parametrize("seed", range(30))
def test_lookups_match_a_plain_scan_as_the_sequence_grows(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 4)
    tokens = [rng.randint(0, 5) for _ in range(rng.randint(0, 60))]
    index = NgramIndex(n, tokens[: len(tokens) // 2])
    for token in tokens[len(tokens) // 2 :]:
        index.extend([token])
        count = rng.randint(0, 8)
        assert index.follow(count) == naive_follow(index.tokens, n, count)


def drafter(tokens: list[int], max_draft: int = 64) -> Drafter:
    return Drafter.for_prompt(tokens, 1, max_draft)


def test_a_draft_that_stands_whole_doubles_the_next_up_to_the_maximum() -> None:
    d = drafter([1, 2, 3], max_draft=40)
    sizes = []
    for _ in range(5):
        sizes.append(d.budget(room=100, threshold=0.5))
        d.adapt(sizes[-1], sizes[-1])
    assert sizes == [FIRST_DRAFT, 2 * FIRST_DRAFT, 4 * FIRST_DRAFT, 40, 40]


def test_a_draft_cut_short_shrinks_the_next_to_what_stood() -> None:
    d = drafter([1, 2, 3])
    d.adapt(8, 5)
    assert d.budget(room=100, threshold=0.5) == 6
    d.adapt(6, 0)
    assert d.size == MIN_DRAFT


def test_guessing_stops_where_too_few_guesses_stand_for_their_cost() -> None:
    d = drafter([1, 2, 3])
    for _ in range(3):
        d.adapt(10, 7)  # 70% stand
    assert d.budget(room=100, threshold=0.5) > 0  # one slot: a guess costs half a token
    assert d.budget(room=100, threshold=0.9) == 0  # four slots: it costs 0.9 of one


def test_no_slot_guesses_where_a_guess_costs_nearly_a_plain_token() -> None:
    d = drafter([1, 2, 3])
    for _ in range(5):
        d.adapt(10, 10)  # every guess stood
    assert d.budget(room=100, threshold=MAX_THRESHOLD) > 0
    assert d.budget(room=100, threshold=MAX_THRESHOLD + 0.01) == 0


def test_a_slot_kept_from_guessing_by_their_cost_tries_a_small_draft_now_and_then() -> None:
    """The cost of a guess is measured only on steps with guesses: one measured high
    must not stop guessing for good."""
    d = drafter([1, 2, 3])
    for _ in range(5):
        d.adapt(10, 10)
    sizes = [d.budget(room=100, threshold=0.9) for _ in range(2 * RETRY_AFTER)]
    assert sizes.count(0) == len(sizes) - 2
    assert sizes[RETRY_AFTER - 1] == sizes[2 * RETRY_AFTER - 1] == FIRST_DRAFT


def test_the_room_left_caps_a_draft() -> None:
    d = drafter([1, 2, 3, 4, 5, 1], max_draft=8)
    assert d.budget(room=5, threshold=0.5) == 5
    assert d.budget(room=1, threshold=0.5) == 0  # one guess is not worth a pass
    assert d.propose(room=3, threshold=0.5) == [2, 3, 4]
    assert d.proposed == 3


def test_a_slot_whose_guesses_failed_tries_again_later_the_later_the_worse() -> None:
    def steps_until_retry(failed: int) -> int:
        d = drafter([1, 2, 3])
        d.adapt(failed, 0)
        steps = 0
        while d.budget(room=100, threshold=0.5) == 0:
            steps += 1
            assert steps < 10_000
        return steps

    waits = [steps_until_retry(n) for n in (2, 8, 64)]
    assert waits[0] == 0  # two wrong guesses are forgiven
    assert 0 < waits[1] < waits[2]


def test_no_draft_means_no_change() -> None:
    d = drafter([1, 2])
    before = (d.share, d.size)
    d.adapt(0, 0)
    assert (d.share, d.size) == before
