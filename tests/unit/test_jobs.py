"""The job queue's bookkeeping (no model needed)."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.engine.jobs import JobQueue, JobRecord
from conversion.errors import KeyShareExceededError, ServerBusyError
from conversion.generation import GenerationParams, SamplingParams


def params(time_limit: float | None) -> GenerationParams:
    return GenerationParams(SamplingParams(0, 1, None), 4, (), time_limit)


async def test_waiting_jobs_past_their_deadline_are_taken_out() -> None:
    queue = JobQueue(4, slots=1)
    queue.submit([1, 2], params(None))
    assert queue.take_nowait() is not None  # running: never expires while waiting
    patient = queue.submit([1, 2, 3], params(None))
    hurried = queue.submit([1, 2, 3], params(0.01))
    await asyncio.sleep(0.05)
    expired = queue.take_expired(time.monotonic())
    assert [job.prompt for job in expired] == [[1, 2, 3]]
    assert queue.depth() == 1
    assert queue.records[-1].outcome == "length"
    patient.cancel()
    hurried.cancel()  # already out: a no-op
    assert queue.depth() == 0


async def test_a_burst_queues_and_a_cancelled_waiter_leaves_at_once() -> None:
    queue = JobQueue(500, slots=4)
    handles = [queue.submit([1, 2, 3], params(None)) for _ in range(200)]
    assert queue.depth() == 200  # far past the old bound of 16
    handles[50].cancel()
    assert queue.depth() == 199
    assert queue.records[-1].outcome == "cancelled"
    taken = [queue.take_nowait() for _ in range(199)]
    assert all(job is not None for job in taken)
    assert handles[50]._job not in taken  # never handed to the model


async def test_the_token_bound_refuses_what_would_not_fit() -> None:
    queue = JobQueue(100, slots=1, max_tokens=10)
    queue.submit([1] * 12, params(None))  # a free slot takes it, whatever its size
    queue.take_nowait()
    queue.submit([1] * 6, params(None))
    with pytest.raises(ServerBusyError):
        queue.submit([1] * 5, params(None))
    queue.submit([1] * 4, params(None))
    assert queue.depth() == 2


async def test_slots_go_to_the_key_with_the_fewest_running_jobs() -> None:
    queue = JobQueue(100, slots=2)
    flood = [queue.submit([1], params(None), owner="flood") for _ in range(10)]
    late = queue.submit([2], params(None), owner="other")
    first = queue.take_nowait()
    assert first is not None
    assert first.owner == "flood"  # the oldest, nobody running
    second = queue.take_nowait()
    assert second is not None
    assert second.owner == "other"  # fewer running than flood
    assert late._job is second
    assert queue.take_nowait().owner == "flood"  # type: ignore[union-attr]
    for handle in flood:
        handle.cancel()


async def test_one_key_holds_at_most_three_quarters_of_the_places() -> None:
    queue = JobQueue(8, slots=1)
    assert queue.take_nowait() is None
    for _ in range(6):
        queue.submit([1], params(None), owner="flood")
    with pytest.raises(KeyShareExceededError, match="share"):
        queue.submit([1], params(None), owner="flood")
    queue.submit([1], params(None), owner="other")  # the rest stays open to others


async def test_retry_after_is_the_expected_wait_from_the_measured_service_time() -> None:
    queue = JobQueue(2, slots=1)
    queue.submit([1], params(None))
    job = queue.take_nowait()
    assert job is not None
    await asyncio.sleep(0.2)
    queue.finish(job, JobRecord("stop", 1, 0, 1, 1, None))  # a slot is held ~0.2 s
    queue.submit([1], params(None))
    queue.take_nowait()
    queue.submit([1], params(None))
    queue.submit([1], params(None))
    with pytest.raises(ServerBusyError) as refused:
        queue.submit([1], params(None))
    # two ahead on one slot, then its own turn: three services of about 0.2 s
    assert 0.55 < refused.value.retry_after < 1.0
    assert refused.value.headers["Retry-After"] == "1"
    assert refused.value.headers["retry-after-ms"] == str(round(refused.value.retry_after * 1000))
