"""`POST /models/pull` is off by default: nothing reaches the Hub (the pulls themselves
are in tests/e2e/test_model_pull.py, against a server started with HF_ENDPOINT)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.fake_hub import FakeHub, serving

REPO = "acme/smol-GGUF"
FILE = "smol-pulled-q4_1.gguf"


@pytest.fixture
def hub(model_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The embedded model's real bytes, offered under another name."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with serving({REPO: {FILE: model_path.read_bytes(), "README.md": b"# smol\n"}}) as fake:
        yield fake


async def test_pulling_is_off_unless_allowed(client_for: Any, hub: FakeHub) -> None:
    async with client_for() as client:
        refused = await client.post("/models/pull", json={"repo": REPO, "file": FILE})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "pull_disabled"
    assert hub.requests == []
