"""The layers' imports: `conversion/` and `config/` stay free of the web framework and of
llama_cpp, and the engine speaks only its own vocabulary, never a wire protocol."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROTOCOLS = (
    "conversion.chat",
    "conversion.completions",
    "conversion.responses",
    "conversion.anthropic",
    "conversion.embeddings",
    "conversion.tokens",
    "conversion.logprobs",
)
"""The wire packages and modules of the protocols, and the OpenAI shape of token
log-probabilities (`conversion.generation` is the engine's side of the translation)."""


def _imported_after(packages: tuple[str, ...], *, skip_app_face: bool = False) -> set[str]:
    """Every module in sys.modules once each module of `packages` (recursively) is
    imported, in a fresh interpreter. `skip_app_face`: the `app` package's face
    (`app/__init__.py`, which builds the whole application for `litestar run`) is not
    run, so what is loaded is what the modules under `app` themselves import."""
    face = (
        "import types\nface = types.ModuleType('app')\nface.__path__ = ['app']\n"
        "sys.modules['app'] = face\n"
    )
    code = (
        "import sys, pkgutil, importlib\n"
        + (face if skip_app_face else "")
        + f"for name in {packages!r}:\n"
        "    package = importlib.import_module(name)\n"
        "    for m in pkgutil.walk_packages(package.__path__, name + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def _under(modules: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == r or m.startswith(r + ".") for r in roots))


def test_conversion_and_config_import_neither_litestar_nor_llama_cpp() -> None:
    loaded = _imported_after(("conversion", "config"))
    assert "conversion.chat.wire" in loaded  # the walk reached the protocol packages
    assert _under(loaded, ("litestar", "llama_cpp", "app")) == []


def test_the_engine_imports_no_protocol() -> None:
    loaded = _imported_after(("app.engine",), skip_app_face=True)
    assert "app.engine.worker" in loaded
    assert _under(loaded, PROTOCOLS) == []
    assert _under(loaded, ("litestar", "app.serving", "app.routes")) == []
