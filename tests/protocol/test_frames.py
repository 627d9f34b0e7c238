"""Byte-in / byte-out tests of pyswoole.protocol.frames (RFC 6455 sections 5.2-5.7, 7.4)."""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable

import pytest

from pyswoole.constants import (
    SWOOLE_WEBSOCKET_FLAG_COMPRESS,
    SWOOLE_WEBSOCKET_FLAG_FIN,
    SWOOLE_WEBSOCKET_FLAG_MASK,
    SWOOLE_WEBSOCKET_FLAG_RSV1,
    SWOOLE_WEBSOCKET_FLAG_RSV2,
    SWOOLE_WEBSOCKET_FLAG_RSV3,
    WEBSOCKET_OPCODE_BINARY,
    WEBSOCKET_OPCODE_CLOSE,
    WEBSOCKET_OPCODE_CONTINUATION,
    WEBSOCKET_OPCODE_PING,
    WEBSOCKET_OPCODE_PONG,
    WEBSOCKET_OPCODE_TEXT,
)
from pyswoole.exceptions import PackError
from pyswoole.protocol import frames
from pyswoole.protocol.frames import (
    CONTROL_OPCODES,
    DATA_OPCODES,
    CloseFrame,
    Frame,
    close_payload,
    encode_frame,
    frame_flags,
    is_valid_close_code,
    pack,
    parse_close_payload,
    unpack,
)

FIN = SWOOLE_WEBSOCKET_FLAG_FIN
MASK = b"\x37\xfa\x21\x3d"  # the mask of RFC 6455 section 5.7


def reference_mask(data: bytes, mask: bytes) -> bytes:
    """The definition of section 5.3: octet i XOR mask octet i MOD 4."""
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


# -- apply_mask (section 5.3) -----------------------------------------------------------------

Masker = Callable[[bytes | bytearray | memoryview, bytes | bytearray], bytes]
MASKERS = [pytest.param(frames._apply_mask_py, id="python")]
try:
    from pyswoole.protocol import _speedups
except ImportError:  # not built here; test_speedups.py reports the skip
    pass
else:
    MASKERS.append(pytest.param(_speedups.apply_mask, id="compiled"))


