"""Fetch the GGUF model named by the settings from the Hugging Face Hub.

    python scripts/download_model.py [--repo R] [--file PATTERN] [--dir DIR] [--config TOML]

The defaults are the server's own settings (`model.repo`, `model.file`, `model.dir`, from
a TOML file and `LLM_SERVICE_MODEL_*` variables, see `config/loader.py`), so a plain run
fetches exactly the file the server will look for; the flags override them. The file goes
to `<dir>/<owner>/<name>/`, where `config.model_source.find_downloaded` finds it.

The absolute path of the model file is the last line on stdout (notes go to stderr), so
`MODEL=$(python scripts/download_model.py)` works. When a matching file is already there,
nothing is asked of the network, so a start-up script may call this every time.

Exit codes: 0 done, 1 download failed (message on stderr), 2 invalid settings, 130 Ctrl-C.

`HF_ENDPOINT` (a mirror), `HF_TOKEN` (gated repositories) and `HF_HUB_OFFLINE` are read by
huggingface_hub itself, once, when it is imported.

Downloads resume, also across runs: a file is written to
`<dir>/<owner>/<name>/.cache/llm-service/<file>.<etag>.part`, which a run that is killed or
interrupted (Ctrl-C, a lost connection, a sleeping laptop) leaves behind and the next run
continues with an HTTP Range request. `hf_hub_download` cannot do this: huggingface_hub 2.x
downloads to a temporary name unique to the process and deletes it when the run fails.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    RepositoryNotFoundError,
)
from huggingface_hub.file_download import HfFileMetadata, http_get

# Exported by `huggingface_hub.utils`, but by a lazy `__init__` that mypy does not read as
# a re-export.
from huggingface_hub.utils import WeakFileLock, build_hf_headers  # type: ignore[attr-defined]

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.loader import SettingsError, load_settings  # noqa: E402
from config.model_source import download_folder, find_downloaded, matches  # noqa: E402
from config.settings import ModelSettings  # noqa: E402

__all__ = ("DownloadError", "choose_files", "download", "fetch", "main")

SPLIT_NAME = re.compile(r"(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf")
"""llama.cpp's `gguf-split` naming: a model in N files `<stem>-0000i-of-0000N.gguf`."""

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
2.x, whose connection errors are not OSErrors), taken from HfHubHTTPError's bases so this
script does not import, and pin, a client library that is only a dependency of a
dependency."""


class DownloadError(Exception):
    """A failure this script explains itself, in one line."""


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _one_line(exc: BaseException) -> str:
    """The error and its causes on one line: huggingface_hub's messages span several."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 4:
        text = " ".join(str(current).split())
        parts.append(f"{type(current).__name__}: {text}" if text else type(current).__name__)
        current = current.__cause__
    return " (caused by ".join(parts) + ")" * (len(parts) - 1)


def split_parts(name: str) -> list[str] | None:
    """All file names of the split set `name` belongs to, in order; None if not split."""
    found = SPLIT_NAME.fullmatch(name)
    if found is None:
        return None
    total = found["total"]
    return [f"{found['stem']}-{i:05d}-of-{total}.gguf" for i in range(1, int(total) + 1)]


def _is_whole_model(path: Path) -> bool:
    """False for one part of a split model whose other parts are not (all) there yet.

    `find_downloaded` returns the first matching file; after an interrupted download of a
    split model that is part 1 alone, which llama.cpp cannot load.
    """
    parts = split_parts(path.name)
    return parts is None or all((path.parent / part).is_file() for part in parts)


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
        raise DownloadError(f"no .gguf file matches {pattern!r}; .gguf files there: {available}")
    first, *others = sorted(candidates)
    chosen = candidates[first]
    missing = [f for f in chosen if f not in files]
    if missing:
        raise DownloadError(f"split model {first} is incomplete: missing {', '.join(missing)}")
    return chosen, others


def _partial_path(local_dir: Path, name: str, etag: str) -> Path:
    """The partial file of repository file `name` at version `etag`.

    Named after the ETag so that a partial download of an older version of the file is
    never continued with the bytes of a newer one.
    """
    return local_dir / PARTIAL_FOLDER / f"{name}.{etag}.part"


