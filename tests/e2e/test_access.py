"""API keys as the openai SDK sees them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import EnginePool
from tests.e2e.conftest import LiveServer, serve


@pytest.fixture(scope="module")
def guarded(engine_pool: EnginePool, model_path: Path) -> Iterator[LiveServer]:
    yield from serve(engine_pool, model_path, api_keys=["team-key"])


def test_a_wrong_key_raises_the_sdks_authentication_error(guarded: LiveServer) -> None:
    client = openai.OpenAI(base_url=guarded.base_url, api_key="wrong", max_retries=0)
    with client, pytest.raises(openai.AuthenticationError) as caught:
        client.models.list()
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"


def test_the_right_key_works(guarded: LiveServer) -> None:
    client = openai.OpenAI(base_url=guarded.base_url, api_key="team-key", max_retries=0)
    with client:
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
        )
    assert reply.usage is not None
    assert reply.usage.completion_tokens >= 1
