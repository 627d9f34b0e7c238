"""The compiled helpers (masking, the frame fast path, text frame encoding) and their
pure-Python references give the same results."""

from __future__ import annotations

import os
import random

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
    assert (frames.encode_text is frames._encode_text_py) is disabled


def _random_stream(rng: random.Random) -> bytes:
    """Client frames of every kind the parser meets, valid and invalid, concatenated."""
    from pyswoole.protocol.frames import encode_frame

    parts = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.random()
        mask = rng.randbytes(4)
        if kind < 0.4:
            text = "".join(rng.choice("aé€𝄞 ") for _ in range(rng.choice([0, 5, 130, 300])))
            parts.append(encode_frame(1, text.encode(), True, 0, mask))
        elif kind < 0.6:
            parts.append(
                encode_frame(2, rng.randbytes(rng.choice([0, 1, 126, 70000])), True, 0, mask)
            )
        elif kind < 0.7:
            parts.append(encode_frame(9, rng.randbytes(3), True, 0, mask))
        elif kind < 0.8:
            parts.append(
                encode_frame(1, b"ab", False, 0, mask) + encode_frame(0, b"c", True, 0, mask)
            )
        elif kind < 0.85:
            parts.append(encode_frame(1, b"\xff\xfe", True, 0, mask))  # invalid UTF-8
        elif kind < 0.9:
            parts.append(encode_frame(2, b"x", True, 0x40, mask))  # RSV1 without extension
        elif kind < 0.95:
            parts.append(encode_frame(1, b"x" * 200, True, 0, mask))  # over max_message_size
        else:
            parts.append(encode_frame(2, b"unmasked"))
    return b"".join(parts)


def _receive_all(
    reads: list[bytes], fd: int, max_size: int
) -> tuple[list[object], bytes, int, int]:
    """Feed ``reads`` to a fresh WebSocket (with whichever parser is selected now); return
    its events, its output, its final state and its close code."""
    from pyswoole.protocol import websocket

    ws = websocket.WebSocket(fd=fd, max_message_size=max_size)
    events: list[object] = []
    for data in reads:
        events.extend(ws.receive_data(data))
    return events, ws.data_to_send(), ws.state, ws.close_code


@pytest.mark.parametrize("seed", range(200))
def test_compiled_fast_path_matches_pure_python(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same bytes, split the same way, give the same events, output and state with the
    compiled fast path as with the pure-Python parser."""
    from pyswoole.protocol import websocket

    rng = random.Random(seed)
    stream = _random_stream(rng)
    cuts = sorted(rng.sample(range(1, len(stream)), min(3, len(stream) - 1)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]

    max_size = 150 if seed % 2 else 1 << 20
    compiled = _receive_all(chunks, 9, max_size)
    monkeypatch.setattr(websocket, "_parse_simple", None)
    assert _receive_all(chunks, 9, max_size) == compiled


@pytest.mark.parametrize("seed", range(100))
def test_compiled_fast_path_whole_reads_match_pure_python(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads that end on frame boundaries (the compiled early return) give the same events,
    output and state as the pure-Python parser, whatever frame comes next."""
    from pyswoole.protocol import websocket

    rng = random.Random(seed)
    reads = [_random_stream(rng) for _ in range(rng.randint(1, 6))]

    max_size = 150 if seed % 2 else 1 << 20
    compiled = _receive_all(reads, 3, max_size)
    monkeypatch.setattr(websocket, "_parse_simple", None)
    assert _receive_all(reads, 3, max_size) == compiled


class _Tagged(frames.Frame):
    """A subclass with a slot of its own: the five frame slots sit at other offsets."""

    __slots__ = ("tag",)


class _Plain:
    """No slots at all: parse_simple must fall back to setattr."""


def test_parse_simple_fills_every_frame_type() -> None:
    """Each frame type gets the same five attributes, also when calls alternate between types
    (the compiled side caches where one type keeps them)."""
    mask = b"\x01\x02\x03\x04"
    data = frames.encode_frame(1, "héllo".encode(), True, 0, mask) + frames.encode_frame(
        2, b"\x00\xff", True, 0, mask
    )
    for frame_type in (frames.Frame, _Tagged, _Plain, frames.Frame, _Plain, _Tagged):
        events, pos = speedups.parse_simple(data, 0, 7, 1 << 20, frame_type)
        assert pos == len(data)
        assert [type(e) for e in events] == [frame_type, frame_type]
        got = [(e.fd, e.data, e.opcode, e.finish, e.flags) for e in events]
        # flags FIN|MASK (33): the header bits, as Swoole reports them
        assert got == [(7, "héllo", 1, True, 33), (7, b"\x00\xff", 2, True, 33)]
    assert not hasattr(events[0], "tag")  # the subclass's own slot stays unset


_TEXTS = ["", "a", "x" * 125, "x" * 126, "é" * 62, "é" * 63, "€𝄞" * 9000, "x" * 65535]


@pytest.mark.parametrize("text", [*_TEXTS, "y" * 65536, "z" * 70000, "é" * 40000])
def test_encode_text_matches_reference(text: str) -> None:
    expected = frames.encode_frame(1, text.encode())
    assert speedups.encode_text(text) == expected
    assert frames._encode_text_py(text) == expected


def test_encode_text_rejects_what_str_encode_rejects() -> None:
    for encode in (speedups.encode_text, frames._encode_text_py):
        with pytest.raises(UnicodeEncodeError):
            encode("a\ud800b")
    with pytest.raises(TypeError):
        speedups.encode_text(b"bytes")  # type: ignore[arg-type]
