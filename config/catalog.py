"""The catalog: every model the server can serve, by id and alias, with its own settings.

Sources, merged in this order (an earlier one wins a file or a name):
1. the model today's settings choose (`model.path`, a downloaded `model.repo`, else the
   embedded one), with the `[model]` section as it is;
2. `[[models.entries]]`, each with overrides of `[model]`, `[sampling]` and
   `[speculative]` for that model only;
3. every GGUF under `model.dir` (the download folder), a split model counted once, its
   `mmproj` projector files not at all;
4. the embedded model, always.

Models of sources 2-4 start from the `[model]` section without the keys that name one
model's files (`path`, `id`, `draft_path`, `chat_format`, `chat_template_file`): those
describe the default model, and a Gemma chat format must not reach a Qwen file.

Pure: reads the file system, loads nothing. A bad entry raises `SettingsError` naming it,
which stops start-up as a bad setting does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from config.loader import SettingsError, explain_invalid
from config.model_source import (
    ModelChoice,
    embedded_model_path,
    find_downloaded,
    resolve_model,
    served_model_id,
)
from config.settings import ModelEntry, ModelSettings, Settings

__all__ = ("SPLIT_NAME", "Catalog", "CatalogModel", "build_catalog", "model_files")

SPLIT_NAME = re.compile(r"(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf", re.IGNORECASE)
"""llama.cpp's `gguf-split` naming: a model in N files `<stem>-0000i-of-0000N.gguf`."""
_ONE_MODEL_KEYS = ("path", "id", "draft_path", "chat_format", "chat_template_file")
Origin = Literal["settings", "entry", "folder", "embedded"]


@dataclass(frozen=True)
class CatalogModel:
    """One servable model: its file, the names that reach it and the settings it runs with."""

    id: str
    path: Path
    """The GGUF file llama.cpp opens (a split model's first part)."""
    settings: Settings
    """The server's settings with this model's `model`, `sampling` and `speculative`."""
    origin: Origin
    reason: str
    """Why it is in the catalog, for the log."""
    aliases: tuple[str, ...] = ()
    keep_alive: float | None = None
    """Seconds idle before it is unloaded (None: until evicted)."""

    @property
    def choice(self) -> ModelChoice:
        if self.origin == "embedded":
            return ModelChoice(self.path, "embedded", self.reason)
        return ModelChoice(self.path, "path", self.reason)

    def signature(self) -> tuple[int, int]:
        """Size and modification time of its files: a failed model is tried again once
        they change. (0, 0) when a file is gone."""
        try:
            stats = [part.stat() for part in model_files(self.path)]
        except OSError:
            return (0, 0)
        return (sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats))


@dataclass(frozen=True)
class Catalog:
    """Models by id, and every name (id or alias) that reaches one."""

    models: dict[str, CatalogModel]
    names: dict[str, str]
    default_id: str
    scanned: dict[str, CatalogModel] = field(default_factory=dict)
    """The part found in the download folder, rebuilt by `rescan`."""

    @property
    def default(self) -> CatalogModel:
        return self.models[self.default_id]

    def find(self, name: str | None) -> CatalogModel | None:
        """The model a request's `model` names, or None. A dictionary look-up only: a
        path, a URL or `..` is just a name no model has."""
        model_id = self.names.get(name) if name else None
        return self.models[model_id] if model_id is not None else None

    def rescan(self, settings: Settings) -> Catalog:
        """The same catalog with the download folder read again (a model downloaded
        while the server runs appears; one deleted goes)."""
        fixed = {k: m for k, m in self.models.items() if k not in self.scanned}
        names = {n: i for n, i in self.names.items() if i in fixed}
        scanned = _scan_folder(settings, fixed, names)
        return Catalog({**fixed, **scanned}, names, self.default_id, scanned)


def model_files(path: Path) -> list[Path]:
    """The files of the model whose first (or only) file is `path`."""
    split = SPLIT_NAME.fullmatch(path.name)
    if split is None:
        return [path]
    total = int(split["total"])
    return [
        path.with_name(f"{split['stem']}-{part:05d}-of-{total:05d}.gguf")
        for part in range(1, total + 1)
    ]


def _stem(path: Path) -> str:
    split = SPLIT_NAME.fullmatch(path.name)
    return split["stem"] if split else path.name.removesuffix(".gguf")


def _section(base: msgspec.Struct, overrides: dict[str, Any], where: str) -> Any:
    """`base` with `overrides` applied and checked as the section's own values are."""
    if not overrides:
        return base
    try:
        return msgspec.convert({**msgspec.to_builtins(base), **overrides}, type(base), strict=False)
    except msgspec.ValidationError as exc:
        key, message = explain_invalid(exc)
        raise SettingsError(
            f"Invalid setting {where}{'.' + key if key else ''}: {message}"
        ) from exc


def _shared_model_settings(settings: Settings) -> ModelSettings:
    unset: dict[str, Any] = dict.fromkeys(_ONE_MODEL_KEYS)
    return msgspec.structs.replace(settings.model, **unset)


def _settings_for(settings: Settings, path: Path, model_id: str) -> Settings:
    """Settings for a model found on disk: the shared `[model]` keys, its own path and id."""
    model = msgspec.structs.replace(_shared_model_settings(settings), path=str(path), id=model_id)
    speculative = settings.speculative
    if speculative.mode == "draft":  # the draft model belongs to the default model
        speculative = msgspec.structs.replace(speculative, mode="auto")
    return msgspec.structs.replace(settings, model=model, speculative=speculative)


