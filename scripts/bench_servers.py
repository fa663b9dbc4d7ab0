"""The servers `bench.py` compares: how to build, start, watch and stop each one.

Every server runs the same GGUF with the same threads and per-sequence context, on a
free loopback port, as a child process whose resident memory we sample (psutil, so
the harness runs on macOS and Windows too). llama.cpp's `llama-server` is built once
from the llama.cpp sources vendored in the llama-cpp-python sdist of the installed
version, with the same compiler flags (`llama_build`), so both sides run the very same
kernels; the build is cached outside the repo, keyed by version and flags.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import llama_build
import psutil  # type: ignore[import-untyped]

__all__ = (
    "KNOWN_SERVERS",
    "RunningServer",
    "ServerSpec",
    "build_llama_server",
    "free_port",
    "llama_server_commands",
    "server_command",
    "start_server",
)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for `config`, imported lazily (see `_ours_parallel`)
KNOWN_SERVERS = (
    "ours",
    "ours-nospec",
    "ours-draft",
    "ours-by-shape",
    "llama-cpp-python",
    "llama-server",
    "llama-server-ngram-simple",
    "llama-server-ngram-mod",
)
"""`ours`: our defaults (`speculative.mode = auto`: n-gram guessing with the embedded
model); `ours-nospec`: ours with speculative decoding off; `ours-draft`: ours with the
served model as its own draft model (a correctness run: no smaller model of the same
vocabulary is at hand); `ours-by-shape`: ours with `model.batch_invariant` off (ggml's
kernels chosen by each step's shape, weights repacked: what exact replies cost);
`llama-server-ngram-*`: llama-server with that `--spec-type` (n-gram speculation from
the prompt and reply, its defaults)."""


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """What every server gets alike."""

    model: Path
    threads: int
    ctx_per_seq: int
    slots: int
    """Parallel sequences for servers that batch (ours, llama-server)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_llama_server(log: Path | None = None) -> Path:
    """`llama-server` built from the installed llama-cpp-python's sdist, cached.

    It is compiled with the same recipe as the Python bindings (`llama_build`: native
    CPU kernels without AMX, the same backend), so both sides of a comparison run the
    same kernels; the cache folder is named by the recipe's key, flags included.
    Raises RuntimeError with the reason when it cannot be built (no cmake or compiler,
    no sdist); the caller skips that server.
    """
    recipe = llama_build.recipe_from_env(version=importlib.metadata.version("llama-cpp-python"))
    target = llama_build.cache_dir() / f"llama-server-{recipe.key}"
    binary = target / "bin" / ("llama-server.exe" if os.name == "nt" else "llama-server")
    if binary.exists():
        return binary
    cmake = shutil.which("cmake")
    if cmake is None:
        raise RuntimeError("cmake is not installed")
    target.mkdir(parents=True, exist_ok=True)
    try:
        _build(recipe, cmake, binary, log)
    except (
        subprocess.CalledProcessError,
        StopIteration,
        OSError,
        ValueError,
        tarfile.TarError,
    ) as exc:
        raise RuntimeError(f"building llama-server failed: {exc!r}") from exc
    return binary


def llama_server_commands(
    recipe: llama_build.BuildRecipe, cmake: str, source: Path, build: Path
) -> list[list[str]]:
    """The CMake configure and build commands for `llama-server` (run with
    `recipe.environment()`, which carries the compiler flags)."""
    return [
        [
            *(cmake, "-S", str(source), "-B", str(build)),
            *("-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF"),
            *("-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF"),
            *("-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON"),
            *recipe.cmake_args,
        ],
        [
            *(cmake, "--build", str(build), "--config", "Release"),
            *("--target", "llama-server", "-j", str(os.cpu_count() or 2)),
        ],
    ]


def _build(recipe: llama_build.BuildRecipe, cmake: str, binary: Path, log: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="llama-sdist-") as tmp:
        sdist = llama_build.download_sdist(Path(sys.executable), recipe.version, Path(tmp))
        llama_build.apply_source_edits(sdist)  # the same source as the bindings
        source = sdist / "vendor" / "llama.cpp"
        build = Path(tmp) / "build"
        out = log.open("ab") if log else subprocess.DEVNULL
        try:
            for args in llama_server_commands(recipe, cmake, source, build):
                subprocess.run(args, check=True, stdout=out, stderr=out, env=recipe.environment())
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # type: ignore[union-attr]
        built = next(build.rglob(binary.name))
        binary.parent.mkdir(exist_ok=True)
        shutil.copy2(built, binary)


def _ours_parallel(slots: int) -> list[str]:
    """`--model-n-parallel` once our settings have it; imported lazily so that the other
    servers can be benchmarked whatever state `config` is in."""
    from config.settings import ModelSettings

    if "n_parallel" in ModelSettings.__struct_fields__:
        return ["--model-n-parallel", str(slots)]
    return []


def server_command(name: str, spec: ServerSpec, port: int) -> list[str]:
    """The command line that starts server `name` (one of `KNOWN_SERVERS`) on `port`."""
    threads = str(spec.threads)
    if name in ("ours", "ours-nospec", "ours-draft", "ours-by-shape"):
        return [
            *(sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)),
            *("--model-path", str(spec.model), "--model-n-threads", threads),
            *("--model-n-ctx", str(spec.ctx_per_seq), *_ours_parallel(spec.slots)),
            *("--server-log-level", "warning"),
            *(("--speculative-mode", "off") if name == "ours-nospec" else ()),
            *(("--model-batch-invariant", "false") if name == "ours-by-shape" else ()),
            *(
                ("--speculative-mode", "draft", "--model-draft-path", str(spec.model))
                if name == "ours-draft"
                else ()
            ),
        ]
    if name == "llama-cpp-python":
        return [
            *(sys.executable, "-m", "llama_cpp.server", "--host", "127.0.0.1"),
            *("--port", str(port), "--model", str(spec.model), "--n_ctx", str(spec.ctx_per_seq)),
            *("--n_threads", threads, "--n_threads_batch", threads),
            *("--interrupt_requests", "False"),
        ]
    if name.startswith("llama-server"):
        kind = name.removeprefix("llama-server-")
        return [
            *(str(build_llama_server()), "--host", "127.0.0.1", "--port", str(port)),
            *("-m", str(spec.model), "-t", threads, "-tb", threads),
            *("-np", str(spec.slots), "-c", str(spec.ctx_per_seq * spec.slots)),
            *("--no-webui", "-cram", "0"),
            *(("--spec-type", kind) if kind != name else ()),
        ]
    raise ValueError(f"unknown server {name!r}; known: {', '.join(KNOWN_SERVERS)}")


