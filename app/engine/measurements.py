"""What the engine measured on this machine for a model, kept between runs.

Two start-up choices are measured rather than assumed: whether flash attention is the
faster path (`attention`), and whether a position's logits depend on the shape of the
step that computes them (`shape_probe`). Their answers depend only on the model file,
the llama.cpp build, the CPU and the settings that shape the computation, so they are
kept in the user's cache folder under a key of those, and measured again only when one
of them changes. A restart then skips them: the shape probe alone reads ~200 prompt
tokens, 0.7 s for SmolLM2-135M on two EPYC threads and far longer for a 7B model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import threading
from pathlib import Path
from typing import Any

import llama_cpp

__all__ = ("cache_file", "cpu_identity", "file_identity", "recall", "remember")

logger = logging.getLogger("llm_service.engine")


_EDGE = 1 << 20
"""Bytes read from each end of a model file for its identity."""


def cache_file() -> Path:
    """`measurements.json` in the user's cache folder (XDG, or LOCALAPPDATA on Windows)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        base = os.environ["LOCALAPPDATA"]
    return Path(base) / "llm-service" / "measurements.json"


def file_identity(path: str) -> list[Any]:
    """The model file as a key: its name, size and a digest of its first and last MiB
    (the GGUF header with the tensors' layout, and the end of the weights). Not the
    modification time: a reinstall of the same file (a fresh virtual environment, a
    copy) keeps its measurements; reading the whole file would take seconds for a 7B."""
    stat = Path(path).stat()
    return list(_file_identity(path, stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=16)
def _file_identity(path: str, size: int, mtime_ns: int) -> tuple[Any, ...]:
    """Read once per file and process: the attention choice and the context's key both
    ask, and every engine started in a process asks again. A changed size or time reads
    the file again."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as model:
        digest.update(model.read(_EDGE))
        if size > _EDGE:
            model.seek(max(_EDGE, size - _EDGE))
            digest.update(model.read(_EDGE))
    return (Path(path).name, size, digest.hexdigest()[:24])


@functools.cache
def _cpu_model_name() -> str:
    """`platform.processor()` is only the architecture on Linux, so the model name comes
    from /proc/cpuinfo where there is one (read once per process)."""
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


def cpu_identity(system_info: str) -> list[Any]:
    """The CPU and the llama.cpp build as a key; the build's report lists the
    instruction sets compiled in."""
    return [
        platform.machine(),
        _cpu_model_name(),
        os.cpu_count(),
        llama_cpp.__version__,
        system_info,
    ]


def _key(kind: str, identity: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{kind}:{digest[:24]}"


def recall(kind: str, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The measurement of this kind kept for `identity`, or None."""
    try:
        known = json.loads(cache_file().read_text()).get(_key(kind, identity))
    except (OSError, ValueError, AttributeError):
        return None
    return known if isinstance(known, dict) else None


def remember(kind: str, identity: dict[str, Any], value: dict[str, Any]) -> None:
    """Keep a measurement (replacing the file whole, so a reader never sees half of it;
    two servers starting at once may each measure, and the last one's file stays)."""
    cache = cache_file()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        try:
            entries = json.loads(cache.read_text())
        except (OSError, ValueError):
            entries = {}
        if not isinstance(entries, dict):
            entries = {}
        entries[_key(kind, identity)] = value
        staging = cache.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
        staging.write_text(json.dumps(entries, indent=1))
        staging.replace(cache)
    except OSError as exc:  # a read-only home: measure again next time
        logger.warning("Could not keep the %s measurement in %s: %s", kind, cache, exc)