@pytest.mark.parametrize("apply_mask", MASKERS)
@pytest.mark.parametrize(
    "mask", [MASK, b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x00\x80\xfe"]
)
def test_apply_mask_matches_reference_for_small_lengths(apply_mask: Masker, mask: bytes) -> None:
    data = bytes(range(256)) * 2
    for n in range(71):
        chunk = data[n : n + n]  # vary the content with the length
        got = apply_mask(chunk, mask)
        assert type(got) is bytes
        assert got == reference_mask(chunk, mask), n


@pytest.mark.parametrize("apply_mask", MASKERS)
@pytest.mark.parametrize("n", [125, 126, 1000, 4095, 4096, 4097, 65535, 65536, 65539, 1 << 20])
def test_apply_mask_matches_reference_for_large_lengths(apply_mask: Masker, n: int) -> None:
    data = os.urandom(n)
    mask = os.urandom(4)
    assert apply_mask(data, mask) == reference_mask(data, mask)


@pytest.mark.parametrize("apply_mask", MASKERS)
def test_apply_mask_keeps_leading_and_trailing_zero_bytes(apply_mask: Masker) -> None:
    # the big-integer implementation must not drop zero bytes at either end
    data = b"\x37\xfa\x21\x3d" * 3 + b"\x37"
    assert apply_mask(data, MASK) == b"\x00" * 13
    assert apply_mask(b"\x00" * 9, b"\x00\x00\x00\x00") == b"\x00" * 9


@pytest.mark.parametrize("apply_mask", MASKERS)
def test_apply_mask_accepts_bytearray_and_memoryview(apply_mask: Masker) -> None:
    data = bytes(range(40))
    expected = reference_mask(data, MASK)
    assert apply_mask(bytearray(data), bytearray(MASK)) == expected
    assert apply_mask(memoryview(data), MASK) == expected
    assert apply_mask(memoryview(data)[:3], MASK) == expected[:3]
    assert apply_mask(memoryview(data)[5:], MASK) == reference_mask(data[5:], MASK)


@pytest.mark.parametrize("apply_mask", MASKERS)
def test_apply_mask_is_its_own_inverse(apply_mask: Masker) -> None:
    data = os.urandom(1001)
    assert apply_mask(apply_mask(data, MASK), MASK) == data


def test_the_selected_apply_mask_is_one_of_the_two() -> None:
    assert frames.apply_mask in [p.values[0] for p in MASKERS]


# -- encode_frame header forms (section 5.2) --------------------------------------------------


@pytest.mark.parametrize(
    ("n", "length_bytes"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (125, b"\x7d"),
        (126, b"\x7e\x00\x7e"),
        (127, b"\x7e\x00\x7f"),
        (65535, b"\x7e\xff\xff"),
        (65536, b"\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
        (65537, b"\x7f\x00\x00\x00\x00\x00\x01\x00\x01"),
    ],
)
def test_encode_frame_length_forms(n: int, length_bytes: bytes) -> None:
    payload = bytes(i & 0xFF for i in range(n))
    unmasked = encode_frame(WEBSOCKET_OPCODE_BINARY, payload)
    assert unmasked == b"\x82" + length_bytes + payload
    masked = encode_frame(WEBSOCKET_OPCODE_BINARY, payload, mask=MASK)
    assert masked == (
        b"\x82" + bytes([length_bytes[0] | 0x80]) + length_bytes[1:] + MASK
    ) + reference_mask(payload, MASK)


def test_encode_frame_first_byte() -> None:
    assert encode_frame(WEBSOCKET_OPCODE_TEXT, b"", fin=False)[0] == 0x01
    assert encode_frame(WEBSOCKET_OPCODE_CONTINUATION, b"")[0] == 0x80
    assert encode_frame(WEBSOCKET_OPCODE_TEXT, b"", rsv=0x40)[0] == 0xC1
    assert encode_frame(WEBSOCKET_OPCODE_BINARY, b"", fin=False, rsv=0x70)[0] == 0x72
    assert encode_frame(WEBSOCKET_OPCODE_PONG, b"")[0] == 0x8A


# -- RFC 6455 section 5.7 examples, byte for byte ---------------------------------------------


def test_rfc_single_frame_unmasked_text() -> None:
    frame = bytes.fromhex("810548656c6c6f")
    assert encode_frame(WEBSOCKET_OPCODE_TEXT, b"Hello") == frame
    assert pack("Hello") == frame
    assert unpack(frame) == Frame(0, "Hello", WEBSOCKET_OPCODE_TEXT, True, FIN)


def test_rfc_single_frame_masked_text() -> None:
    frame = bytes.fromhex("818537fa213d7f9f4d5158")
    assert encode_frame(WEBSOCKET_OPCODE_TEXT, b"Hello", mask=MASK) == frame
    got = unpack(frame)
    assert got.data == "Hello"
    assert got.opcode == WEBSOCKET_OPCODE_TEXT
    assert got.finish is True
    assert got.flags == FIN | SWOOLE_WEBSOCKET_FLAG_MASK


def test_rfc_fragmented_unmasked_text() -> None:
    first = bytes.fromhex("010348656c")
    last = bytes.fromhex("80026c6f")
    assert encode_frame(WEBSOCKET_OPCODE_TEXT, b"Hel", fin=False) == first
    assert encode_frame(WEBSOCKET_OPCODE_CONTINUATION, b"lo") == last
    assert pack("Hel", WEBSOCKET_OPCODE_TEXT, 0) == first
    assert pack("lo", WEBSOCKET_OPCODE_CONTINUATION, FIN) == last
    head = unpack(first)
    assert head.finish is False
    assert head.flags == 0
    assert head.data == b"Hel"  # an incomplete text fragment is not decoded
    assert unpack(last) == Frame(0, b"lo", WEBSOCKET_OPCODE_CONTINUATION, True, FIN)


def test_rfc_ping_and_pong_hello() -> None:
    ping = bytes.fromhex("890548656c6c6f")
    pong = bytes.fromhex("8a8537fa213d7f9f4d5158")
    assert encode_frame(WEBSOCKET_OPCODE_PING, b"Hello") == ping
    assert pack(b"Hello", WEBSOCKET_OPCODE_PING) == ping
    assert unpack(ping) == Frame(0, b"Hello", WEBSOCKET_OPCODE_PING, True, FIN)
    assert encode_frame(WEBSOCKET_OPCODE_PONG, b"Hello", mask=MASK) == pong
    assert unpack(pong).data == b"Hello"
    assert unpack(pong).opcode == WEBSOCKET_OPCODE_PONG


def test_rfc_256_byte_binary_header() -> None:
    payload = os.urandom(256)
    frame = encode_frame(WEBSOCKET_OPCODE_BINARY, payload)
    assert frame[:4] == bytes.fromhex("827e0100")
    assert frame[4:] == payload
    assert unpack(frame).data == payload


def test_rfc_64kib_binary_header() -> None:
    payload = os.urandom(65536)
    frame = encode_frame(WEBSOCKET_OPCODE_BINARY, payload)
    assert frame[:10] == bytes.fromhex("827f0000000000010000")
    assert frame[10:] == payload
    assert unpack(frame).data == payload


# -- pack / unpack round trips ----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    ["", "a", "héllo wörld ✓ 😀", "x" * 125, "y" * 126, "z" * 65535, "w" * 65536],
)
@pytest.mark.parametrize("masked", [False, True])
def test_text_round_trip(data: str, masked: bool) -> None:
    flags = FIN | (SWOOLE_WEBSOCKET_FLAG_MASK if masked else 0)
    frame = unpack(pack(data, WEBSOCKET_OPCODE_TEXT, flags))
    assert frame == Frame(0, data, WEBSOCKET_OPCODE_TEXT, True, flags)
    assert isinstance(frame.data, str)


@pytest.mark.parametrize("n", [0, 1, 125, 126, 65535, 65536])
@pytest.mark.parametrize("masked", [False, True])
def test_binary_round_trip(n: int, masked: bool) -> None:
    data = os.urandom(n)
    flags = FIN | (SWOOLE_WEBSOCKET_FLAG_MASK if masked else 0)
    frame = unpack(pack(data, WEBSOCKET_OPCODE_BINARY, flags))
    assert frame == Frame(0, data, WEBSOCKET_OPCODE_BINARY, True, flags)
    assert isinstance(frame.data, bytes)


@pytest.mark.parametrize("opcode", sorted(CONTROL_OPCODES - {WEBSOCKET_OPCODE_CLOSE}))
def test_control_round_trip(opcode: int) -> None:
    for data in (b"", b"\x00\xff", b"p" * 125):
        assert unpack(pack(data, opcode)) == Frame(0, data, opcode, True, FIN)


def test_pack_masks_with_a_random_key() -> None:
    frame = pack(b"abcdefgh", WEBSOCKET_OPCODE_BINARY, FIN | SWOOLE_WEBSOCKET_FLAG_MASK)
    assert frame[0] == 0x82
    assert frame[1] == 0x88
    assert frame[6:] == reference_mask(b"abcdefgh", frame[2:6])


@pytest.mark.parametrize(
    ("flags", "first_byte"),
    [
        (FIN, 0x82),
        (0, 0x02),
        (FIN | SWOOLE_WEBSOCKET_FLAG_RSV1, 0xC2),
        (FIN | SWOOLE_WEBSOCKET_FLAG_RSV2, 0xA2),
        (FIN | SWOOLE_WEBSOCKET_FLAG_RSV3, 0x92),
        (
            SWOOLE_WEBSOCKET_FLAG_RSV1 | SWOOLE_WEBSOCKET_FLAG_RSV2 | SWOOLE_WEBSOCKET_FLAG_RSV3,
            0x72,
        ),
    ],
)
def test_flags_round_trip(flags: int, first_byte: int) -> None:
    # a payload that is valid deflate data: unpack inflates a binary frame with RSV1
    payload = frames._deflate(b"data") if flags & SWOOLE_WEBSOCKET_FLAG_RSV1 else b"data"
    frame = pack(payload, WEBSOCKET_OPCODE_BINARY, flags)
    assert frame[0] == first_byte
    got = unpack(frame)
    # RSV1 reads as COMPRESS too, as Swoole's construct_frame reports it
    compress = SWOOLE_WEBSOCKET_FLAG_COMPRESS if flags & SWOOLE_WEBSOCKET_FLAG_RSV1 else 0
    assert got.flags == flags | compress
    assert got.finish == bool(flags & FIN)
    assert got.data == b"data" or not flags & FIN  # (a non-final fragment: partly inflated)
    masked = unpack(pack(payload, WEBSOCKET_OPCODE_BINARY, flags | SWOOLE_WEBSOCKET_FLAG_MASK))
    assert masked.flags == flags | compress | SWOOLE_WEBSOCKET_FLAG_MASK
    assert masked.data == got.data


@pytest.mark.parametrize("opcode", [WEBSOCKET_OPCODE_TEXT, WEBSOCKET_OPCODE_BINARY])
def test_pack_compresses_with_the_compress_flag(opcode: int) -> None:
    """Swoole 6's FrameObject::pack: COMPRESS deflates a non-empty payload on its own and
    sets RSV1 (RFC 7692 section 7.2.1); unpack inflates it back and reports COMPRESS."""
    data = "squeeze me " * 20
    flags = FIN | SWOOLE_WEBSOCKET_FLAG_COMPRESS
    wire = pack(data if opcode == WEBSOCKET_OPCODE_TEXT else data.encode(), opcode, flags)
    assert wire[0] == 0xC0 | opcode
    assert len(wire) < len(data)
    body = wire[2:] + b"\x00\x00\xff\xff"
    assert zlib.decompressobj(-15).decompress(body) == data.encode()
    got = unpack(wire)
    assert got.data == (data if opcode == WEBSOCKET_OPCODE_TEXT else data.encode())
    assert got.flags == FIN | SWOOLE_WEBSOCKET_FLAG_COMPRESS | SWOOLE_WEBSOCKET_FLAG_RSV1
    masked = pack(b"abc", opcode, flags | SWOOLE_WEBSOCKET_FLAG_MASK)
    assert unpack(masked).flags == 39  # FIN|COMPRESS|RSV1|MASK: as a compressed client message


def test_compress_flag_leaves_empty_continuation_and_control_frames_alone() -> None:
    """RSV1 marks the first frame of a compressed message only (RFC 7692 section 6.1)."""
    compress = FIN | SWOOLE_WEBSOCKET_FLAG_COMPRESS
    assert pack(b"", WEBSOCKET_OPCODE_BINARY, compress) == b"\x82\x00"
    assert pack(b"x", WEBSOCKET_OPCODE_CONTINUATION, compress) == b"\x80\x01x"
    assert pack(b"x", WEBSOCKET_OPCODE_PING, compress) == b"\x89\x01x"


def test_unpack_refuses_a_compressed_frame_that_does_not_inflate() -> None:
    with pytest.raises(PackError, match="inflate"):
        unpack(b"\xc2\x02\xff\xff")


def test_unpack_reads_rsv1_as_compress_on_control_frames_too() -> None:
    """Swoole's unpack turns RSV1 into COMPRESS whatever the opcode (found by the long
    fuzz profile: a close frame with RSV1 reported FIN | RSV1 only); nothing is inflated."""
    rsv1 = SWOOLE_WEBSOCKET_FLAG_FIN | SWOOLE_WEBSOCKET_FLAG_RSV1 | SWOOLE_WEBSOCKET_FLAG_COMPRESS
    close = unpack(b"\xc8\x00")
    assert isinstance(close, CloseFrame)
    assert close.flags == rsv1
    ping = unpack(b"\xc9\x01x")
    assert (ping.flags, ping.data) == (rsv1, b"x")


def test_pack_a_frame_object() -> None:
    frame = Frame(7, "hi", WEBSOCKET_OPCODE_TEXT, True, FIN)
    assert pack(frame) == b"\x81\x02hi"
    assert Frame.pack(frame) == b"\x81\x02hi"
    assert pack(Frame(0, b"\x01", WEBSOCKET_OPCODE_BINARY, False, 0)) == b"\x02\x01\x01"
    assert Frame.unpack(b"\x81\x02hi") == Frame(0, "hi", WEBSOCKET_OPCODE_TEXT, True, FIN)


@pytest.mark.parametrize(
    ("code", "reason"),
    [(1000, ""), (1000, "bye"), (1001, "going ✈"), (3000, ""), (4999, "r" * 123)],
)
def test_close_frame_round_trip(code: int, reason: str) -> None:
    frame = pack(CloseFrame(code, reason))
    assert frame[:2] == bytes((0x88, 2 + len(reason.encode())))
    assert frame[2:4] == code.to_bytes(2, "big")
    got = unpack(frame)
    assert isinstance(got, CloseFrame)
    assert got == CloseFrame(code, reason, 0, FIN, True)  # finish: the FIN bit, as Swoole
    assert (got.code, got.reason, got.opcode, got.data) == (code, reason, 8, "")


def test_close_frame_1005_packs_empty_and_unpacks_back() -> None:
    assert pack(CloseFrame(1005)) == b"\x88\x00"
    got = unpack(b"\x88\x00")
    assert isinstance(got, CloseFrame)
    assert (got.code, got.reason) == (1005, "")


@pytest.mark.parametrize("reason", ["é" * 62, "x" * 124, "r" * 1000])
def test_close_frame_reason_over_123_bytes_is_refused(reason: str) -> None:
    """Swoole's pack_close_frame refuses it ("the max length of close reason is 123") and
    Server::pack returns ""; pyswoole raises PackError. Never silently cut."""
    with pytest.raises(PackError, match="close reason"):
        pack(CloseFrame(1000, reason))
    with pytest.raises(PackError):
        bytes(CloseFrame(1000, reason))


def test_close_frame_reason_of_123_bytes_fits() -> None:
    frame = pack(CloseFrame(1000, "é" * 61 + "x"))  # 123 bytes of UTF-8
    assert frame[:2] == b"\x88\x7d"
    got = unpack(frame)
    assert isinstance(got, CloseFrame)
    assert got.reason == "é" * 61 + "x"


def test_frame_equality_and_repr() -> None:
    assert Frame(1, "a") == Frame(1, "a")
    assert Frame(1, "a") != Frame(2, "a")
    assert CloseFrame(1000) != Frame(0, "", WEBSOCKET_OPCODE_CLOSE)
    assert CloseFrame(1000) != CloseFrame(1001)
    assert "x" * 40 in repr(Frame(0, "x" * 100)) and "x" * 41 not in repr(Frame(0, "x" * 100))
    # Swoole's property names, in its declaration order
    assert repr(Frame(3, "hi", 1, True, 33)) == (
        "Frame(fd=3, data='hi', opcode=1, flags=33, finish=True)"
    )
    assert repr(CloseFrame(1001, "bye", 4)) == (
        "CloseFrame(fd=4, data='', opcode=8, flags=1, finish=None, code=1001, reason='bye')"
    )


def test_frame_defaults_are_swooles() -> None:
    """Swoole\\WebSocket\\Frame: fd 0, data "", opcode TEXT, flags FIN, finish null;
    CloseFrame: opcode CLOSE, code 1000, reason ""."""
    frame = Frame()
    assert (frame.fd, frame.data, frame.opcode, frame.flags, frame.finish) == (0, "", 1, 1, None)
    close = CloseFrame()
    assert (close.opcode, close.code, close.reason, close.flags, close.finish) == (
        8,
        1000,
        "",
        1,
        None,
    )
    assert bytes(Frame(0, "hi")) == b"\x81\x02hi"  # Swoole's __toString packs the frame


# -- finish and flags (Swoole's FrameObject) ---------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "flags", "expected"),
    [
        (None, FIN, FIN),
        (None, 0, 0),
        (False, FIN, 0),
        (False, FIN | SWOOLE_WEBSOCKET_FLAG_RSV1, SWOOLE_WEBSOCKET_FLAG_RSV1),
        (True, 0, FIN),
        (True, FIN, FIN),
        (None, 0xFFFF, 63),  # masked with FLAGS_ALL
    ],
)
def test_frame_flags_finish_overrides_fin(finish: bool | None, flags: int, expected: int) -> None:
    assert frame_flags(Frame(0, "x", 1, finish, flags)) == expected


