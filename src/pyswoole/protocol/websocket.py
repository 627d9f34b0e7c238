"""The server side of one WebSocket connection, Sans-I/O (RFC 6455 sections 5-7).

Theory of operation
-------------------
:meth:`WebSocket.receive_data` takes the bytes read from the socket and returns the events
they complete: whole messages as :class:`Frame` (fragments are reassembled, text is
validated as UTF-8 while it arrives), plus control frames when the server asked to see them.
What the protocol itself must answer (pongs, close replies, close frames that fail the
connection) is queued and taken with :meth:`WebSocket.data_to_send`. When
:attr:`WebSocket.close_transport` becomes true the driver writes what is queued and closes
the TCP connection: the server closes TCP first (section 7.1.1).

The parser walks an integer offset through the received chunk and keeps only the unparsed
tail of a partial frame, so a read holding many frames costs no copies but each payload's
unmasking. Frame headers are checked as soon as they are complete, before their payload is
buffered: an oversize message (1009), a bad opcode or unmasked frame (1002) fails the
connection without waiting for (or storing) the payload.

Memory: what a connection holds is bounded by ``max_message_size`` plus one frame (each
frame, header included, fits in ``max_message_size``: Swoole's ``package_max_length``). A
compressed message (RFC 7692) is kept compressed until its last fragment and inflated then,
as aiohttp does: an unfinished message costs its compressed size, never its inflated one
(a few KiB of deflate data can inflate to megabytes). And one call inflates at most about
:data:`INFLATE_BATCH` bytes, and returns at most about :data:`EVENT_BATCH` events: past
that it stops at a frame boundary, keeps the rest of the input and sets
:attr:`WebSocket.input_pending`; the driver dispatches the events, then calls
``receive_data(b"")`` to go on (on its next turn, so other connections are served
meanwhile). So a read full of small compressed messages that each inflate to
``max_message_size`` never holds more than about one batch of them at once, and a read of
2,000 pings is answered in four turns, not in one that makes everybody else wait.

States::

    OPEN ──close() sent──► CLOSING ──peer's close──► CLOSED
      │                                               ▲
      ├──peer's close (we echo it)────────────────────┤
      └──protocol error (we send 1002/1007/1009)──────┘

Events are delivered in order; a protocol error still returns the events completed before
the bad frame, so no message that arrived whole is lost.
"""

from __future__ import annotations

import codecs
import functools
from collections.abc import Callable
from typing import Any, Protocol, Union

from ..constants import (
    SWOOLE_WEBSOCKET_FLAG_COMPRESS,
    SWOOLE_WEBSOCKET_FLAG_FIN,
    SWOOLE_WEBSOCKET_FLAG_MASK,
    SWOOLE_WEBSOCKET_FLAG_RSV1,
    WEBSOCKET_CLOSE_MESSAGE_ERROR,
    WEBSOCKET_CLOSE_MESSAGE_TOO_BIG,
    WEBSOCKET_CLOSE_PROTOCOL_ERROR,
    WEBSOCKET_OPCODE_BINARY,
    WEBSOCKET_OPCODE_CLOSE,
    WEBSOCKET_OPCODE_PING,
    WEBSOCKET_OPCODE_PONG,
    WEBSOCKET_OPCODE_TEXT,
    WEBSOCKET_STATUS_ACTIVE,
    WEBSOCKET_STATUS_CLOSING,
)
from .frames import (
    SPEEDUPS,
    CloseFrame,
    Frame,
    apply_mask,
    close_payload,
    encode_frame,
    parse_close_payload,
)

__all__ = [
    "CLOSED",
    "CLOSING",
    "FLAGS_COMPRESSED",
    "FLAGS_MESSAGE",
    "OPEN",
    "Event",
    "MessageInflater",
    "SendData",
    "WebSocket",
]

OPEN = WEBSOCKET_STATUS_ACTIVE
CLOSING = WEBSOCKET_STATUS_CLOSING
CLOSED = 5

_Utf8Decoder = codecs.getincrementaldecoder("utf-8")

