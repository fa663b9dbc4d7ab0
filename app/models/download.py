"""Resumable GGUF downloads from the Hugging Face Hub, shared by the CLI and the server.

`scripts/download_model.py` and `POST /models/pull` (through `app.models.pull`) fetch the
same files to the same place, `<dir>/<owner>/<name>/<file>`, where
`config.model_source.find_downloaded` finds them; so the choice of files, the download and
the wording of failures live here once.

Downloads resume, also across runs and server restarts: a file is written to
`<dir>/<owner>/<name>/.cache/llm-service/<file>.<etag>.part`, which an interrupted download
(Ctrl-C, a client that hung up, a lost connection, a sleeping laptop) leaves behind and the
next one continues with an HTTP Range request. `hf_hub_download` cannot do this:
huggingface_hub 2.x downloads to a temporary name unique to the process and deletes it
when the download fails.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.file_download import HfFileMetadata, http_get

# Exported by `huggingface_hub.utils`, but by a lazy `__init__` that mypy does not read as
# a re-export.
from huggingface_hub.utils import WeakFileLock, build_hf_headers  # type: ignore[attr-defined]
from huggingface_hub.utils.tqdm import tqdm as hf_tqdm

from config.catalog import SPLIT_NAME, model_files
from config.model_source import matches

__all__ = (
    "EXPECTED_ERRORS",
    "DownloadError",
    "Failure",
    "choose_files",
    "explain",
    "fetch",
    "is_whole_model",
    "list_files",
    "split_parts",
)

log = logging.getLogger("llm_service.download")

Progress = Callable[[str, int, int], None]
"""`on_progress(file_name, done_bytes, total_bytes)`; it may raise to stop the download."""


SHA256 = re.compile(r"[0-9a-f]{64}")
"""The Hub's ETag of an LFS file (every GGUF is one) is the sha256 of its content."""

PARTIAL_FOLDER = PurePosixPath(".cache", "llm-service")
"""Where partial downloads wait for the next run, inside the repository's download folder.

Under `.cache` like huggingface_hub's own files: `find_downloaded` only looks at `*.gguf`.
"""

HTTP_ERRORS: tuple[type[Exception], ...] = tuple(
    base
    for base in HfHubHTTPError.__mro__
    if issubclass(base, Exception) and base not in (HfHubHTTPError, Exception)
)
"""OSError plus the base error of the HTTP client huggingface_hub is built on (httpx2 in
2.x, whose connection errors are not OSErrors), taken from HfHubHTTPError's bases so that
we do not import, and pin, a client library that is only a dependency of a dependency."""


class DownloadError(Exception):
    """A failure this module explains itself, in one line; `code` names it for APIs."""

    def __init__(self, message: str, *, code: str = "download_failed") -> None:
        super().__init__(message)
        self.code = code


EXPECTED_ERRORS: tuple[type[Exception], ...] = (DownloadError, *HTTP_ERRORS)
"""What `explain` words: the failures a download may end in that are not bugs."""


@dataclass(frozen=True)
class Failure:
    """An expected failure, worded for people (`message`) and for programs (`type`, `code`,
    OpenAI's error vocabulary: the server sends it in-band, the CLI prints `message`)."""

    message: str
    type: str
    code: str