def test_pack_a_frame_with_finish_false_has_no_fin() -> None:
    """finish=False clears FIN whatever the flags (default FIN) say: 0x01, not 0x81."""
    first = Frame(0, "Hel", WEBSOCKET_OPCODE_TEXT, False)
    assert first.flags == FIN
    assert pack(first) == bytes.fromhex("010348656c")
    assert Frame.pack(first) == pack(first) == bytes(first)
    last = Frame(0, "lo", WEBSOCKET_OPCODE_CONTINUATION, True)
    assert pack(last) == bytes.fromhex("80026c6f")
    # the arguments are ignored for a Frame object, as Swoole's FrameObject does
    assert pack(first, WEBSOCKET_OPCODE_BINARY, FIN) == bytes.fromhex("010348656c")
    # finish None: the flags decide
    assert pack(Frame(0, "a", WEBSOCKET_OPCODE_TEXT, None, 0)) == b"\x01\x01a"


def test_close_frame_is_always_packed_with_fin() -> None:
    """Swoole's pack_close_frame sets FIN whatever the frame's flags or finish say."""
    assert pack(CloseFrame(1000, "", 0, 0)) == b"\x88\x02\x03\xe8"
    assert pack(CloseFrame(1000, "", 0, FIN, False)) == b"\x88\x02\x03\xe8"


