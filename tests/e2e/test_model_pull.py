"""`POST /models/pull` as a user runs it: `python -m app` started with HF_ENDPOINT at the
stand-in Hub (tests/unit/fake_hub.py), as huggingface-hub reads it, streams a download
into `model.dir`; the pulled model is then in the catalog and serves requests."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_cli import app, free_port
from tests.unit.fake_hub import FakeHub, serving

pytestmark = pytest.mark.e2e

REPO = "acme/smol-GGUF"
FILE = "smol-pulled-q4_1.gguf"


@pytest.fixture(scope="module")
def hub(model_path: Path) -> Iterator[FakeHub]:
    """The embedded model's real bytes, offered under another name."""
    with serving({REPO: {FILE: model_path.read_bytes(), "README.md": b"# smol\n"}}) as fake:
        yield fake


@pytest.fixture(scope="module")
def root(hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("downloads")
    port = free_port()
    proc = app(
        "--port", str(port), "--model-dir", str(folder), "--model-n-parallel", "1",
        "--models-allow-pull", "true",
        env={"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1"},
    )  # fmt: skip
    root = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{root}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "the server exited"
            time.sleep(0.1)
        yield root
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def _events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def test_a_pulled_model_streams_its_progress_then_serves(root: str, hub: FakeHub) -> None:
    bad = httpx.post(f"{root}/models/pull", json={"repo": REPO, "file": "../x.gguf"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "file"
    assert hub.requests == []  # refused before anything reached the Hub
    response = httpx.post(
        f"{root}/models/pull", json={"repo": REPO, "file": "*q4_1.gguf"}, timeout=120
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    assert events[0]["status"] == "resolving"
    progress = [e["completed"] for e in events if e["status"] == "downloading"]
    assert progress == sorted(progress)
    assert progress[-1] == events[1]["total"] == len(hub.repos[REPO][FILE])
    done = events[-1]
    assert done["status"] == "done"
    assert done["model"] == "smol-pulled-q4_1"
    assert done["path"].endswith(f"{REPO}/{FILE}")
    listed = {m["id"]: m for m in httpx.get(f"{root}/v1/models").json()["data"]}
    assert listed["smol-pulled-q4_1"]["state"] == "unloaded"
    reply = httpx.post(
        f"{root}/v1/chat/completions",
        json={"model": "smol-pulled-q4_1", "messages": [{"role": "user", "content": "Hi"}]}
        | {"max_tokens": 2},
        timeout=60,
    )
    assert reply.status_code == 200
    assert reply.json()["model"] == "smol-pulled-q4_1"


def test_a_failed_pull_ends_in_one_error_event(root: str) -> None:
    response = httpx.post(f"{root}/models/pull", json={"repo": REPO, "file": "*q8_0.gguf"})
    events = _events(response.text)
    assert [e["status"] for e in events] == ["resolving", "error"]
    assert events[-1]["error"]["code"] == "file_not_found"
