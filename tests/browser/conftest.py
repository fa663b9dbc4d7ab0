"""Browser tests: Debian's headless Chromium driven by Playwright against a live server.

A missing browser fails these tests (loudly, with how to install it) rather than
skipping them: `scripts/dev.py test` installs it where it can (Debian/Ubuntu as root).
On failure, a screenshot of the page is saved in `test-output/browser/`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import EnginePool
from tests.e2e.conftest import LiveServer, serve

CHROMIUM = os.environ.get("LLM_SERVICE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"
# Chromium's own background traffic (updates, sync, QUIC probes) only fails offline.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module-scoped: Playwright's sync API holds an event loop on this thread while it
    runs, which the asyncio tests that come after must not find."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the browser tests need it "
            "(`apt-get install chromium`, or set LLM_SERVICE_CHROMIUM to its path)."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's page, as it was, saved and named in the failure report."""
    report: pytest.TestReport = yield  # type: ignore[misc]
    page = getattr(item, "funcargs", {}).get("page")
    if report.when == "call" and report.failed and page is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / (re.sub(r"[^\w.-]", "_", item.name) + ".png")
        page.screenshot(path=str(shot), full_page=True)
        report.sections.append(("screenshot", f"the page at the failure: {shot}"))
    return report  # type: ignore[return-value]


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)  # a 2-core machine may be busy with other tests
    yield page
    context.close()


PAGE_CONTEXT = 256
"""The page's server's context: small, so filling it takes few tokens to read."""


@pytest.fixture(scope="module")
def page_server(engine_pool: EnginePool, model_path: Path) -> Iterator[LiveServer]:
    yield from serve(engine_pool, model_path, model={"n_ctx": PAGE_CONTEXT})