#: inflated bytes one ``receive_data`` call may produce before it leaves the rest for later
INFLATE_BATCH = 1024 * 1024
#: events one call returns at most (from the frames the state machine parses itself)
EVENT_BATCH = 512

_parse_simple: Callable[..., tuple[list[Any], int]] | None = None
if SPEEDUPS:
    from ._speedups import parse_simple as _parse_simple
# The flags of what is delivered, as Swoole reports them (``websocket::get_flags`` of the
# header, plus COMPRESS when RSV1 is set; a reassembled message reports its first frame's
# flags plus FIN). Every frame that gets this far is masked with RSV2 and RSV3 clear (else
# the connection failed), so the header bits leave two values: FIN|MASK (33), and
# FIN|COMPRESS|RSV1|MASK (39) for a compressed message -- constants, nothing to compute.
FLAGS_MESSAGE = SWOOLE_WEBSOCKET_FLAG_FIN | SWOOLE_WEBSOCKET_FLAG_MASK
FLAGS_COMPRESSED = FLAGS_MESSAGE | SWOOLE_WEBSOCKET_FLAG_COMPRESS | SWOOLE_WEBSOCKET_FLAG_RSV1
_FLAGS = FLAGS_MESSAGE

# Messages and payload bytes by opcode, in this process (pyswoole.metrics, which adds the
# compiled path's own counts, _wscore.h). One ``+=`` per frame: an entry holds ``messages <<
# 64 | payload bytes``, payload bytes being the frame payloads as on the wire (no header or
# mask; compressed messages at their compressed size).
#: what was received, by opcode (a message counts once, at its last frame)
RECEIVED: list[int] = [0] * 16
#: what was queued for clients, by the frame's first byte (FIN, RSV1-3, opcode): a
#: continuation frame (opcode 0) adds its bytes only (runtime/connection.py, pongs here)
SENT: list[int] = [0] * 256
#: one message, in a :data:`RECEIVED` or :data:`SENT` entry
MESSAGE = 1 << 64
#: ``MESSAGE`` minus the header's length, by an unmasked frame's second byte: a sent frame
#: ``f`` counts as ``SENT[f[0]] += SENT_HEADER[f[1]] + len(f)``
SENT_HEADER = tuple(MESSAGE - (2 if b < 126 else 4 if b == 126 else 10) for b in range(128))


class MessageInflater(Protocol):
    """What a negotiated compression extension (RFC 7692) offers the parser."""

    def inflate(self, data: bytes, final: bool, limit: int) -> bytes:
        """Decompress one frame's payload; ``final`` ends the message. Raise ``ValueError``
        for bad data and ``OverflowError`` when the output would exceed ``limit`` bytes."""
        ...


@functools.lru_cache(maxsize=64)
def _close_reply(code: int) -> bytes:
    """The answer to a peer's close frame with ``code``: the code echoed, or an empty close
    frame for 1005, i.e. none received (section 5.5.1). Cached: a peer closes with one of a
    few codes, and this runs once per connection."""
    return encode_frame(WEBSOCKET_OPCODE_CLOSE, b"" if code == 1005 else close_payload(code))


class SendData:
    """An event: bytes the protocol must send *at this point* of the event stream.

    Pongs answer pings in arrival order relative to the messages around them: a driver that
    answers messages as it dispatches them writes ``data`` when it reaches this event.
    Close frames, which end the stream, go to :meth:`WebSocket.data_to_send` instead.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SendData) and other.data == self.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SendData({self.data!r})"


Event = Union[Frame, SendData]  # noqa: UP007 - a runtime alias, valid on Python 3.10


class _Failure(Exception):
    """Internal: fail the connection with ``code`` (section 7.1.7)."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


def _validate_utf8(decoder: codecs.IncrementalDecoder, data: bytes, final: bool) -> None:
    """Feed ``data`` to ``decoder``; fail with 1007 at the first invalid byte (section 8.1).

    CPython reports a surrogate (ED A0..BF, U+D800-U+DFFF) only with its third byte, so a
    pending ED followed by A0 or more fails at once too.
    """
    try:
        decoder.decode(data, final)
    except UnicodeDecodeError:
        raise _Failure(WEBSOCKET_CLOSE_MESSAGE_ERROR, "invalid UTF-8") from None
    pending = decoder.getstate()[0]
    if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
        raise _Failure(WEBSOCKET_CLOSE_MESSAGE_ERROR, "invalid UTF-8")


