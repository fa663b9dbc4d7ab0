"""End-to-end: a real uvicorn server in a thread, driven by the real openai SDK."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn

from app.main import create_app
from tests.conftest import EnginePool, make_settings


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # only the main thread may set them
        pass


@dataclass
class LiveServer:
    root: str
    engine: Any

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    def client(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key="any-key", max_retries=0, **kwargs)

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key="any-key", max_retries=0)


def wait_healthy(root: str, alive: Callable[[], bool], timeout: float = 60) -> None:
    """Poll /health until it answers 200; fail if the server dies or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{root}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not alive():
            pytest.fail("the server did not become ready")
        time.sleep(0.05)


def serve(
    engine_pool: EnginePool | None, model_path: Path, **settings: Any
) -> Iterator[LiveServer]:
    """A live server of an app with these settings, around the pool's engine for them,
    or around an engine of its own (`engine_pool` None)."""
    app_settings = make_settings(model_path, **settings)
    engine = engine_pool.lend(app_settings) if engine_pool is not None else None
    app = create_app(app_settings, engine=engine)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _ThreadServer(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    root = f"http://127.0.0.1:{port}"
    wait_healthy(root, thread.is_alive)
    try:
        yield LiveServer(root, app.state.models.default_engine())
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="session")
def live(model_path: Path) -> Iterator[LiveServer]:
    """The server most end-to-end tests share, with an engine of its own: several of them
    compare replies to the same request, which an engine that first served another tier
    (the browser tests) did not always repeat."""
    yield from serve(None, model_path)


@pytest.fixture
def client(live: LiveServer) -> Iterator[openai.OpenAI]:
    with live.client() as c:
        yield c
