"""Reasoning a stateless client carries to its next turn: `encrypted_content`.

With `store: false` and `include: ["reasoning.encrypted_content"]` (what Codex sends),
a client keeps the conversation itself and sends the reasoning items back with the
next request, so that a model that calls tools keeps its thinking between the calls.
OpenAI encrypts the text because it does not show its models' thinking; this server
shows it (the item's `content`), so here the text is sealed rather than hidden: an
HMAC-SHA256 tag under the server's key proves it is the server's own, so a client
cannot slip text into the model's side of the conversation by editing it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib

__all__ = ("SEAL_PREFIX", "seal", "unseal")

SEAL_PREFIX = "llms1."
_TAG_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()
    return _b64(digest[:_TAG_BYTES])


def seal(text: str, key: bytes) -> str:
    """`text`, compressed, with its tag."""
    payload = _b64(zlib.compress(text.encode("utf-8")))
    return f"{SEAL_PREFIX}{payload}.{_tag(key, payload)}"


def unseal(token: str, key: bytes) -> str | None:
    """The text `seal` sealed under `key`; None for anything else (another key, an edit,
    not a token at all)."""
    if not token.isascii() or not token.startswith(SEAL_PREFIX):
        return None
    payload, _, tag = token[len(SEAL_PREFIX) :].partition(".")
    if not hmac.compare_digest(tag, _tag(key, payload)):
        return None
    try:
        return zlib.decompress(_unb64(payload)).decode("utf-8")
    except (ValueError, zlib.error):
        return None