@dataclass
class RunningServer:
    """A started server: its base URL and the peak RSS seen so far (bytes)."""

    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    peak_rss: int = 0
    idle_rss: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample_rss(self) -> int:
        try:
            proc = psutil.Process(self.process.pid)
            rss = int(proc.memory_info().rss)
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    rss += child.memory_info().rss
        except psutil.Error:
            return self.peak_rss
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            self.sample_rss()

    def stop(self) -> None:
        self._stop.set()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _answers(url: str, missing_ok: bool = False) -> bool:
    """Whether `url` answers 200; with `missing_ok` a 404 counts too: llama-cpp-python's
    server has no `/health`, while llama-server's answers 503 until the model is loaded."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as exc:
        return missing_ok and exc.code == 404
    except OSError:
        return False


def _wait_ready(server: RunningServer, timeout: float, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    url = server.base_url + "/models"
    health = server.base_url.removesuffix("/v1") + "/health"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with code {server.process.returncode}")
        if _answers(url) and _answers(health, missing_ok=True):
            return
        time.sleep(poll)
    raise RuntimeError(f"{server.name} was not ready within {timeout:.0f}s")


@contextlib.contextmanager
def start_server(
    name: str,
    spec: ServerSpec,
    log_dir: Path,
    *,
    command: Callable[[int], list[str]] | None = None,
    env: Mapping[str, str] | None = None,
    settle: float = 1.0,
    poll: float = 0.2,
) -> Iterator[RunningServer]:
    """Run one server for the duration of the block; its output goes to `log_dir`.

    `command(port)` replaces `server_command` (for servers outside `KNOWN_SERVERS`), `env`
    adds variables, `settle` is the pause before the idle memory sample and `poll` the
    interval of the readiness checks (a benchmark that times start-up wants both short).
    """
    port = free_port()
    argv = command(port) if command else server_command(name, spec, port)
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"{name}.log").open("ab") as log:
        variables = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        process = subprocess.Popen(argv, stdout=log, stderr=log, cwd=ROOT, env=variables)
        server = RunningServer(name, f"http://127.0.0.1:{port}/v1", process)
        watcher = threading.Thread(target=server._watch, daemon=True)
        try:
            watcher.start()
            _wait_ready(server, timeout=120, poll=poll)
            time.sleep(settle)  # let load-time allocations settle before the idle sample
            server.idle_rss = server.sample_rss()
            yield server
        finally:
            server.stop()
            watcher.join()
