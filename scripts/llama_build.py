"""How this project builds llama.cpp, for the Python bindings and for the bench's llama-server.

llama-cpp-python ships only a source distribution, so every install compiles llama.cpp,
and by default for the build machine's own CPU (`-march=native`). On an Intel Xeon with
AMX (Sapphire Rapids and later), that compiles ggml's AMX matrix kernels, which crash
with SIGILL ("Illegal instruction") in the llama.cpp that llama-cpp-python 0.3.36 vendors
(llama.cpp pull request 26954). So the build here keeps `-march=native`, and with it the
AVX2/AVX-512/VNNI kernels that make up the speed, but turns the three AMX extensions off:
GCC and Clang let an explicit `-mno-…` win over what `-march` implies, in either order.
All three are needed: GCC 12 still defines `__AMX_INT8__` after `-mno-amx-tile` alone.

pip caches a wheel it built under the sdist's name, not under the flags it was built
with, so a wheel built elsewhere would come back silently. The wheel is therefore built
once into a cache this project owns, in a folder named by a key over everything that
changes the binary: the llama-cpp-python version, the CMake arguments and compiler flags,
the compiler, the CPU (what `native` means), the platform and the Python version. Later
installs take it from there, in seconds. Only the standard library is used here, because
`dev.py` runs this before the virtual environment has anything in it.

The build also changes the vendored llama.cpp in one small place (`SOURCE_EDITS`): the
sdist is downloaded, edited and compiled from the folder, and the edits are part of the
key. Each edit replaces one exact piece of text and fails the build when that text is not
found exactly once, so a new llama-cpp-python version cannot be half-patched silently.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = (
    "BACKENDS",
    "LLAMA_CPP_PYTHON_VERSION",
    "NO_AMX_FLAGS",
    "SOURCE_EDITS",
    "BuildRecipe",
    "CachedWheel",
    "SourceEdit",
    "apply_source_edits",
    "build_wheel",
    "cache_dir",
    "cached_wheel",
    "download_sdist",
    "recipe_from_env",
)

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
"""The one version `dev.py` installs: the wheel cache and the bench's llama-server key on it."""

NO_AMX_FLAGS = ("-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16")

BACKENDS: dict[str, tuple[str, ...]] = {
    "cpu": (),  # on Apple Silicon llama.cpp turns Metal on by itself
    "cuda": ("-DGGML_CUDA=on",),
    "vulkan": ("-DGGML_VULKAN=on",),
}
"""llama.cpp's CMake options per `LLM_SERVICE_LLAMA_BACKEND` value."""


@dataclass(frozen=True, slots=True)
class SourceEdit:
    """One exact replacement in the sdist, and why it is there."""

    path: str
    """Relative to the unpacked sdist's top folder."""
    before: str
    after: str
    why: str


SOURCE_EDITS: tuple[SourceEdit, ...] = (
    SourceEdit(
        path="vendor/llama.cpp/ggml/src/ggml-cpu/ggml-cpu.cpp",
        before="    ctx->use_ref             = false;\n",
        after=(
            "    // llm-service: GGML_CPU_USE_REF=1 starts the backend on the reference paths\n"
            "    // (batch-size independent results); see scripts/llama_build.py\n"
            "    {\n"
            '        const char * use_ref_env = getenv("GGML_CPU_USE_REF");\n'
            "        ctx->use_ref = use_ref_env != NULL && atoi(use_ref_env) != 0;\n"
            "    }\n"
        ),
        why=(
            "ggml's CPU backend has a switch, use_ref, that keeps every operation on its "
            "row-by-row reference path: no tiled K-quant matrix product, no tiled flash "
            "attention for steps of 64 or more query rows, no split-KV flash attention for "
            "one-token steps over 512 or more cells, no operator fusion. Each of those "
            "rounds differently from the reference path, so a position's logits depend on "
            "how many tokens its step held (Gemma-3-270M: 1.36 apart). llama.cpp creates "
            "its backends itself and offers no setting for the switch; this edit lets the "
            "environment set it when a backend starts (model.batch_invariant does)."
        ),
    ),
)
"""Changes to the vendored llama.cpp, applied to every build (bindings and llama-server)."""

