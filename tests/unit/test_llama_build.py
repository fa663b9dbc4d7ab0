"""scripts/llama_build.py: the flags, backends and cache keys of the llama.cpp builds.

This machine has no GPU and may have no AMX, so what is checked here is the plumbing:
which CMake arguments and compiler flags each build gets, and that every difference
between two builds gives a different cache folder. That the flags reach the compiler
is visible in a real build's log (`build.log` beside the cached wheel).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_servers  # noqa: E402
import llama_build  # noqa: E402

NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def recipe(
    env: dict[str, str] | None = None, machine: str = "x86_64", system: str = "linux"
) -> llama_build.BuildRecipe:
    return llama_build.recipe_from_env(environ=env or {}, machine=machine, system=system)


def test_x86_64_builds_keep_native_kernels_without_amx() -> None:
    cpu = recipe()
    assert cpu.backend == "cpu"
    assert cpu.cmake_args == ("-DGGML_NATIVE=ON",)
    env = cpu.environment()
    assert env["CFLAGS"] == env["CXXFLAGS"] == NO_AMX
    assert shlex.split(env["CMAKE_ARGS"]) == ["-DGGML_NATIVE=ON"]


@pytest.mark.parametrize(
    ("machine", "system"), [("arm64", "darwin"), ("aarch64", "linux"), ("AMD64", "win32")]
)
def test_no_amx_flags_where_there_is_no_amx_or_no_gcc_style_compiler(
    machine: str, system: str
) -> None:
    built = recipe(machine=machine, system=system)
    assert built.compiler_flags == ()
    assert built.environment()["CFLAGS"] == ""


def test_the_build_ignores_flags_left_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever CMAKE_ARGS/CFLAGS the user has set would change the binary behind the
    key's back; SOURCE_DATE_EPOCH would silently switch llama.cpp's native build off."""
    for name, value in {
        "CMAKE_ARGS": "-DGGML_AMX_INT8=ON",
        "CFLAGS": "-mamx-int8",
        "CXXFLAGS": "-mamx-int8",
        "SOURCE_DATE_EPOCH": "1",
    }.items():
        monkeypatch.setenv(name, value)
    env = recipe().environment()
    assert env["CFLAGS"] == env["CXXFLAGS"] == NO_AMX
    assert env["CMAKE_ARGS"] == "-DGGML_NATIVE=ON"
    assert "SOURCE_DATE_EPOCH" not in env


@pytest.mark.parametrize(
    ("backend", "option"), [("cuda", "-DGGML_CUDA=on"), ("vulkan", "-DGGML_VULKAN=on")]
)
def test_gpu_backends_add_llama_cpps_cmake_option_and_get_their_own_key(
    backend: str, option: str
) -> None:
    gpu = recipe({"LLM_SERVICE_LLAMA_BACKEND": backend})
    assert gpu.cmake_args == ("-DGGML_NATIVE=ON", option)
    assert gpu.compiler_flags == recipe().compiler_flags  # the CPU part stays AMX-free
    assert gpu.key != recipe().key
    assert gpu.key.startswith(f"llama-cpp-python-{llama_build.LLAMA_CPP_PYTHON_VERSION}-{backend}-")


def test_extra_cmake_arguments_are_passed_and_keyed() -> None:
    extra = recipe(
        {"LLM_SERVICE_LLAMA_BACKEND": "cuda", "LLM_SERVICE_LLAMA_CMAKE_ARGS": "-DA=1 -DB='x y'"}
    )
    assert extra.cmake_args[-2:] == ("-DA=1", "-DB=x y")
    assert extra.key != recipe({"LLM_SERVICE_LLAMA_BACKEND": "cuda"}).key


def test_an_unknown_backend_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="LLM_SERVICE_LLAMA_BACKEND='rocm'"):
        recipe({"LLM_SERVICE_LLAMA_BACKEND": "rocm"})


def test_every_input_of_the_binary_changes_the_key() -> None:
    base = recipe()
    variants = [
        llama_build.recipe_from_env(environ={}, version="0.3.35", machine="x86_64", system="linux"),
        recipe({"CC": "clang"}),
        recipe(machine="aarch64"),
        llama_build.BuildRecipe(**{**_fields(base), "cpu": "another CPU"}),
        llama_build.BuildRecipe(**{**_fields(base), "python": "3.12"}),
        llama_build.BuildRecipe(**{**_fields(base), "compiler_flags": ("-mno-amx-tile",)}),
        llama_build.BuildRecipe(**{**_fields(base), "source_edits": ""}),
    ]
    keys = {base.key, *(variant.key for variant in variants)}
    assert len(keys) == len(variants) + 1
    assert recipe().key == base.key  # and it is stable


