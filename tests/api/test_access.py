"""API keys and CORS, in-process against the real app."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.auth import load_api_keys, warn_if_exposed
from config.loader import SettingsError
from config.settings import ServerSettings
from tests.api.conftest import ClientFactory

KEYS = ["first-key", "second-key"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "first-key"},
        {"Authorization": "Basic first-key"},
    ],
)
async def test_v1_without_a_configured_key_is_401_in_the_envelope(
    client_for: ClientFactory, headers: dict[str, str]
) -> None:
    async with client_for(api_keys=KEYS) as client:
        response = await client.get("/v1/models", headers=headers)
        assert response.status_code == 401
        assert response.json() == {
            "error": {
                "message": response.json()["error"]["message"],
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
        body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
        assert (
            await client.post("/v1/chat/completions", json=body, headers=headers)
        ).status_code == 401


async def test_any_configured_key_opens_v1_and_health_needs_none(
    client_for: ClientFactory, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys.txt"
    key_file.write_text("# team keys\nfile-key\n\n")
    async with client_for(api_keys=KEYS, api_key_file=str(key_file)) as client:
        for key in [*KEYS, "file-key"]:
            response = await client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, key
        assert (await client.get("/health")).status_code == 200
        # clients check the server answers before their first request (Claude Code)
        reached = await client.head("/")
        assert (reached.status_code, reached.content) == (200, b"")
        commented = await client.get("/v1/models", headers={"Authorization": "Bearer # team keys"})
        assert commented.status_code == 401


async def test_without_keys_any_key_works(client_for: ClientFactory) -> None:
    async with client_for() as client:
        response = await client.get("/v1/models", headers={"Authorization": "Bearer anything"})
        assert response.status_code == 200


async def test_cors_is_off_by_default_and_allows_configured_origins(
    client_for: ClientFactory,
) -> None:
    preflight = {
        "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with client_for() as client:
        response = await client.options("/v1/chat/completions", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    async with client_for(cors_origins=["http://localhost:3000"], api_keys=KEYS) as client:
        response = await client.options("/v1/chat/completions", headers=preflight)
        assert response.status_code in (200, 204)
        assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
        seen = await client.get("/health", headers={"Origin": "http://localhost:3000"})
        assert "x-request-id" in seen.headers["access-control-expose-headers"]
        other = await client.get("/health", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("host", "keys", "warned"),
    [
        ("0.0.0.0", (), True),
        ("192.168.1.5", (), True),
        ("0.0.0.0", (b"k",), False),
        ("127.0.0.1", (), False),
        ("::1", (), False),
        ("localhost", (), False),
    ],
)
def test_an_open_network_address_without_keys_is_warned_about(
    caplog: pytest.LogCaptureFixture, host: str, keys: tuple[bytes, ...], warned: bool
) -> None:
    logger = logging.getLogger("llm_service")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="llm_service"):
            warn_if_exposed(host, keys)
    finally:
        logger.removeHandler(caplog.handler)
    assert ("without API keys" in caplog.text) is warned


def test_an_empty_key_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match=r"server\.api_keys"):
        load_api_keys(ServerSettings(api_keys=["good", " "]))
