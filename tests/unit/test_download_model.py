"""scripts/download_model.py, run for real against a stand-in for the Hugging Face Hub.

The stand-in (`tests/unit/fake_hub.py`) records every request, so that the tests can
check what the script asked for (a resumed download is a GET with `Range: bytes=N-`),
and that it asked for nothing when it had nothing to do. The script reaches the stand-in
through HF_ENDPOINT, which huggingface_hub reads once at import time; that is why the
script runs in a subprocess with HF_ENDPOINT in its environment.
"""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx2
import pytest
from huggingface_hub import constants as hf_constants
from huggingface_hub._local_folder import get_local_download_paths

from tests.unit.fake_hub import REPO, FakeHub, Seen, etag, serving

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "download_model.py"
Q4 = "tiny-q4_k_m.gguf"
Q8 = "tiny-q8_0.gguf"


def _random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    repos = {
        REPO: {
            Q4: _random_bytes(300_000, seed=4),
            Q8: _random_bytes(200_000, seed=8),
            "README.md": b"# tiny\n",
        }
    }
    with serving(repos) as fake:
        yield fake


def script_env(hub: FakeHub, tmp_path: Path, **env: str) -> dict[str, str]:
    """An environment pointed at `hub` and isolated from this machine.

    No LLM_SERVICE_* or HF_* variables leak in (a token, an offline flag, a config file),
    no proxy is used for 127.0.0.1, and huggingface_hub's own cache (HF_HOME) is in
    `tmp_path`, so that nothing is read from or written to ~/.cache.
    """
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LLM_SERVICE_", "HF_", "HUGGING"))
        and key.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    }
    return clean | {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "NO_PROXY": "127.0.0.1",
        **env,
    }


