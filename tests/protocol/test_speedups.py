"""The compiled masking helper and its pure-Python reference give the same bytes."""

from __future__ import annotations

import os

import pytest

from pyswoole.protocol import frames

speedups = pytest.importorskip(
    "pyswoole.protocol._speedups", reason="compiled helpers not built on this machine"
)


@pytest.mark.parametrize("n", [*range(0, 40), 125, 126, 4095, 4096, 65536, 65537, 1 << 20])
def test_apply_mask_matches_reference(n: int) -> None:
    data = os.urandom(n)
    mask = os.urandom(4)
    assert speedups.apply_mask(data, mask) == frames._apply_mask_py(data, mask)
    assert speedups.apply_mask(bytearray(data), mask) == frames._apply_mask_py(data, mask)
    assert speedups.apply_mask(memoryview(data), mask) == frames._apply_mask_py(data, mask)


def test_apply_mask_rejects_bad_masks() -> None:
    with pytest.raises(ValueError):
        speedups.apply_mask(b"abc", b"abc")
    with pytest.raises(TypeError):
        speedups.apply_mask("text", b"abcd")


def test_selection_follows_the_environment() -> None:
    disabled = bool(os.environ.get("PYSWOOLE_NO_EXTENSIONS"))
    assert frames.SPEEDUPS is not disabled
    assert (frames.apply_mask is frames._apply_mask_py) is disabled