BACKEND_ENV = "LLM_SERVICE_LLAMA_BACKEND"
EXTRA_CMAKE_ENV = "LLM_SERVICE_LLAMA_CMAKE_ARGS"


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/llm-service` (or `~/.cache/…`; `%LOCALAPPDATA%\\llm-service` on
    Windows): outside the repository, so a fresh clone reuses what was built before."""
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "llm-service"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "llm-service"


def _is_x86_64(machine: str) -> bool:
    return machine.lower() in {"x86_64", "amd64", "x64"}


def cpu_fingerprint() -> str:
    """What `-march=native` sees: the CPU's model and feature flags where the OS lists
    them (Linux), else the processor name. A wheel built for one CPU may use
    instructions another lacks, so a shared home folder must not hand it over."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model, flags = "", ""
        for line in cpuinfo.read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            name = name.strip()
            if name in {"model name", "Model", "CPU part"} and not model:
                model = value.strip()
            elif name in {"flags", "Features"} and not flags:
                flags = " ".join(sorted(value.split()))
        if model or flags:
            return f"{model} | {flags}"
    return f"{platform.machine()} | {platform.processor()}"


@dataclass(frozen=True, slots=True)
class BuildRecipe:
    """Everything that decides what the compiled llama.cpp contains."""

    version: str
    backend: str
    cmake_args: tuple[str, ...]
    compiler_flags: tuple[str, ...]
    compilers: tuple[str, str]
    """`CC` and `CXX` as set in the environment ('' = the system default)."""
    cpu: str
    platform: str
    python: str
    source_edits: str = ""
    """A digest of `SOURCE_EDITS` ('' = the sdist as published)."""

    @property
    def key(self) -> str:
        """Names the cache folder: the version, the backend, and a digest of the rest."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        return f"llama-cpp-python-{self.version}-{self.backend}-{digest.hexdigest()[:16]}"

    def environment(self) -> dict[str, str]:
        """The process environment for a build: these exact flags, nothing inherited."""
        env = {**os.environ, "CMAKE_ARGS": shlex.join(self.cmake_args)}
        flags = " ".join(self.compiler_flags)
        env["CFLAGS"] = env["CXXFLAGS"] = flags
        env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        # SOURCE_DATE_EPOCH silently switches llama.cpp's native build off
        env.pop("SOURCE_DATE_EPOCH", None)
        return env


def recipe_from_env(
    *,
    version: str = LLAMA_CPP_PYTHON_VERSION,
    environ: dict[str, str] | None = None,
    machine: str | None = None,
    system: str | None = None,
) -> BuildRecipe:
    """The recipe for this machine: the backend comes from `LLM_SERVICE_LLAMA_BACKEND`
    (`cpu` by default), extra CMake arguments from `LLM_SERVICE_LLAMA_CMAKE_ARGS`.
    A `CMAKE_ARGS`, `CFLAGS` or `CXXFLAGS` already set is not used: the recipe is
    exactly what its key says."""
    env = os.environ if environ is None else environ
    machine = machine or platform.machine()
    system = system or sys.platform
    backend = env.get(BACKEND_ENV, "cpu").strip().lower() or "cpu"
    if backend not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV}={backend!r}: choose one of {', '.join(BACKENDS)}")
    cmake_args = (
        "-DGGML_NATIVE=ON",
        *BACKENDS[backend],
        *shlex.split(env.get(EXTRA_CMAKE_ENV, "")),
    )
    # GCC and Clang on x86-64; MSVC takes no -m flags and enables no AMX under native
    flags = NO_AMX_FLAGS if _is_x86_64(machine) and system != "win32" else ()
    return BuildRecipe(
        version=version,
        backend=backend,
        cmake_args=cmake_args,
        compiler_flags=flags,
        compilers=(env.get("CC", ""), env.get("CXX", "")),
        cpu=cpu_fingerprint(),
        platform=f"{system}-{machine}",
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
        source_edits=edits_digest(SOURCE_EDITS),
    )


def edits_digest(edits: tuple[SourceEdit, ...]) -> str:
    """What the key records of the edits: their text, not their explanations."""
    if not edits:
        return ""
    text = json.dumps([(edit.path, edit.before, edit.after) for edit in edits])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def download_sdist(python: Path, version: str, dest: Path) -> Path:
    """Download llama-cpp-python's sdist with pip (so the user's index settings apply),
    unpack it into `dest` and return its top folder."""
    subprocess.run(
        [
            *(str(python), "-m", "pip", "download", "--no-deps", "--no-cache-dir"),
            *("--no-binary", "llama-cpp-python", "-d", str(dest)),
            f"llama-cpp-python=={version}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    archives = sorted(dest.glob("llama_cpp_python-*.tar.gz"))
    if len(archives) != 1:
        raise RuntimeError(f"pip download left {len(archives)} llama-cpp-python sdists in {dest}")
    with tarfile.open(archives[0]) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: no links or paths outside
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)  # the sdist pip just downloaded from the index
    folders = [path for path in dest.glob("llama_cpp_python-*") if path.is_dir()]
    if len(folders) != 1:
        raise RuntimeError(f"the llama-cpp-python sdist in {dest} did not unpack to one folder")
    return folders[0]


def apply_source_edits(source: Path, edits: tuple[SourceEdit, ...] = SOURCE_EDITS) -> None:
    """Apply each edit to the unpacked sdist at `source`; raise ValueError naming the
    file when its `before` text is not there exactly once."""
    for edit in edits:
        target = source / edit.path
        text = target.read_text(encoding="utf-8")
        found = text.count(edit.before)
        if found != 1:
            raise ValueError(
                f"{edit.path}: the text to replace occurs {found} times, not once; "
                "this llama-cpp-python version needs its edits reviewed"
            )
        target.write_text(text.replace(edit.before, edit.after), encoding="utf-8", newline="")


@dataclass(frozen=True, slots=True)
class CachedWheel:
    folder: Path
    wheel: Path

    @property
    def url(self) -> str:
        """What pip records in the installed distribution's `direct_url.json`."""
        return self.wheel.resolve().as_uri()


def cached_wheel(recipe: BuildRecipe) -> CachedWheel | None:
    """The wheel this recipe built before, if its folder is complete."""
    folder = cache_dir() / "wheels" / recipe.key
    wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    if not (folder / "build.json").is_file() or len(wheels) != 1:
        return None
    return CachedWheel(folder, wheels[0])


def build_wheel(python: Path, recipe: BuildRecipe) -> CachedWheel:
    """Compile llama-cpp-python with the recipe into its cache folder (8-10 min on two
    cores), from its sdist with `SOURCE_EDITS` applied. pip's own cache is bypassed both
    ways, so no wheel built with other flags comes in and ours goes nowhere else. The
    folder appears whole or not at all; the verbose log beside the wheel holds every
    compile command."""
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    final = wheels / recipe.key
    staging = Path(tempfile.mkdtemp(prefix=f".{recipe.key}-", dir=wheels))
    log = staging / "build.log"
    unpacked = Path(tempfile.mkdtemp(prefix="llama-sdist-"))
    print(f"Downloading the llama-cpp-python {recipe.version} sdist", flush=True)
    try:
        source = download_sdist(python, recipe.version, unpacked)
        apply_source_edits(source)
        command = [
            *(str(python), "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-v"),
            *("--config-settings", "build.verbose=true"),
            *("--wheel-dir", str(staging), str(source)),
        ]
        print(
            f"Building llama-cpp-python {recipe.version} ({recipe.backend}) into {final}",
            flush=True,
        )
        print(f"  CMAKE_ARGS={shlex.join(recipe.cmake_args)}", flush=True)
        print(f"  CFLAGS=CXXFLAGS={' '.join(recipe.compiler_flags)}", flush=True)
        print(f"  log: {final / 'build.log'} (about 8-10 minutes on 2 cores)", flush=True)
        started = time.monotonic()
        with log.open("wb") as out:
            env = recipe.environment()
            code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        kept = wheels / f"failed-{recipe.key}.log"
        shutil.copy2(log, kept)
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(
            "building llama-cpp-python failed; the end of the log:\n"
            + "\n".join(tail)
            + f"\nwhole log: {kept}"
        )
    built = next(staging.glob("llama_cpp_python-*.whl"))
    record = {
        **asdict(recipe),
        "key": recipe.key,
        "wheel": built.name,
        "sha256": hashlib.sha256(built.read_bytes()).hexdigest(),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    (staging / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    if final.exists():  # a concurrent build finished first, or a broken leftover
        shutil.rmtree(final)
    staging.rename(final)
    found = cached_wheel(recipe)
    assert found is not None
    return found


def main(argv: list[str] | None = None) -> int:
    """`python scripts/llama_build.py --dest DIR`: the wheel `dev.py` would install here,
    built once (or taken from the cache) and copied to DIR. The container image builds
    llama-cpp-python this way, so it gets the same recipe and the same AMX guard."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--dest", type=Path, required=True, help="folder to copy the wheel to")
    args = parser.parse_args(argv)
    recipe = recipe_from_env()
    wheel = cached_wheel(recipe) or build_wheel(Path(sys.executable), recipe)
    args.dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(wheel.wheel, args.dest)
    print(args.dest / wheel.wheel.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
