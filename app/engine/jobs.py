"""Requests as jobs: a bounded FIFO queue between the event loop and a worker thread.

The batching engine takes as many jobs as it has free slots. The event loop side
submits and cancels; the worker side takes jobs and hands events back through
`Job.put`, which goes through `call_soon_threadsafe` so that the loop never blocks on
the model.
"""

from __future__ import annotations

import asyncio
import collections
import math
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from conversion.errors import ModelNotReadyError, ServerBusyError
from conversion.generation import Finished, GenerationEvent, GenerationParams

__all__ = ("Job", "JobHandle", "JobQueue", "JobRecord")


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What became of a request; kept (the last few) for diagnostics and tests."""

    outcome: str
    """`stop`, `length`, `cancelled` or `failed`."""
    prompt_tokens: int
    reused_tokens: int
    """Prompt tokens whose KV cache was kept from the previous request."""
    evaluated_tokens: int
    """Prompt tokens evaluated for this request (less than the rest if cancelled)."""
    completion_tokens: int
    tokens_after_cancel: int | None
    """For a cancelled request: tokens generated after the cancel was seen (≤ 1)."""


@dataclass(eq=False)
class Job:
    prompt: list[int]
    params: GenerationParams
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[GenerationEvent | BaseException] = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    """Set from the event loop; the worker checks it between tokens and prompt chunks."""
    completion_tokens: int = 0
    tokens_at_cancel: int | None = None
    deadline: float = field(init=False)
    """`time.monotonic()` after which the worker ends the job as `length`."""

    def __post_init__(self) -> None:
        limit = self.params.time_limit
        self.deadline = math.inf if limit is None else time.monotonic() + limit

    def put(self, item: GenerationEvent | BaseException) -> None:
        """Hand an event to the request's event loop (called from the worker thread)."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled = True


class JobHandle:
    """The `Generation` a route holds: iterate `events()`, or `cancel()`."""

    def __init__(self, queue: JobQueue, job: Job) -> None:
        self._queue = queue
        self._job = job
        self._done = False

    def cancel(self) -> None:
        if not self._done:
            self._queue.cancel(self._job)

    async def events(self) -> AsyncIterator[GenerationEvent]:
        try:
            while True:
                item = await self._job.events.get()
                if isinstance(item, BaseException):
                    self._done = True
                    raise item
                if isinstance(item, Finished):
                    self._done = True
                yield item
                if self._done:
                    return
        finally:
            self.cancel()  # left early: stop the work (a no-op once done)


class JobQueue:
    """FIFO of waiting jobs in front of `slots` running ones.

    `capacity` jobs may wait while every slot is busy; one more gets `ServerBusyError`
    (503 + Retry-After) at once rather than a long silent wait.
    """

    def __init__(self, capacity: int, slots: int = 1) -> None:
        self._capacity = capacity
        self._slots = slots
        self._cond = threading.Condition()
        self._waiting: collections.deque[Job] = collections.deque()
        self._running: set[Job] = set()
        self._open = True
        self.records: collections.deque[JobRecord] = collections.deque(maxlen=64)

    def depth(self) -> int:
        return len(self._waiting)

    def submit(self, prompt: list[int], params: GenerationParams) -> JobHandle:
        """Queue a job for the worker (event-loop side)."""
        job = Job(prompt, params, asyncio.get_running_loop())
        with self._cond:
            if not self._open:
                raise ModelNotReadyError("The server is shutting down.")
            free_slots = max(0, self._slots - len(self._running))
            if len(self._waiting) >= self._capacity + free_slots:
                raise ServerBusyError(
                    f"The server is busy: {len(self._waiting)} requests are already waiting "
                    "for the model. Retry shortly."
                )
            self._waiting.append(job)
            self._cond.notify()
        return JobHandle(self, job)

    def cancel(self, job: Job) -> None:
        """Stop a job: a waiting one leaves the queue at once, a running one at its
        worker's next step."""
        with self._cond:
            if job.cancelled:
                return
            job.cancelled = True
            job.tokens_at_cancel = job.completion_tokens
            if job in self._waiting:
                self._waiting.remove(job)
                self.records.append(JobRecord("cancelled", len(job.prompt), 0, 0, 0, 0))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a job waits (worker side); False once the queue is closed."""
        with self._cond:
            if self._open and not self._waiting:
                self._cond.wait(timeout)
            return self._open

    def take_nowait(self) -> Job | None:
        """The oldest waiting job, now counted as running; None if none waits."""
        with self._cond:
            if not self._open or not self._waiting:
                return None
            job = self._waiting.popleft()
            self._running.add(job)
            return job

    def take_expired(self, now: float) -> list[Job]:
        """Remove and return the waiting jobs whose deadline has passed (worker side)."""
        with self._cond:
            expired = [job for job in self._waiting if job.deadline < now]
            for job in expired:
                self._waiting.remove(job)
                self.records.append(JobRecord("length", len(job.prompt), 0, 0, 0, None))
            return expired

    def finish(self, job: Job, record: JobRecord) -> None:
        """A running job ended (worker side); its slot is free again."""
        with self._cond:
            self._running.discard(job)
            self.records.append(record)

    def drain(self, deadline: float) -> None:
        """Refuse new jobs and fail the waiting ones; running ones may go on until
        `deadline` (`time.monotonic()`), when the worker ends them as `length`."""
        self._shut(deadline)

    def close(self) -> None:
        """Refuse new jobs, fail the waiting ones and stop the running ones."""
        self._shut(None)

    def _shut(self, deadline: float | None) -> None:
        """Close the queue; running jobs get `deadline`, or are stopped when it is None."""
        with self._cond:
            self._open = False
            waiting, self._waiting = list(self._waiting), collections.deque()
            stopped: list[Job] = []
            if deadline is None:
                stopped, self._running = list(self._running), set()
            else:
                for job in self._running:
                    job.deadline = min(job.deadline, deadline)
            self._cond.notify_all()
        shutting_down = ModelNotReadyError("The server is shutting down.")
        for job in waiting:
            job.put(shutting_down)
        for job in stopped:
            job.cancelled = True
            job.put(shutting_down)
