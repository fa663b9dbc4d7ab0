"""`python -m app`: run the server with uvicorn, settings overridable by CLI flags.

Every setting has a flag named `--<section>-<key>` (e.g. `--model-n-ctx 8192`,
`--server-port 8001`); `--host`, `--port` and `--model` are short forms. Flags beat
`LLM_SERVICE_*` variables, which beat the TOML file (`--config`), which beats defaults.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

import msgspec
import uvicorn

from config.loader import SettingsError, load_settings
from config.settings import Settings

ALIASES = {"server.host": "--host", "server.port": "--port", "model.path": "--model"}


def _setting_names() -> list[tuple[str, str]]:
    return [
        (section.encode_name, key.encode_name)
        for section in msgspec.structs.fields(Settings)
        for key in msgspec.structs.fields(section.type)
    ]


def parse_args(argv: Sequence[str] | None = None) -> tuple[str | None, dict[str, dict[str, Any]]]:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__, allow_abbrev=False)
    parser.add_argument("--config", help="TOML settings file (default: $LLM_SERVICE_CONFIG)")
    for section, key in _setting_names():
        flags = [f"--{section}-{key}".replace("_", "-")]
        if alias := ALIASES.get(f"{section}.{key}"):
            flags.insert(0, alias)
        parser.add_argument(
            *flags, dest=f"{section}.{key}", metavar="VALUE", help=f"{section}.{key}"
        )
    args = vars(parser.parse_args(argv))
    config_file = args.pop("config")
    cli: dict[str, dict[str, Any]] = {}
    for name, value in args.items():
        if value is not None:
            section, key = name.split(".", 1)
            cli.setdefault(section, {})[key] = value
    return config_file, cli


def main(argv: Sequence[str] | None = None) -> int:
    config_file, cli = parse_args(argv)
    try:
        settings = load_settings(config_file=config_file, cli=cli)
        from app.auth import load_api_keys, warn_if_exposed
        from app.main import create_app  # after settings: a bad flag fails fast

        application = create_app(settings)
        warn_if_exposed(settings.server.host, load_api_keys(settings.server))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - the CLI's own message
        return 2
    uvicorn.run(
        application,
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.server.log_level,
        access_log=False,  # app.access_log writes one richer line per request
        timeout_graceful_shutdown=math.ceil(settings.server.shutdown_grace) + 5,  # backstop
    )
    return 1 if application.state.models.default_failed else 0


if __name__ == "__main__":
    sys.exit(main())
