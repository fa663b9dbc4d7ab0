"""app.models.pull, in process, against the stand-in Hub of tests/unit/fake_hub.py.

No part of huggingface_hub is replaced: the pull reaches the stand-in through its
`endpoint` argument. Only huggingface_hub's download chunk size is made small (it reads
`constants.DOWNLOAD_CHUNK_SIZE` at every download), so that files of a few hundred KB
arrive in several chunks, each a progress event.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path

import anyio
import httpx2
import msgspec
import pytest
from huggingface_hub import constants as hf_constants

from app.models.download import Failure, explain
from app.models.pull import PullEvent, pull
from conversion.errors import InvalidRequestError
from tests.unit.fake_hub import REPO, FakeHub, Seen, etag, serving

CHUNK = 64 * 1024
Q4 = "tiny-q4_k_m.gguf"
Q8 = "tiny-q8_0.gguf"


def _random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hf_constants, "DOWNLOAD_CHUNK_SIZE", CHUNK)
    monkeypatch.delenv("HF_TOKEN", raising=False)  # no token of this machine to the stand-in


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    repos = {
        REPO: {
            Q4: _random_bytes(5 * CHUNK + 1000, seed=4),
            Q8: _random_bytes(CHUNK // 2, seed=8),
            "README.md": b"# tiny\n",
        }
    }
    with serving(repos) as fake:
        yield fake


async def collect(hub: FakeHub, folder: Path, pattern: str, **kwargs: float) -> list[PullEvent]:
    return [event async for event in pull(REPO, pattern, folder, endpoint=hub.url, **kwargs)]


def of_status(events: list[PullEvent], status: str) -> list[PullEvent]:
    return [event for event in events if event.status == status]


def resolve_gets(hub: FakeHub) -> list[Seen]:
    return [seen for seen in hub.requests if seen.method == "GET" and "/resolve/" in seen.path]


async def test_pull_streams_resolving_downloading_verifying_done(
    hub: FakeHub, tmp_path: Path
) -> None:
    content = hub.repos[REPO][Q4]

    events = await collect(hub, tmp_path, "*Q4_K_M.gguf", interval=0)

    target = tmp_path / REPO / Q4
    assert target.read_bytes() == content
    assert [e.status for e in events] == [
        "resolving",
        *["downloading"] * 7,  # 0 bytes, then one event per chunk: 5 full ones and the rest
        "verifying",
        "done",
    ]
    downloading = of_status(events, "downloading")
    assert [e.completed for e in downloading] == [0, *range(CHUNK, 6 * CHUNK, CHUNK), len(content)]
    assert {(e.file, e.total) for e in downloading} == {(Q4, len(content))}
    assert events[-2] == PullEvent("verifying", file=Q4)
    assert events[-1] == PullEvent("done", file=Q4, path=str(target.resolve()))
    assert msgspec.json.decode(msgspec.json.encode(events[0])) == {"status": "resolving"}
    assert hub.requests == [
        Seen("GET", hub.tree_path()),
        Seen("HEAD", hub.resolve_path(Q4)),
        Seen("GET", hub.resolve_path(Q4)),
    ]
    assert not list((tmp_path / REPO / ".cache" / "llm-service").glob("*.part"))
    assert not (tmp_path / REPO / Q8).exists()


async def test_downloading_events_are_throttled_but_the_first_and_last_go_out(
    hub: FakeHub, tmp_path: Path
) -> None:
    """Hundreds of chunks, yet no more events than one per interval (plus first and last)."""
    name = "many-q4_k_m.gguf"
    hub.repos[REPO] = {name: _random_bytes(200 * CHUNK, seed=5)}
    interval = 0.05

    started = time.monotonic()
    events = await collect(hub, tmp_path, "*.gguf", interval=interval)
    elapsed = time.monotonic() - started

    downloading = of_status(events, "downloading")
    completed = [e.completed for e in downloading]
    assert completed[0] == 0
    assert completed[-1] == 200 * CHUNK
    assert completed == sorted(set(completed))
    assert len(downloading) <= elapsed / interval + 3
    assert events[-1].status == "done"


async def test_split_model_pulls_every_part(hub: FakeHub, tmp_path: Path) -> None:
    parts = [f"q4/split-q4_k_m-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    hub.repos[REPO] = {part: _random_bytes(CHUNK + i, seed=i) for i, part in enumerate(parts)}
    hub.repos[REPO]["q8/split-q8_0.gguf"] = b"q8"

    events = await collect(hub, tmp_path, "*q4_k_m-00001-of-*.gguf", interval=0)

    folder = tmp_path / REPO
    for part in parts:
        assert (folder / part).read_bytes() == hub.repos[REPO][part]
    assert [e.file for e in of_status(events, "verifying")] == parts
    last_of_each = [e for e in of_status(events, "downloading") if e.completed == e.total]
    assert [(e.file, e.total) for e in last_of_each] == [
        (p, len(hub.repos[REPO][p])) for p in parts
    ]
    assert events[-1] == PullEvent("done", file=parts[0], path=str((folder / parts[0]).resolve()))
    assert not (folder / "q8").exists()


async def test_pulling_what_is_there_downloads_nothing(hub: FakeHub, tmp_path: Path) -> None:
    await collect(hub, tmp_path, Q8)
    hub.requests.clear()

    events = await collect(hub, tmp_path, Q8)

    size = len(hub.repos[REPO][Q8])
    assert [e.status for e in events] == ["resolving", "downloading", "done"]
    assert events[1] == PullEvent("downloading", file=Q8, completed=size, total=size)
    assert resolve_gets(hub) == []


async def test_unknown_repository_is_one_error_event(hub: FakeHub, tmp_path: Path) -> None:
    events = [e async for e in pull("acme/missing", "*.gguf", tmp_path, endpoint=hub.url)]

    assert [e.status for e in events] == ["resolving", "error"]
    error = events[-1].error
    assert isinstance(error, msgspec.Struct)
    assert (error.type, error.code) == ("invalid_request_error", "repo_not_found")
    assert error.message.startswith("repository acme/missing not found on ")
    assert hub.url in error.message
    assert hub.requests == [Seen("GET", hub.tree_path("acme/missing"))]
    assert not (tmp_path / "acme").exists()


async def test_no_matching_file_is_one_error_event_naming_the_files(
    hub: FakeHub, tmp_path: Path
) -> None:
    events = await collect(hub, tmp_path, "*q2_k.gguf")

    assert [e.status for e in events] == ["resolving", "error"]
    error = events[-1].error
    assert isinstance(error, msgspec.Struct)
    assert (error.type, error.code) == ("invalid_request_error", "file_not_found")
    assert "'*q2_k.gguf'" in error.message
    assert Q4 in error.message
    assert "README.md" not in error.message
    assert msgspec.json.decode(msgspec.json.encode(events[-1])).keys() == {"status", "error"}


@pytest.mark.parametrize(
    ("repo", "pattern", "param"),
    [
        ("a/b/c", "*.gguf", "repo"),
        ("../etc", "*.gguf", "repo"),
        ("acme/..", "*.gguf", "repo"),
        ("noowner", "*.gguf", "repo"),
        ("", "*.gguf", "repo"),
        (REPO, "../x.gguf", "file"),
        (REPO, "/etc/passwd", "file"),
        (REPO, "q4/x.gguf", "file"),
        (REPO, "..\\x.gguf", "file"),
        (REPO, "x.gguf\n", "file"),
        (REPO, "tiny-q4_k_m.bin", "file"),
        (REPO, "", "file"),
    ],
)
async def test_bad_input_raises_before_any_request_or_file(
    hub: FakeHub, tmp_path: Path, repo: str, pattern: str, param: str
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        pull(repo, pattern, tmp_path / "models", endpoint=hub.url)

    assert raised.value.param == param
    assert raised.value.status_code == 400
    assert hub.requests == []
    assert not (tmp_path / "models").exists()


def pull_threads() -> list[threading.Thread]:
    """The pull's worker threads still running (one may be returning from its last call)."""
    deadline = time.monotonic() + 1
    while (alive := [t for t in threading.enumerate() if t.name == f"pull {REPO}"]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.01)
    return alive


