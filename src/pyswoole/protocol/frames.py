"""WebSocket frames: the wire format of RFC 6455 section 5.2, masking (section 5.3), close
payloads (section 5.5.1, 7.4) and the ``Frame``/``CloseFrame`` events.

Frame layout (section 5.2)::

     0                   1                   2                   3
    +-+-+-+-+-------+-+-------------+-------------------------------+
    |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
    |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
    |N|V|V|V|       |S|             |   (if payload len==126/127)   |
    +-+-+-+-+-------+-+-------------+-------------------------------+
    |     Masking-key, if MASK set to 1 (4 bytes)   |  Payload ...  |
    +-----------------------------------------------+---------------+

``encode_frame`` is the hot path of ``push``: one header build and one concatenation.
``pack``/``unpack`` are Swoole's static helpers (``Swoole\\WebSocket\\Server::pack``), strict
where Swoole returns an empty string: invalid input raises :class:`PackError`.

``flags`` are Swoole's ``SWOOLE_WEBSOCKET_FLAG_*`` bits: the header's FIN, RSV1-3 and MASK
bits, plus COMPRESS (a message that arrived with RSV1, permessage-deflate). A ``Frame``'s
``finish``, when not None, overrides the FIN bit of its ``flags`` (:func:`frame_flags`).
"""

from __future__ import annotations

import os
import struct
import zlib

