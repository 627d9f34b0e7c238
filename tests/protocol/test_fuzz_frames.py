"""Property-based fuzzing of the frame codec (``pyswoole.protocol.frames``).

* ``unpack``: any bytes give a ``Frame``/``CloseFrame`` or ``PackError``, nothing else, and
  for generated frames (any opcode, FIN/RSV bits, mask, length encoding; truncated or with
  trailing bytes) exactly what RFC 6455 section 5.2 says: :func:`expected_unpack`;
* ``pack``/``unpack`` round trip for valid input (``PackError`` exactly for invalid input);
* ``parse_close_payload``: any bytes give ``(code, reason)`` or ``ValueError`` whose
  ``args[0]`` is 1002 or 1007, as the reference says; ``close_payload`` round trip;
* ``apply_mask``: an involution equal to section 5.3's definition, for bytes, bytearray and
  memoryview; the compiled and pure-Python versions agree (the pure build compares the
  pure version with the definition), and so do the two ``encode_text``.
"""

from __future__ import annotations

import importlib
import zlib
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pyswoole.constants import (
    SWOOLE_WEBSOCKET_FLAG_COMPRESS,
    SWOOLE_WEBSOCKET_FLAG_FIN,
    SWOOLE_WEBSOCKET_FLAG_MASK,
    SWOOLE_WEBSOCKET_FLAG_RSV1,
    SWOOLE_WEBSOCKET_FLAG_RSV2,
    SWOOLE_WEBSOCKET_FLAG_RSV3,
)
from pyswoole.exceptions import PackError
from pyswoole.protocol import frames
from pyswoole.protocol.frames import (
    CloseFrame,
    Frame,
    apply_mask,
    close_payload,
    encode_frame,
    pack,
    parse_close_payload,
    unpack,
)
from tests.protocol.strategies import (
    MASKS,
    WIDTHS,
    client_frame,
    close_payloads,
    is_valid_close_code,
    utf8_payloads,
    utf8_state,
)

speedups: Any = importlib.import_module("pyswoole.protocol._speedups") if frames.SPEEDUPS else None

FIN = SWOOLE_WEBSOCKET_FLAG_FIN
RSV_FLAGS = {0x40: SWOOLE_WEBSOCKET_FLAG_RSV1, 0x20: SWOOLE_WEBSOCKET_FLAG_RSV2}
RSV_FLAGS[0x10] = SWOOLE_WEBSOCKET_FLAG_RSV3
KNOWN_OPCODES = (0, 1, 2, 8, 9, 10)
TAIL = b"\x00\x00\xff\xff"


def xor_mask(data: bytes, mask: bytes) -> bytes:
    """Section 5.3: octet i of the data XOR octet i MOD 4 of the masking key."""
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def outcome(call: Any, *args: Any) -> tuple[Any, ...]:
    """What a call gives: ``("ok", fields...)`` or ``("PackError",)``; anything else raises."""
    try:
        frame = call(*args)
    except PackError:
        return ("PackError",)
    assert type(frame) in (Frame, CloseFrame)
    if type(frame) is CloseFrame:
        assert frame.finish is True  # the FIN bit (a close frame is never fragmented)
        return ("close", frame.code, frame.reason, frame.flags, frame.fd)
    return ("frame", frame.opcode, frame.data, frame.finish, frame.flags, frame.fd)


# -- unpack -------------------------------------------------------------------------------


@given(st.binary(max_size=200))
@example(b"\x81\xff" + b"\x80" + bytes(7))  # a 64-bit length with the top bit set
@example(b"\x88\x02\x03\xed")  # close code 1005 on the wire
def test_unpack_arbitrary_bytes(data: bytes) -> None:
    """Any bytes: a frame or PackError (``outcome`` fails on anything else); bytearray the
    same."""
    assert outcome(unpack, bytearray(data)) == outcome(unpack, data)


