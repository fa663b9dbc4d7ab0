"""deploy/haproxy.cfg as HAProxy itself reads it, in each of its modes, and what it
answers when no replica can: an error both SDKs understand, never a bare HTML page."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import anthropic
import openai
import pytest

from tests.replicas.conftest import (
    CONFIG,
    HAPROXY,
    LOGS,
    SLOTS,
    Proxy,
    Replica,
    free_port,
    openai_client,
)

MODES = {
    "three-replicas": {f"LLM_REPLICA_{i}": f"127.0.0.1:{9000 + i}" for i in (1, 2, 3)},
    "kubernetes-dns": {"LLM_REPLICAS_DNS": "llm-service-replicas.default.svc.cluster.local:8000"},
    "round-robin": {
        "LLM_PROXY_BALANCE": "roundrobin",
        **{f"LLM_REPLICA_{i}": f"127.0.0.1:{9000 + i}" for i in (1, 2, 3)},
    },
}


@pytest.mark.parametrize("mode", list(MODES))
def test_haproxy_accepts_the_configuration(mode: str) -> None:
    env = {
        **os.environ,
        "LLM_PROXY_BIND": f"127.0.0.1:{free_port()}",
        "LLM_REPLICA_SLOTS": "4",
        **MODES[mode],
    }
    checked = subprocess.run(
        [HAPROXY, "-c", "-f", str(CONFIG)], env=env, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    assert "ALERT" not in checked.stderr


def test_with_no_replica_left_both_sdks_get_a_503_they_can_read(tmp_path: Path) -> None:
    # Three replicas that never started: ports where nothing listens.
    absent = [Replica(f"replica{i}", [], LOGS) for i in (1, 2, 3)]
    proxy = Proxy(absent, SLOTS, LOGS)
    try:
        proxy.start(wait_for="DOWN")
        with (
            openai_client(proxy) as client,
            pytest.raises(openai.InternalServerError) as openai_error,
        ):
            client.chat.completions.create(
                model="any", messages=[{"role": "user", "content": "Hi"}], max_tokens=1
            )
        assert openai_error.value.status_code == 503
        assert "No replica could take the request" in openai_error.value.message
        assert openai_error.value.response.headers["retry-after"] == "2"

        with (
            anthropic.Anthropic(base_url=proxy.root, api_key="k", max_retries=0) as client,
            pytest.raises(anthropic.APIStatusError) as anthropic_error,
        ):
            client.messages.create(
                model="any", max_tokens=1, messages=[{"role": "user", "content": "Hi"}]
            )
        assert anthropic_error.value.status_code == 503
        assert anthropic_error.value.body == {
            "type": "error",
            "error": {
                "type": "overloaded_error",
                "message": "No replica could take the request in time (all busy, loading "
                "or shutting down); retry after Retry-After seconds.",
                "param": None,
                "code": "service_unavailable",
            },
        }
    finally:
        proxy.stop()
