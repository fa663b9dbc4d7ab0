"""The catalog: which models a server offers, under which names, with which settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config.catalog import build_catalog, model_files
from config.loader import SettingsError, load_settings
from config.model_source import embedded_model_path


def _file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF")
    return path


def _settings(tmp_path: Path, toml: str = "", **model: Any) -> Any:
    config = tmp_path / "settings.toml"
    config.write_text(toml)
    env = {"LLM_SERVICE_MODEL_DIR": str(tmp_path / "models")}
    env.update({f"LLM_SERVICE_MODEL_{k.upper()}": str(v) for k, v in model.items()})
    return load_settings(config_file=config, env=env)


def test_one_model_by_default_as_before(tmp_path: Path) -> None:
    catalog = build_catalog(_settings(tmp_path))
    embedded = embedded_model_path()
    assert embedded is not None
    assert list(catalog.models) == [embedded.name.removesuffix(".gguf")]
    assert catalog.default.path == embedded
    assert catalog.default.origin == "embedded"


def test_entries_with_ids_aliases_and_their_own_settings(tmp_path: Path) -> None:
    main = _file(tmp_path / "main.gguf")
    other = _file(tmp_path / "elsewhere" / "Other-Model-Q4_K_M.gguf")
    toml = f"""
[sampling]
temperature = 0.5
[models]
keep_alive = 30
[[models.entries]]
id = "precise"
path = "{main}"
aliases = ["gpt-4o-mini", "small"]
keep_alive = 5
[models.entries.model]
n_ctx = 1024
[models.entries.sampling]
temperature = 0.1
[[models.entries]]
path = "{other}"
"""
    settings = _settings(tmp_path, toml, path=main, chat_format="chatml", n_ctx=2048)
    catalog = build_catalog(settings)
    assert catalog.default_id == "main"
    assert catalog.default.settings.model.chat_format == "chatml"  # the [model] section's own
    precise = catalog.find("gpt-4o-mini")
    assert precise is not None
    assert precise.id == "precise"
    assert precise.path == main
    assert precise.settings.model.n_ctx == 1024
    assert precise.settings.sampling.temperature == 0.1
    assert precise.settings.model.chat_format is None  # not the default model's format
    assert precise.keep_alive == 5
    found = catalog.find("Other-Model-Q4_K_M")
    assert found is not None
    assert found.settings.model.n_ctx == 2048
    assert found.settings.sampling.temperature == 0.5
    assert found.keep_alive == 30
    assert found.settings.model.id == "Other-Model-Q4_K_M"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('path = "{main}"\n[models.entries.model]\nn_ctxx = 1', "models.entries[0].model.n_ctxx"),
        ('path = "{main}"\n[models.entries.model]\nn_ctx = -1', "models.entries[0].model.n_ctx"),
        ('path = "{main}"\n[models.entries.model]\npath = "x"', "models.entries[0].model"),
        ('path = "{main}"\n[models.entries.sampling]\ntop_p = 9', "models.entries[0].sampling"),
        ('path = "{main}"\nflavour = 1', "models.entries"),
        ('path = "/nowhere/x.gguf"', "models.entries[0].path"),
        ('repo = "acme/none"', "models.entries[0]"),
        ("aliases = []", "models.entries[0]: set `path`"),
        ('path = "{main}"\nid = "main"', "'main' is already model 'main'"),
        ('path = "{main}"\nid = "x"\naliases = [""]', "empty model id"),
    ],
)
def test_a_bad_entry_stops_start_up_naming_it(tmp_path: Path, entry: str, message: str) -> None:
    main = _file(tmp_path / "main.gguf")
    toml = "[[models.entries]]\n" + entry.format(main=main)
    with pytest.raises(SettingsError, match="Invalid setting") as caught:
        build_catalog(_settings(tmp_path, toml, path=main))
    assert message in str(caught.value)


def test_an_alias_taken_twice_is_refused(tmp_path: Path) -> None:
    a, b = _file(tmp_path / "a.gguf"), _file(tmp_path / "b.gguf")
    toml = f"""
[[models.entries]]
path = "{a}"
aliases = ["shared"]
[[models.entries]]
path = "{b}"
aliases = ["shared"]
"""
    with pytest.raises(SettingsError, match=r"models.entries\[1\].*'shared' is already model 'a'"):
        build_catalog(_settings(tmp_path, toml))


def test_the_download_folder_one_model_per_file(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    _file(folder / "acme" / "tiny-GGUF" / "tiny-q4_k_m.gguf")
    _file(folder / "acme" / "tiny-GGUF" / "mmproj-tiny-f16.gguf")  # a projector: no model
    _file(folder / "acme" / "big-GGUF" / "big-q8_0-00001-of-00002.gguf")
    _file(folder / "acme" / "big-GGUF" / "big-q8_0-00002-of-00002.gguf")
    _file(folder / "acme" / "big-GGUF" / ".cache" / "llm-service" / "half.gguf")
    _file(folder / "other" / "tiny-GGUF" / "tiny-q4_k_m.gguf")  # the same name again
    catalog = build_catalog(_settings(tmp_path))
    scanned = sorted(catalog.scanned)
    assert scanned == ["big-q8_0", "other/tiny-GGUF/tiny-q4_k_m", "tiny-q4_k_m"]
    big = catalog.models["big-q8_0"]
    assert big.path.name == "big-q8_0-00001-of-00002.gguf"
    assert [p.name for p in model_files(big.path)] == [
        "big-q8_0-00001-of-00002.gguf",
        "big-q8_0-00002-of-00002.gguf",
    ]
    assert catalog.default.origin == "embedded"  # scanned models are not the default


def test_a_model_downloaded_later_appears_and_a_deleted_one_goes(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "acme" / "tiny-GGUF"
    first = _file(folder / "first.gguf")
    settings = _settings(tmp_path)
    catalog = build_catalog(settings)
    assert "first" in catalog.models
    _file(folder / "second.gguf")
    first.unlink()
    again = catalog.rescan(settings)
    assert "second" in again.models
    assert "first" not in again.models
    assert again.default_id == catalog.default_id


def test_a_downloaded_default_is_not_listed_twice(tmp_path: Path) -> None:
    _file(tmp_path / "models" / "acme" / "tiny-GGUF" / "tiny-q4_k_m.gguf")
    settings = _settings(tmp_path, repo="acme/tiny-GGUF", file="*q4_k_m.gguf")
    catalog = build_catalog(settings)
    assert catalog.default_id == "tiny-q4_k_m"
    assert catalog.default.origin == "settings"
    assert not catalog.scanned


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/etc/passwd", "http://example.com/x.gguf", "", None]
)
def test_a_name_is_never_a_path(tmp_path: Path, name: str | None) -> None:
    catalog = build_catalog(_settings(tmp_path))
    assert catalog.find(name) is None


def test_models_default_picks_another_model(tmp_path: Path) -> None:
    main = _file(tmp_path / "main.gguf")
    toml = f'[models]\ndefault = "alt"\n[[models.entries]]\npath = "{main}"\naliases = ["alt"]\n'
    catalog = build_catalog(_settings(tmp_path, toml))
    assert catalog.default_id == "main"
    assert catalog.default.origin == "entry"
    with pytest.raises(SettingsError, match=r"models\.default: no model is named 'nope'"):
        build_catalog(_settings(tmp_path, '[models]\ndefault = "nope"\n'))
