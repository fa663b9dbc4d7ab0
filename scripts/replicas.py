"""Several replicas of the server behind HAProxy, on this machine.

    python scripts/replicas.py --replicas 3 --port 8000     # Ctrl-C stops them all

Each replica is a `python -m app` process on its own port; HAProxy runs
`deploy/haproxy.cfg` exactly as shipped, its servers given by the environment. The
replica tests (tests/replicas) and the replica benchmark (scripts/bench_replicas.py)
start their processes with the classes here, so what they check is what this runs.
Real processes, not threads: a replica can be sent SIGTERM or SIGKILL and started
again on the same port, and HAProxy sees each of those as it would in production.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "deploy" / "haproxy.cfg"
HAPROXY = os.environ.get("LLM_SERVICE_HAPROXY", "/usr/sbin/haproxy")

__all__ = ("CONFIG", "HAPROXY", "Proxy", "Replica", "StartError", "free_port")


class StartError(RuntimeError):
    """A process exited, or did not reach the state waited for, in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise StartError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _clean_env() -> dict[str, str]:
    """This environment without settings of ours: each process gets its own flags."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("LLM_SERVICE_", "LLM_PROXY_"))}


@dataclass
class Replica:
    """One server process; it can be stopped, killed and started again on its port.
    `flags` are `python -m app` flags (model, threads, slots...)."""

    name: str
    flags: Sequence[str]
    logs: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        """Start the process; return once /health says the model is loaded."""
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it (`wait_ready`): replicas that load
        at the same time are ready sooner than one after another."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self._log = (self.logs / f"{self.name}.log").open("ab")  # closed on exit
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--port", str(self.port), *self.flags],
            cwd=ROOT,
            env=_clean_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        wait_until(self.healthy, f"{self.name} to load its model", timeout)

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise StartError(f"{self.name} exited with {code}; see {self.logs}")
        try:
            return httpx.get(f"http://{self.address}/health").status_code == 200
        except httpx.TransportError:
            return False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout)
        if self._log is not None:
            self._log.close()
        return code

    def stop(self) -> None:
        """SIGTERM (the server drains), then SIGKILL if it takes too long."""
        if self.running:
            self.signal(signal.SIGTERM)
            try:
                self.wait_exit(60)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.wait_exit()

    def metric(self, name: str) -> float:
        """A counter or gauge of the replica's /metrics, over all its models (e.g. the
        engine's `llm_cached_prompt_tokens_total`, its own record of reused prompt
        tokens)."""
        text = httpx.get(f"http://{self.address}/metrics").text
        family = name.removesuffix("_total")
        if f"# TYPE {family} " not in text and f"# TYPE {name} " not in text:
            raise KeyError(f"{name} is missing from {self.name}'s /metrics")
        # summed over its labels (request metrics are per model); 0 before any sample
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith((f"{name} ", f"{name}{{"))
        )


@dataclass
class Proxy:
    """haproxy running deploy/haproxy.cfg in front of `replicas`.

    `balance="roundrobin"` is the same file with cache affinity off
    (`LLM_PROXY_BALANCE`), to compare; `slots` must be the replicas' `model.n_parallel`.
    """

    replicas: Sequence[Replica]
    slots: int
    logs: Path
    balance: str | None = None
    port: int = field(default_factory=free_port)
    stats_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    def start(self, wait_for: str = "UP") -> None:
        """Start haproxy; return once it sees every replica in state `wait_for`."""
        env = {
            **_clean_env(),
            "LLM_PROXY_BIND": f"127.0.0.1:{self.port}",
            "LLM_PROXY_STATS_BIND": f"127.0.0.1:{self.stats_port}",
            "LLM_REPLICA_SLOTS": str(self.slots),
            **{f"LLM_REPLICA_{i}": r.address for i, r in enumerate(self.replicas, start=1)},
        }
        if self.balance is not None:
            env["LLM_PROXY_BALANCE"] = self.balance
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"haproxy-{self.balance or 'affinity'}.log"
        with log.open("ab") as out:
            # -db: stay in the foreground; the log goes to stdout, into the file.
            self.proc = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(CONFIG)], env=env, stdout=out, stderr=out
            )
        self.wait_states({r.name: wait_for for r in self.replicas})

    def states(self) -> dict[str, str]:
        """Each server's state as the proxy sees it: UP, DOWN, MAINT... (`UP 1/2` is
        a server on its way up, `DOWN 1/2` one on its way down)."""
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise StartError(f"haproxy exited with {code}; see {self.logs}")
        try:
            text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv").text
        except httpx.TransportError:
            return {}
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == "replicas" and row["svname"] not in {"BACKEND", "FRONTEND"}
        }

    def wait_states(self, wanted: dict[str, str], timeout: float = 30) -> None:
        def reached() -> bool:
            states = self.states()
            return all(states.get(name) == state for name, state in wanted.items())

        wait_until(reached, f"the proxy to see {wanted}", timeout)

    def cpu_seconds(self) -> float:
        """CPU time haproxy has used (Linux), to measure its cost per request."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3, choices=range(1, 4))
    parser.add_argument("--port", type=int, default=8000, help="the proxy's port")
    parser.add_argument("--slots", type=int, default=4, help="model.n_parallel of each")
    parser.add_argument("--threads", type=int, default=1, help="model.n_threads of each")
    parser.add_argument("flags", nargs="*", help="more `python -m app` flags, after --")
    args = parser.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="llm-replicas-"))
    flags = [
        *("--model-n-parallel", str(args.slots), "--model-n-threads", str(args.threads)),
        *args.flags,
    ]
    key = secrets.token_bytes(32)  # one key: any replica opens reasoning another sealed
    for i in range(1, args.replicas + 1):
        (logs / f"store{i}").mkdir()
        (logs / f"store{i}" / "reasoning.key").write_bytes(key)
    replicas = [
        Replica(f"replica{i}", [*flags, "--responses-dir", str(logs / f"store{i}")], logs)
        for i in range(1, args.replicas + 1)
    ]
    proxy = Proxy(replicas, args.slots, logs, port=args.port)
    try:
        for replica in replicas:
            replica.launch()
        for replica in replicas:
            replica.wait_ready()
            print(f"{replica.name}: http://{replica.address}", flush=True)
        proxy.start()
        print(f"proxy: {proxy.base_url}  (stats: http://127.0.0.1:{proxy.stats_port}/stats)")
        print(f"logs: {logs}; Ctrl-C stops everything", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
        for replica in replicas:
            replica.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
