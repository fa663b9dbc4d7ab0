"""Requests as jobs: a bounded, fair queue between the event loop and a worker thread.

The batching engine takes as many jobs as it has free slots. The event loop side
submits and cancels; the worker side takes jobs and hands events back through
`Job.put`, which goes through `call_soon_threadsafe` so that the loop never blocks on
the model.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from conversion.errors import KeyShareExceededError, ModelNotReadyError, ServerBusyError
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
    owner: str | None = None
    """Whose request it is (its API key, when keys are set): places and slots are shared
    fairly between owners."""
    events: asyncio.Queue[GenerationEvent | BaseException] = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    """Set from the event loop; the worker checks it between tokens and prompt chunks."""
    completion_tokens: int = 0
    tokens_at_cancel: int | None = None
    deadline: float = field(init=False)
    """`time.monotonic()` after which the worker ends the job as `length`."""
    arrival: int = 0
    """Its place in the order of arrival."""
    submitted_at: float = field(default_factory=time.monotonic)
    taken_at: float | None = None
    """When a slot took it: `taken_at - submitted_at` is its wait in the queue."""

    def __post_init__(self) -> None:
        limit = self.params.time_limit
        self.deadline = math.inf if limit is None else time.monotonic() + limit

    @property
    def waited(self) -> float:
        return (self.taken_at or time.monotonic()) - self.submitted_at

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
    """Waiting jobs in front of `slots` running ones: first come, first served, and
    fair between owners.

    The bound is what waiting costs: at most `capacity` jobs and `max_tokens` prompt
    tokens wait at once (a waiting job holds its prompt and its request's body), and
    a job waits no longer than its time limit. Past the bound a job is refused at once
    with `ServerBusyError` (503), whose `Retry-After` is the expected wait for a slot:
    the jobs ahead, over the slots, times the measured time a job holds a slot.

    With owners (API keys), the next free slot goes to the owner with the fewest
    running jobs (the earliest arrival among equals), and one owner may hold at most
    three quarters of the places, so a key that floods the queue does not lock the
    others out (past its share: `KeyShareExceededError`, 429, as OpenAI answers a key
    over its limits).
    """

    _SHARE = 0.75
    _SERVICE_WEIGHT = 0.2
    """Weight of the newest job in the running mean of a job's time in a slot."""

    def __init__(self, capacity: int, slots: int = 1, max_tokens: int | None = None) -> None:
        self._capacity = capacity
        self._max_tokens = max_tokens
        self._slots = slots
        self._cond = threading.Condition()
        self._waiting: dict[str | None, collections.deque[Job]] = {}
        self._count = 0
        self._tokens = 0
        self._running: set[Job] = set()
        self._running_by: collections.Counter[str | None] = collections.Counter()
        self._arrivals = itertools.count()
        self._service: float | None = None
        """Running mean of the seconds a job holds a slot; None before the first."""
        self._open = True
        self.records: collections.deque[JobRecord] = collections.deque(maxlen=64)

    def depth(self) -> int:
        return self._count

    def _expected_wait(self) -> float:
        """Seconds until a job submitted now would be taken, from the jobs ahead."""
        per_job = self._service if self._service is not None else 1.0
        return (self._count / self._slots + 1) * per_job

    def submit(
        self, prompt: list[int], params: GenerationParams, owner: str | None = None
    ) -> JobHandle:
        """Queue a job for the worker (event-loop side)."""
        job = Job(prompt, params, asyncio.get_running_loop(), owner)
        with self._cond:
            if not self._open:
                raise ModelNotReadyError("The server is shutting down.")
            self._check_room(job)
            job.arrival = next(self._arrivals)
            self._waiting.setdefault(owner, collections.deque()).append(job)
            self._count += 1
            self._tokens += len(prompt)
            self._cond.notify()
        return JobHandle(self, job)

    def _check_room(self, job: Job) -> None:
        free_slots = max(0, self._slots - len(self._running))
        full = self._count >= self._capacity + free_slots
        if not full and self._max_tokens is not None and self._count >= free_slots:
            full = self._tokens + len(job.prompt) > self._max_tokens
        mine = len(self._waiting.get(job.owner, ()))
        if full:
            raise ServerBusyError(
                f"The server is busy: {self._count} requests are already waiting for the "
                "model. Retry after the time Retry-After gives.",
                retry_after=self._expected_wait(),
            )
        if job.owner is not None and mine >= max(1, int(self._capacity * self._SHARE)):
            raise KeyShareExceededError(
                f"This API key already has {mine} requests waiting, its share of the "
                "server's queue. Retry after the time Retry-After gives.",
                retry_after=self._expected_wait(),
            )

    def cancel(self, job: Job) -> None:
        """Stop a job: a waiting one leaves the queue at once, a running one at its
        worker's next step."""
        with self._cond:
            if job.cancelled:
                return
            job.cancelled = True
            job.tokens_at_cancel = job.completion_tokens
            if self._leave(job):
                self.records.append(JobRecord("cancelled", len(job.prompt), 0, 0, 0, 0))

    def _leave(self, job: Job) -> bool:
        """Take a waiting job out of the queue; False if it is not waiting."""
        mine = self._waiting.get(job.owner)
        if mine is None or job not in mine:
            return False
        mine.remove(job)
        if not mine:
            del self._waiting[job.owner]
        self._count -= 1
        self._tokens -= len(job.prompt)
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a job waits (worker side); False once the queue is closed."""
        with self._cond:
            if self._open and not self._count:
                self._cond.wait(timeout)
            return self._open

    def take_nowait(self) -> Job | None:
        """The next job, now counted as running; None if none waits. It is the oldest
        job of the owner with the fewest running jobs (the earliest among equals)."""
        with self._cond:
            if not self._open or not self._count:
                return None
            owner = min(
                self._waiting, key=lambda o: (self._running_by[o], self._waiting[o][0].arrival)
            )
            job = self._waiting[owner][0]
            self._leave(job)
            job.taken_at = time.monotonic()
            self._running.add(job)
            self._running_by[owner] += 1
            return job

    def take_expired(self, now: float) -> list[Job]:
        """Remove and return the waiting jobs whose deadline has passed (worker side)."""
        with self._cond:
            expired = [job for mine in self._waiting.values() for job in mine if job.deadline < now]
            for job in expired:
                self._leave(job)
                self.records.append(JobRecord("length", len(job.prompt), 0, 0, 0, None))
            return expired

    def finish(self, job: Job, record: JobRecord) -> None:
        """A running job ended (worker side); its slot is free again."""
        with self._cond:
            if job in self._running:
                self._running.discard(job)
                self._running_by[job.owner] -= 1
                if job.taken_at is not None:
                    held = time.monotonic() - job.taken_at
                    last = self._service if self._service is not None else held
                    self._service = last + self._SERVICE_WEIGHT * (held - last)
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
            waiting = [job for mine in self._waiting.values() for job in mine]
            self._waiting, self._count, self._tokens = {}, 0, 0
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