def _fields(built: llama_build.BuildRecipe) -> dict[str, object]:
    return {name: getattr(built, name) for name in built.__dataclass_fields__}


def test_the_cpu_fingerprint_names_the_model_and_features_where_the_os_lists_them() -> None:
    fingerprint = llama_build.cpu_fingerprint()
    if Path("/proc/cpuinfo").is_file():
        flags = fingerprint.partition(" | ")[2].split()
        assert flags == sorted(flags)
        assert ("avx2" in flags) or ("sse2" in flags) or ("fp" in flags)  # x86 or ARM
    else:
        assert fingerprint


def test_a_cache_folder_counts_only_when_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = recipe()
    folder = tmp_path / "llm-service" / "wheels" / built.key
    folder.mkdir(parents=True)
    wheel = folder / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
    wheel.write_bytes(b"")
    assert llama_build.cached_wheel(built) is None  # no build.json: an interrupted build
    (folder / "build.json").write_text("{}")
    found = llama_build.cached_wheel(built)
    assert found is not None
    assert found.wheel == wheel
    assert found.url == wheel.resolve().as_uri()


def test_the_key_records_the_source_edits_text_and_not_their_explanations() -> None:
    edit = llama_build.SOURCE_EDITS[0]
    assert recipe().source_edits == llama_build.edits_digest(llama_build.SOURCE_EDITS)
    reworded = llama_build.SourceEdit(edit.path, edit.before, edit.after, "other words")
    changed = llama_build.SourceEdit(edit.path, edit.before, edit.after + "// more\n", edit.why)
    assert llama_build.edits_digest((reworded,)) == llama_build.edits_digest((edit,))
    assert llama_build.edits_digest((changed,)) != llama_build.edits_digest((edit,))


def test_each_source_edit_replaces_its_text_exactly_once(tmp_path: Path) -> None:
    edit = llama_build.SOURCE_EDITS[0]
    target = tmp_path / edit.path
    target.parent.mkdir(parents=True)
    target.write_text(f"static void init() {{\n{edit.before}}}\n")
    llama_build.apply_source_edits(tmp_path)
    patched = target.read_text()
    assert edit.before not in patched
    assert 'getenv("GGML_CPU_USE_REF")' in patched
    with pytest.raises(ValueError, match=r"occurs 0 times"):  # applied twice: refused
        llama_build.apply_source_edits(tmp_path)
    target.write_text(edit.before * 2)
    with pytest.raises(ValueError, match=rf"{edit.path}: the text to replace occurs 2 times"):
        llama_build.apply_source_edits(tmp_path)


def test_the_bench_llama_server_is_built_with_the_same_recipe(tmp_path: Path) -> None:
    built = recipe({"LLM_SERVICE_LLAMA_BACKEND": "vulkan"})
    configure, build = bench_servers.llama_server_commands(
        built, "cmake", tmp_path / "src", tmp_path / "build"
    )
    assert configure[-2:] == ["-DGGML_NATIVE=ON", "-DGGML_VULKAN=on"]
    assert "-DBUILD_SHARED_LIBS=OFF" in configure
    assert build[build.index("--target") + 1] == "llama-server"


def test_the_command_line_copies_the_cached_wheel_of_this_recipe_without_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the container image runs: with this recipe's wheel in the cache, no compiler
    starts (a build would take minutes and fail here with a fake wheel)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("LLM_SERVICE_LLAMA_CMAKE_ARGS", "-DGGML_NATIVE=OFF -DGGML_AVX2=ON")
    folder = tmp_path / "cache" / "llm-service" / "wheels" / llama_build.recipe_from_env().key
    folder.mkdir(parents=True)
    (folder / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl").write_bytes(b"wheel")
    (folder / "build.json").write_text("{}")

    assert llama_build.main(["--dest", str(tmp_path / "out")]) == 0
    copied = tmp_path / "out" / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
    assert copied.read_bytes() == b"wheel"
    assert capsys.readouterr().out.strip() == str(copied)
