"""`POST /models/pull`'s machinery: a Hub download as a stream of progress events.

The download itself is `app.models.download` (resumable, checked, the same files where the
CLI puts them); this module runs it off the event loop and turns its callbacks into
events shaped like Ollama's pull stream, so that a client shows a progress bar:

    {"status": "resolving"}
    {"status": "downloading", "file": "q4/x-00001-of-00002.gguf", "completed": 0, "total": 9}
    {"status": "verifying", "file": "q4/x-00001-of-00002.gguf"}
    {"status": "done", "file": "q4/x-00001-of-00002.gguf", "path": "/abs/.../x-00001-of-00002.gguf"}
    {"status": "error", "file": ..., "error": {"message": ..., "type": ..., "code": ...}}

`done` and `error` end the stream; `file` is absent where no file is concerned yet.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from pathlib import Path, PurePosixPath
from typing import Literal

import anyio
import anyio.from_thread
import anyio.lowlevel
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream
from huggingface_hub import constants
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]

from app.models.download import Failure, choose_files, explain, fetch, list_files
from conversion.errors import InvalidRequestError

__all__ = ("INTERVAL", "PullError", "PullEvent", "pull", "validate")

log = logging.getLogger("llm_service.download")

INTERVAL = 0.1
"""Least seconds between two `downloading` events of one file (the first and the last of
each file always go out): a client's bar needs no more, and a fast link must not turn
into a flood of events."""


class PullError(msgspec.Struct, frozen=True):
    """Why a pull failed, in the words of OpenAI's error objects."""

    message: str
    type: str
    code: str


class PullEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    """One event of the stream; UNSET fields are left out of the JSON."""

    status: Literal["resolving", "downloading", "verifying", "done", "error"]
    file: str | msgspec.UnsetType = msgspec.UNSET
    """The file in the repository (a path, for repositories with folders)."""
    completed: int | msgspec.UnsetType = msgspec.UNSET
    total: int | msgspec.UnsetType = msgspec.UNSET
    path: str | msgspec.UnsetType = msgspec.UNSET
    """`done`: the absolute path of the model's (first) file, what llama.cpp loads."""
    error: PullError | msgspec.UnsetType = msgspec.UNSET
    model: str | msgspec.UnsetType = msgspec.UNSET
    """`done`, from the server: the id the catalog now serves it under."""


_GONE = (RuntimeError, anyio.ClosedResourceError, anyio.BrokenResourceError)
"""What calling into the event loop raises once the stream's reader is gone (a finished
loop raises anyio's RunFinishedError, a RuntimeError, or asyncio's own)."""


class _Cancelled(Exception):
    """Raised in the worker, from the progress callback, once nobody listens any more."""


def validate(repo: str, pattern: str) -> None:
    """Raise InvalidRequestError unless `repo` is `owner/name` and `pattern` a GGUF name.

    Both end up in paths (`<folder>/<owner>/<name>/`) and URLs, so they are checked before
    anything touches the disk or the network: no separators in the pattern, no `..`.
    """
    try:
        validate_repo_id(repo)
        valid_repo = repo.count("/") == 1
    except HFValidationError:
        valid_repo = False
    if not valid_repo:
        raise InvalidRequestError(
            f"repo must be a Hugging Face repository id like 'owner/name', not {repo!r}",
            param="repo",
        )
    if (
        not pattern.lower().endswith(".gguf")
        or pattern != PurePosixPath(pattern).name
        or "\\" in pattern
        or ".." in pattern
        or not pattern.isprintable()
    ):
        raise InvalidRequestError(
            "file must be a file name or glob ending in .gguf, without folders or '..' "
            f"(e.g. '*q4_k_m.gguf'), not {pattern!r}",
            param="file",
        )


def pull(
    repo: str,
    pattern: str,
    folder: Path,
    *,
    endpoint: str | None = None,
    interval: float = INTERVAL,
) -> AsyncGenerator[PullEvent, None]:
    """Download the model `pattern` picks in `repo` to `<folder>/<repo>/`, as events.

    A plain function returning the stream, not an async generator itself, so that invalid
    input raises InvalidRequestError at the call, before a route has sent its 200, and
    before any request or file. Everything after that ends the stream in a `done` or an
    `error` event; nothing is raised from it.

    `endpoint` (default: huggingface_hub's HF_ENDPOINT) must come from the server's own
    settings, never from a client: the Hub token, if any, goes there.

    Closing the stream early (a client that hung up) stops the download at its next chunk
    and waits for that, so the partial file is left whole for the next pull to resume. A
    chunk is 10 MiB (huggingface_hub's DOWNLOAD_CHUNK_SIZE); on a stalled connection the
    wait lasts until huggingface_hub's read timeout (HF_HUB_DOWNLOAD_TIMEOUT, 10 s) and
    reconnection bring the next one.
    """
    validate(repo, pattern)
    local_dir = Path(folder).expanduser().absolute() / repo
    return _stream(repo, pattern, local_dir, endpoint or constants.ENDPOINT, interval)


