"""The chat page at `/`, in a real browser, against a live server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PAGE_CONTEXT
from tests.conftest import EnginePool
from tests.e2e.conftest import LiveServer, serve

ANSWER = ".message.assistant"


def open_chat(page: Page, server: LiveServer, *, max_tokens: int = 24) -> None:
    page.goto(server.root + "/")
    expect(page.locator("#model")).to_have_text(server.engine.model_id)
    page.locator("#settings summary").click()
    page.fill("#max-tokens", str(max_tokens))
    page.fill("#temperature", "0")


def chat_requests(page: Page) -> list[Any]:
    """The bodies the page sends to /v1/chat/completions, as it sends them."""
    bodies: list[Any] = []
    page.on(
        "request",
        lambda request: (
            bodies.append(request.post_data_json)
            if request.url.endswith("/v1/chat/completions")
            else None
        ),
    )
    return bodies


def say(page: Page, text: str) -> None:
    page.fill("#input", text)
    page.click("#send")


def test_a_message_streams_a_reply_with_usage_and_speed(
    page: Page, page_server: LiveServer
) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    open_chat(page, page_server)
    say(page, "Say hello.")
    expect(page.locator(".message.user .content")).to_have_text("Say hello.")
    answer = page.locator(ANSWER).last
    expect(answer).to_have_attribute("data-state", "done")
    assert answer.locator(".content").inner_text().strip()
    usage = answer.locator(".usage").inner_text()
    assert "completion tokens" in usage
    assert "tokens/s" in usage
    # everything the page loads comes from this server: no CDN, works offline
    assert requests
    assert all(url.startswith(page_server.root + "/") for url in requests), requests


def test_text_appears_while_the_reply_is_still_streaming(
    page: Page, page_server: LiveServer
) -> None:
    open_chat(page, page_server, max_tokens=100)
    say(page, "Write a long story about a lighthouse keeper.")
    answer = page.locator(ANSWER).last
    expect(answer.locator(".content")).not_to_be_empty()
    assert answer.get_attribute("data-state") == "streaming"
    expect(answer).to_have_attribute("data-state", "done", timeout=60_000)


def test_stop_ends_the_reply_in_the_page_and_on_the_server(
    page: Page, page_server: LiveServer
) -> None:
    engine = page_server.engine
    open_chat(page, page_server, max_tokens=2000)
    say(page, "Write a very long story about the sea, with many chapters.")
    answer = page.locator(ANSWER).last
    expect(answer.locator(".content")).not_to_be_empty()
    expect(page.locator("#stop")).to_be_enabled()
    page.click("#stop")
    expect(answer).to_have_attribute("data-state", "stopped")
    expect(page.locator("#send")).to_be_enabled()
    deadline = time.monotonic() + 10
    while engine.active() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.active() == 0
    assert engine.records[-1].outcome == "cancelled"
    text = answer.locator(".content").inner_text()
    time.sleep(0.5)
    assert answer.locator(".content").inner_text() == text  # nothing more arrives


def test_a_reload_starts_an_empty_chat(page: Page, page_server: LiveServer) -> None:
    open_chat(page, page_server, max_tokens=4)
    say(page, "Hi")
    expect(page.locator(ANSWER).last).to_have_attribute("data-state", "done")
    page.reload()
    expect(page.locator("#model")).to_have_text(page_server.engine.model_id)
    expect(page.locator(".message")).to_have_count(0)


def test_the_conversation_is_sent_whole_and_the_system_prompt_used(
    page: Page, page_server: LiveServer
) -> None:
    bodies = chat_requests(page)
    open_chat(page, page_server, max_tokens=4)
    page.fill("#system", "You are terse.")
    for text in ("First question", "Second question"):
        say(page, text)
        expect(page.locator(ANSWER).last).to_have_attribute("data-state", "done")
    roles = [m["role"] for m in bodies[-1]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert bodies[-1]["messages"][0]["content"] == "You are terse."
    assert bodies[-1]["max_tokens"] == 4
    assert bodies[-1]["temperature"] == 0


def test_context_length_errors_are_shown_and_trimming_recovers(
    page: Page, page_server: LiveServer
) -> None:
    open_chat(page, page_server, max_tokens=4)
    say(page, "word " * 150)
    expect(page.locator(ANSWER).last).to_have_attribute("data-state", "done")
    say(page, "more " * 120)  # with the first turn, past the 256-token context
    failed = page.locator(ANSWER).last
    expect(failed).to_have_attribute("data-state", "error")
    expect(failed.locator(".error-text")).to_contain_text("maximum context length")
    page.locator(".trim").click()
    answer = page.locator(ANSWER).last
    expect(answer).to_have_attribute("data-state", "done")
    expect(page.locator(".error")).to_have_count(0)


def test_enter_that_confirms_an_input_method_candidate_does_not_send(
    page: Page, page_server: LiveServer
) -> None:
    open_chat(page, page_server)
    page.fill("#input", "ni hao")
    page.evaluate(
        """() => document.getElementById("input").dispatchEvent(new KeyboardEvent(
            "keydown", {key: "Enter", isComposing: true, bubbles: true, cancelable: true}))"""
    )
    page.wait_for_timeout(300)
    expect(page.locator(".message")).to_have_count(0)
    expect(page.locator("#input")).to_have_value("ni hao")
    page.press("#input", "Enter")  # a plain Enter sends
    expect(page.locator(".message.user")).to_have_count(1)


def test_a_refused_request_gives_the_message_back_and_leaves_no_turn(
    page: Page, page_server: LiveServer
) -> None:
    bodies = chat_requests(page)
    open_chat(page, page_server, max_tokens=4)
    page.fill("#temperature", "5")  # out of range: the server answers 400
    say(page, "Too hot")
    expect(page.locator(".message .error-text")).to_contain_text("temperature")
    expect(page.locator("#input")).to_have_value("Too hot")
    expect(page.locator(".message.user")).to_have_count(0)
    page.fill("#temperature", "0")
    page.click("#send")
    expect(page.locator(ANSWER).last).to_have_attribute("data-state", "done")
    expect(page.locator(".error")).to_have_count(0)
    assert [m["role"] for m in bodies[-1]["messages"]] == ["user"]


def test_new_chat_during_a_reply_forgets_it(page: Page, page_server: LiveServer) -> None:
    bodies = chat_requests(page)
    open_chat(page, page_server, max_tokens=500)
    say(page, "Write a long story about a river.")
    expect(page.locator(ANSWER).last.locator(".content")).not_to_be_empty()
    page.click("#clear")
    expect(page.locator(".message")).to_have_count(0)
    expect(page.locator("#send")).to_be_enabled()
    page.fill("#max-tokens", "4")
    say(page, "Hi")
    expect(page.locator(ANSWER).last).to_have_attribute("data-state", "done")
    assert [m["role"] for m in bodies[-1]["messages"]] == ["user"]


@pytest.fixture(scope="module")
def keyed_server(engine_pool: EnginePool, model_path: Path) -> Iterator[LiveServer]:
    yield from serve(
        engine_pool, model_path, api_keys=["page-secret"], model={"n_ctx": PAGE_CONTEXT}
    )


def test_with_api_keys_the_page_asks_for_one(page: Page, keyed_server: LiveServer) -> None:
    page.goto(keyed_server.root + "/")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    page.fill("#key-input", "wrong")
    page.click("#key-save")
    expect(page.locator("#key-error")).to_be_visible()
    page.fill("#key-input", "page-secret")
    page.click("#key-save")
    expect(page.locator("#model")).to_have_text(keyed_server.engine.model_id)
    page.reload()  # the key is kept for the tab's session
    expect(page.locator("#model")).to_have_text(keyed_server.engine.model_id)
    expect(dialog).to_be_hidden()
    page.locator("#settings summary").click()
    page.fill("#max-tokens", "4")
    say(page, "Hi")
    expect(page.locator(ANSWER).last).to_have_attribute("data-state", "done")


def test_dismissing_the_key_dialog_says_a_key_is_needed(
    page: Page, keyed_server: LiveServer
) -> None:
    page.goto(keyed_server.root + "/")
    expect(page.locator("#key-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#model")).to_have_text("This server needs an API key.")
    expect(page.locator("#key-dialog")).to_be_hidden()


def test_the_page_can_be_turned_off(engine_pool: EnginePool, model_path: Path) -> None:
    for root in serve(engine_pool, model_path, chat_page=False):
        assert httpx.get(root.root + "/").status_code == 404
        assert httpx.head(root.root + "/").status_code == 404
        assert httpx.get(root.root + "/static/chat.js").status_code == 404
