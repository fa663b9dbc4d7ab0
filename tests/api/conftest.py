"""In-process tests: the real app and model behind Litestar's async test client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.main import create_app
from tests.conftest import EnginePool, make_settings

ClientFactory = Callable[..., AbstractAsyncContextManager[AsyncTestClient[Litestar]]]


@asynccontextmanager
async def started_client(
    app: Litestar, *, wait_ready: bool = True
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as client:
        with anyio.fail_after(30):
            while wait_ready and (await client.get("/health")).status_code != 200:
                await anyio.sleep(0.02)
        yield client


@pytest.fixture
def client_for(model_path: Path, engine_pool: EnginePool) -> ClientFactory:
    """Build an app around the pool's engine for these settings (optionally wrapped)
    and a client once it is ready."""

    def factory(
        wrap: Callable[[Any], Any] | None = None, *, wait_ready: bool = True, **server: Any
    ) -> Any:
        settings = make_settings(model_path, **server)
        engine = engine_pool.lend(settings)
        app = create_app(settings, engine=engine if wrap is None else wrap(engine))
        return started_client(app, wait_ready=wait_ready)

    return factory


@pytest.fixture
async def client(client_for: ClientFactory) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with client_for() as c:
        yield c