def expected_unpack(opcode: int, payload: bytes, fin: bool, rsv: int, masked: bool) -> tuple:
    """What unpacking one whole frame with these fields must give (sections 5.2-5.5; RFC
    7692: a text or binary frame with RSV1 is inflated on its own, and RSV1 reads as
    COMPRESS too, as in Swoole 6)."""
    if opcode not in KNOWN_OPCODES:
        return ("PackError",)
    flags = (FIN if fin else 0) | (SWOOLE_WEBSOCKET_FLAG_MASK if masked else 0)
    for bit, flag in RSV_FLAGS.items():
        if rsv & bit:
            flags |= flag
    if rsv & 0x40:
        flags |= SWOOLE_WEBSOCKET_FLAG_COMPRESS
    if opcode >= 8 and (len(payload) > 125 or not fin):
        return ("PackError",)
    if opcode == 8:
        if not payload:
            return ("close", 1005, "", flags, 0)
        if len(payload) == 1 or not is_valid_close_code(int.from_bytes(payload[:2], "big")):
            return ("PackError",)
        if utf8_state(payload[2:]) != "ok":
            return ("PackError",)
        return ("close", int.from_bytes(payload[:2], "big"), payload[2:].decode(), flags, 0)
    if rsv & 0x40 and opcode in (1, 2):
        try:
            payload = zlib.decompressobj(-15).decompress(payload + TAIL if fin else payload)
        except zlib.error:
            return ("PackError",)
    data: str | bytes = payload
    if opcode == 1 and fin:
        if utf8_state(payload) != "ok":
            return ("PackError",)
        data = payload.decode()
    return ("frame", opcode, data, fin, flags, 0)


@st.composite
def wire_frames(draw: st.DrawFn) -> tuple[bytes, tuple]:
    """A frame with random header bits, masked or not, in any length encoding, maybe cut
    short or followed by extra bytes; and what ``unpack`` must make of it."""
    opcode = draw(st.sampled_from(KNOWN_OPCODES) if draw(st.integers(0, 4)) else st.integers(0, 15))
    if opcode == 8:
        payload = draw(close_payloads)
    elif opcode == 1:
        payload = draw(utf8_payloads())
    else:
        payload = draw(st.binary(max_size=130))
    fin = draw(st.integers(0, 3)) > 0
    rsv = draw(st.sampled_from([0, 0, 0x40, 0x20, 0x10, 0x70]))
    mask = draw(st.none() | MASKS)
    wire = client_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask, width=draw(WIDTHS))
    expected = expected_unpack(opcode, payload, fin, rsv, mask is not None)
    change = draw(st.integers(0, 7))
    if change == 0 and wire:
        wire = wire[: draw(st.integers(0, len(wire) - 1))]
        expected = ("PackError",)
    elif change == 1:
        wire += draw(st.binary(min_size=1, max_size=3))
        expected = ("PackError",)
    return wire, expected


@given(wire_frames())
def test_unpack_generated_frames(frame: tuple[bytes, tuple]) -> None:
    wire, expected = frame
    assert outcome(unpack, wire) == expected


# -- pack ---------------------------------------------------------------------------------


def expected_pack_error(opcode: int, payload: bytes, flags: int) -> bool:
    """Whether ``pack`` must refuse: an unknown opcode, or a control frame over 125 bytes,
    fragmented, or (close) with a body a peer would reject."""
    if opcode not in KNOWN_OPCODES:
        return True
    if opcode >= 8:
        if len(payload) > 125 or not flags & FIN:
            return True
        if opcode == 8 and payload:
            code = int.from_bytes(payload[:2], "big")
            if len(payload) == 1 or not is_valid_close_code(code):
                return True
            return utf8_state(payload[2:]) != "ok"
    return False


@given(
    st.sampled_from(KNOWN_OPCODES) | st.integers(0, 15),
    st.one_of(st.text(max_size=50), utf8_payloads(), st.binary(max_size=140), close_payloads),
    st.integers(0, 0x3F),
    st.booleans(),
)
def test_pack_unpack_round_trip(opcode: int, data: str | bytes, flags: int, as_str: bool) -> None:
    """``pack`` refuses exactly the invalid frames; ``unpack`` gives back what was packed:
    opcode, payload, FIN, RSV1-3 and MASK (a random mask each time); COMPRESS compresses a
    non-empty text or binary payload (RSV1), which unpack inflates back."""
    if as_str and isinstance(data, bytes):
        data = data.decode("latin-1")
    payload = data.encode() if isinstance(data, str) else data
    try:
        wire = pack(data, opcode, flags)
    except PackError:
        assert expected_pack_error(opcode, payload, flags)
        return
    assert not expected_pack_error(opcode, payload, flags)
    fin = bool(flags & FIN)
    masked = bool(flags & SWOOLE_WEBSOCKET_FLAG_MASK)
    rsv = sum(bit for bit, flag in RSV_FLAGS.items() if flags & flag)
    assert bool(wire[1] & 0x80) == masked
    compressed = bool(flags & SWOOLE_WEBSOCKET_FLAG_COMPRESS and payload and opcode in (1, 2))
    assert bool(wire[0] & 0x40) == bool(compressed or rsv & 0x40)
    if compressed:
        rsv |= 0x40
        body = frames._deflate(payload)
        assert zlib.decompressobj(-15).decompress(body + TAIL) == payload
    else:
        body = payload
    expected = expected_unpack(opcode, body, fin, rsv, masked)
    if expected == ("PackError",):
        # the only frames pack writes that unpack refuses: text that is not UTF-8, and
        # RSV1 set by hand on a text or binary payload that is not deflate data
        assert (opcode == 1 and fin and utf8_state(payload) != "ok") or (
            rsv & 0x40 and not compressed and opcode in (1, 2)
        )
    assert outcome(unpack, wire) == expected


