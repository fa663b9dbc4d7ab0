"""Settings of LLM Service: their defaults, how they are loaded, and which model they pick."""

from config.loader import ENV_PREFIX, SettingsError, env_var_name, load_settings
from config.model_source import ModelChoice, resolve_model, served_model_id
from config.settings import ModelSettings, SamplingDefaults, ServerSettings, Settings

__all__ = (
    "ENV_PREFIX",
    "ModelChoice",
    "ModelSettings",
    "SamplingDefaults",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "env_var_name",
    "load_settings",
    "resolve_model",
    "served_model_id",
)
