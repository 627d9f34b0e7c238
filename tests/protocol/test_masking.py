"""The pure-Python masking of pyswoole.protocol.masking (RFC 6455 section 5.3): each of its
three ways (big-integer XOR, ``bytes.translate`` per key octet, NumPy words) against the
definition, the size thresholds that choose between them, unmasking in pieces with the key
rotated by the piece's offset (as the parser validates a text frame that arrives over several
reads), the parser fed large frames in pieces, and the compiled ``apply_mask`` against the
pure one. The NumPy way runs only where NumPy is importable (it is not a dependency)."""

from __future__ import annotations

import contextlib
import itertools
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pyswoole.protocol import frames, masking, websocket
from pyswoole.protocol.frames import Frame, encode_frame
from pyswoole.protocol.websocket import WebSocket

try:
    import numpy
except ImportError:
    numpy = None

try:
    from pyswoole.protocol import _speedups
except ImportError:
    _speedups = None

needs_numpy = pytest.mark.skipif(numpy is None, reason="NumPy is not installed (optional)")
needs_speedups = pytest.mark.skipif(_speedups is None, reason="compiled helpers not built")

Masker = Callable[[Any, Any], bytes]
MASKS = st.binary(min_size=4, max_size=4)
#: sizes around every threshold and 4-byte boundary, and a few large ones
EDGES = sorted(
    {
        n + d
        for n in (0, 4, 8, masking.TRANSLATE_MIN, masking.NUMPY_MIN, 65536)
        for d in range(-5, 6)
        if n + d >= 0
    }
    | {125, 126, 1 << 20}
)