@given(
    st.sampled_from([1005, 1000, 1001, 1011, 1014, 3000, 4999]) | st.integers(0, 65535),
    st.text(max_size=130),
    st.integers(0, 0x1F),
)
def test_pack_close_frame_objects(code: int, reason: str, flags: int) -> None:
    """A ``CloseFrame`` packs to a close frame (always with FIN) unpacking to its code and
    its reason (1005: an empty body), or refuses an unsendable code or a reason over 123
    bytes (never cut, as Swoole's pack_close_frame)."""
    try:
        wire = pack(CloseFrame(code, reason, 7, flags))
    except PackError:
        assert (not is_valid_close_code(code) and code != 1005) or (
            code != 1005 and len(reason.encode()) > 123
        )
        return
    assert wire[0] & 0x8F == 0x88  # FIN and CLOSE; the RSV bits are the flags
    back = unpack(wire)
    assert type(back) is CloseFrame and back.code == code
    assert back.reason == ("" if code == 1005 else reason)


# -- close payloads -------------------------------------------------------------------------


@given(st.one_of(close_payloads, st.binary(max_size=20)))
@example(b"\x03\xe8\xed\xa0\x80")  # a surrogate in the reason
def test_parse_close_payload(payload: bytes) -> None:
    try:
        code, reason = parse_close_payload(payload)
    except ValueError as exc:
        assert exc.args[0] in (1002, 1007)
        if len(payload) == 1 or not is_valid_close_code(int.from_bytes(payload[:2], "big")):
            assert exc.args[0] == 1002
        else:
            assert exc.args[0] == 1007 and utf8_state(payload[2:]) != "ok"
        return
    if not payload:
        assert (code, reason) == (1005, "")
    else:
        assert code == int.from_bytes(payload[:2], "big") and is_valid_close_code(code)
        assert reason.encode() == payload[2:]


@given(st.sampled_from([1000, 1011, 3000, 4999]) | st.integers(3000, 4999), st.text(max_size=80))
def test_close_payload_round_trip(code: int, reason: str) -> None:
    """What ``close_payload`` builds parses back: the code and the reason; a reason over 123
    bytes raises ValueError (section 5.5: a control payload is at most 125 bytes), never cut."""
    try:
        body = close_payload(code, reason)
    except ValueError:
        assert len(reason.encode()) > 123
        return
    assert len(body) <= 125
    assert parse_close_payload(body) == (code, reason)


# -- masking --------------------------------------------------------------------------------


@given(st.binary(max_size=300) | st.binary(min_size=4000, max_size=4100), MASKS)
@example(b"", b"\0\0\0\0")
def test_apply_mask(data: bytes, mask: bytes) -> None:
    """Section 5.3, for each buffer type; masking twice gives the data back; the compiled
    version (when this build has it) is the pure one's twin."""
    expected = xor_mask(data, mask)
    implementations = [frames._apply_mask_py, apply_mask]
    if speedups is not None:
        assert apply_mask is speedups.apply_mask
        implementations.append(speedups.apply_mask)
    for masker in implementations:
        for buffer in (data, bytearray(data), memoryview(data)):
            got = masker(buffer, mask)
            assert type(got) is bytes and got == expected
        assert masker(expected, bytearray(mask)) == data


@given(
    st.text(st.characters(codec=None), max_size=200)
    | st.builds(
        lambda unit, n: unit * n, st.text("aé€𝄞", min_size=1, max_size=3), st.integers(0, 25000)
    )
)
@example("a\ud800b")  # a lone surrogate: no UTF-8 for it
def test_encode_text(text: str) -> None:
    """One unmasked text frame as ``encode_frame`` builds it; both versions refuse what
    ``str.encode`` refuses."""
    encoders = [frames._encode_text_py] + ([speedups.encode_text] if speedups else [])
    try:
        payload = text.encode()
    except UnicodeEncodeError:
        for encode in encoders:
            with pytest.raises(UnicodeEncodeError):
                encode(text)
        return
    wire = encode_frame(1, payload)
    for encode in encoders:
        assert encode(text) == wire
    assert unpack(wire).data == text
