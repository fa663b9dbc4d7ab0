"""deploy/start.sh, the container's entry point, run as the image runs it: it downloads
the configured model from a stand-in for the Hub at the first start, not at the next,
and leaves the server as the process that gets SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import wait_healthy
from tests.replicas.conftest import free_port
from tests.unit.fake_hub import REPO, serving
from tests.unit.test_download_model import resolve_gets, script_env

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / "deploy" / "start.sh"


def _start(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["/bin/sh", str(START), "--port", str(port), "--model-n-threads", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _serve_then_stop(env: dict[str, str]) -> str:
    """Start, check which model is served, SIGTERM the process started; its output."""
    port = free_port()
    proc = _start(env, port)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", lambda: proc.poll() is None)
        assert httpx.get(f"http://127.0.0.1:{port}/health").json()["model"] == "tiny-q4_1"
        proc.send_signal(signal.SIGTERM)  # to the PID started: the server itself (exec)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (0, -signal.SIGTERM)
    assert "Shutting down" in output  # the server's drain ran: the signal reached it
    return output


@pytest.mark.skipif(sys.platform == "win32", reason="the container's shell script")
def test_the_entry_point_downloads_once_then_serves_and_drains(
    model_path: Path, tmp_path: Path
) -> None:
    with serving({REPO: {"tiny-q4_1.gguf": model_path.read_bytes()}}) as hub:
        env = script_env(
            hub,
            tmp_path,
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            LLM_SERVICE_MODEL_REPO=REPO,
            LLM_SERVICE_MODEL_FILE="*q4_1.gguf",
            LLM_SERVICE_MODEL_DIR=str(tmp_path / "models"),
            LLM_SERVICE_RESPONSES_DIR=str(tmp_path / "data"),
            LLM_SERVICE_MODEL_FLASH_ATTN="off",  # no one-off measurement: not what is tested
        )
        _serve_then_stop(env)
        assert len(resolve_gets(hub)) == 1
        _serve_then_stop(env)  # the volume has the model: nothing is fetched again
        assert len(resolve_gets(hub)) == 1
