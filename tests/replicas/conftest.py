"""Replicas behind a real HAProxy: three `python -m app` processes (1 thread each) and
Debian's haproxy running `deploy/haproxy.cfg` as shipped, all on loopback, started by
`scripts/replicas.py` (what a user runs to try the same on their machine).

A missing haproxy fails these tests (loudly, with how to get it); `scripts/dev.py test`
installs it where it can, as it does Chromium.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from replicas import CONFIG, HAPROXY, Proxy, Replica, free_port  # noqa: E402

__all__ = (
    "CONFIG",
    "HAPROXY",
    "GRACE",
    "LOGS",
    "SLOTS",
    "Proxy",
    "Replica",
    "free_port",
    "openai_client",
)

SLOTS = 2
"""Each replica's `model.n_parallel`, and so the proxy's `maxconn` for it."""
GRACE = 10.0
"""Each replica's `server.shutdown_grace`."""
LOGS = ROOT / "test-output" / "replicas"


def openai_client(proxy: Proxy) -> openai.OpenAI:
    """The OpenAI SDK pointed at the proxy, as a client switching to it would be."""
    return openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)


def _flags(model: Path, store: Path) -> list[str]:
    settings = make_settings(model)  # the tests' usual settings, but 1 thread
    return [
        *("--model", str(model), "--model-n-threads", "1"),
        *("--model-n-parallel", str(SLOTS), "--model-n-ctx", str(2 * settings.model.n_ctx)),
        *("--server-shutdown-grace", str(GRACE), "--responses-dir", str(store)),
    ]


@pytest.fixture(scope="session")
def replicas(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Replica]]:
    if not Path(HAPROXY).exists():
        pytest.fail(
            f"HAProxy is not installed at {HAPROXY}: the replica tests need it "
            "(`apt-get install haproxy`, or set LLM_SERVICE_HAPROXY to its path)."
        )
    started = [
        Replica(f"replica{i}", _flags(model_path, tmp_path_factory.mktemp(f"store{i}")), LOGS)
        for i in (1, 2, 3)
    ]
    try:
        for replica in started:
            replica.launch()
        for replica in started:
            replica.wait_ready()
        yield started
    finally:
        for replica in started:
            replica.stop()


def _proxy(replicas: list[Replica], balance: str | None) -> Iterator[Proxy]:
    proxy = Proxy(replicas, SLOTS, LOGS, balance)
    try:
        proxy.start()
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def proxy(replicas: list[Replica]) -> Iterator[Proxy]:
    """The shipped configuration: cache affinity."""
    yield from _proxy(replicas, None)


@pytest.fixture(scope="session")
def round_robin(replicas: list[Replica]) -> Iterator[Proxy]:
    """The same configuration with `LLM_PROXY_BALANCE=roundrobin`, to compare."""
    yield from _proxy(replicas, "roundrobin")


@pytest.fixture
def all_up(replicas: list[Replica], proxy: Proxy) -> Iterator[list[Replica]]:
    """The replicas, each running again after the test (one may have been stopped), and
    seen to be by the proxy."""
    yield replicas
    for replica in replicas:
        if not replica.running:
            replica.start()
    proxy.wait_states({r.name: "UP" for r in replicas})