def _entry_model(settings: Settings, entry: ModelEntry, index: int) -> CatalogModel:
    where = f"models.entries[{index}]"
    if entry.path is not None:
        path = Path(entry.path).expanduser()
        if not path.is_file():
            raise SettingsError(f"Invalid setting {where}.path: no file at {path}")
    elif entry.repo is not None:
        found = find_downloaded(
            ModelSettings(repo=entry.repo, file=entry.file, dir=settings.model.dir)
        )
        if found is None:
            raise SettingsError(
                f"Invalid setting {where}: nothing matching {entry.file!r} from {entry.repo}"
                f" is in {settings.model.dir} (scripts/download_model.py --repo {entry.repo}"
                f" --file {entry.file!r} fetches it)"
            )
        path = found
    else:
        raise SettingsError(f"Invalid setting {where}: set `path`, or `repo` and `file`")
    model_id = entry.id or _stem(path)
    base = _settings_for(settings, path, model_id)
    model = _section(base.model, entry.model, f"{where}.model")
    if {"path", "id"} & entry.model.keys():
        raise SettingsError(
            f"Invalid setting {where}.model: set `path` and `id` on the entry itself"
        )
    merged = msgspec.structs.replace(
        base,
        model=model,
        sampling=_section(base.sampling, entry.sampling, f"{where}.sampling"),
        speculative=_section(base.speculative, entry.speculative, f"{where}.speculative"),
    )
    keep_alive = (
        settings.models.keep_alive if entry.keep_alive is msgspec.UNSET else entry.keep_alive
    )
    return CatalogModel(
        model_id,
        path,
        merged,
        "entry",
        f"{where} in the settings",
        tuple(entry.aliases),
        keep_alive,
    )


def _add(
    into: dict[str, CatalogModel], names: dict[str, str], model: CatalogModel, where: str
) -> None:
    for name in (model.id, *model.aliases):
        if not name.strip():
            raise SettingsError(f"Invalid setting {where}: an empty model id or alias")
        if name in names:
            raise SettingsError(
                f"Invalid setting {where}: the name {name!r} is already model {names[name]!r}"
            )
    into[model.id] = model
    names.update(dict.fromkeys((model.id, *model.aliases), model.id))


def _gguf_files(folder: Path) -> Iterator[Path]:
    """Whole models under `folder`: a split model's first part once all its parts are
    there, no projector files, nothing in the download script's hidden `.cache` folders."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*.gguf")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        split = SPLIT_NAME.fullmatch(path.name)
        if path.name.lower().startswith("mmproj") or (split and int(split["part"]) != 1):
            continue
        if all(part.is_file() for part in model_files(path)):  # not a split set half-fetched
            yield path


def _scan_folder(
    settings: Settings, known: dict[str, CatalogModel], names: dict[str, str]
) -> dict[str, CatalogModel]:
    folder = Path(settings.model.dir).expanduser()
    claimed = {_same(m.path) for m in known.values()}
    found: dict[str, CatalogModel] = {}
    for path in _gguf_files(folder):
        if _same(path) in claimed:
            continue
        model_id = _stem(path)
        if model_id in names:  # the same file name in two repositories: the longer name
            model_id = str(path.relative_to(folder).with_name(model_id).as_posix())
        if model_id in names:
            continue
        model = CatalogModel(
            model_id,
            path,
            _settings_for(settings, path, model_id),
            "folder",
            f"found in {folder}",
            keep_alive=settings.models.keep_alive,
        )
        _add(found, names, model, f"model file {path}")
    return found


def _same(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path


def build_catalog(settings: Settings) -> Catalog:
    """The catalog for `settings`; `SettingsError` naming a bad entry or setting."""
    models: dict[str, CatalogModel] = {}
    names: dict[str, str] = {}
    first = resolve_model(settings.model)
    origin: Origin = "embedded" if first.origin == "embedded" else "settings"
    _add(
        models,
        names,
        CatalogModel(
            served_model_id(settings.model, first.path),
            first.path,
            settings,
            origin,
            first.reason,
            keep_alive=settings.models.keep_alive,
        ),
        "model.id",
    )
    for index, entry in enumerate(settings.models.entries):
        _add(models, names, _entry_model(settings, entry, index), f"models.entries[{index}]")
    scanned = _scan_folder(settings, models, names)
    models.update(scanned)
    embedded = embedded_model_path()
    if embedded is not None and _same(embedded) not in {_same(m.path) for m in models.values()}:
        model_id = _stem(embedded)
        if model_id not in names:
            _add(
                models,
                names,
                CatalogModel(
                    model_id,
                    embedded,
                    _settings_for(settings, embedded, model_id),
                    "embedded",
                    "the embedded model",
                    keep_alive=settings.models.keep_alive,
                ),
                "the embedded model",
            )
    default_id = _default_id(settings, names, next(iter(models)))
    return Catalog(models, names, default_id, scanned)


def _default_id(settings: Settings, names: dict[str, str], first: str) -> str:
    wanted = settings.models.default
    if wanted is None:
        return first
    if wanted not in names:
        raise SettingsError(
            f"Invalid setting models.default: no model is named {wanted!r}"
            f" (known: {', '.join(sorted(names))})"
        )
    return names[wanted]
