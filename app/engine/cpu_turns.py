"""Every llama.cpp decode of every loaded model runs on the same few threads, in turns.

Two reasons, both measured on a 2-core machine:

- ggml's CPU backend (built with OpenMP, as llama-cpp-python builds it) waits at a
  barrier after every operation of a step. libgomp spins at those barriers only while it
  manages no more threads than there are cores; each OS thread that runs a decode owns a
  pool of OpenMP threads, so a second model decoding from its own thread (or an embedding
  from a request's thread) makes libgomp sleep and wake at every barrier instead. With
  a second, idle, model loaded, SmolLM2-135M decoded at about 60 tokens/s instead of
  about 100. Decodes handed to one thread keep one pool, whatever runs them.
- Each model's step spreads over `n_threads` cores and ggml's threads wait for each
  other: two steps at once on cores that cannot hold both slow each other far more than
  turns do. So at most `width` steps run at once (`cores // n_threads`: one on a laptop
  with the default threads), first come first served, and a model streaming a reply
  keeps a steady share of the steps while another decodes.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ("CpuTurns",)

T = TypeVar("T")


class _Call(Generic[T]):
    def __init__(self, work: Callable[[], T]) -> None:
        self.work = work
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class CpuTurns:
    """`run(work)` runs `work` on one of `width` CPU threads, in the order asked, and
    returns its result (or raises its exception) in the caller. The threads start with
    the first call and end with `close()`."""

    def __init__(self, width: int = 1) -> None:
        self.width = max(1, width)
        self._calls: queue.SimpleQueue[_Call[object] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @classmethod
    def for_threads(cls, threads: int) -> CpuTurns:
        """As many steps at once as the cores hold thread pools of `threads`."""
        return cls((os.cpu_count() or 1) // max(1, threads))

    def run(self, work: Callable[[], T]) -> T:
        if threading.current_thread() in self._threads:  # already on a CPU thread
            return work()
        self._start()
        call = _Call(work)
        self._calls.put(call)  # type: ignore[arg-type]
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]

    def close(self) -> None:
        """End the threads once the calls before have run."""
        with self._lock:
            for _ in self._threads:
                self._calls.put(None)
            self._threads = []

    def _start(self) -> None:
        if self._threads:
            return
        with self._lock:
            while len(self._threads) < self.width:
                thread = threading.Thread(target=self._serve, name="llm-cpu", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            try:
                call.result = call.work()
            except BaseException as exc:  # noqa: BLE001 - the caller raises it
                call.error = exc
            finally:
                call.done.set()