class WebSocket:
    """Protocol state of one server-side WebSocket connection.

    ``fd`` is copied into every event. ``max_message_size`` is Swoole's
    ``package_max_length``, counted as Swoole counts it: every frame *with its header*
    (2, 4 or 10 bytes, plus the 4-byte mask) must fit (``websocket::get_package_length``,
    checked by ``Protocol::recv_with_length_protocol``), so a frame carrying exactly
    ``max_message_size`` payload bytes is over; and the payloads of a fragmented message,
    added up, must fit too (``websocket::dispatch_frame``). A compressed message must also
    inflate to at most ``max_message_size`` bytes (Swoole does not bound inflation; pyswoole
    does, by the same rule as a reassembled message). Anything over fails with 1009.
    ``deliver_close/ping/pong`` are Swoole's
    ``open_websocket_{close,ping,pong}_frame``: such frames become events; with
    ``deliver_ping`` the automatic pong is not sent.
    """

    __slots__ = (
        "_buf",
        "_decoder",
        "_inflated",
        "_inflater",
        "_msg",
        "_msg_compressed",
        "_msg_len",
        "_msg_opcode",
        "_out",
        "_partial_decoder",
        "_partial_done",
        "_rsv_allowed",
        "close_code",
        "close_reason",
        "close_received",
        "close_sent",
        "close_transport",
        "deliver_close",
        "deliver_ping",
        "deliver_pong",
        "fd",
        "input_pending",
        "max_message_size",
        "state",
    )

    def __init__(
        self,
        fd: int = 0,
        *,
        max_message_size: int = 2 * 1024 * 1024,
        deliver_close: bool = False,
        deliver_ping: bool = False,
        deliver_pong: bool = False,
        inflater: MessageInflater | None = None,
    ) -> None:
        self.fd = fd
        self.max_message_size = max_message_size
        self.deliver_close = deliver_close
        self.deliver_ping = deliver_ping
        self.deliver_pong = deliver_pong
        self.state = OPEN
        self.close_sent = False
        self.close_received = False
        self.close_transport = False
        #: True when received bytes were kept for a later ``receive_data(b"")`` call
        self.input_pending = False
        #: the close code and reason of the closing handshake (received, or sent on failure)
        self.close_code = 1006
        self.close_reason = ""
        # Both are the shared b"" until there is something to hold (a partial frame, a
        # close frame to send): two empty bytearrays were 112 bytes of every idle connection.
        #: received bytes of an incomplete frame: b"", or a non-empty bytearray
        self._buf: bytes | bytearray = b""
        #: the close frame the protocol queued (data_to_send)
        self._out = b""
        self._inflater = inflater
        self._rsv_allowed = 0x40 if inflater is not None else 0
        self._msg_opcode = 0  # opcode of the fragmented message in progress, 0 if none
        self._msg: bytearray | None = None
        self._msg_len = 0
        self._msg_compressed = False
        self._decoder: codecs.IncrementalDecoder | None = None
        self._inflated = 0  # inflated bytes produced by the current receive_data call
        # validation of a text frame that has only partly arrived
        self._partial_done = 0
        self._partial_decoder: codecs.IncrementalDecoder | None = None

    # -- input --------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the socket; return the events they complete, in order."""
        buf = self._buf
        if (
            _parse_simple is not None
            and not buf
            and self.state == OPEN
            and not (self._msg_opcode or self.close_sent or self._partial_done)
        ):
            # Compiled fast path: whole, unfragmented, uncompressed text/binary frames.
            # It stops at anything else, which the loop below handles (and judges).
            events, pos = _parse_simple(data, 0, self.fd, self.max_message_size, Frame)
            n = len(data)
            if pos == n:
                return events  # the common case: the read held only such frames
            view: bytes | bytearray = data
        else:
            events = []
            if self.state == CLOSED:
                return events
            if buf:
                buf += data
                view = buf
            else:
                view = data
            n = len(view)
            pos = 0
            if _parse_simple is not None and not (
                self._msg_opcode or self.close_sent or self._partial_done
            ):
                simple, pos = _parse_simple(view, 0, self.fd, self.max_message_size, Frame)
                if simple:
                    events.extend(simple)
        self.input_pending = False
        self._inflated = 0
        try:
            while n - pos >= 2:
                if len(events) >= EVENT_BATCH:
                    self.input_pending = True  # a batch: the rest on the driver's next turn
                    break
                b0 = view[pos]
                b1 = view[pos + 1]
                if not b1 & 0x80:
                    raise _Failure(WEBSOCKET_CLOSE_PROTOCOL_ERROR, "client frame is not masked")
                length = b1 & 0x7F
                if length < 126:
                    hlen = 6
                elif length == 126:
                    if n - pos < 4:
                        break
                    length = (view[pos + 2] << 8) | view[pos + 3]
                    hlen = 8
                else:
                    if n - pos < 10:
                        break
                    length = int.from_bytes(view[pos + 2 : pos + 10], "big")
                    hlen = 14
                    if length >> 63:
                        raise _Failure(WEBSOCKET_CLOSE_PROTOCOL_ERROR, "invalid 64-bit length")
                opcode = b0 & 0x0F
                # Header checks, before the payload is buffered (sections 5.1-5.5, and
                # Swoole's package_max_length: see the class docstring).
                if b0 & 0x70 and (b0 & 0x70 & ~self._rsv_allowed or opcode > 2 or opcode == 0):
                    raise _Failure(WEBSOCKET_CLOSE_PROTOCOL_ERROR, "reserved bits set")
                if opcode >= 8:
                    if opcode > 10:
                        raise _Failure(WEBSOCKET_CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
                    if not b0 & 0x80:
                        raise _Failure(WEBSOCKET_CLOSE_PROTOCOL_ERROR, "fragmented control frame")
                    if length > 125:
                        raise _Failure(WEBSOCKET_CLOSE_PROTOCOL_ERROR, "control frame over 125 B")
                    if hlen + length > self.max_message_size:
                        raise _Failure(
                            WEBSOCKET_CLOSE_MESSAGE_TOO_BIG,
                            f"frame over {self.max_message_size} bytes",
                        )
                else:
                    if opcode > 2:
                        raise _Failure(WEBSOCKET_CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
                    if opcode == 0:
                        if not self._msg_opcode:
                            raise _Failure(WEBSOCKET_CLOSE_PROTOCOL_ERROR, "continuation w/o start")
                    elif self._msg_opcode:
                        raise _Failure(WEBSOCKET_CLOSE_PROTOCOL_ERROR, "expected a continuation")
                    if (
                        hlen + length > self.max_message_size
                        or self._msg_len + length > self.max_message_size
                    ):
                        raise _Failure(
                            WEBSOCKET_CLOSE_MESSAGE_TOO_BIG,
                            f"message over {self.max_message_size} bytes",
                        )
                end = pos + hlen + length
                if end > n:
                    # Uncompressed text is checked as far as it has arrived (the decoder
                    # exists only for an uncompressed text message in progress); what
                    # comes after our close frame is discarded unchecked, however cut.
                    if (
                        (opcode == 1 and not b0 & 0x40)
                        or (opcode == 0 and self._decoder is not None)
                    ) and not self.close_sent:
                        self._check_partial_text(view, pos + hlen, n)
                    break
                payload = apply_mask(view[pos + hlen : end], view[pos + hlen - 4 : pos + hlen])
                pos = end
                if self._partial_done:
                    self._partial_done = 0
                    self._partial_decoder = None
                if opcode == WEBSOCKET_OPCODE_TEXT and b0 & 0xC0 == 0x80:
                    # The common case: a whole, uncompressed text message in one frame.
                    RECEIVED[1] += length + MESSAGE
                    if self.close_sent:
                        continue
                    try:
                        text = payload.decode("utf-8")
                    except UnicodeDecodeError:
                        raise _Failure(WEBSOCKET_CLOSE_MESSAGE_ERROR, "invalid UTF-8") from None
                    events.append(Frame(self.fd, text, 1, True, _FLAGS))
                elif opcode == WEBSOCKET_OPCODE_BINARY and b0 & 0xC0 == 0x80:
                    RECEIVED[2] += length + MESSAGE
                    if not self.close_sent:
                        events.append(Frame(self.fd, payload, 2, True, _FLAGS))
                elif opcode < 8:
                    self._data_frame(events, opcode, b0, payload)
                    if self._inflated >= INFLATE_BATCH and pos < n:
                        self.input_pending = True  # enough for one batch: go on later
                        break
                else:
                    self._control_frame(events, opcode, payload)
                    if self.state == CLOSED:
                        break
        except _Failure as failure:
            self._fail(failure.code, failure.reason)
            pos = n
        # Keep only the unparsed tail.
        if self.state == CLOSED or pos == n:
            self._buf = b""
        elif view is buf:
            if pos:
                assert isinstance(buf, bytearray)  # (view is buf only when it is one)
                del buf[:pos]
        else:
            self._buf = bytearray(view[pos:])
        return events

    def _check_partial_text(self, view: bytes | bytearray, start: int, n: int) -> None:
        """Validate the part of an incomplete text frame received so far, so invalid UTF-8
        fails as soon as its bytes arrive, not when the frame ends (section 8.1)."""
        done = self._partial_done
        if n - start <= done:
            return
        decoder = self._partial_decoder
        if decoder is None:
            decoder = self._partial_decoder = _Utf8Decoder()
            if self._decoder is not None:  # a continuation: go on from the message's state
                decoder.setstate(self._decoder.getstate())
        mask = view[start - 4 : start]
        k = done & 3
        chunk = apply_mask(view[start + done : n], mask[k:] + mask[:k])
        self._partial_done = n - start
        _validate_utf8(decoder, chunk, False)

    def _data_frame(self, events: list[Event], opcode: int, b0: int, payload: bytes) -> None:
        """Fragmentation, UTF-8 and inflation for everything but the fast path (section 5.4)."""
        fin = b0 & 0x80
        if opcode:  # first frame of a message
            self._msg_opcode = opcode
            self._msg_compressed = compressed = bool(b0 & 0x40)
            self._msg = bytearray()
            self._msg_len = 0
            text = opcode == WEBSOCKET_OPCODE_TEXT and not compressed
            self._decoder = _Utf8Decoder() if text else None
        else:
            compressed = self._msg_compressed
        self._msg_len += len(payload)
        RECEIVED[self._msg_opcode] += len(payload)
        msg = self._msg
        assert msg is not None
        decoder = self._decoder
        if decoder is not None and not self.close_sent:
            # Validate as the bytes arrive so a bad message fails at its first bad byte
            # (section 8.1). The decoded text is discarded; the whole message is decoded once.
            _validate_utf8(decoder, payload, bool(fin))
        if not fin:
            msg += payload  # (compressed fragments stay compressed: see the module doc)
            return
        if msg:
            msg += payload
            body = bytes(msg)
        else:
            body = payload
        if compressed and not self.close_sent:
            assert self._inflater is not None
            try:
                body = self._inflater.inflate(body, True, self.max_message_size)
            except OverflowError:
                raise _Failure(
                    WEBSOCKET_CLOSE_MESSAGE_TOO_BIG, f"message over {self.max_message_size} bytes"
                ) from None
            except ValueError:
                raise _Failure(WEBSOCKET_CLOSE_MESSAGE_ERROR, "invalid compressed data") from None
            self._inflated += len(body)
        opcode = self._msg_opcode
        RECEIVED[opcode] += MESSAGE
        self._msg_opcode = 0
        self._msg = None
        self._msg_len = 0
        self._msg_compressed = False
        self._decoder = None
        if self.close_sent:
            return  # data after our close frame is discarded unchecked (section 5.5.1)
        flags = FLAGS_COMPRESSED if compressed else _FLAGS
        if opcode == WEBSOCKET_OPCODE_TEXT:
            try:
                data = body.decode("utf-8")  # (uncompressed text was validated already)
            except UnicodeDecodeError:
                raise _Failure(WEBSOCKET_CLOSE_MESSAGE_ERROR, "invalid UTF-8") from None
            events.append(Frame(self.fd, data, opcode, True, flags))
        else:
            events.append(Frame(self.fd, body, WEBSOCKET_OPCODE_BINARY, True, flags))

    def _control_frame(self, events: list[Event], opcode: int, payload: bytes) -> None:
        """Ping, pong and close (sections 5.5.1-5.5.3)."""
        RECEIVED[opcode] += len(payload) + MESSAGE
        if opcode == WEBSOCKET_OPCODE_PING:
            if self.deliver_ping:
                events.append(Frame(self.fd, payload, opcode, True, _FLAGS))
            elif not self.close_sent:
                # An event, so the pong keeps its place among the replies to messages.
                events.append(SendData(encode_frame(WEBSOCKET_OPCODE_PONG, payload)))
                SENT[0x80 | WEBSOCKET_OPCODE_PONG] += len(payload) + MESSAGE
        elif opcode == WEBSOCKET_OPCODE_PONG:
            if self.deliver_pong:
                events.append(Frame(self.fd, payload, opcode, True, _FLAGS))
        else:
            try:
                code, reason = parse_close_payload(payload)
            except ValueError as exc:
                raise _Failure(exc.args[0], exc.args[1]) from None
            self.close_received = True
            self.close_code = code
            self.close_reason = reason
            if not self.close_sent:
                self._out += _close_reply(code)
                SENT[0x88] += MESSAGE + (0 if code == 1005 else 2)  # (the code echoed)
                self.close_sent = True
            if self.deliver_close:
                events.append(CloseFrame(code, reason, self.fd, _FLAGS, True))
            self.state = CLOSED
            self.close_transport = True

    def receive_eof(self) -> None:
        """The peer closed TCP. Without a close frame first, the code is 1006 (section 7.1.5)."""
        self.state = CLOSED
        self.close_transport = True
        self._buf = b""

    # -- output -------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Take the close frame the protocol queued (pongs are ``SendData`` events)."""
        out = self._out
        self._out = b""
        return out

    @property
    def has_output(self) -> bool:
        return bool(self._out)

    @property
    def buffered_bytes(self) -> int:
        """Received bytes held until their frame or message completes (partial frames and
        the fragments of a message in progress)."""
        msg = self._msg
        return len(self._buf) + (0 if msg is None else len(msg))

    def send_close(self, code: int = 1000, reason: str = "") -> bytes:
        """Start the closing handshake; return the close frame to write (section 7.1.2).

        After it, data frames from the peer are discarded until its close frame arrives.
        ``code`` 1005 sends an empty close frame.
        """
        if self.close_sent or self.state == CLOSED:
            return b""
        self.close_sent = True
        self.state = CLOSING
        self.close_code = code
        self.close_reason = reason
        body = b"" if code == 1005 else close_payload(code, reason)
        SENT[0x88] += len(body) + MESSAGE
        return encode_frame(WEBSOCKET_OPCODE_CLOSE, body)

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection from the server side (e.g. 1011 after an internal error, 1013
        when the server sheds load); what was received and not yet parsed is dropped."""
        self._fail(code, reason)
        self._buf = b""
        self.input_pending = False

    def _fail(self, code: int, reason: str) -> None:
        """_Fail the WebSocket Connection_ (section 7.1.7): send a close frame, close TCP."""
        if not self.close_sent:
            body = close_payload(code, reason)
            self._out += encode_frame(WEBSOCKET_OPCODE_CLOSE, body)
            SENT[0x88] += len(body) + MESSAGE
            self.close_sent = True
            self.close_code = code
            self.close_reason = reason
        self.state = CLOSED
        self.close_transport = True
        self._msg = None
        self._decoder = None