# -- pack errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 16, -1])
def test_pack_rejects_bad_opcode(opcode: int) -> None:
    with pytest.raises(PackError):
        pack(b"x", opcode)


@pytest.mark.parametrize("opcode", sorted(CONTROL_OPCODES))
def test_pack_rejects_oversize_control(opcode: int) -> None:
    with pytest.raises(PackError):
        pack(b"x" * 126, opcode)


@pytest.mark.parametrize("opcode", sorted(CONTROL_OPCODES))
def test_pack_rejects_fragmented_control(opcode: int) -> None:
    with pytest.raises(PackError):
        pack(b"x", opcode, 0)


@pytest.mark.parametrize("code", [0, 999, 1004, 1006, 1015, 1016, 2999, 5000])
def test_pack_rejects_invalid_close_code(code: int) -> None:
    with pytest.raises(PackError):
        pack(CloseFrame(code))


@pytest.mark.parametrize(
    "body", [b"\x03", b"\x03\xe7", b"\x03\xec", b"\x03\xed", b"\x03\xee", b"\x03\xf7", b"\x13\x88"]
)
def test_pack_rejects_invalid_raw_close_body(body: bytes) -> None:
    # 1-byte body; codes 999, 1004, 1005, 1006, 1015, 5000
    with pytest.raises(PackError):
        pack(body, WEBSOCKET_OPCODE_CLOSE)
    with pytest.raises(PackError):
        pack(Frame(0, body, WEBSOCKET_OPCODE_CLOSE))
    with pytest.raises(PackError):
        pack(b"\x03\xe8\xff", WEBSOCKET_OPCODE_CLOSE)  # reason not UTF-8