def one_line(exc: BaseException) -> str:
    """The error and its causes on one line: huggingface_hub's messages span several."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 4:
        text = " ".join(str(current).split())
        parts.append(f"{type(current).__name__}: {text}" if text else type(current).__name__)
        current = current.__cause__
    return " (caused by ".join(parts) + ")" * (len(parts) - 1)


_CLIENT_CODES = frozenset({"file_not_found", "incomplete_split"})
"""DownloadError codes about what was asked for rather than about the download."""


def explain(exc: BaseException, repo: str, endpoint: str) -> Failure | None:
    """Word an expected failure of downloading from `repo`; None for anything else (a bug).

    Subclasses first: a gated repository is a RepositoryNotFoundError, both are HTTP errors.
    """
    if isinstance(exc, DownloadError):
        kind = "invalid_request_error" if exc.code in _CLIENT_CODES else "server_error"
        return Failure(f"{repo}: {exc}", kind, exc.code)
    if isinstance(exc, GatedRepoError):
        return Failure(
            f"{repo} is gated on {endpoint}: accept its terms on the Hub, then log in "
            "(`hf auth login`) or set HF_TOKEN",
            "invalid_request_error",
            "repo_gated",
        )
    if isinstance(exc, RepositoryNotFoundError):
        return Failure(
            f"repository {repo} not found on {endpoint} (if it is private, log in with "
            "`hf auth login` or set HF_TOKEN)",
            "invalid_request_error",
            "repo_not_found",
        )
    if isinstance(exc, HTTP_ERRORS):
        return Failure(
            f"downloading {repo} from {endpoint} failed: {one_line(exc)}",
            "server_error",
            "download_failed",
        )
    return None


def split_parts(name: str) -> list[str] | None:
    """All file names of the split set `name` belongs to, in order; None if not split."""
    found = SPLIT_NAME.fullmatch(name)
    if found is None:
        return None
    total = found["total"]
    return [f"{found['stem']}-{i:05d}-of-{total}.gguf" for i in range(1, int(total) + 1)]


def is_whole_model(path: Path) -> bool:
    """False for one part of a split model whose other parts are not (all) there yet.

    `find_downloaded` returns the first matching file; after an interrupted download of a
    split model that is part 1 alone, which llama.cpp cannot load.
    """
    return all(part.is_file() for part in model_files(path))


def list_files(repo: str, *, endpoint: str | None = None) -> list[str]:
    """Every file path in `repo` on the Hub at `endpoint` (default: HF_ENDPOINT)."""
    return HfApi(endpoint=endpoint or constants.ENDPOINT).list_repo_files(repo)


def choose_files(repo_files: Iterable[str], pattern: str) -> tuple[list[str], list[str]]:
    """Pick the repository files to download for `pattern`.

    Returns the chosen model's files (all parts of a split set, first part first) and the
    first file of every other matching model, so that the caller can say what it skipped.
    Only `.gguf` files count, as those are all the server looks for; the pattern is matched
    against the file name like `find_downloaded` does, so what is downloaded here is what
    the server then finds.
    """
    files = set(repo_files)
    ggufs = sorted(f for f in files if f.endswith(".gguf"))
    candidates: dict[str, list[str]] = {}
    for path in ggufs:
        name = PurePosixPath(path).name
        if not matches(name, pattern):
            continue
        parts = split_parts(name)
        group = [str(PurePosixPath(path).with_name(p)) for p in parts] if parts else [path]
        candidates.setdefault(group[0], group)
    if not candidates:
        available = ", ".join(ggufs) if ggufs else "none"
        raise DownloadError(
            f"no .gguf file matches {pattern!r}; .gguf files there: {available}",
            code="file_not_found",
        )
    first, *others = sorted(candidates)
    chosen = candidates[first]
    missing = [f for f in chosen if f not in files]
    if missing:
        raise DownloadError(
            f"split model {first} is incomplete: missing {', '.join(missing)}",
            code="incomplete_split",
        )
    return chosen, others


def _partial_path(local_dir: Path, name: str, etag: str) -> Path:
    """The partial file of repository file `name` at version `etag`.

    Named after the ETag so that a partial download of an older version of the file is
    never continued with the bytes of a newer one.
    """
    return local_dir / PARTIAL_FOLDER / f"{name}.{etag}.part"


def _remove_leftovers(local_dir: Path, name: str, etag: str) -> None:
    """Delete partial downloads of `name` that cannot be continued, to free their space.

    That is our partials of other versions of the file, and the temporary files that
    huggingface_hub's own download (`hf_hub_download`, used by earlier versions of the
    download script) leaves behind when the process is killed:
    `<hash>.<etag>.<id>.incomplete`, unique to the process that wrote it, so never reused.
    """
    partial = _partial_path(local_dir, name, etag)
    own = re.compile(re.escape(PurePosixPath(name).name) + r"\.[^.]+\.part")
    for path in partial.parent.glob("*.part"):
        if path != partial and own.fullmatch(path.name):
            path.unlink(missing_ok=True)
    hf_temp = local_dir / ".cache" / "huggingface" / "download" / PurePosixPath(name).parent
    for path in hf_temp.glob(f"*.{etag}.*.incomplete"):
        path.unlink(missing_ok=True)


def _check(partial: Path, name: str, metadata: HfFileMetadata) -> None:
    """Raise DownloadError, deleting `partial`, unless it is the file the Hub described.

    The size is always compared; the content too when the ETag is a sha256 (LFS files).
    This is what makes appending to a partial file from an earlier run safe: a partial
    whose bytes went wrong (a bad disk, a writer that was not us) is caught here, once,
    and removed so that the next download starts that file over.
    """
    size = partial.stat().st_size
    problem = None
    if size != metadata.size:
        problem = f"has {size} bytes instead of {metadata.size}"
    elif metadata.etag is not None and SHA256.fullmatch(metadata.etag):
        log.info("Checking the sha256 of %s", name)
        with partial.open("rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
        if digest != metadata.etag:
            problem = f"has sha256 {digest} instead of {metadata.etag}"
    if problem is not None:
        partial.unlink()
        raise DownloadError(
            f"the download of {name} {problem}; it was deleted, so run again to start it over",
            code="checksum_mismatch",
        )


def _reporting_bar(name: str, total: int, on_progress: Progress) -> type[hf_tqdm]:
    """A silent tqdm class for `http_get` that passes every chunk on to `on_progress`.

    `http_get` calls the bar's `update` once per chunk received (DOWNLOAD_CHUNK_SIZE, 10
    MiB), just before writing it, so an exception raised by `on_progress` stops the
    download with the file holding exactly the bytes reported before. The count is kept
    here because a disabled tqdm does not count; it follows `http_get`'s negative update
    when a server answers a Range request with the whole file.
    """

    class ReportingBar(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True  # whoever takes the progress shows it
            self.reported = int(kwargs.get("initial") or 0)
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

        def update(self, n: float | None = 1) -> bool | None:
            self.reported += int(n or 0)
            on_progress(name, self.reported, total)
            return super().update(n)  # type: ignore[no-any-return]

    return ReportingBar


def fetch(
    repo: str,
    name: str,
    local_dir: Path,
    *,
    endpoint: str | None = None,
    on_progress: Progress | None = None,
    on_verify: Callable[[str], None] | None = None,
) -> Path:
    """Download repository file `name` to `local_dir / name`, continuing a partial download.

    The Hub's metadata (a HEAD request) gives the ETag that names the partial file, the
    size and the final location after redirects (a CDN for large files, where the token
    must not go). huggingface_hub's `http_get` then appends to the partial file from its
    size on (`Range: bytes=N-`) and, within the run, reconnects when the connection drops.
    The complete file is checked (`_check`) and only then renamed to its final name, so
    that `find_downloaded` never sees a truncated `.gguf`.

    Without `on_progress`, `http_get` draws its terminal progress bar. With it, nothing is
    drawn; it is called once before any byte is asked for (with the size of the partial
    file, or the whole size when the file is already there) and then as chunks arrive.
    Whatever it raises stops the download, leaving a partial that the next call continues.
    `on_verify(name)` is called when all bytes are there, before the size/sha256 check.

    Files stored with Xet are fetched like this too, over plain HTTP (what huggingface_hub
    itself does when `hf_xet` is not installed): `xet_get` has no way to resume, and
    `hf_hub_download` deletes its partial file. Only Xet files larger than
    `MAX_HTTP_DOWNLOAD_SIZE` (50 GB), which the Hub does not serve over plain HTTP, go
    through `hf_hub_download`, and so start over when interrupted (and report no progress).
    """
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts:  # the Hub never lists such names
        raise DownloadError(f"refusing to write {name!r} outside {local_dir}")
    endpoint = endpoint or constants.ENDPOINT
    target = local_dir / name
    url = hf_hub_url(repo, name, endpoint=endpoint)
    metadata = get_hf_file_metadata(url, retry_on_errors=True, endpoint=endpoint)
    if metadata.etag is None or metadata.size is None:
        raise DownloadError(f"{url} has no ETag or size: is {endpoint} a Hugging Face Hub?")
    size = metadata.size
    partial = _partial_path(local_dir, name, metadata.etag)
    partial.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(partial.with_name(f"{relative.name}.lock")):
        # Checked under the lock: a concurrent download of the same file may just have ended.
        if target.is_file() and target.stat().st_size == size:
            if on_progress is not None:
                on_progress(name, size, size)
            return target  # e.g. a part of a split model fetched by an earlier run
        _remove_leftovers(local_dir, name, metadata.etag)
        if metadata.xet_file_data is not None and size > constants.MAX_HTTP_DOWNLOAD_SIZE:
            return Path(hf_hub_download(repo, name, local_dir=local_dir, endpoint=endpoint))
        done = partial.stat().st_size if partial.is_file() else 0
        if done > size:
            partial.unlink()
            done = 0
        if done:
            log.info("Resuming %s at byte %d of %d", name, done, size)
        if on_progress is not None:
            on_progress(name, done, size)
        headers = build_hf_headers()
        headers["Accept-Encoding"] = "identity"  # Range counts bytes of the file, not of a gzip
        if _origin(metadata.location) != _origin(url):
            headers.pop("authorization", None)
        with partial.open("ab") as file:
            http_get(
                metadata.location,
                file,
                resume_size=done,
                headers=headers,
                expected_size=size,
                displayed_filename=relative.name,
                tqdm_class=None if on_progress is None else _reporting_bar(name, size, on_progress),
            )
        if on_verify is not None:
            on_verify(name)
        _check(partial, name, metadata)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.replace(target)  # atomic: the same file system
    return target


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()
