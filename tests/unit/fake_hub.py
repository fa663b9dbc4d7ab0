"""A stand-in for the Hugging Face Hub: a stdlib HTTP server on 127.0.0.1.

It implements the three requests scripts/download_model.py makes through
huggingface_hub 2.4.0 (`HfApi.list_repo_files`, `get_hf_file_metadata`, `http_get`):

    GET  /api/models/{repo}/tree/{revision}?recursive=True&expand=False   (the listing)
    HEAD /{repo}/resolve/{revision}/{filename}    (X-Repo-Commit, ETag, Content-Length)
    GET  /{repo}/resolve/{revision}/{filename}    (the bytes; honours `Range: bytes=N-`)

Errors carry the Hub's `X-Error-Code` header, from which huggingface_hub picks its
exception class. Every request is recorded, so that tests can check what was asked for.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "acme/tiny-GGUF"
"""The repository the tests use unless they say otherwise."""


@dataclass(frozen=True)
class Seen:
    """One request the stand-in received."""

    method: str
    path: str
    range: str | None = None


@dataclass
class FakeHub:
    """Repositories served, requests received, and connections to drop on purpose."""

    url: str = ""
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    stall_first_get_after: dict[str, int] = field(default_factory=dict)
    """File name -> bytes to send before the first GET of it stalls until `release`."""
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve_path(self, filename: str, repo: str = REPO) -> str:
        return f"/{repo}/resolve/main/{filename}"

    def tree_path(self, repo: str = REPO) -> str:
        return f"/api/models/{repo}/tree/main"


def etag(content: bytes) -> str:
    """What the Hub sends for an LFS file: its sha256."""
    return hashlib.sha256(content).hexdigest()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: FakeHub


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as huggingface_hub's client expects
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests assert on the recorded requests instead."""

    def do_HEAD(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        hub = self.server.hub
        path = unquote(urlsplit(self.path).path)
        with hub.lock:
            hub.requests.append(Seen(self.command, path, self.headers.get("Range")))
        if self.command == "GET" and (
            m := re.fullmatch(r"/api/models/(\w+/[\w-]+)/tree/(\w+)", path)
        ):
            self._tree(hub, m[1], m[2])
        elif m := re.fullmatch(r"/(\w+/[\w-]+)/resolve/(\w+)/(.+)", path):
            self._resolve(hub, m[1], m[2], m[3])
        else:
            self._error(404, "NotFound")

    def _error(self, status: int, code: str) -> None:
        body = json.dumps({"error": code}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _found(self, hub: FakeHub, repo: str, revision: str) -> bool:
        """Answer the Hub's 404 for an unknown repository or revision."""
        if repo not in hub.repos:
            self._error(404, "RepoNotFound")
            return False
        if revision not in ("main", COMMIT):
            self._error(404, "RevisionNotFound")
            return False
        return True

    def _tree(self, hub: FakeHub, repo: str, revision: str) -> None:
        if not self._found(hub, repo, revision):
            return
        entries = [
            {
                "type": "file",
                "path": name,
                "size": len(content),
                "oid": hashlib.sha1(content).hexdigest(),  # a git blob id; not for security
                "lfs": {"oid": etag(content), "size": len(content), "pointerSize": 134},
            }
            for name, content in hub.repos[repo].items()
        ]
        body = json.dumps(entries).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _resolve(self, hub: FakeHub, repo: str, revision: str, filename: str) -> None:
        if not self._found(hub, repo, revision):
            return
        content = hub.repos[repo].get(filename)
        if content is None:
            self._error(404, "EntryNotFound")
            return
        start = 0
        requested = self.headers.get("Range")
        if self.command == "GET" and requested:
            m = re.fullmatch(r"bytes=(\d+)-", requested)
            assert m, f"unexpected Range header {requested!r}"
            start = int(m[1])
            if start >= len(content):
                self._error(416, "RangeNotSatisfiable")
                return
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{etag(content)}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(content) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        self.end_headers()
        if self.command == "HEAD":
            return
        with hub.lock:
            cut = hub.stall_first_get_after.pop(filename, None)
        if cut is not None:
            # Part of the body, then silence: a connection that hangs (lost Wi-Fi, sleep).
            self.wfile.write(content[start:cut])
            self.wfile.flush()
            hub.release.wait(timeout=60)
            self.close_connection = True
            return
        self.wfile.write(content[start:])


@contextmanager
def serving(repos: dict[str, dict[str, bytes]]) -> Iterator[FakeHub]:
    """Run a FakeHub with these repositories (`{repo: {file name: content}}`)."""
    fake = FakeHub(repos=repos)
    server = _Server(("127.0.0.1", 0), _HubHandler)
    server.hub = fake
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-hub", daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
