"""Which slot a request goes to, and how much of its cache it keeps (no model needed)."""

from __future__ import annotations

import random

import pytest

from app.engine.slots import CONTINUE_SLACK, COPY_WORTH, Slot, common_prefix, pick_slot

SYSTEM = list(range(100, 130))


def slot(seq: int, cached: list[int], last_used: int = 0) -> Slot:
    return Slot(seq, cached=list(cached), last_used=last_used)


@pytest.mark.parametrize("seed", range(20))
def test_common_prefix_matches_a_plain_scan(seed: int) -> None:
    rng = random.Random(seed)
    a = [rng.randrange(3) for _ in range(rng.randrange(0, 60))]
    b = a[: rng.randrange(0, len(a) + 1)] + [rng.randrange(3) for _ in range(rng.randrange(9))]
    expected = 0
    while expected < min(len(a), len(b)) and a[expected] == b[expected]:
        expected += 1
    assert common_prefix(a, b) == expected


def test_a_resent_history_goes_to_the_slot_holding_it() -> None:
    chat = [*SYSTEM, 1, 2, 3, 4, 5, 6]
    slots = [slot(0, [*SYSTEM, 9, 9]), slot(1, chat), slot(2, [])]
    place = pick_slot(slots, [*chat, 7, 8])
    assert (place.slot.seq, place.keep, place.copy_from) == (1, len(chat), None)


def test_a_new_conversation_takes_an_empty_slot_with_a_copy_of_the_shared_start() -> None:
    history = [*SYSTEM, *range(200)]
    slots = [slot(0, history), slot(1, [])]
    place = pick_slot(slots, [*SYSTEM, 7, 7])
    assert (place.slot.seq, place.keep) == (1, len(SYSTEM))
    assert place.copy_from is slots[0]  # slot 0 keeps its history


def test_a_slot_still_generating_lends_its_shared_start_too() -> None:
    """A batch job's requests share a system prompt and tools: the second need not read
    them again while the first is still answering."""
    generating = slot(0, [*SYSTEM, *range(30)])
    place = pick_slot([slot(1, []), slot(2, [])], [*SYSTEM, 7, 7], busy=[generating])
    assert (place.slot.seq, place.keep, place.copy_from) == (1, len(SYSTEM), generating)
    assert pick_slot([slot(1, [])], [*SYSTEM, 7, 7], busy=[slot(0, [])]).copy_from is None


def test_a_short_shared_start_is_not_worth_a_copy() -> None:
    short = SYSTEM[: COPY_WORTH - 1]
    place = pick_slot([slot(0, [*short, *range(200)]), slot(1, [])], [*short, 7, 7])
    assert (place.slot.seq, place.keep, place.copy_from) == (1, 0, None)


def test_without_empty_slots_the_least_recently_used_is_taken() -> None:
    slots = [slot(0, [*SYSTEM, *range(50)], 5), slot(1, [*SYSTEM, *range(60)], 2)]
    place = pick_slot(slots, [*SYSTEM, 999])
    assert (place.slot.seq, place.keep, place.copy_from) == (1, len(SYSTEM), None)


def test_the_last_prompt_token_is_always_evaluated_again() -> None:
    prompt = [*SYSTEM, 1, 2]
    assert pick_slot([slot(0, prompt)], prompt).keep == len(prompt) - 1


def test_sharing_a_long_system_prompt_is_not_continuing_a_chat() -> None:
    system = list(range(1000))
    chat_a = [*system, *range(5000, 5000 + CONTINUE_SLACK + 1)]
    slots = [slot(0, chat_a), slot(1, [])]
    place = pick_slot(slots, [*system, 7])
    assert (place.slot.seq, place.keep, place.copy_from) == (1, 1000, slots[0])


def test_an_empty_prompt_keeps_nothing() -> None:
    assert pick_slot([slot(0, [1, 2, 3])], []).keep == 0
