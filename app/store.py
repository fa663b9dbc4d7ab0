"""Stored responses (the Responses API's `store`), in an embedded SQLite database.

OpenAI keeps responses (30 days by default) so that a client can continue a
conversation with `previous_response_id` instead of resending it, and read or delete
them. Here they live in one SQLite file under `responses.dir`, which survives
restarts. SQLite is in Python's standard library and does what this needs: each save
is one transaction (a crash loses at most the response being written), and with its
write-ahead log several threads, or several server processes sharing the file, can
write at once (writers wait for each other, `busy_timeout`).

A response row holds the response as served (JSON) and a link to the previous one;
its input and output items are rows of their own, so `input_items` pages through
them and `item_reference` finds one by id. Bounded: rows older than `responses.ttl`
are neither read nor kept, and past `responses.max_bytes` the oldest go first. The
store knows nothing of API keys: any client that may call the API may read any stored
response by its id (README).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from config.settings import ResponseStoreSettings
from conversion.errors import InvalidRequestError, NotFoundError

__all__ = ("ResponseStore", "StoredResponse")

logger = logging.getLogger("llm_service.store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    previous_id TEXT,
    body TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_by_age ON responses (created_at);
CREATE TABLE IF NOT EXISTS items (
    response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    side TEXT NOT NULL CHECK (side IN ('input', 'output')),
    position INTEGER NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (response_id, side, position)
);
CREATE INDEX IF NOT EXISTS items_by_id ON items (id);
"""
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    body: bytes
    """The response as served, JSON."""
    previous_id: str | None


