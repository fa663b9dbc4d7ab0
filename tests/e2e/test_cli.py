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
import pytest

from tests.conftest import TEST_THREADS
from tests.e2e.conftest import wait_healthy

ROOT = Path(__file__).resolve().parents[2]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LLM_SERVICE_")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def app(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app", "--model-n-threads", str(TEST_THREADS), *args],
        cwd=ROOT,
        env={**clean_env(), **(env or {})},
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


def test_sigterm_lets_a_running_reply_end_cleanly_within_the_grace_period() -> None:
    port = free_port()
    proc = app("--port", str(port), "--server-shutdown-grace", "1")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, lambda: proc.poll() is None)
        body = {
            "messages": [
                {
                    "role": "user",
                    "content": "Write a very long and detailed essay, at least 5,000 words, on "
                    "the history of bridges. Give every century its own section.",
                }
            ],
            "max_tokens": 3000,
            "temperature": 0,
            "stream": True,
        }
        lines: list[str] = []
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=30) as reply:
            for line in reply.iter_lines():
                lines.append(line)
                if len(lines) == 10:
                    signalled = time.monotonic()
                    proc.send_signal(signal.SIGTERM)
                    time.sleep(0.2)
                    with pytest.raises(httpx.TransportError):  # no longer listening
                        httpx.get(f"{base}/health", timeout=2)
        ended = time.monotonic() - signalled
        assert lines[-2:] == ["data: [DONE]", ""] or lines[-1] == "data: [DONE]"
        events = [line for line in lines if line.startswith("data: {")]
        assert '"finish_reason":"length"' in events[-1]
        assert ended < 5  # the 1 s grace, not the 3000 tokens
        output, _ = proc.communicate(timeout=30)
        assert "Shutting down" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
