"""The job queue's bookkeeping (no model needed)."""

from __future__ import annotations

import asyncio
import time

from app.engine.jobs import JobQueue
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
