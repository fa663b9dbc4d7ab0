"""Making room for a model: the churn bound (`models.min_resident`) and the wait, then
503, when nothing can be unloaded. One model fits at a time here; the second catalog
model is SmolLM2 again under another id, so loads are quick."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import LiveServer, serve

pytestmark = pytest.mark.e2e

OTHER = "smol-other"
ASK = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0}


def _server(model_path: Path, min_resident: float, timeout: float) -> Iterator[LiveServer]:
    return serve(
        None,
        model_path,
        slots=1,
        limits={"request_timeout": timeout},
        models={
            "max_loaded": 1,
            "min_resident": min_resident,
            "entries": [{"id": OTHER, "path": str(model_path), "model": {"n_ctx": 512}}],
        },
    )


def _chat(live: LiveServer, model: str) -> httpx.Response:
    return httpx.post(f"{live.base_url}/chat/completions", json={**ASK, "model": model}, timeout=60)


def test_a_model_just_loaded_stays_its_minimum_time(model_path: Path) -> None:
    for live in _server(model_path, min_resident=2.0, timeout=30):
        assert _chat(live, OTHER).json()["model"] == OTHER  # the default made way
        loaded = time.monotonic()
        reply = _chat(live, live.engine.model_id)  # waits until OTHER has had its 2 s
        assert reply.status_code == 200
        assert reply.json()["model"] == live.engine.model_id
        assert time.monotonic() - loaded >= 1.9


def test_when_nothing_can_be_unloaded_the_request_waits_then_gets_503(
    model_path: Path,
) -> None:
    for live in _server(model_path, min_resident=600.0, timeout=1.5):
        assert _chat(live, live.engine.model_id).status_code == 200
        started = time.monotonic()
        refused = _chat(live, OTHER)
        waited = time.monotonic() - started
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "server_busy"
        assert "models.max_loaded" in refused.json()["error"]["message"]
        assert int(refused.headers["retry-after"]) >= 1
        assert 1.4 <= waited < 10
        assert _chat(live, live.engine.model_id).status_code == 200  # the loaded one serves


def test_an_idle_model_unloads_after_its_keep_alive_but_not_the_default(
    model_path: Path,
) -> None:
    settings = {
        "keep_alive": 1.0,
        "entries": [{"id": OTHER, "path": str(model_path), "keep_alive": 0.5}],
    }
    for live in serve(None, model_path, slots=1, models=settings):
        assert _chat(live, OTHER).json()["model"] == OTHER
        deadline = time.monotonic() + 10
        while _states(live)[OTHER] != "unloaded":
            assert time.monotonic() < deadline, "the idle model stayed loaded"
            time.sleep(0.1)
        time.sleep(1.5)  # past the default's keep_alive too
        assert _states(live)[live.engine.model_id] == "loaded"
        metrics = httpx.get(f"{live.root}/metrics").text
        assert f'llm_model_unloads_total{{model="{OTHER}",reason="idle"}} 1.0' in metrics


def test_loading_by_hand_needs_the_api_key(model_path: Path) -> None:
    for live in serve(
        None,
        model_path,
        slots=1,
        api_keys=["sesame"],
        models={"entries": [{"id": OTHER, "path": str(model_path)}]},
    ):
        body = {"model": OTHER}
        assert httpx.post(f"{live.root}/models/load", json=body).status_code == 401
        assert httpx.post(f"{live.root}/models/unload", json=body).status_code == 401
        pulled = httpx.post(f"{live.root}/models/pull", json={"repo": "a/b", "file": "x.gguf"})
        assert pulled.status_code == 401
        loaded = httpx.post(
            f"{live.root}/models/load",
            json=body,
            headers={"Authorization": "Bearer sesame"},
            timeout=60,
        )
        assert loaded.json()["state"] == "loaded"


def _states(live: LiveServer) -> dict[str, str]:
    listed = httpx.get(f"{live.base_url}/models", headers={"Authorization": "Bearer sesame"})
    return {m["id"]: m["state"] for m in listed.json()["data"]}