def reference(data: bytes, mask: bytes) -> bytes:
    """The definition of section 5.3: octet i XOR mask octet i MOD 4."""
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def payload(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _numpy_way(data: Any, mask: Any) -> bytes:
    return masking.mask_numpy(data, mask, numpy)


WAYS = [
    pytest.param(masking.mask_bigint, id="bigint"),
    pytest.param(masking.mask_translate, id="translate"),
    pytest.param(_numpy_way, id="numpy", marks=needs_numpy),
    pytest.param(masking.apply_mask, id="apply_mask"),
]


@pytest.fixture
def without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """apply_mask as where NumPy is not installed."""
    monkeypatch.setattr(masking, "_numpy", False)


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("n", EDGES)
def test_each_way_matches_the_definition_at_edge_sizes(way: Masker, n: int) -> None:
    data = payload(n, n)
    for mask in (b"\x37\xfa\x21\x3d", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff"):
        got = way(data, mask)
        assert type(got) is bytes
        assert got == reference(data, mask), (n, mask)


@pytest.mark.parametrize("way", WAYS)
@given(n=st.integers(0, 3 * masking.NUMPY_MIN), mask=MASKS, seed=st.integers(0, 2**32))
def test_each_way_matches_the_definition(way: Masker, n: int, mask: bytes, seed: int) -> None:
    data = payload(n, seed)
    assert way(data, mask) == reference(data, mask)


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("n", [0, 3, 7, masking.TRANSLATE_MIN + 3, masking.NUMPY_MIN + 5])
def test_each_way_takes_bytes_bytearray_and_memoryview_keys_and_data(way: Masker, n: int) -> None:
    raw = payload(n + 11, n)
    data = raw[5 : 5 + n]
    mask = b"\x01\x80\xfe\x7f"
    expected = reference(data, mask)
    for d in (data, bytearray(data), memoryview(raw)[5 : 5 + n], memoryview(bytearray(data))):
        for m in (mask, bytearray(mask), memoryview(b"xx" + mask)[2:]):
            got = way(d, m)
            assert type(got) is bytes
            assert got == expected, (type(d), type(m))


@pytest.mark.parametrize("way", WAYS)
def test_each_way_keeps_zero_octets_at_both_ends(way: Masker) -> None:
    for n in (13, masking.TRANSLATE_MIN + 1, masking.NUMPY_MIN + 1):
        data = (b"\x37\xfa\x21\x3d" * n)[:n]
        assert way(data, b"\x37\xfa\x21\x3d") == b"\x00" * n
        assert way(b"\x00" * n, b"\x00\x00\x00\x00") == b"\x00" * n


@pytest.mark.parametrize("way", WAYS)
def test_each_way_is_its_own_inverse(way: Masker) -> None:
    data = payload(70001, 1)
    mask = b"\x9a\x00\x31\xc4"
    assert way(way(data, mask), mask) == data


@given(
    n=st.integers(0, 3 * masking.NUMPY_MIN),
    mask=MASKS,
    seed=st.integers(0, 2**32),
    cuts=st.lists(st.integers(0, 3 * masking.NUMPY_MIN), max_size=6),
    numpy_allowed=st.booleans(),
)
@example(n=masking.NUMPY_MIN + 7, mask=b"\x01\x02\x03\x04", seed=0, cuts=[1, 2, 1031, 3000],
         numpy_allowed=True)  # fmt: skip
def test_pieces_unmasked_with_the_rotated_key_join_to_the_whole(
    n: int, mask: bytes, seed: int, cuts: list[int], numpy_allowed: bool
) -> None:
    """As ``WebSocket._check_partial_text``: a piece starting at offset ``k`` of the payload
    is unmasked with the key rotated left by ``k MOD 4``."""
    data = payload(n, seed)
    bounds = sorted({0, n, *(c for c in cuts if c < n)})
    saved = masking._numpy
    if not numpy_allowed:
        masking._numpy = False
    try:
        pieces = [
            masking.apply_mask(data[a:b], mask[a & 3 :] + mask[: a & 3])
            for a, b in itertools.pairwise(bounds)
        ]
    finally:
        masking._numpy = saved
    assert b"".join(pieces) == masking.apply_mask(data, mask) == reference(data, mask)


class Calls:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ways: list[str] = []
        for name in ("mask_translate", "mask_numpy"):
            real = getattr(masking, name)
            monkeypatch.setattr(masking, name, self._recording(name, real))

    def _recording(self, name: str, real: Callable[..., bytes]) -> Callable[..., bytes]:
        def call(*args: Any) -> bytes:
            self.ways.append(name)
            return real(*args)

        return call


def test_sizes_choose_the_way_without_numpy(
    monkeypatch: pytest.MonkeyPatch, without_numpy: None
) -> None:
    calls = Calls(monkeypatch)
    mask = b"\x10\x20\x30\x40"
    for n, way in [
        (masking.TRANSLATE_MIN - 1, None),
        (masking.TRANSLATE_MIN, "mask_translate"),
        (masking.NUMPY_MIN, "mask_translate"),
        (1 << 20, "mask_translate"),
    ]:
        calls.ways.clear()
        data = payload(n, n)
        assert masking.apply_mask(data, mask) == reference(data, mask)
        assert calls.ways == ([way] if way else []), n


@needs_numpy
def test_sizes_choose_the_way_with_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch)
    mask = b"\x10\x20\x30\x40"
    for n, way in [
        (masking.TRANSLATE_MIN - 1, None),
        (masking.NUMPY_MIN - 1, "mask_translate"),
        (masking.NUMPY_MIN, "mask_numpy"),
        (1 << 20, "mask_numpy"),
    ]:
        calls.ways.clear()
        data = payload(n, n)
        assert masking.apply_mask(data, mask) == reference(data, mask)
        assert calls.ways == ([way] if way else []), n
    assert masking._numpy is numpy


def test_numpy_that_cannot_be_imported_leaves_translate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(masking, "_numpy", None)
    monkeypatch.setitem(sys.modules, "numpy", None)  # import numpy -> ImportError
    data = payload(masking.NUMPY_MIN * 2 + 1, 7)
    assert masking.apply_mask(data, b"\xaa\xbb\xcc\xdd") == reference(data, b"\xaa\xbb\xcc\xdd")
    assert masking._numpy is False


def test_small_payloads_never_load_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(masking, "_numpy", None)
    for n in (0, 5, masking.TRANSLATE_MIN, masking.NUMPY_MIN - 1):
        masking.apply_mask(payload(n, n), b"abcd")
    assert masking._numpy is None


# -- the parser, fed large frames in pieces (pure build of the frame path) ---------------------


@contextlib.contextmanager
def pure_parser(numpy_allowed: bool) -> Iterator[None]:
    """The parser's pure-Python frame path, with or without NumPy, meanwhile."""
    saved = websocket._parse_simple, websocket.apply_mask, masking._numpy
    websocket._parse_simple, websocket.apply_mask = None, frames._apply_mask_py
    masking._numpy = numpy if numpy_allowed else False
    try:
        yield
    finally:
        websocket._parse_simple, websocket.apply_mask, masking._numpy = saved


@pytest.mark.parametrize("numpy_allowed", [False, pytest.param(True, marks=needs_numpy)])
@given(
    sizes=st.lists(
        st.sampled_from([0, 5, masking.TRANSLATE_MIN - 1, masking.NUMPY_MIN + 3, 70001]),
        min_size=1,
        max_size=3,
    ),
    mask=MASKS,
    reads=st.lists(st.integers(1, 9000), min_size=1, max_size=40),
)
def test_parser_delivers_large_frames_split_into_reads(
    numpy_allowed: bool, sizes: list[int], mask: bytes, reads: list[int]
) -> None:
    """Text (multi-byte UTF-8, validated as it arrives with the rotated key) and binary
    frames, cut into reads of the given lengths, arrive intact."""
    messages: list[str | bytes] = []
    for i, n in enumerate(sizes):
        if i % 2:
            messages.append(payload(n, i))
        else:
            messages.append(("aé€𝄞" * (n // 10 + 1))[: n // 4])
    stream = b"".join(
        encode_frame(1 if isinstance(m, str) else 2, m.encode() if isinstance(m, str) else m,
                     True, 0, mask)
        for m in messages
    )  # fmt: skip
    with pure_parser(numpy_allowed):
        ws = WebSocket(1, max_message_size=1 << 20)
        events: list[Any] = []
        pos, turn = 0, 0
        while pos < len(stream):
            step = reads[turn % len(reads)]
            events += ws.receive_data(stream[pos : pos + step])
            pos += step
            turn += 1
    assert all(type(e) is Frame for e in events), events
    assert [e.data for e in events] == messages


# -- compiled and pure agree ------------------------------------------------------------------


@needs_speedups
@given(
    n=st.one_of(st.integers(0, 3 * masking.NUMPY_MIN), st.sampled_from(EDGES)),
    mask=MASKS,
    seed=st.integers(0, 2**32),
    start=st.integers(0, 7),
)
def test_compiled_and_pure_agree(n: int, mask: bytes, seed: int, start: int) -> None:
    assert _speedups is not None
    raw = payload(n + start, seed)
    view = memoryview(raw)[start:]
    expected = _speedups.apply_mask(view, mask)
    assert frames._apply_mask_py(view, mask) == expected
    assert frames._apply_mask_py(bytes(view), mask) == expected
    assert frames._apply_mask_py(bytearray(view), bytearray(mask)) == expected