async def _stream(
    repo: str, pattern: str, local_dir: Path, endpoint: str, interval: float
) -> AsyncGenerator[PullEvent, None]:
    """Run the download in its own thread and pass its events on, throttled.

    A plain daemon thread rather than `anyio.to_thread`: the events must flow while it
    runs, and awaiting `to_thread.run_sync` would need a task group around the `yield`,
    which the consumer's cancellation cannot safely cross. The thread is never abandoned:
    on the way out (end, `aclose`, cancellation) the stream sets the cancel flag and, shielded,
    reads on until the worker has closed its end.
    """
    send, receive = anyio.create_memory_object_stream[PullEvent](math.inf)
    token = anyio.lowlevel.current_token()
    cancelled = threading.Event()

    def emit(event: PullEvent) -> None:
        if cancelled.is_set():
            raise _Cancelled
        try:
            anyio.from_thread.run_sync(send.send_nowait, event, token=token)
        except _GONE:  # the event loop or the stream is gone: nobody listens
            cancelled.set()
            raise _Cancelled from None

    def close() -> None:
        try:
            anyio.from_thread.run_sync(send.close, token=token)
        except _GONE:  # the event loop is gone, and with it whoever waited
            log.debug("pull of %s: the event loop ended before the download", repo)

    worker = threading.Thread(
        target=_work,
        args=(repo, pattern, local_dir, endpoint, emit, close),
        name=f"pull {repo}",
        daemon=True,  # a cancelled pull ends at its next chunk; exit need not wait for it
    )
    worker.start()
    try:
        async with aclosing(_throttled(receive, interval)) as events:
            async for event in events:
                yield event
    finally:
        cancelled.set()
        with anyio.CancelScope(shield=True):
            async for _ in receive:  # until the worker closes `send`: it has stopped
                pass
        receive.close()


def _work(
    repo: str,
    pattern: str,
    local_dir: Path,
    endpoint: str,
    emit: Callable[[PullEvent], None],
    close: Callable[[], None],
) -> None:
    """The blocking download; every outcome becomes an event, nothing escapes the thread."""
    current: str | msgspec.UnsetType = msgspec.UNSET

    def progress(name: str, done: int, total: int) -> None:
        nonlocal current
        current = name
        emit(PullEvent("downloading", file=name, completed=done, total=total))

    try:
        try:
            emit(PullEvent("resolving"))
            chosen, others = choose_files(list_files(repo, endpoint=endpoint), pattern)
            if others:
                log.info("pull %s %r: taking %s, not %s", repo, pattern, chosen[0], others)
            paths = [
                fetch(
                    repo,
                    name,
                    local_dir,
                    endpoint=endpoint,
                    on_progress=progress,
                    on_verify=lambda name: emit(PullEvent("verifying", file=name)),
                )
                for name in chosen
            ]
            emit(PullEvent("done", file=chosen[0], path=str(paths[0].resolve())))
        except _Cancelled:
            raise
        except Exception as exc:
            failure = explain(exc, repo, endpoint)
            if failure is None:
                log.exception("pull of %s %r failed", repo, pattern)
                failure = Failure(f"pulling {repo} failed", "server_error", "internal_error")
            else:
                log.warning("pull of %s %r failed: %s", repo, pattern, failure.message)
            error = PullError(failure.message, failure.type, failure.code)
            emit(PullEvent("error", file=current, error=error))
    except _Cancelled:
        log.info("pull of %s %r stopped: the client went away; it resumes next time", repo, pattern)
    finally:
        close()


async def _throttled(
    receive: MemoryObjectReceiveStream[PullEvent], interval: float
) -> AsyncGenerator[PullEvent, None]:
    """The worker's events, with `downloading` ones of a file at most every `interval`.

    A held-back event is not dropped but kept until its time comes (or a newer one of the
    same file replaces it), so that a download that stalls still shows its latest count.
    """
    sent_at: dict[str, float] = {}
    pending: PullEvent | None = None
    while True:
        due = math.inf if pending is None else sent_at[str(pending.file)] + interval
        event: PullEvent | None = None
        with anyio.CancelScope(deadline=due):
            try:
                event = await receive.receive()
            except anyio.EndOfStream:
                break
        now = anyio.current_time()
        out: list[PullEvent] = []
        if event is None:  # `pending` is due
            out, pending = [pending] if pending is not None else [], None
        elif event.status != "downloading":
            out, pending = ([pending] if pending is not None else []) + [event], None
        else:
            file = str(event.file)
            if pending is not None and pending.file != file:
                out.append(pending)
            pending = None
            last = sent_at.get(file)
            if last is None or event.completed == event.total or now >= last + interval:
                out.append(event)
            else:
                pending = event
        for item in out:
            if item.status == "downloading":
                sent_at[str(item.file)] = now
            yield item
    if pending is not None:
        yield pending
