"""`conversion/` and `config/` stay free of the web framework and of llama_cpp."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_conversion_and_config_import_neither_litestar_nor_llama_cpp() -> None:
    code = (
        "import sys, pkgutil, importlib, conversion, config\n"
        "for pkg in (conversion, config):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        importlib.import_module(f'{pkg.__name__}.{m.name}')\n"
        "banned = {'litestar', 'llama_cpp', 'app'}\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in banned)\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
