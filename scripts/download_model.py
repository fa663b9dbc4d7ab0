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
huggingface_hub itself, once, when it is imported. If the connection drops during a file,
huggingface_hub reconnects and continues from the bytes it has (an HTTP Range request).
Note that huggingface_hub 2.x does not keep a partial file between runs: a run that is
killed or interrupted starts that file over next time.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    RepositoryNotFoundError,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.loader import SettingsError, load_settings  # noqa: E402
from config.model_source import download_folder, find_downloaded, matches  # noqa: E402
from config.settings import ModelSettings  # noqa: E402

__all__ = ("DownloadError", "choose_files", "download", "main")

SPLIT_NAME = re.compile(r"(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf")
"""llama.cpp's `gguf-split` naming: a model in N files `<stem>-0000i-of-0000N.gguf`."""

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


def download(model: ModelSettings) -> Path:
    """Download the files of `model` that match `model.file`; return the (first) GGUF.

    `hf_hub_download(local_dir=...)` writes each file to a temporary name under
    `<local_dir>/.cache/huggingface/download/` and renames it when complete, so an
    interrupted run never leaves a truncated `.gguf` that `find_downloaded` would pick up.
    It also skips files already there whose recorded ETag still matches.
    """
    folder = download_folder(model)
    repo_files = HfApi().list_repo_files(model.repo)
    chosen, others = choose_files(repo_files, model.file)
    if others:
        _note(
            f"{len(others) + 1} models in {model.repo} match {model.file!r}; taking {chosen[0]} "
            f"(the first by name), not {', '.join(others)}. Pass --file to choose another."
        )
    # Absolute but not `~`-expanded: huggingface_hub expands `~` in `local_dir`, while
    # `download_folder` (and so the server) does not, and both must mean the same folder.
    local_dir = folder.absolute()
    _note(f"Downloading {', '.join(chosen)} from {model.repo} ({constants.ENDPOINT}) to {folder}")
    paths = [hf_hub_download(model.repo, name, local_dir=local_dir) for name in chosen]
    return Path(paths[0]).resolve()


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
        _note("interrupted")
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