def _remove_leftovers(local_dir: Path, name: str, etag: str) -> None:
    """Delete partial downloads of `name` that cannot be continued, to free their space.

    That is this script's partials of other versions of the file, and the temporary files
    that huggingface_hub's own download (`hf_hub_download`, used by earlier versions of
    this script) leaves behind when the process is killed: `<hash>.<etag>.<id>.incomplete`,
    unique to the process that wrote it, so never reused.
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
    whose bytes went wrong (a bad disk, a writer that was not this script) is caught here,
    once, and removed so that the next run starts that file over.
    """
    size = partial.stat().st_size
    problem = None
    if size != metadata.size:
        problem = f"has {size} bytes instead of {metadata.size}"
    elif metadata.etag is not None and SHA256.fullmatch(metadata.etag):
        _note(f"Checking the sha256 of {name}")
        with partial.open("rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
        if digest != metadata.etag:
            problem = f"has sha256 {digest} instead of {metadata.etag}"
    if problem is not None:
        partial.unlink()
        raise DownloadError(
            f"the download of {name} {problem}; it was deleted, so run again to start it over"
        )


def fetch(repo: str, name: str, local_dir: Path) -> Path:
    """Download repository file `name` to `local_dir / name`, continuing a partial download.

    The Hub's metadata (a HEAD request) gives the ETag that names the partial file, the
    size and the final location after redirects (a CDN for large files, where the token
    must not go). huggingface_hub's `http_get` then appends to the partial file from its
    size on (`Range: bytes=N-`), shows the progress bar and, within the run, reconnects
    when the connection drops. The complete file is checked (`_check`) and only then
    renamed to its final name, so that `find_downloaded` never sees a truncated `.gguf`.

    Files stored with Xet are fetched like this too, over plain HTTP (what huggingface_hub
    itself does when `hf_xet` is not installed): `xet_get` has no way to resume, and
    `hf_hub_download` deletes its partial file. Only Xet files larger than
    `MAX_HTTP_DOWNLOAD_SIZE` (50 GB), which the Hub does not serve over plain HTTP, go
    through `hf_hub_download`, and so start over when interrupted.
    """
    target = local_dir / name
    url = hf_hub_url(repo, name)
    metadata = get_hf_file_metadata(url, retry_on_errors=True)
    if metadata.etag is None or metadata.size is None:
        raise DownloadError(f"{url} has no ETag or size: is HF_ENDPOINT a Hugging Face Hub?")
    if target.is_file() and target.stat().st_size == metadata.size:
        return target  # a part of a split model fetched by an earlier run
    partial = _partial_path(local_dir, name, metadata.etag)
    partial.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(partial.with_name(f"{PurePosixPath(name).name}.lock")):
        _remove_leftovers(local_dir, name, metadata.etag)
        if metadata.xet_file_data is not None and metadata.size > constants.MAX_HTTP_DOWNLOAD_SIZE:
            return Path(hf_hub_download(repo, name, local_dir=local_dir))
        done = partial.stat().st_size if partial.is_file() else 0
        if done > metadata.size:
            partial.unlink()
            done = 0
        if done:
            _note(f"Resuming {name} at byte {done} of {metadata.size}")
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
                expected_size=metadata.size,
                displayed_filename=PurePosixPath(name).name,
            )
        _check(partial, name, metadata)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.replace(target)  # atomic: the same file system
    return target


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def download(model: ModelSettings) -> Path:
    """Download the files of `model` that match `model.file`; return the (first) GGUF."""
    folder = download_folder(model)
    repo_files = HfApi().list_repo_files(model.repo)
    chosen, others = choose_files(repo_files, model.file)
    if others:
        _note(
            f"{len(others) + 1} models in {model.repo} match {model.file!r}; taking {chosen[0]} "
            f"(the first by name), not {', '.join(others)}. Pass --file to choose another."
        )
    local_dir = folder.absolute()
    _note(f"Downloading {', '.join(chosen)} from {model.repo} ({constants.ENDPOINT}) to {folder}")
    paths = [fetch(model.repo, name, local_dir) for name in chosen]
    return paths[0].resolve()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Download the GGUF model file that the settings name from the Hugging Face "
        "Hub; print its path.",
    )
    parser.add_argument("--repo", help="Hub repository, e.g. Qwen/Qwen2.5-0.5B-Instruct-GGUF")
    parser.add_argument("--file", help="file name or case-insensitive glob, e.g. '*q4_k_m.gguf'")
    parser.add_argument("--dir", help="folder for downloads (one sub-folder per repository)")
    parser.add_argument("--config", help="TOML settings file (default: $LLM_SERVICE_CONFIG)")
    return parser.parse_args(argv)


def _cli_layer(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Only the flags given, so that unset ones leave the file/environment values alone."""
    given = {key: getattr(args, key) for key in ("repo", "file", "dir")}
    return {"model": {key: value for key, value in given.items() if value is not None}}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parse_args(argv)
    try:
        model = load_settings(config_file=args.config, cli=_cli_layer(args)).model
    except SettingsError as exc:
        _note(f"error: {exc}")
        return 2
    if model.path is not None:
        _note(
            f"note: model.path is set ({model.path}), so the server loads that, not this download"
        )

    existing = find_downloaded(model)
    if existing is not None and _is_whole_model(existing):
        _note(f"{existing.name} from {model.repo} is already downloaded; nothing to do")
        print(existing.resolve())
        return 0

    try:
        path = download(model)
    except KeyboardInterrupt:
        _note("interrupted; run again to resume the download")
        return 130
    except HFValidationError as exc:
        _note(f"error: invalid setting model.repo {model.repo!r}: {' '.join(str(exc).split())}")
        return 2
    except DownloadError as exc:
        _note(f"error: {model.repo}: {exc}")
        return 1
    except GatedRepoError:
        _note(
            f"error: {model.repo} is gated on {constants.ENDPOINT}: accept its terms on the "
            "Hub, then log in (`hf auth login`) or set HF_TOKEN"
        )
        return 1
    except RepositoryNotFoundError:
        _note(
            f"error: repository {model.repo} not found on {constants.ENDPOINT} (if it is "
            "private, log in with `hf auth login` or set HF_TOKEN)"
        )
        return 1
    except HTTP_ERRORS as exc:
        _note(f"error: downloading {model.repo} from {constants.ENDPOINT} failed: {_one_line(exc)}")
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
