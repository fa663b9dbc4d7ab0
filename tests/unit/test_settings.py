"""Settings: precedence, strictness, the documented example, and model resolution."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from config import ModelSettings, Settings, SettingsError, load_settings, resolve_model
from config.model_source import embedded_model_path, served_model_id

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_need_no_sources() -> None:
    assert load_settings(env={}) == Settings()
    assert Settings().sampling.temperature == 1.0
    assert Settings().server.port == 8000


def test_precedence_defaults_file_env_cli(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('[model]\nn_ctx = 1000\nn_batch = 64\nid = "file"\n[server]\nport = 9001\n')
    env = {
        "LLM_SERVICE_CONFIG": str(toml),
        "LLM_SERVICE_MODEL_N_CTX": "2000",
        "LLM_SERVICE_MODEL_ID": "env",
    }
    settings = load_settings(env=env, cli={"model": {"id": "cli"}})
    assert settings.model.n_batch == 64  # file only
    assert settings.server.port == 9001  # file only
    assert settings.model.n_ctx == 2000  # env beats file
    assert settings.model.id == "cli"  # cli beats env
    assert settings.model.n_threads is None  # default


def test_explicit_config_file_argument_beats_the_env_var(tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text("[server]\nport = 1\n")
    b.write_text("[server]\nport = 2\n")
    assert load_settings(config_file=b, env={"LLM_SERVICE_CONFIG": str(a)}).server.port == 2


def test_env_null_words_unset_an_optional_setting() -> None:
    assert load_settings(env={"LLM_SERVICE_SAMPLING_SEED": ""}).sampling.seed is None
    assert load_settings(env={"LLM_SERVICE_SAMPLING_SEED": "5"}).sampling.seed == 5


def test_unknown_env_variable_is_an_error_naming_it() -> None:
    with pytest.raises(SettingsError, match="LLM_SERVICE_MODEL_NCTX"):
        load_settings(env={"LLM_SERVICE_MODEL_NCTX": "1"})


def test_invalid_value_names_the_setting_and_its_source() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env={"LLM_SERVICE_SAMPLING_TEMPERATURE": "3"})
    message = str(caught.value)
    assert "sampling.temperature" in message
    assert "LLM_SERVICE_SAMPLING_TEMPERATURE" in message
    assert "<= 2" in message


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text("[model]\nn_ctxx = 5\n")
    with pytest.raises(SettingsError, match="n_ctxx"):
        load_settings(config_file=toml, env={})


def test_missing_or_broken_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(config_file=tmp_path / "nope.toml", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[model\n")
    with pytest.raises(SettingsError, match="cannot be read"):
        load_settings(config_file=broken, env={})


def test_example_file_documents_exactly_the_defaults() -> None:
    example = ROOT / "config" / "example.toml"
    assert load_settings(config_file=example, env={}) == Settings()
    text = example.read_text()
    listed = tomllib.loads(text)
    for section in Settings.__struct_fields__:
        for key in type(getattr(Settings(), section)).__struct_fields__:
            assert key in listed.get(section, {}) or f"# {key} =" in text, f"{section}.{key}"


def test_explicit_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"model\.path"):
        resolve_model(ModelSettings(path=str(tmp_path / "missing.gguf")))


def test_falls_back_to_the_embedded_model_and_says_why(tmp_path: Path) -> None:
    choice = resolve_model(ModelSettings(dir=str(tmp_path)))
    assert choice.origin == "embedded"
    assert choice.path == embedded_model_path()
    assert "scripts/download_model.py" in choice.reason


def test_a_downloaded_file_matching_the_pattern_wins(tmp_path: Path) -> None:
    folder = tmp_path / "acme" / "m-GGUF"
    folder.mkdir(parents=True)
    (folder / "m-Q8_0.gguf").write_bytes(b"x")
    (folder / "m-Q4_K_M.gguf").write_bytes(b"x")
    choice = resolve_model(
        ModelSettings(dir=str(tmp_path), repo="acme/m-GGUF", file="*q4_k_m.gguf")
    )
    assert (choice.origin, choice.path.name) == ("downloaded", "m-Q4_K_M.gguf")


def test_served_id_is_configured_or_the_file_name_never_a_path() -> None:
    path = Path("/some/dir/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf")
    assert served_model_id(ModelSettings(), path) == "Qwen2.5-0.5B-Instruct-Q4_K_M"
    assert served_model_id(ModelSettings(id="qwen"), path) == "qwen"


def test_api_keys_come_comma_separated_from_the_short_env_var_and_flags() -> None:
    env = {"LLM_SERVICE_API_KEYS": "a, b,,c"}
    assert load_settings(env=env).server.api_keys == ["a", "b", "c"]
    cli = {"server": {"cors_origins": "http://x.test,http://y.test"}}
    assert load_settings(env={}, cli=cli).server.cors_origins == ["http://x.test", "http://y.test"]
