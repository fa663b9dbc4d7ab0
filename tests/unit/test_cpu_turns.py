"""CpuTurns: every decode runs on a few CPU threads, first come first served."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from app.engine.cpu_turns import CpuTurns


def _stepper(turns: CpuTurns, name: str, log: list[str], ran_on: set[str]) -> threading.Thread:
    def step() -> None:
        ran_on.add(threading.current_thread().name)
        log.append(name)
        time.sleep(0.02)  # ample time for the other thread to ask again, even on a busy CPU

    return threading.Thread(target=lambda: [turns.run(step) for _ in range(8)])


def test_two_models_steps_alternate_on_one_thread() -> None:
    turns, log, ran_on = CpuTurns(1), [], set()
    a, b = _stepper(turns, "a", log, ran_on), _stepper(turns, "b", log, ran_on)
    a.start()
    b.start()
    a.join()
    b.join()
    turns.close()
    assert ran_on == {"llm-cpu"}  # one thread ran every step: one OpenMP pool
    # once both run, a step that ends hands the CPU to the other model's
    first_b = log.index("b")
    both = log[first_b : first_b + 2 * log[first_b:].count("a")]
    assert len(both) >= 10  # a had at least 5 steps left when b came
    assert all(x != y for x, y in itertools.pairwise(both))
    assert log.count("a") == log.count("b") == 8


def test_wider_turns_let_that_many_step_at_once() -> None:
    turns = CpuTurns(2)
    inside, most = 0, 0
    lock = threading.Lock()

    def step() -> None:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.002)
        with lock:
            inside -= 1

    threads = [
        threading.Thread(target=lambda: [turns.run(step) for _ in range(10)]) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    turns.close()
    assert most == 2


def test_results_and_errors_reach_the_caller() -> None:
    turns = CpuTurns()
    assert turns.run(lambda: 42) == 42
    with pytest.raises(ZeroDivisionError):
        turns.run(lambda: 1 // 0)
    assert turns.run(lambda: turns.run(lambda: "nested")) == "nested"  # no deadlock
    turns.close()


def test_width_follows_the_cores_and_threads() -> None:
    assert CpuTurns(0).width == 1
    assert CpuTurns.for_threads(10_000).width == 1
