"""Build `Settings` from defaults, a TOML file, `LLM_SERVICE_*` variables and CLI flags.

Precedence, lowest to highest: built-in defaults < TOML file < environment < CLI flags.
Nothing here is cached: callers pass the result on explicitly (`create_app(settings)`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_origin

import msgspec

from config.settings import Settings

__all__ = ("ENV_PREFIX", "SettingsError", "env_var_name", "explain_invalid", "load_settings")

ENV_PREFIX = "LLM_SERVICE_"
CONFIG_FILE_VAR = ENV_PREFIX + "CONFIG"
ENV_ALIASES = {ENV_PREFIX + "API_KEYS": ("server", "api_keys")}
"""Short variable names the docs promise, besides LLM_SERVICE_<SECTION>_<KEY>."""
_NULL_WORDS = frozenset({"", "none", "null"})

Layer = dict[str, dict[str, Any]]


class SettingsError(ValueError):
    """An invalid or unknown setting; the message names it and where it came from."""


def env_var_name(section: str, key: str) -> str:
    """The environment variable that sets `section.key`, e.g. LLM_SERVICE_MODEL_N_CTX."""
    return f"{ENV_PREFIX}{section}_{key}".upper()


def _sections() -> dict[str, frozenset[str]]:
    return {
        name: frozenset(field.encode_name for field in msgspec.structs.fields(field_type))
        for name, field_type in ((f.encode_name, f.type) for f in msgspec.structs.fields(Settings))
    }


def _from_env(env: Mapping[str, str], sources: dict[str, str]) -> Layer:
    layer: Layer = {}
    sections = _sections()
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or var == CONFIG_FILE_VAR:
            continue
        rest = var[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if var in ENV_ALIASES:
            section, key = ENV_ALIASES[var]
        if section not in sections or key not in sections[section]:
            known = ", ".join(
                env_var_name(s, k) for s in sorted(sections) for k in sorted(sections[s])
            )
            raise SettingsError(
                f"Unknown setting variable {var}. Known: {CONFIG_FILE_VAR}, {known}"
            )
        layer.setdefault(section, {})[key] = None if value.strip().lower() in _NULL_WORDS else value
        sources[f"{section}.{key}"] = f"environment variable {var}"
    return layer


def _from_file(path: Path, sources: dict[str, str]) -> Layer:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SettingsError(f"Config file {path} does not exist") from exc
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"Config file {path} cannot be read: {exc}") from exc
    for section, values in raw.items():
        if isinstance(values, dict):
            for key in values:
                sources[f"{section}.{key}"] = f"config file {path}"
    return raw


def _merge(base: Layer, over: Mapping[str, Mapping[str, Any]]) -> None:
    for section, values in over.items():
        if isinstance(values, Mapping) and isinstance(base.get(section), dict):
            base[section].update(values)
        else:
            base[section] = dict(values) if isinstance(values, Mapping) else values


def _split_lists(merged: Layer) -> None:
    """A list setting given as one string (environment, flag) is comma-separated."""
    for section in msgspec.structs.fields(Settings):
        values = merged.get(section.encode_name)
        if not isinstance(values, dict):
            continue
        for field in msgspec.structs.fields(section.type):
            value = values.get(field.encode_name)
            if get_origin(field.type) is list and isinstance(value, str):
                values[field.encode_name] = [p.strip() for p in value.split(",") if p.strip()]


def _dotted(path: str) -> str:
    """`$.model.n_ctx` (msgspec's error path) -> `model.n_ctx`."""
    return path.removeprefix("$").lstrip(".")


def explain_invalid(exc: msgspec.ValidationError) -> tuple[str, str]:
    """The dotted name of the bad setting (relative to what was converted; "" when msgspec
    names none) and what is wrong with it, from msgspec's error."""
    message, _, where = str(exc).rpartition(" - at `")
    name = _dotted(where.rstrip("`")) if message else ""
    if not message:
        message = str(exc)
    if message.startswith("Object contains unknown field `"):
        unknown = message.split("`")[1]
        name = f"{name}.{unknown}" if name else unknown
        message = "no such setting"
    return name, message


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    cli: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Layer the sources and validate once; raise `SettingsError` naming the bad setting.

    `config_file` defaults to the file named by LLM_SERVICE_CONFIG, if any. `cli` holds
    already-parsed flag values as `{section: {key: value}}`.
    """
    env = os.environ if env is None else env
    sources: dict[str, str] = {}
    merged: Layer = {}
    file_name = config_file if config_file is not None else env.get(CONFIG_FILE_VAR)
    if file_name:
        _merge(merged, _from_file(Path(file_name), sources))
    _merge(merged, _from_env(env, sources))
    if cli:
        for section, values in cli.items():
            for key in values:
                sources[f"{section}.{key}"] = "command-line flag"
        _merge(merged, cli)
    _split_lists(merged)
    try:
        return msgspec.convert(merged, Settings, strict=False)
    except msgspec.ValidationError as exc:
        name, message = explain_invalid(exc)
        origin = f" (from {sources[name]})" if name in sources else ""
        label = f"setting {name}" if name else "settings"
        raise SettingsError(f"Invalid {label}{origin}: {message}") from exc