from ..constants import (
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
from ..exceptions import PackError
from .masking import apply_mask as _apply_mask_py

__all__ = [
    "CLOSE_REASON_MAX",
    "CONTROL_OPCODES",
    "DATA_OPCODES",
    "FLAGS_ALL",
    "CloseFrame",
    "Frame",
    "apply_mask",
    "close_frame_payload",
    "close_payload",
    "encode_frame",
    "encode_text",
    "frame_flags",
    "is_valid_close_code",
    "pack",
    "parse_close_payload",
    "unpack",
]

DATA_OPCODES = frozenset(
    (WEBSOCKET_OPCODE_CONTINUATION, WEBSOCKET_OPCODE_TEXT, WEBSOCKET_OPCODE_BINARY)
)
CONTROL_OPCODES = frozenset((WEBSOCKET_OPCODE_CLOSE, WEBSOCKET_OPCODE_PING, WEBSOCKET_OPCODE_PONG))

_pack_u16 = struct.Struct("!BBH").pack
_pack_u64 = struct.Struct("!BBQ").pack
_from_bytes = int.from_bytes


def _encode_text_py(data: str) -> bytes:
    """One final, unmasked text frame carrying ``data`` as UTF-8 (the hot path of ``push``).

    The reference for the compiled ``_speedups.encode_text``: same bytes as
    ``encode_frame(1, data.encode())``; a lone surrogate raises ``UnicodeEncodeError``.
    """
    payload = data.encode()
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    return encode_frame(WEBSOCKET_OPCODE_TEXT, payload)


apply_mask = _apply_mask_py
encode_text = _encode_text_py
#: True when the compiled helpers are in use (PYSWOOLE_NO_EXTENSIONS=1 disables them)
SPEEDUPS = False
if not os.environ.get("PYSWOOLE_NO_EXTENSIONS"):
    try:
        from ._speedups import apply_mask, encode_text
    except ImportError:  # not built (no compiler at install time): pure Python
        pass
    else:
        SPEEDUPS = True


def encode_frame(
    opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bytes | None = None
) -> bytes:
    """Serialise one frame (RFC 6455 section 5.2). ``rsv`` is the raw RSV bits (0x70 mask).

    Server frames are unmasked (section 5.1); ``mask`` is only for ``pack`` with the MASK flag
    and for tests acting as a client.
    """
    if mask is not None:
        header = frame_header(opcode, len(payload), fin, rsv, 0x80)
        return header + mask + apply_mask(payload, mask)
    return frame_header(opcode, len(payload), fin, rsv) + payload


def frame_header(opcode: int, n: int, fin: bool = True, rsv: int = 0, mbit: int = 0) -> bytes:
    """The 2, 4 or 10 header bytes of a frame with an ``n``-byte payload (section 5.2);
    sent before the payload itself, a big payload is never copied to build its frame."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    if n < 126:
        return bytes((b0, mbit | n))
    if n < 65536:
        return _pack_u16(b0, mbit | 126, n)
    return _pack_u64(b0, mbit | 127, n)


# -- close codes (RFC 6455 section 7.4) -----------------------------------------------------


def is_valid_close_code(code: int) -> bool:
    """True for codes a peer may send in a close frame (sections 7.4.1 and 7.4.2).

    1000-1003 and 1007-1011 are defined by the RFC, 1012-1014 are registered with IANA,
    3000-4999 are for libraries and applications. 1004 is reserved; 1005, 1006 and 1015 must
    never be sent on the wire; everything else below 3000 is reserved for the RFC.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


#: the longest close reason in bytes: a control frame carries at most 125 (section 5.5)
CLOSE_REASON_MAX = 123


def close_payload(code: int, reason: str | bytes = b"") -> bytes:
    """Close frame body: 2-byte code then UTF-8 reason, at most 125 bytes (section 5.5.1).

    A reason over :data:`CLOSE_REASON_MAX` bytes raises ``ValueError``, never truncated: Swoole
    refuses it too ("the max length of close reason is 123", ``websocket::pack_close_frame``).
    """
    raw = reason.encode("utf-8") if isinstance(reason, str) else bytes(reason)
    if len(raw) > CLOSE_REASON_MAX:
        raise ValueError(f"close reason of {len(raw)} bytes (limit {CLOSE_REASON_MAX})")
    return code.to_bytes(2, "big") + raw


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    """Return ``(code, reason)`` of a received close body.

    An empty body means "no status code" (1005, section 7.1.5). Raises ``ValueError`` with
    the close code to fail with as ``args[0]``: 1002 for a 1-byte body or an invalid code,
    1007 for a reason that is not UTF-8 (section 5.5.1).
    """
    n = len(payload)
    if n == 0:
        return 1005, ""
    if n == 1:
        raise ValueError(1002, "close frame payload of 1 byte")
    code = (payload[0] << 8) | payload[1]
    if not is_valid_close_code(code):
        raise ValueError(1002, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(1007, "close reason is not valid UTF-8") from None
    return code, reason


# -- events -------------------------------------------------------------------------------


class Frame:
    """A WebSocket message or control frame (``Swoole\\WebSocket\\Frame``).

    Its attributes are Swoole's: ``fd``, ``data`` (``str`` for text, ``bytes`` otherwise),
    ``opcode``, ``flags`` and ``finish``. Received messages are delivered once, whole
    (fragments reassembled), with ``finish=True`` and ``flags`` as Swoole reports them:
    the header bits of the message's first frame plus FIN -- FIN|MASK (33) for a client
    message, FIN|COMPRESS|RSV1|MASK (39) for a compressed one.

    ``finish`` is None by default, as Swoole's (a declared-null property): then ``flags``
    alone decides FIN when the frame is packed or pushed; True or False overrides it
    (:func:`frame_flags`), so ``Frame(data=..., finish=False)`` goes out without FIN.
    ``bytes(frame)`` packs it (Swoole's ``__toString``).
    """

    __slots__ = ("data", "fd", "finish", "flags", "opcode")

    def __init__(
        self,
        fd: int = 0,
        data: str | bytes = "",
        opcode: int = WEBSOCKET_OPCODE_TEXT,
        finish: bool | None = None,
        flags: int = SWOOLE_WEBSOCKET_FLAG_FIN,
    ) -> None:
        self.fd = fd
        self.data = data
        self.opcode = opcode
        self.finish = finish
        self.flags = flags

    def __repr__(self) -> str:
        # Swoole's property order (var_dump): fd, data, opcode, flags, finish
        data = self.data if len(self.data) <= 40 else self.data[:40]
        return (
            f"{type(self).__name__}(fd={self.fd}, data={data!r}, opcode={self.opcode}, "
            f"flags={self.flags}, finish={self.finish})"
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in _all_slots(type(self)))

    __hash__ = None  # type: ignore[assignment]

    def __bytes__(self) -> bytes:
        """The frame packed (Swoole's ``Frame::__toString``)."""
        return pack(self)

    @staticmethod
    def pack(
        data: Frame | str | bytes,
        opcode: int = WEBSOCKET_OPCODE_TEXT,
        flags: int = SWOOLE_WEBSOCKET_FLAG_FIN,
    ) -> bytes:
        """Swoole's ``Frame::pack``; see :func:`pack`."""
        return pack(data, opcode, flags)

    @staticmethod
    def unpack(data: bytes | bytearray) -> Frame:
        """Swoole's ``Frame::unpack``; see :func:`unpack`."""
        return unpack(data)


class CloseFrame(Frame):
    """A close frame (``Swoole\\WebSocket\\CloseFrame``): a :class:`Frame` with opcode 8
    and ``code`` and ``reason``. Always packed with FIN (a control frame, section 5.5)."""

    __slots__ = ("code", "reason")

    def __init__(
        self,
        code: int = 1000,
        reason: str = "",
        fd: int = 0,
        flags: int = SWOOLE_WEBSOCKET_FLAG_FIN,
        finish: bool | None = None,
    ) -> None:
        super().__init__(fd, "", WEBSOCKET_OPCODE_CLOSE, finish, flags)
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return (
            f"CloseFrame(fd={self.fd}, data={self.data!r}, opcode={self.opcode}, "
            f"flags={self.flags}, finish={self.finish}, code={self.code}, reason={self.reason!r})"
        )


#: every ``SWOOLE_WEBSOCKET_FLAG_*`` bit (Swoole's ``websocket::FLAGS_ALL``)
FLAGS_ALL = (
    SWOOLE_WEBSOCKET_FLAG_FIN
    | SWOOLE_WEBSOCKET_FLAG_COMPRESS
    | SWOOLE_WEBSOCKET_FLAG_RSV1
    | SWOOLE_WEBSOCKET_FLAG_RSV2
    | SWOOLE_WEBSOCKET_FLAG_RSV3
    | SWOOLE_WEBSOCKET_FLAG_MASK
)


def frame_flags(frame: Frame) -> int:
    """The flags a :class:`Frame` is packed or pushed with, as Swoole's ``FrameObject``
    reads them: ``flags & FLAGS_ALL``, then a ``finish`` that is not None sets (True) or
    clears (False) FIN. So ``finish=False`` sends no FIN whatever ``flags`` say."""
    flags = frame.flags & FLAGS_ALL
    finish = frame.finish
    if finish is None:
        return flags
    return flags | SWOOLE_WEBSOCKET_FLAG_FIN if finish else flags & ~SWOOLE_WEBSOCKET_FLAG_FIN


def _all_slots(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        names.extend(getattr(klass, "__slots__", ()))
    return names


# -- Swoole's pack / unpack -----------------------------------------------------------------

_RSV_FLAGS = (
    (SWOOLE_WEBSOCKET_FLAG_RSV1, 0x40),
    (SWOOLE_WEBSOCKET_FLAG_RSV2, 0x20),
    (SWOOLE_WEBSOCKET_FLAG_RSV3, 0x10),
)


def pack(
    data: Frame | str | bytes,
    opcode: int = WEBSOCKET_OPCODE_TEXT,
    flags: int = SWOOLE_WEBSOCKET_FLAG_FIN,
) -> bytes:
    """Serialise ``data`` as one WebSocket frame, as ``Swoole\\WebSocket\\Server::pack``.

    ``data`` may be a :class:`Frame` (its opcode, data and :func:`frame_flags`; the
    ``opcode`` and ``flags`` arguments are then ignored, as in Swoole; a :class:`CloseFrame`
    packs its code and reason, always with FIN), ``str`` (UTF-8 encoded) or ``bytes``; a
    raw close body must be valid (empty, or a sendable code and a UTF-8 reason). A close
    reason over 123 bytes raises :class:`PackError` (Swoole warns and returns ``""``).
    ``flags`` takes ``SWOOLE_WEBSOCKET_FLAG_*``: FIN, RSV1-3, MASK for a client frame with
    a random mask, and COMPRESS, which compresses a non-empty text or binary payload on its
    own (no context kept) and sets RSV1, as Swoole 6's ``FrameObject::pack`` does.
    """
    if isinstance(data, Frame):
        opcode = data.opcode
        flags = frame_flags(data)
        if isinstance(data, CloseFrame):
            payload = close_frame_payload(data)
            flags |= SWOOLE_WEBSOCKET_FLAG_FIN  # as Swoole's pack_close_frame
        else:
            payload = _to_bytes(data.data)
    else:
        payload = _to_bytes(data)
    if not isinstance(opcode, int) or opcode not in DATA_OPCODES | CONTROL_OPCODES:
        raise PackError(f"invalid opcode {opcode!r}")
    if not isinstance(flags, int) or flags < 0:
        raise PackError(f"invalid flags {flags!r}")
    fin = bool(flags & SWOOLE_WEBSOCKET_FLAG_FIN)
    if opcode in CONTROL_OPCODES:
        if len(payload) > 125:
            raise PackError(f"control frame payload of {len(payload)} bytes (limit 125)")
        if not fin:
            raise PackError("control frames cannot be fragmented")
        if opcode == WEBSOCKET_OPCODE_CLOSE and not isinstance(data, CloseFrame):
            # a raw close body must be one a peer accepts (sections 5.5.1, 7.4), as unpack checks
            try:
                parse_close_payload(payload)
            except ValueError as exc:
                raise PackError(str(exc.args[1])) from None
    rsv = 0
    for flag, bit in _RSV_FLAGS:
        if flags & flag:
            rsv |= bit
    if flags & SWOOLE_WEBSOCKET_FLAG_COMPRESS and payload and opcode in _COMPRESSIBLE:
        payload = _deflate(payload)
        rsv |= 0x40
    mask = os.urandom(4) if flags & SWOOLE_WEBSOCKET_FLAG_MASK else None
    return encode_frame(opcode, payload, fin, rsv, mask)


#: the opcodes ``pack`` compresses and ``unpack`` inflates: RSV1 means "compressed" on the
#: first frame of a data message only (RFC 7692 section 6.1), never on continuation or
#: control frames (Swoole would compress those too; pyswoole does not)
_COMPRESSIBLE = (WEBSOCKET_OPCODE_TEXT, WEBSOCKET_OPCODE_BINARY)
_TAIL = b"\x00\x00\xff\xff"


def _deflate(payload: bytes) -> bytes:
    """``payload`` compressed on its own, as Swoole's ``message_compress`` does for ``pack``
    with ``SWOOLE_WEBSOCKET_FLAG_COMPRESS``: raw deflate, default level, a 32 KiB window, a
    sync flush whose 4-byte tail is removed (RFC 7692 section 7.2.1)."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15, 9)
    return (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def _inflate(payload: bytes, fin: bool) -> bytes:
    """A compressed frame's payload inflated on its own (RFC 7692 section 7.2.2), as
    Swoole's ``unpack`` does. Not bounded: ``unpack`` is for data the caller trusts."""
    try:
        return zlib.decompressobj(-15).decompress(payload + _TAIL if fin else payload)
    except zlib.error as exc:
        raise PackError(f"compressed payload does not inflate: {exc}") from None


def close_frame_payload(frame: CloseFrame) -> bytes:
    """The body of ``frame`` (section 5.5.1): empty for 1005 ("no status"), else the code
    and the reason. :class:`PackError` for a code a peer may not receive (section 7.4) or a
    reason over 123 bytes (Swoole's ``pack_close_frame`` refuses it, never truncates)."""
    code = frame.code
    if code == 1005:
        return b""
    if not isinstance(code, int) or not is_valid_close_code(code):
        raise PackError(f"invalid close code {code!r}")
    try:
        return close_payload(code, frame.reason)
    except ValueError as exc:
        raise PackError(str(exc)) from None


def _to_bytes(data: object) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise PackError(f"cannot pack {type(data).__name__}: expected str, bytes or Frame")


def unpack(data: bytes | bytearray) -> Frame:
    """Parse exactly one complete frame, masked or not, as ``Swoole\\WebSocket\\Server::unpack``.

    Returns a :class:`Frame` (text as ``str``, other opcodes as ``bytes``) or a
    :class:`CloseFrame`; ``finish`` is the FIN bit. ``flags`` reflects FIN, RSV1-3 and MASK,
    plus COMPRESS with RSV1; a text or binary frame with RSV1 is inflated on its own (RFC
    7692), as Swoole 6's ``unpack`` does. Raises :class:`PackError` for truncated input,
    trailing bytes, unknown opcodes, invalid control frames, a compressed payload that
    does not inflate, invalid UTF-8 in a complete text frame, or an invalid close payload.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise PackError(f"cannot unpack {type(data).__name__}: expected bytes")
    n = len(data)
    if n < 2:
        raise PackError("truncated frame header")
    b0, b1 = data[0], data[1]
    opcode = b0 & 0x0F
    fin = bool(b0 & 0x80)
    masked = bool(b1 & 0x80)
    length = b1 & 0x7F
    pos = 2
    if length == 126:
        if n < 4:
            raise PackError("truncated extended length")
        length = _from_bytes(data[2:4], "big")
        pos = 4
    elif length == 127:
        if n < 10:
            raise PackError("truncated extended length")
        length = _from_bytes(data[2:10], "big")
        if length >> 63:
            raise PackError("64-bit length with the most significant bit set")
        pos = 10
    mask = b""
    if masked:
        if n < pos + 4:
            raise PackError("truncated masking key")
        mask = bytes(data[pos : pos + 4])
        pos += 4
    if n < pos + length:
        raise PackError(f"truncated payload: {n - pos} of {length} bytes")
    if n > pos + length:
        raise PackError(f"{n - pos - length} trailing bytes after the frame")
    if opcode not in DATA_OPCODES and opcode not in CONTROL_OPCODES:
        raise PackError(f"unknown opcode {opcode}")
    payload = bytes(data[pos:])
    if masked:
        payload = apply_mask(payload, mask)
    flags = SWOOLE_WEBSOCKET_FLAG_FIN if fin else 0
    for flag, bit in _RSV_FLAGS:
        if b0 & bit:
            flags |= flag
    if masked:
        flags |= SWOOLE_WEBSOCKET_FLAG_MASK
    if opcode in CONTROL_OPCODES:
        if length > 125:
            raise PackError(f"control frame payload of {length} bytes (limit 125)")
        if not fin:
            raise PackError("fragmented control frame")
    if flags & SWOOLE_WEBSOCKET_FLAG_RSV1:
        # RSV1 reads as COMPRESS whatever the opcode, close frames included (Swoole's
        # php_swoole_websocket_frame_unpack_ex); only data frames are inflated here (RFC
        # 7692 section 6.1: control frames are never compressed)
        flags |= SWOOLE_WEBSOCKET_FLAG_COMPRESS
    if opcode == WEBSOCKET_OPCODE_CLOSE:
        try:
            code, reason = parse_close_payload(payload)
        except ValueError as exc:
            raise PackError(str(exc.args[1])) from None
        return CloseFrame(code, reason, 0, flags, fin)
    if flags & SWOOLE_WEBSOCKET_FLAG_RSV1 and opcode in _COMPRESSIBLE:
        payload = _inflate(payload, fin)
    body: str | bytes = payload
    if opcode == WEBSOCKET_OPCODE_TEXT and fin:
        try:
            body = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise PackError("text frame is not valid UTF-8") from None
    return Frame(0, body, opcode, fin, flags)
