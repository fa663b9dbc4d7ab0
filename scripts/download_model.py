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
That machinery lives in `app/models/download.py`, shared with the server's
`POST /models/pull`, so both put the same files in the same place.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# `hf_hub_download` is not called here (app.models.download calls it for huge Xet files);
# it stays a name of this script so that tests can replace it to prove it is not reached.
from huggingface_hub import HfApi, constants, hf_hub_download  # noqa: F401
from huggingface_hub.errors import HFValidationError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.models.download import (  # noqa: E402
    EXPECTED_ERRORS,
    DownloadError,
    choose_files,
    explain,
    fetch,
    is_whole_model,
    log,
)
from config.loader import SettingsError, load_settings  # noqa: E402
from config.model_source import download_folder, find_downloaded  # noqa: E402
from config.settings import ModelSettings  # noqa: E402

__all__ = ("DownloadError", "choose_files", "download", "fetch", "main")


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _NotesToStderr(logging.Handler):
    """The download module's notes ("Resuming ...") as plain lines on stderr.

    Looks up `sys.stderr` for every line rather than holding the stream, like `_note`.
    """

    def emit(self, record: logging.LogRecord) -> None:
        _note(record.getMessage())


def _show_notes() -> None:
    if not any(isinstance(handler, _NotesToStderr) for handler in log.handlers):
        log.addHandler(_NotesToStderr(logging.INFO))
    log.setLevel(logging.INFO)


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
    _show_notes()
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
    if existing is not None and is_whole_model(existing):
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
    except EXPECTED_ERRORS as exc:
        failure = explain(exc, model.repo, constants.ENDPOINT)
        if failure is None:  # cannot happen: explain words every error caught here
            raise
        _note(f"error: {failure.message}")
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
