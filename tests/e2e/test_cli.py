"""`python -m app` as a user runs it: start-up failures exit non-zero with a clear message."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LLM_SERVICE_")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def app(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app", "--model-n-threads", "2", *args],
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_an_invalid_flag_exits_2_naming_the_setting() -> None:
    proc = app("--model-n-ctx", "lots")
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "model.n_ctx" in output
    assert "command-line flag" in output


def test_a_model_that_cannot_load_stops_the_server_with_exit_1(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a GGUF file")
    proc = app("--model", str(bogus), "--port", str(free_port()))
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "could not be loaded" in output


def test_without_a_downloaded_model_it_serves_the_embedded_one_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    proc = app("--model-dir", str(tmp_path), "--port", str(port))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health")
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.1)
        assert health.json()["model"] == "SmolLM2-135M-Instruct.Q4_1"
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    assert "falling back to the embedded model" in output
    assert "scripts/download_model.py" in output