def test_pack_accepts_valid_raw_close_body() -> None:
    assert pack(b"", WEBSOCKET_OPCODE_CLOSE) == b"\x88\x00"
    assert pack(b"\x03\xe8ok", WEBSOCKET_OPCODE_CLOSE) == b"\x88\x04\x03\xe8ok"
    got = unpack(pack(b"\x0f\xa0", WEBSOCKET_OPCODE_CLOSE))
    assert isinstance(got, CloseFrame)
    assert got.code == 4000


def test_pack_rejects_bad_types() -> None:
    with pytest.raises(PackError):
        pack(123)  # type: ignore[arg-type]
    with pytest.raises(PackError):
        pack(b"x", WEBSOCKET_OPCODE_BINARY, -1)
    with pytest.raises(PackError):
        unpack("\x81\x00")  # type: ignore[arg-type]


# -- unpack errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
def test_unpack_rejects_unknown_opcode(opcode: int) -> None:
    with pytest.raises(PackError):
        unpack(encode_frame(opcode, b"x"))
    with pytest.raises(PackError):
        unpack(encode_frame(opcode, b"x", mask=MASK))


@pytest.mark.parametrize("opcode", sorted(CONTROL_OPCODES))
def test_unpack_rejects_oversize_and_fragmented_control(opcode: int) -> None:
    with pytest.raises(PackError):
        unpack(encode_frame(opcode, b"\x03\xe8" + b"x" * 124))
    with pytest.raises(PackError):
        unpack(encode_frame(opcode, b"\x03\xe8", fin=False))
    # the limit itself is fine
    assert unpack(encode_frame(opcode, b"\x03\xe8" + b"x" * 123)).opcode == opcode