class ResponseStore:
    """Thread-safe; `open()` before use (the app's lifespan does), `close()` after.
    With `responses.store = false` it keeps nothing and finds nothing."""

    def __init__(self, settings: ResponseStoreSettings) -> None:
        self.enabled = settings.store
        self.path = Path(settings.dir) / "responses.sqlite3"
        self._ttl = settings.ttl
        self._max_bytes = settings.max_bytes
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.seal_key = b""
        """The key that seals reasoning for stateless clients (`open()` reads it)."""

    def open(self) -> None:
        if not self.seal_key:  # a store that is off writes nothing: a key for this process
            key_file = self.path.parent / "reasoning.key"
            self.seal_key = _seal_key(key_file) if self.enabled else secrets.token_bytes(32)
        if not self.enabled or self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        db.executescript(_SCHEMA)
        self._db = db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction; a writing one takes SQLite's write lock at once, so two
        writers queue instead of failing halfway."""
        with self._lock:
            if self._db is None:
                raise RuntimeError("the response store is not open")
            self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _oldest_kept(self) -> float:
        return time.time() - self._ttl

    # --- writing --------------------------------------------------------------------

    def save(self, response: Any, input_items: list[dict[str, Any]]) -> None:
        """Store a finished response (a `Response` Struct) and the items of its input;
        then drop what is expired or over the size bound. Blocking."""
        if not self.enabled:
            return
        body = _encoder.encode(response).decode()
        rows = [
            ("input", index, item.get("id", ""), json.dumps(item, ensure_ascii=False))
            for index, item in enumerate(input_items)
        ]
        rows += [
            ("output", index, item["id"], json.dumps(item, ensure_ascii=False))
            for index, item in enumerate(json.loads(body)["output"])
        ]
        size = len(body) + sum(len(row[3]) for row in rows)
        with self._transaction(write=True) as db:
            db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                (response.id, time.time(), response.previous_response_id, body, size),
            )
            db.executemany(
                "INSERT INTO items VALUES (?, ?, ?, ?, ?)",
                [(response.id, *row) for row in rows],
            )
            self._prune(db)

    def _prune(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM responses WHERE created_at < ?", (self._oldest_kept(),))
        (total,) = db.execute("SELECT COALESCE(SUM(size), 0) FROM responses").fetchone()
        if total <= self._max_bytes:
            return
        dropped = 0
        for row_id, size in db.execute(
            "SELECT id, size FROM responses ORDER BY created_at"
        ).fetchall():
            if total - dropped <= self._max_bytes:
                break
            db.execute("DELETE FROM responses WHERE id = ?", (row_id,))
            dropped += size

    def delete(self, response_id: str) -> None:
        """Delete a stored response (its items go with it); the 404 OpenAI answers for
        an unknown id, as `require` does."""
        gone = 0
        if self.enabled:
            with self._transaction(write=True) as db:
                gone = db.execute(
                    "DELETE FROM responses WHERE id = ? AND created_at >= ?",
                    (response_id, self._oldest_kept()),
                ).rowcount
        if not gone:
            raise _not_found(response_id)

    # --- reading --------------------------------------------------------------------

    def get(self, response_id: str) -> StoredResponse | None:
        if not self.enabled:
            return None
        with self._transaction() as db:
            row = db.execute(
                "SELECT body, previous_id FROM responses WHERE id = ? AND created_at >= ?",
                (response_id, self._oldest_kept()),
            ).fetchone()
        return None if row is None else StoredResponse(response_id, row[0].encode(), row[1])

    def require(self, response_id: str) -> StoredResponse:
        """`get`, or the 404 OpenAI answers for an unknown id."""
        found = self.get(response_id)
        if found is None:
            raise _not_found(response_id)
        return found

    def item(self, item_id: str) -> dict[str, Any] | None:
        """A stored input or output item by its id (the latest, if resent)."""
        if not self.enabled:
            return None
        with self._transaction() as db:
            row = db.execute(
                "SELECT items.body FROM items JOIN responses ON responses.id = response_id "
                "WHERE items.id = ? AND created_at >= ? ORDER BY created_at DESC LIMIT 1",
                (item_id, self._oldest_kept()),
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def _items(self, db: sqlite3.Connection, response_id: str, side: str) -> list[dict[str, Any]]:
        rows = db.execute(
            "SELECT body FROM items WHERE response_id = ? AND side = ? ORDER BY position",
            (response_id, side),
        ).fetchall()
        return [dict(json.loads(body)) for (body,) in rows]

    def history(self, response_id: str) -> list[dict[str, Any]]:
        """The conversation up to and including a response: for each response of its
        `previous_response_id` chain, oldest first, its input items then its output.
        A 400 naming `previous_response_id` when it, or a link of its chain, is gone."""
        if not self.enabled:
            raise InvalidRequestError(
                "This server does not store responses (responses.store = false); send "
                "the whole conversation as `input`.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        chain: list[list[dict[str, Any]]] = []
        wanted: str | None = response_id
        with self._transaction() as db:
            while wanted is not None:
                row = db.execute(
                    "SELECT previous_id FROM responses WHERE id = ? AND created_at >= ?",
                    (wanted, self._oldest_kept()),
                ).fetchone()
                if row is None:
                    detail = "" if wanted == response_id else f" (its chain needs '{wanted}')"
                    raise InvalidRequestError(
                        f"Previous response with id '{response_id}' not found{detail}.",
                        param="previous_response_id",
                        code="previous_response_not_found",
                    )
                chain.append(self._items(db, wanted, "input") + self._items(db, wanted, "output"))
                wanted = row[0]
        return [item for items in reversed(chain) for item in items]

    def input_items(
        self,
        response_id: str,
        *,
        after: str | None,
        limit: int,
        order: Literal["asc", "desc"],
    ) -> tuple[list[dict[str, Any]], bool]:
        """A page of a response's input items, and whether more follow."""
        self.require(response_id)
        with self._transaction() as db:
            items = self._items(db, response_id, "input")
        if order == "desc":
            items.reverse()
        if after is not None:
            ids = [item.get("id") for item in items]
            if after not in ids:
                raise InvalidRequestError(f"No input item has the id '{after}'.", param="after")
            items = items[ids.index(after) + 1 :]
        return items[:limit], len(items) > limit


def _seal_key(path: Path) -> bytes:
    """The server's sealing key, kept beside the store so that reasoning sealed before a
    restart (or by another replica sharing the folder) still opens; made on first use.
    A folder that cannot be written gives a key for this process only."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("Cannot read %s (%s): sealed reasoning lasts until a restart", path, exc)
        return secrets.token_bytes(32)
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        made = path.with_name(f"{path.name}.{secrets.token_hex(4)}")
        made.write_bytes(key)
        made.chmod(0o600)
        try:  # whole or not at all, and never over another process's key: first wins
            os.link(made, path)
        finally:
            made.unlink()
    except FileExistsError:
        return path.read_bytes()
    except OSError as exc:
        logger.warning("Cannot write %s (%s): sealed reasoning lasts until a restart", path, exc)
    return key


def _not_found(response_id: str) -> NotFoundError:
    return NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")
