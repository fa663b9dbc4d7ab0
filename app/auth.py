"""Optional API keys for /v1, and the warning for an open server on a network address.

With no keys configured any `api_key` works, as clients written for OpenAI always send
one. With keys, /v1 needs `Authorization: Bearer <key>` or `x-api-key: <key>` (what the
Anthropic SDKs and Claude Code send), on every protocol; /health stays open for load
balancers. Keys are compared in constant time and never logged. A request's key
(hashed) is its owner in the queue (`request_owner`), which shares its places and
slots fairly between keys.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from pathlib import Path
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from config.loader import SettingsError
from config.settings import ServerSettings
from conversion.errors import AuthenticationError

__all__ = ("api_key_guard", "load_api_keys", "request_owner", "warn_if_exposed")

OWNER_STATE = "llm_owner"

logger = logging.getLogger("llm_service")


def load_api_keys(server: ServerSettings) -> tuple[bytes, ...]:
    """`server.api_keys` plus the keys in `server.api_key_file`, as bytes."""
    keys = [key.strip() for key in server.api_keys]
    if "" in keys:  # an empty key would let in a bare `Authorization: Bearer`
        raise SettingsError("Invalid setting server.api_keys: a key is empty")
    if server.api_key_file is not None:
        try:
            lines = Path(server.api_key_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"Invalid setting server.api_key_file: {exc}") from exc
        keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return tuple(key.encode("utf-8") for key in keys)


def _is_known(candidate: bytes, keys: tuple[bytes, ...]) -> bool:
    """Compare with every key, in constant time each: timing tells nothing about which
    key, or how much of one, matched."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(candidate, key)
    return found


def api_key_guard(keys: tuple[bytes, ...]) -> Guard:
    """A route guard that lets through requests carrying one of `keys`."""

    def require_api_key(
        connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
    ) -> None:
        scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
        # headers arrive decoded as latin-1: encoding back gives the bytes the client sent
        bearer = token.strip().encode("latin-1") if scheme.lower() == "bearer" else None
        header = connection.headers.get("x-api-key")
        offered = [bearer, header.strip().encode("latin-1") if header is not None else None]
        known = [key for key in offered if key is not None and _is_known(key, keys)]
        if known:  # the queue shares its places and slots fairly between keys
            connection.state[OWNER_STATE] = hashlib.sha256(known[0]).hexdigest()[:16]
        else:
            raise AuthenticationError(
                "Invalid or missing API key. Send one of the server's keys as "
                "`Authorization: Bearer <key>` (the OpenAI SDK's `api_key`) or as "
                "`x-api-key: <key>` (the Anthropic SDK's)."
            )

    return require_api_key


def request_owner(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """Whose request this is, for the queue: its API key (hashed), when keys are set."""
    owner = connection.state.get(OWNER_STATE)
    return owner if isinstance(owner, str) else None


def warn_if_exposed(host: str, keys: tuple[bytes, ...]) -> None:
    """Serving beyond this machine without keys lets anyone on the network use it."""
    if keys:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        logger.warning(
            "Listening on %s without API keys: anyone who can reach this address can use "
            "the model. Set server.api_keys (or LLM_SERVICE_API_KEYS) to require a key.",
            host,
        )