TRUNCATION_CASES = [
    encode_frame(WEBSOCKET_OPCODE_TEXT, b""),
    encode_frame(WEBSOCKET_OPCODE_TEXT, b"Hello"),
    encode_frame(WEBSOCKET_OPCODE_TEXT, b"Hello", mask=MASK),
    encode_frame(WEBSOCKET_OPCODE_BINARY, b"b" * 126),
    encode_frame(WEBSOCKET_OPCODE_BINARY, b"b" * 300, mask=MASK),
    encode_frame(WEBSOCKET_OPCODE_CLOSE, b"\x03\xe8bye", mask=MASK),
    encode_frame(WEBSOCKET_OPCODE_PING, b""),
]


@pytest.mark.parametrize("frame", TRUNCATION_CASES)
def test_unpack_rejects_every_truncation(frame: bytes) -> None:
    unpack(frame)  # whole, it parses
    for cut in range(len(frame)):
        with pytest.raises(PackError):
            unpack(frame[:cut])
        with pytest.raises(PackError):
            unpack(bytearray(frame[:cut]))


def test_unpack_rejects_truncations_of_a_64bit_frame() -> None:
    frame = encode_frame(WEBSOCKET_OPCODE_BINARY, b"\x00" * 65536, mask=MASK)
    assert len(unpack(frame).data) == 65536
    cuts = [*range(0, 20), 65536, len(frame) - 2, len(frame) - 1]
    for cut in cuts:
        with pytest.raises(PackError):
            unpack(frame[:cut])


