"""Which attention path `model.flash_attn = auto` takes (no context is created: the
start-up measurement is read from a cache file written here)."""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import pytest

from app.engine import attention, measurements
from app.engine.attention import choose_flash_attn

ON, OFF = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED, llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
F16 = llama_cpp.GGML_TYPE_F16
INFO = "CPU : AVX2 = 1 |"


@pytest.fixture
def measured_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_path: Path) -> str:
    """A cache that says this machine measured the path without flash attention faster."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    identity = attention._identity(str(model_path), 2, F16, INFO)
    measurements.remember("attention", identity, {"flash_attn": False, "depth": 1024})
    assert measurements.cache_file().is_relative_to(tmp_path)
    return str(model_path)


def test_batch_invariant_keeps_flash_attention_even_where_the_other_path_is_faster(
    measured_off: str,
) -> None:
    """Without flash attention one token and a batch round differently: replies would
    change with the load (the CI failure on an Intel Xeon that measured it faster)."""
    choice = choose_flash_attn(
        None, measured_off, "auto", 2, F16, INFO, gpu=False, batch_invariant=True
    )
    assert choice.flash_attn == ON
    assert "batch_invariant" in choice.why


def test_without_batch_invariance_auto_takes_the_measured_path(measured_off: str) -> None:
    choice = choose_flash_attn(
        None, measured_off, "auto", 2, F16, INFO, gpu=False, batch_invariant=False
    )
    assert choice.flash_attn == OFF
    assert "measured here" in choice.why


@pytest.mark.parametrize(("setting", "expected"), [("on", ON), ("off", OFF)])
def test_a_configured_path_is_taken_as_is(measured_off: str, setting: str, expected: int) -> None:
    choice = choose_flash_attn(
        None, measured_off, setting, 2, F16, INFO, gpu=False, batch_invariant=True
    )
    assert choice.flash_attn == expected
