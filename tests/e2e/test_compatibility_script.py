"""scripts/test_openai_compatibility.py passes against our server and fails loudly otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import LiveServer

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "test_openai_compatibility.py"


def run(base_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--base-url", base_url, "--timeout", "180"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        encoding="utf-8",
    )


def test_all_checks_pass_against_the_live_server(live: LiveServer) -> None:
    result = run(live.base_url)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "✅ 所有测试完成"
    assert len([line for line in lines if line.startswith("✅ ")]) == 11
    assert not any(line.startswith("❌") for line in lines)


def test_a_wrong_base_url_fails_with_a_nonzero_exit(live: LiveServer) -> None:
    result = run(live.root)  # missing /v1
    assert result.returncode == 1
    assert "❌" in result.stdout
    assert "所有测试完成" not in result.stdout