def run_script(
    hub: FakeHub, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """The script in a fresh interpreter, with `script_env`."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=tmp_path,
        env=script_env(hub, tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert lines, "nothing printed"
    return lines[-1]


def model_dir(tmp_path: Path, repo: str = REPO) -> Path:
    return tmp_path / "models" / repo


def partial_path(folder: Path, name: str, content: bytes) -> Path:
    """Where the script keeps the partial download of `content` between runs."""
    return folder / ".cache" / "llm-service" / f"{name}.{etag(content)}.part"


def resolve_gets(hub: FakeHub) -> list[Seen]:
    return [seen for seen in hub.requests if seen.method == "GET" and "/resolve/" in seen.path]


def test_downloads_the_default_quantization_and_prints_its_path(
    hub: FakeHub, tmp_path: Path
) -> None:
    result = run_script(hub, tmp_path, "--repo", REPO, "--dir", "models")

    assert result.returncode == 0, result.stderr
    target = model_dir(tmp_path) / Q4
    assert last_line(result.stdout) == str(target.resolve())
    assert target.read_bytes() == hub.repos[REPO][Q4]
    assert not (model_dir(tmp_path) / Q8).exists()
    assert not (model_dir(tmp_path) / "README.md").exists()
    assert hub.requests == [
        Seen("GET", hub.tree_path()),
        Seen("HEAD", hub.resolve_path(Q4)),
        Seen("GET", hub.resolve_path(Q4)),
    ]
    assert "Traceback" not in result.stderr


def test_second_run_is_a_no_op_without_any_request(hub: FakeHub, tmp_path: Path) -> None:
    first = run_script(hub, tmp_path, "--repo", REPO, "--dir", "models")
    assert first.returncode == 0, first.stderr
    assert len(hub.requests) == 3
    hub.requests.clear()

    second = run_script(hub, tmp_path, "--repo", REPO, "--dir", "models")

    assert second.returncode == 0, second.stderr
    assert last_line(second.stdout) == last_line(first.stdout)
    assert "already downloaded" in second.stderr
    assert hub.requests == []


def test_interrupted_download_resumes_in_the_next_run(hub: FakeHub, tmp_path: Path) -> None:
    """Ctrl-C in the middle of a file keeps the bytes so far; the next run asks for the rest.

    huggingface_hub's `http_get` writes in chunks of DOWNLOAD_CHUNK_SIZE, so the file
    outgrows one chunk and the connection stalls after it, which leaves one chunk on disk.
    """
    chunk = hf_constants.DOWNLOAD_CHUNK_SIZE
    repo, name = "acme/big-GGUF", "big-q4_k_m.gguf"
    content = _random_bytes(chunk + 1_000_000, seed=11)
    hub.repos[repo] = {name: content}
    hub.stall_first_get_after[name] = chunk + 500_000
    folder = model_dir(tmp_path, repo)
    partial = partial_path(folder, name, content)
    args = ("--repo", repo, "--dir", "models")

    first = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        cwd=tmp_path,
        env=script_env(hub, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (partial.is_file() and partial.stat().st_size >= chunk):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first chunk never reached the disk"
            time.sleep(0.05)
        first.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = first.communicate(timeout=30)
    finally:
        hub.release.set()
        if first.poll() is None:
            first.kill()
            first.wait()

    assert first.returncode == 130, err
    assert out == ""
    assert "interrupted" in last_line(err)
    assert "Traceback" not in err
    assert not (folder / name).exists()
    assert partial.read_bytes() == content[:chunk]  # kept, for the next run
    resolve = hub.resolve_path(name, repo)
    assert resolve_gets(hub) == [Seen("GET", resolve)]
    hub.requests.clear()

    second = run_script(hub, tmp_path, *args)

    assert second.returncode == 0, second.stderr
    assert last_line(second.stdout) == str((folder / name).resolve())
    assert (folder / name).read_bytes() == content
    assert hub.requests == [
        Seen("GET", hub.tree_path(repo)),
        Seen("HEAD", resolve),
        Seen("GET", resolve, f"bytes={chunk}-"),
    ]
    assert f"Resuming {name} at byte {chunk}" in second.stderr
    assert not partial.exists()


def test_partial_of_another_version_is_discarded(hub: FakeHub, tmp_path: Path) -> None:
    """A partial named after an older ETag is deleted, and the file fetched from byte 0.

    It holds the first bytes of the current file, so were it continued, the result would
    even be right: only the requests tell. huggingface_hub's own temporary file from a
    killed `hf_hub_download` of this file (never reusable) is deleted too.
    """
    content = hub.repos[REPO][Q4]
    folder = model_dir(tmp_path)
    old = partial_path(folder, Q4, b"the previous version of the file")
    old.parent.mkdir(parents=True)
    old.write_bytes(content[:100_000])
    unrelated = partial_path(folder, Q8, hub.repos[REPO][Q8])
    unrelated.write_bytes(hub.repos[REPO][Q8][:1000])
    hf_incomplete = get_local_download_paths(folder, Q4).incomplete_path(etag(content))
    hf_orphan = hf_incomplete.with_name(f"{hf_incomplete.stem}.0123abcd.incomplete")
    hf_orphan.write_bytes(content[:100_000])

    result = run_script(hub, tmp_path, "--repo", REPO, "--dir", "models")

    assert result.returncode == 0, result.stderr
    assert (folder / Q4).read_bytes() == content
    assert resolve_gets(hub) == [Seen("GET", hub.resolve_path(Q4))]  # from byte 0: no Range
    assert not old.exists()
    assert not hf_orphan.exists()
    assert not partial_path(folder, Q4, content).exists()
    assert unrelated.exists()  # another file's partial is left alone


def test_corrupt_partial_fails_the_sha256_check_and_the_next_run_starts_over(
    hub: FakeHub, tmp_path: Path
) -> None:
    """A partial of the right length but with a wrong byte: only the sha256 can tell."""
    content = hub.repos[REPO][Q4]
    folder = model_dir(tmp_path)
    partial = partial_path(folder, Q4, content)
    partial.parent.mkdir(parents=True)
    corrupt = bytearray(content[:100_000])
    corrupt[50_000] ^= 0xFF
    partial.write_bytes(corrupt)
    args = ("--repo", REPO, "--dir", "models")

    first = run_script(hub, tmp_path, *args)

    assert first.returncode == 1
    assert first.stdout == ""
    assert "Traceback" not in first.stderr
    message = last_line(first.stderr)
    assert message.startswith(f"error: {REPO}: the download of {Q4} has sha256 ")
    assert f"instead of {etag(content)}" in message
    assert "run again" in message
    assert resolve_gets(hub) == [Seen("GET", hub.resolve_path(Q4), "bytes=100000-")]
    assert not partial.exists()
    assert not (folder / Q4).exists()
    hub.requests.clear()

    second = run_script(hub, tmp_path, *args)

    assert second.returncode == 0, second.stderr
    assert (folder / Q4).read_bytes() == content
    assert resolve_gets(hub) == [Seen("GET", hub.resolve_path(Q4))]


def test_file_flag_overrides_the_environment_and_is_case_insensitive(
    hub: FakeHub, tmp_path: Path
) -> None:
    result = run_script(
        hub,
        tmp_path,
        "--repo",
        REPO,
        "--dir",
        "models",
        "--file",
        "*Q8_0.gguf",
        LLM_SERVICE_MODEL_FILE="*q4_k_m.gguf",
    )

    assert result.returncode == 0, result.stderr
    target = model_dir(tmp_path) / Q8
    assert last_line(result.stdout) == str(target.resolve())
    assert target.read_bytes() == hub.repos[REPO][Q8]
    assert not (model_dir(tmp_path) / Q4).exists()
    assert Seen("GET", hub.resolve_path(Q8)) in hub.requests


def test_config_file_sets_the_defaults_and_flags_override_it(hub: FakeHub, tmp_path: Path) -> None:
    toml = tmp_path / "settings.toml"
    toml.write_text(f'[model]\nrepo = "{REPO}"\ndir = "store"\nfile = "*q8_0.gguf"\n')

    from_file = run_script(hub, tmp_path, "--config", str(toml))
    overridden = run_script(hub, tmp_path, "--config", str(toml), "--file", "*q4_k_m.gguf")

    assert from_file.returncode == 0, from_file.stderr
    assert overridden.returncode == 0, overridden.stderr
    store = tmp_path / "store" / REPO
    assert last_line(from_file.stdout) == str((store / Q8).resolve())
    assert last_line(overridden.stdout) == str((store / Q4).resolve())
    assert (store / Q8).read_bytes() == hub.repos[REPO][Q8]
    assert (store / Q4).read_bytes() == hub.repos[REPO][Q4]


def test_no_match_fails_naming_the_available_gguf_files(hub: FakeHub, tmp_path: Path) -> None:
    result = run_script(hub, tmp_path, "--repo", REPO, "--dir", "models", "--file", "*q2_k.gguf")

    assert result.returncode == 1
    assert result.stdout == ""
    message = last_line(result.stderr)
    assert message.startswith("error: ")
    assert "'*q2_k.gguf'" in message
    assert Q4 in message
    assert Q8 in message
    assert "README.md" not in message
    assert "Traceback" not in result.stderr
    assert hub.requests == [Seen("GET", hub.tree_path())]
    assert not model_dir(tmp_path).exists()


def test_environment_variables_are_honoured(hub: FakeHub, tmp_path: Path) -> None:
    result = run_script(
        hub,
        tmp_path,
        LLM_SERVICE_MODEL_REPO=REPO,
        LLM_SERVICE_MODEL_FILE="*q8_0.gguf",
        LLM_SERVICE_MODEL_DIR=str(tmp_path / "elsewhere"),
    )

    assert result.returncode == 0, result.stderr
    target = tmp_path / "elsewhere" / REPO / Q8
    assert last_line(result.stdout) == str(target.resolve())
    assert target.read_bytes() == hub.repos[REPO][Q8]
    assert not (tmp_path / "models").exists()


def test_several_matches_take_the_first_by_name_and_say_so(hub: FakeHub, tmp_path: Path) -> None:
    result = run_script(hub, tmp_path, "--repo", REPO, "--dir", "models", "--file", "*.gguf")

    assert result.returncode == 0, result.stderr
    assert last_line(result.stdout) == str((model_dir(tmp_path) / Q4).resolve())
    assert f"taking {Q4}" in result.stderr
    assert f"not {Q8}" in result.stderr
    assert not (model_dir(tmp_path) / Q8).exists()


def test_split_model_downloads_every_part_and_completes_a_partial_set(
    hub: FakeHub, tmp_path: Path
) -> None:
    parts = [f"q4/split-q4_k_m-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    repo = "acme/split-GGUF"
    hub.repos[repo] = {part: _random_bytes(50_000, seed=i) for i, part in enumerate(parts)}
    hub.repos[repo]["q8/split-q8_0.gguf"] = b"q8"
    folder = model_dir(tmp_path, repo)
    args = ("--repo", repo, "--dir", "models", "--file", "*q4_k_m-00001-of-*.gguf")

    first = run_script(hub, tmp_path, *args)

    assert first.returncode == 0, first.stderr
    assert last_line(first.stdout) == str((folder / parts[0]).resolve())
    for part in parts:
        assert (folder / part).read_bytes() == hub.repos[repo][part]
    assert not (folder / "q8").exists()

    # Part 3 lost (say, a run killed between parts): not a no-op, and only part 3 is fetched.
    (folder / parts[2]).unlink()
    hub.requests.clear()
    second = run_script(hub, tmp_path, *args)

    assert second.returncode == 0, second.stderr
    assert (folder / parts[2]).read_bytes() == hub.repos[repo][parts[2]]
    gets = [seen.path for seen in hub.requests if seen.method == "GET" and "/resolve/" in seen.path]
    assert gets == [hub.resolve_path(parts[2], repo)]


def test_unknown_repository_fails_in_one_line(hub: FakeHub, tmp_path: Path) -> None:
    result = run_script(hub, tmp_path, "--repo", "acme/missing", "--dir", "models")

    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert last_line(result.stderr).startswith("error: repository acme/missing not found on")
    assert hub.url in last_line(result.stderr)
    assert hub.requests == [Seen("GET", hub.tree_path("acme/missing"))]


def test_invalid_settings_exit_2_before_any_request(hub: FakeHub, tmp_path: Path) -> None:
    result = run_script(hub, tmp_path, "--repo", REPO, LLM_SERVICE_MODEL_NCTX="1")

    assert result.returncode == 2
    assert "LLM_SERVICE_MODEL_NCTX" in result.stderr
    assert "Traceback" not in result.stderr
    assert hub.requests == []


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("download_model_under_test", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_network_error_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process: a refused connection is retried by huggingface_hub for ~20 s first."""
    script = _load_script()

    class RefusingApi:
        def list_repo_files(self, repo_id: str) -> list[str]:
            raise httpx2.ConnectError("[Errno 111] Connection refused")

    def no_download(*args: object, **kwargs: object) -> str:
        raise AssertionError("hf_hub_download must not be reached")

    monkeypatch.setattr(script, "HfApi", RefusingApi)
    monkeypatch.setattr(script, "hf_hub_download", no_download)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # a safety net: no real request
    for var in [v for v in os.environ if v.startswith("LLM_SERVICE_")]:
        monkeypatch.delenv(var)

    code = script.main(["--repo", REPO, "--dir", str(tmp_path / "models")])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    message = last_line(captured.err)
    assert message.startswith(f"error: downloading {REPO} from ")
    assert "ConnectError: [Errno 111] Connection refused" in message
