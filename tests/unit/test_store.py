"""app/store.py on a real SQLite file: chains, bounds, concurrent writers, a crash."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.store import ResponseStore
from config.settings import ResponseStoreSettings
from conversion.errors import InvalidRequestError, NotFoundError
from conversion.responses.items import new_id
from conversion.responses.wire import OutputMessage, OutputText, Response

ROOT = Path(__file__).resolve().parents[2]


def response(previous: str | None = None, text: str = "reply") -> Response:
    return Response(
        id=new_id("resp"),
        created_at=int(time.time()),
        status="completed",
        model="m",
        output=[
            OutputMessage(id=new_id("msg"), status="completed", content=[OutputText(text=text)])
        ],
        previous_response_id=previous,
        temperature=1.0,
        top_p=1.0,
    )


def user(text: str) -> dict[str, object]:
    return {"type": "message", "role": "user", "content": text, "id": new_id("msg")}


def open_store(folder: Path, **settings: object) -> ResponseStore:
    store = ResponseStore(ResponseStoreSettings(dir=str(folder), **settings))  # type: ignore[arg-type]
    store.open()
    return store


def test_a_chain_reads_back_oldest_first(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    first, second = response(text="one"), None
    store.save(first, [user("a")])
    second = response(first.id, text="two")
    store.save(second, [user("b")])
    history = store.history(second.id)
    assert [(i["type"], i.get("content")) for i in history] == [
        ("message", "a"),
        ("message", [{"type": "output_text", "text": "one", "annotations": [], "logprobs": []}]),
        ("message", "b"),
        ("message", [{"type": "output_text", "text": "two", "annotations": [], "logprobs": []}]),
    ]
    assert store.item(history[1]["id"]) == history[1]
    store.delete(first.id)
    with pytest.raises(InvalidRequestError, match=f"needs '{first.id}'") as broken:
        store.history(second.id)
    assert broken.value.param == "previous_response_id"
    store.close()


def test_the_oldest_responses_go_past_the_size_bound(tmp_path: Path) -> None:
    store = open_store(tmp_path, max_bytes=4096)
    saved = []
    for index in range(12):
        saved.append(response(text=f"{index} " + "x" * 600))
        store.save(saved[-1], [user("q")])
    kept = [r.id for r in saved if store.get(r.id) is not None]
    assert kept == [r.id for r in saved[-len(kept) :]]  # a suffix: the newest
    assert 1 <= len(kept) < 12
    with sqlite3.connect(store.path) as db:
        (total,) = db.execute("SELECT SUM(size) FROM responses").fetchone()
        orphans = db.execute(
            "SELECT COUNT(*) FROM items WHERE response_id NOT IN (SELECT id FROM responses)"
        ).fetchone()
    assert total <= 4096
    assert orphans == (0,)  # items went with their responses
    store.close()


def test_concurrent_writers_threads_and_a_second_process_handle(tmp_path: Path) -> None:
    """Eight threads on one store and four on a second store over the same file (as a
    second server process would have): every response is kept, none is torn."""
    stores = [open_store(tmp_path), open_store(tmp_path)]
    written: list[str] = []
    lock = threading.Lock()

    def write(store: ResponseStore) -> None:
        for _ in range(15):
            r = response()
            store.save(r, [user("q"), user("r")])
            with lock:
                written.append(r.id)

    threads = [threading.Thread(target=write, args=(stores[i % 3 == 2],)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(written) == 180
    for response_id in written:
        assert stores[0].get(response_id) is not None
        assert len(stores[1].input_items(response_id, after=None, limit=10, order="asc")[0]) == 2
    for store in stores:
        store.close()


WRITER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from tests.unit.test_store import open_store, response, user
from pathlib import Path
store = open_store(Path(sys.argv[1]))
while True:
    r = response(text="y" * 2000)
    store.save(r, [user("q")] * 20)
    print(r.id, flush=True)
"""


def test_a_crash_mid_write_loses_at_most_that_response(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), str(ROOT)],
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        assert writer.stdout is not None
        committed = [writer.stdout.readline().strip() for _ in range(40)]
        writer.send_signal(signal.SIGKILL)  # no cleanup of any kind
        writer.wait()
        committed += [line.strip() for line in writer.stdout if line.strip()]
    store = open_store(tmp_path)
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    for response_id in committed:
        found = store.get(response_id)
        assert found is not None
        assert len(store.input_items(response_id, after=None, limit=100, order="asc")[0]) == 20
    store.close()


def test_a_store_that_is_off_keeps_and_finds_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path / "off", store=False)
    r = response()
    store.save(r, [user("q")])
    assert store.get(r.id) is None
    with pytest.raises(NotFoundError):
        store.require(r.id)
    assert not (tmp_path / "off").exists()