@pytest.mark.parametrize("frame", TRUNCATION_CASES)
def test_unpack_rejects_trailing_bytes(frame: bytes) -> None:
    with pytest.raises(PackError):
        unpack(frame + b"\x00")
    with pytest.raises(PackError):
        unpack(frame + frame)


def test_unpack_rejects_64bit_length_with_msb_set() -> None:
    # rejected for the length itself (section 5.2), not merely as a truncated frame
    with pytest.raises(PackError, match="most significant bit"):
        unpack(b"\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00" + b"x" * 20)


@pytest.mark.parametrize(
    "payload", [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\xe2\x82"]
)
def test_unpack_rejects_invalid_utf8_text(payload: bytes) -> None:
    with pytest.raises(PackError):
        unpack(encode_frame(WEBSOCKET_OPCODE_TEXT, payload))
    with pytest.raises(PackError):
        unpack(encode_frame(WEBSOCKET_OPCODE_TEXT, payload, mask=MASK))
    # the same bytes are a fine binary frame
    assert unpack(encode_frame(WEBSOCKET_OPCODE_BINARY, payload)).data == payload


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_unpack_rejects_invalid_close_code(code: int) -> None:
    with pytest.raises(PackError):
        unpack(encode_frame(WEBSOCKET_OPCODE_CLOSE, code.to_bytes(2, "big")))


def test_unpack_rejects_one_byte_close_payload() -> None:
    with pytest.raises(PackError):
        unpack(b"\x88\x01\x03")


def test_unpack_rejects_close_reason_not_utf8() -> None:
    with pytest.raises(PackError):
        unpack(encode_frame(WEBSOCKET_OPCODE_CLOSE, b"\x03\xe8\xff"))


# -- close payload helpers (sections 5.5.1, 7.4) ----------------------------------------------


def test_is_valid_close_code_ranges() -> None:
    valid = {c for c in range(0, 70000) if is_valid_close_code(c)}
    expected = {1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)}
    assert valid == expected


def test_close_payload() -> None:
    assert close_payload(1000) == b"\x03\xe8"
    assert close_payload(1001, "bye") == b"\x03\xe9bye"
    assert close_payload(4000, b"\xff\xfe") == b"\x0f\xa0\xff\xfe"
    assert close_payload(1000, "x" * 123) == b"\x03\xe8" + b"x" * 123
    with pytest.raises(ValueError, match="124 bytes"):
        close_payload(1000, "x" * 124)  # refused, never cut


def test_parse_close_payload() -> None:
    assert parse_close_payload(b"") == (1005, "")
    assert parse_close_payload(b"\x03\xe8") == (1000, "")
    assert parse_close_payload(b"\x0b\xb8h\xc3\xa9") == (3000, "hé")
    for bad, code in [
        (b"\x03", 1002),
        (b"\x03\xe7", 1002),
        (b"\x03\xed", 1002),
        (b"\x03\xe8\xc3", 1007),
    ]:
        with pytest.raises(ValueError) as info:
            parse_close_payload(bad)
        assert info.value.args[0] == code


def test_opcode_sets() -> None:
    assert sorted(DATA_OPCODES) == [0, 1, 2]
    assert sorted(CONTROL_OPCODES) == [8, 9, 10]
