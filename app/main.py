"""`create_app(settings)`: the one place where the application is wired together.

The app is a value: no module globals, no cached settings. `litestar run` (and the
autodiscovery it does) calls `create_app()` with no arguments, which loads settings
from the environment and the optional TOML file.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType

import anyio
from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig

from app.access_log import AccessLog
from app.auth import api_key_guard, load_api_keys
from app.engine.base import Engine
from app.engine.batching import BatchingEngine, check_engine_settings, default_threads
from app.engine.cpu_turns import CpuTurns
from app.errors import EXCEPTION_HANDLERS
from app.metrics import Metrics
from app.models.registry import EngineFactory, ModelRouter
from app.routes import ADMIN_ROUTES, TOKEN_ROUTES, V1_ROUTES, health, metrics
from app.routes.page import chat_page_routes
from app.store import ResponseStore
from config.catalog import Catalog, CatalogModel, build_catalog
from config.loader import SettingsError, load_settings
from config.settings import Settings

__all__ = ("create_app",)

logger = logging.getLogger("llm_service")


def _engine_factory(settings: Settings) -> EngineFactory:
    """How the router builds the engine of a catalog model: its own settings, the
    server's queue bounds, the CPU turns shared by all."""

    def make(model: CatalogModel, turns: CpuTurns) -> Engine:
        return BatchingEngine(
            model.choice,
            model.settings.model,
            queue_size=settings.server.queue_size,
            queue_tokens=settings.server.queue_tokens,
            speculative=model.settings.speculative,
            turns=turns,
        )

    return make


def _check_models(catalog: Catalog) -> None:
    """Fail at start-up, naming the setting (and the entry), when a model's template or
    draft setting is unusable: engines are only made when a model first loads."""
    for model in catalog.models.values():
        try:
            check_engine_settings(model.settings.model, model.settings.speculative)
        except SettingsError as exc:
            if model.origin != "entry":
                raise
            raise SettingsError(f"Model {model.id!r} of models.entries: {exc}") from exc


async def _stop_if_loading_fails(models: ModelRouter) -> None:
    """A server without its default model is useless: stop it, as a bad setting would.

    The model loads in the background (so /health can say 503 meanwhile); when loading
    fails, interrupt the process the way Ctrl-C does, which uvicorn turns into a clean
    shutdown. `python -m app` then exits with status 1.
    """
    if await models.default_settled() == "failed":
        logger.critical("The default model could not be loaded; stopping the server")
        signal.raise_signal(signal.SIGINT)


def _drain_on_signals(models: ModelRouter, grace: float) -> Callable[[], None]:
    """Chain a drain of the engines in front of the server's SIGTERM/SIGINT handlers.

    uvicorn (as `python -m app` and `litestar run` start it) waits for open responses
    before it shuts the app down, but has no say over a generation that could run for
    minutes; draining first bounds that wait and ends each reply with a proper final
    chunk. The drain runs as an event-loop callback, not inside the signal handler,
    which may interrupt code holding the queue's lock. Only possible in the main
    thread (tests run servers in others). Returns a function that puts the previous
    handlers back.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def drain() -> None:
        logger.warning("Shutting down: new requests get 503; replies get %gs to finish", grace)
        models.drain(grace)

    def handler(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(drain)
        earlier = previous[signal.Signals(sig)]
        if callable(earlier):
            earlier(sig, frame)
        elif earlier == signal.SIG_DFL:  # no server handler: behave as without us
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, earlier in previous.items():
            if earlier is not None:
                signal.signal(sig, earlier)

    return restore


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> Litestar:
    """Build the app. The default model loads in the background once the server starts
    (/health answers 503 until it is ready), the others when a request names them;
    every engine is closed on shutdown. `engine`, if given, is the default model's."""
    settings = settings if settings is not None else load_settings()
    logging_config = LoggingConfig(
        root={"level": settings.server.log_level.upper(), "handlers": ["queue_listener"]},
        log_exceptions="never",  # app.errors logs what deserves it, once
    )
    keys = load_api_keys(settings.server)
    catalog = build_catalog(settings)  # fails at start-up, naming the bad setting
    _check_models(catalog)
    turns = CpuTurns.for_threads(settings.model.n_threads or default_threads())
    models = ModelRouter(
        settings, catalog, _engine_factory(settings), default_engine=engine, turns=turns
    )
    origins = settings.server.cors_origins
    collectors = Metrics(models)
    access_log = AccessLog(collectors)
    store = ResponseStore(settings.responses)
    guards = [api_key_guard(keys)] if keys else []

    @asynccontextmanager
    async def models_lifespan(_: Litestar) -> AsyncIterator[None]:
        await models.start()
        await anyio.to_thread.run_sync(store.open)
        watcher = asyncio.ensure_future(_stop_if_loading_fails(models))
        restore_signals = _drain_on_signals(models, settings.server.shutdown_grace)
        try:
            yield
        finally:
            watcher.cancel()
            await models.close()
            await anyio.to_thread.run_sync(store.close)  # SQLite may checkpoint: not on the loop
            restore_signals()

    page = chat_page_routes() if settings.server.chat_page else []
    return Litestar(
        route_handlers=[
            Router("/v1", route_handlers=list(V1_ROUTES), guards=guards),
            Router("/", route_handlers=[*TOKEN_ROUTES, *ADMIN_ROUTES], guards=guards),
            health,
            metrics,
            *page,
        ],
        middleware=[access_log.middleware],
        before_send=[access_log.before_send],
        cors_config=CORSConfig(
            allow_origins=list(origins),
            allow_headers=["*"],
            expose_headers=[
                "x-request-id",
                "openai-processing-ms",
                "retry-after",
                "llm-response-id",
                "llm-omitted-tools",
            ],
        )
        if origins
        else None,
        dependencies={
            "models": Provide(lambda: models, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "metrics": Provide(lambda: collectors, sync_to_thread=False),
            "store": Provide(lambda: store, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.limits.max_body_bytes,
        lifespan=[models_lifespan],
        logging_config=logging_config,
        openapi_config=OpenAPIConfig(title="LLM Service", version="0.1.0", path="/docs"),
        state=State({"models": models}),  # for diagnostics and tests; routes use DI
    )