async def test_cancelled_pull_stops_the_worker_and_the_next_pull_resumes(
    hub: FakeHub, tmp_path: Path
) -> None:
    """A client that hangs up mid-file: the download stops at its next chunk, whole.

    The stand-in sends 1.5 chunks and then stalls; the consumer is cancelled once it has
    seen the first chunk arrive. The stream's clean-up waits for the worker, which is
    blocked reading until the stand-in lets go of the connection. huggingface_hub then
    reconnects (with a Range request), and the worker stops at the first chunk of that.
    """
    content = hub.repos[REPO][Q4]
    hub.stall_first_get_after[Q4] = CHUNK + CHUNK // 2
    partial = tmp_path / REPO / ".cache" / "llm-service" / f"{Q4}.{etag(content)}.part"
    seen: list[PullEvent] = []
    first_chunk = anyio.Event()

    async def consume() -> None:
        async with aclosing(pull(REPO, Q4, tmp_path, endpoint=hub.url)) as events:
            async for event in events:
                seen.append(event)
                if event.status == "downloading" and event.completed == CHUNK:
                    first_chunk.set()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(consume)
            await first_chunk.wait()
            group.cancel_scope.cancel()
            hub.release.set()  # the stalled connection ends; the worker notices the flag
        assert pull_threads() == []  # the stream's clean-up waited for the worker

    assert seen[-1] == PullEvent("downloading", file=Q4, completed=CHUNK, total=len(content))
    assert partial.read_bytes() == content[:CHUNK]
    assert not (tmp_path / REPO / Q4).exists()
    size, requests = partial.stat().st_size, len(hub.requests)
    await anyio.sleep(0.3)
    assert (partial.stat().st_size, len(hub.requests)) == (size, requests)  # nothing more
    hub.requests.clear()

    events = await collect(hub, tmp_path, Q4, interval=0)

    assert events[-1].status == "done"
    assert (tmp_path / REPO / Q4).read_bytes() == content
    assert of_status(events, "downloading")[0].completed == CHUNK  # from where it stopped
    assert hub.requests == [
        Seen("GET", hub.tree_path()),
        Seen("HEAD", hub.resolve_path(Q4)),
        Seen("GET", hub.resolve_path(Q4), f"bytes={CHUNK}-"),
    ]
    assert not partial.exists()


async def test_closing_the_stream_before_it_starts_is_harmless(
    hub: FakeHub, tmp_path: Path
) -> None:
    stream = pull(REPO, Q4, tmp_path, endpoint=hub.url)
    async with aclosing(stream):
        pass

    assert hub.requests == []
    assert pull_threads() == []


def test_explain_words_network_errors_for_the_stream() -> None:
    failure = explain(httpx2.ConnectError("[Errno 111] Connection refused"), REPO, "http://hub")

    assert failure == Failure(
        f"downloading {REPO} from http://hub failed: ConnectError: [Errno 111] Connection refused",
        "server_error",
        "download_failed",
    )
    assert explain(ValueError("a bug"), REPO, "http://hub") is None
