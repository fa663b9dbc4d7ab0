"""The policy for request fields this server does not know: tolerated, logged.

Clients send fields newer than this server (the SDKs add them every few weeks), and
refusing them would break a client that changed nothing but its version; the request
Structs ignore them (`conversion.wire.WireRequest`), and a route says so here, at
debug level, so an operator can see what is not honoured.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request

__all__ = ("log_unknown_fields",)

logger = logging.getLogger("llm_service.requests")
_field_names = msgspec.json.Decoder(dict[str, msgspec.Raw])


async def log_unknown_fields(request: Request[Any, Any, Any], known: frozenset[str]) -> None:
    """Log the body's top-level fields outside `known` (only when debug is on)."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    unknown = sorted(set(_field_names.decode(await request.body())) - known)
    if unknown:
        logger.debug("Ignoring unknown request fields: %s", ", ".join(unknown))
