"""Property-based fuzzing of the WebSocket frame parser and state machine
(``pyswoole.protocol.websocket.WebSocket.receive_data``).

Properties, for byte streams from :mod:`tests.protocol.strategies` cut into reads wherever
hypothesis likes (one byte at a time included):

* robustness: ``receive_data`` never raises and returns only ``Frame``/``CloseFrame``/
  ``SendData`` events; a failed connection has exactly one close frame queued with 1002,
  1007 or 1009 and closes TCP; once CLOSED, more data yields nothing; the parser never
  holds more than one frame header plus ``max_message_size`` bytes (its slots ``_buf`` and
  ``_msg``), whatever arrives;
* split invariance: the same stream fed whole or cut anywhere gives the same events, the
  same bytes and the same final state;
* differential: the compiled fast path (``_speedups.parse_simple`` and ``apply_mask``) and
  the pure-Python path agree, and both agree with :func:`reference`, an independent
  whole-stream decoder written from RFC 6455/7692 in this file (so the pure build, which
  has no compiled path to compare with, is still checked against something);
* limits: a message over ``max_message_size`` always ends in 1009, compressed or not, and
  compressed streams (RSV1 with random zlib data or garbage) end only in defined ways.
"""

from __future__ import annotations

import contextlib
import importlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import event as tally
from hypothesis import example, given
from hypothesis import strategies as st

from pyswoole.constants import (
    SWOOLE_WEBSOCKET_FLAG_COMPRESS,
    SWOOLE_WEBSOCKET_FLAG_FIN,
    SWOOLE_WEBSOCKET_FLAG_MASK,
    SWOOLE_WEBSOCKET_FLAG_RSV1,
)
from pyswoole.protocol import frames, websocket
from pyswoole.protocol.deflate import DeflateParams, PerMessageDeflate
from pyswoole.protocol.frames import CloseFrame, Frame
from pyswoole.protocol.websocket import CLOSED, INFLATE_BATCH, OPEN, SendData, WebSocket
from tests.conftest import masked
from tests.protocol.strategies import (
    MASKS,
    budget,
    client_compress,
    client_frame,
    client_streams,
    is_valid_close_code,
    splits,
    utf8_payloads,
    utf8_state,
)

FIN = SWOOLE_WEBSOCKET_FLAG_FIN
#: the flags of what is delivered, as Swoole 6.2 reports them: FIN|MASK (the header bits of
#: a client frame), and FIN|COMPRESS|RSV1|MASK for a compressed message
MSG = SWOOLE_WEBSOCKET_FLAG_FIN | SWOOLE_WEBSOCKET_FLAG_MASK
MSG_COMPRESS = MSG | SWOOLE_WEBSOCKET_FLAG_COMPRESS | SWOOLE_WEBSOCKET_FLAG_RSV1
TAIL = b"\x00\x00\xff\xff"
#: the codes the server fails a connection with (RFC 6455 section 7.4.1)
FAILURE_CODES = {1002, 1007, 1009}

#: the compiled helpers, when this build uses them (PYSWOOLE_NO_EXTENSIONS=1: None)
speedups: Any = importlib.import_module("pyswoole.protocol._speedups") if frames.SPEEDUPS else None


# -- running the parser -------------------------------------------------------------------


@contextlib.contextmanager
def parser(kind: str) -> Iterator[None]:
    """Make ``websocket`` use the ``"pure"`` or the ``"compiled"`` frame path meanwhile."""
    saved = websocket._parse_simple, websocket.apply_mask
    if kind == "pure":
        websocket._parse_simple, websocket.apply_mask = None, frames._apply_mask_py
    else:
        websocket._parse_simple, websocket.apply_mask = speedups.parse_simple, speedups.apply_mask
    try:
        yield
    finally:
        websocket._parse_simple, websocket.apply_mask = saved


@dataclass
class Observed:
    """Everything a driver can see of one connection fed a stream."""

    events: list[tuple[Any, ...]]
    out: bytes  # data_to_send() after each read, concatenated
    state: int
    close_code: int
    close_received: bool
    close_transport: bool


def summary(event: object) -> tuple[Any, ...]:
    if type(event) is CloseFrame:
        return ("CloseFrame", event.fd, event.code, event.reason, event.opcode, event.flags)
    if type(event) is Frame:
        return ("Frame", event.fd, event.opcode, event.data, event.finish, event.flags)
    assert type(event) is SendData, f"unexpected event {event!r}"
    return ("SendData", event.data)


def check_events(ws: WebSocket, events: object) -> None:
    """What every read returns: a list of well-typed events."""
    assert type(events) is list
    for event in events:
        if type(event) is SendData:
            assert event.data[:1] == b"\x8a", "only pongs are SendData events"
        elif type(event) is CloseFrame:
            assert ws.deliver_close and event.fd == ws.fd
        else:
            assert type(event) is Frame, event
            assert event.fd == ws.fd and event.finish is True
            assert event.opcode in (1, 2, 9, 10)
            assert isinstance(event.data, str if event.opcode == 1 else bytes)
            assert event.flags in ((MSG,) if event.opcode >= 8 else (MSG, MSG_COMPRESS))
            if event.opcode in (1, 2):
                assert len(event.data.encode() if event.opcode == 1 else event.data) <= (
                    ws.max_message_size
                )


def check_bounded(ws: WebSocket) -> None:
    """The parser keeps at most one partial frame (header and at most max_message_size, or a
    125-byte control payload) and one partial message of at most max_message_size."""
    limit = max(ws.max_message_size, 125)
    if not ws.input_pending:  # (else it holds the rest of the read, for the next call)
        assert len(ws._buf) <= 14 + limit, len(ws._buf)
    assert ws._msg is None or len(ws._msg) <= ws.max_message_size
    assert ws._msg_len <= ws.max_message_size
    if ws.state == CLOSED:
        assert not ws._buf and ws.close_transport


def feed(chunks: list[bytes], config: dict[str, Any], closing_first: bool = False) -> Observed:
    """A fresh connection fed ``chunks``, checked after every read."""
    config = dict(config)
    deflate = config.pop("deflate", None)
    inflater = None if deflate is None else PerMessageDeflate(deflate)
    ws = WebSocket(**config, inflater=inflater)
    if closing_first:
        assert ws.send_close(1000)
    events: list[tuple[Any, ...]] = []
    out = b""
    for chunk in chunks:
        got = ws.receive_data(chunk)
        while True:
            check_events(ws, got)
            check_bounded(ws)
            events.extend(summary(e) for e in got)
            out += ws.data_to_send()
            if not ws.input_pending:
                break
            got = ws.receive_data(b"")  # the rest of a read that inflated a whole batch
    return Observed(events, out, ws.state, ws.close_code, ws.close_received, ws.close_transport)


def server_close(out: bytes) -> tuple[int, str]:
    """The single unmasked close frame a server queued: its code and reason."""
    assert len(out) >= 4 and out[0] == 0x88 and out[1] == len(out) - 2 <= 125, out
    return int.from_bytes(out[2:4], "big"), out[4:].decode("utf-8")


# -- the reference decoder ----------------------------------------------------------------


@dataclass
class Expected:
    events: list[tuple[Any, ...]]
    ending: str  # "open", "failed" (we fail with ``code``) or "closed" (the peer closed)
    code: int = 0


def reference(stream: bytes, config: dict[str, Any]) -> Expected:
    """What RFC 6455 (and 7692 for RSV1) says a server makes of ``stream``, received whole.

    Independent of the implementation: frame by frame over the whole stream, no fast path,
    no incremental state, its own unmasking, UTF-8 check, close payload rules and zlib
    use. Text is validated as far as it has arrived, so an incomplete frame at the end
    fails at once if its bytes so far cannot start valid UTF-8 (section 8.1, fail fast).
    A compressed message is inflated when its last frame has arrived (until then it counts
    against ``max_message_size`` by its compressed size, and its text is checked once
    inflated), by zlib without an output limit: where compressed garbage would inflate
    past ``max_message_size`` before zlib finds it bad, 1009 and 1007 both fit, so callers
    compare with this only where inflation cannot reach the limit.
    """
    fd = config["fd"]
    max_size = config["max_message_size"]
    deflate: DeflateParams | None = config.get("deflate")
    events: list[tuple[Any, ...]] = []
    msg_opcode = 0
    msg = b""
    compressed = False
    inflater: Any = None
    pos, n = 0, len(stream)
    while n - pos >= 2:
        b0, b1 = stream[pos], stream[pos + 1]
        if not b1 & 0x80:
            return Expected(events, "failed", 1002)  # section 5.1: clients mask
        length = b1 & 0x7F
        hlen = 2
        if length == 126:
            if n - pos < 4:
                break
            length, hlen = int.from_bytes(stream[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            if n - pos < 10:
                break
            length, hlen = int.from_bytes(stream[pos + 2 : pos + 10], "big"), 10
            if length >= 1 << 63:
                return Expected(events, "failed", 1002)  # section 5.2: top bit 0
        fin, rsv, opcode = bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F
        if rsv and not (deflate is not None and rsv == 0x40 and opcode in (1, 2)):
            return Expected(events, "failed", 1002)  # section 5.2; RFC 7692 section 6
        if opcode in (3, 4, 5, 6, 7) or opcode > 10:
            return Expected(events, "failed", 1002)
        if opcode >= 8:
            if not fin or length > 125:
                return Expected(events, "failed", 1002)  # section 5.5
        elif (opcode == 0) != bool(msg_opcode):
            return Expected(events, "failed", 1002)  # section 5.4
        # Swoole's package_max_length: each frame with its header and mask; the payloads of
        # a fragmented message added up
        if hlen + 4 + length > max_size or (opcode < 8 and len(msg) + length > max_size):
            return Expected(events, "failed", 1009)
        start = pos + hlen + 4
        if start + length > n:
            text = opcode == 1 or (opcode == 0 and msg_opcode == 1)
            if text and not rsv and not (opcode == 0 and compressed) and start < n:
                mask = stream[start - 4 : start]
                arrived = bytes(b ^ mask[i % 4] for i, b in enumerate(stream[start:n]))
                if utf8_state(msg + arrived) == "invalid":
                    return Expected(events, "failed", 1007)
            break
        mask = stream[start - 4 : start]
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(stream[start : start + length]))
        pos = start + length
        if opcode == 9:
            if config["deliver_ping"]:
                events.append(("Frame", fd, 9, payload, True, MSG))
            else:
                events.append(("SendData", bytes((0x8A, len(payload))) + payload))
        elif opcode == 10:
            if config["deliver_pong"]:
                events.append(("Frame", fd, 10, payload, True, MSG))
        elif opcode == 8:
            if not payload:
                code, reason = 1005, ""
            elif len(payload) == 1 or not is_valid_close_code(int.from_bytes(payload[:2], "big")):
                return Expected(events, "failed", 1002)  # section 5.5.1, 7.4
            elif utf8_state(payload[2:]) != "ok":
                return Expected(events, "failed", 1007)
            else:
                code, reason = int.from_bytes(payload[:2], "big"), payload[2:].decode()
            if config["deliver_close"]:
                events.append(("CloseFrame", fd, code, reason, 8, MSG))
            return Expected(events, "closed", code)
        else:
            if opcode:
                msg_opcode, msg, compressed = opcode, b"", bool(rsv)
            msg += payload  # a compressed message: its compressed bytes, inflated at the end
            if msg_opcode == 1 and not compressed and utf8_state(msg) == "invalid":
                return Expected(events, "failed", 1007)  # fail fast (section 8.1)
            if not fin:
                continue
            body = msg
            if compressed and msg:  # RFC 7692 section 7.2.2 (no bytes at all: empty)
                assert deflate is not None
                if inflater is None:
                    inflater = zlib.decompressobj(-max(deflate.client_max_window_bits, 9))
                try:
                    body = inflater.decompress(msg)
                    if not inflater.eof:
                        body += inflater.decompress(TAIL)
                except zlib.error:
                    return Expected(events, "failed", 1007)
                if inflater.eof:  # a BFINAL block ends the stream: nothing may follow it
                    if inflater.unused_data not in (b"", TAIL):
                        return Expected(events, "failed", 1007)
                    inflater = None
                elif deflate.client_no_context_takeover:
                    inflater = None
                if len(body) > max_size:
                    return Expected(events, "failed", 1009)
            if msg_opcode == 1 and utf8_state(body) != "ok":
                return Expected(events, "failed", 1007)
            data_out: str | bytes = body.decode() if msg_opcode == 1 else body
            flags = MSG_COMPRESS if compressed else MSG
            events.append(("Frame", fd, msg_opcode, data_out, True, flags))
            msg_opcode, msg = 0, b""
    return Expected(events, "open")


def assert_matches(got: Observed, expected: Expected) -> None:
    assert got.events == expected.events
    if expected.ending == "open":
        assert (got.state, got.out, got.close_transport) == (OPEN, b"", False)
    elif expected.ending == "failed":
        assert (got.state, got.close_received, got.close_transport) == (CLOSED, False, True)
        assert got.close_code == expected.code
        assert server_close(got.out)[0] == expected.code
    else:
        assert (got.state, got.close_received, got.close_transport) == (CLOSED, True, True)
        assert got.close_code == expected.code
        reply = b"" if expected.code == 1005 else expected.code.to_bytes(2, "big")
        assert got.out == bytes((0x88, len(reply))) + reply


# -- strategies -------------------------------------------------------------------------------


@st.composite
def configs(draw: st.DrawFn, deflate: bool | None = None, small: bool = True) -> dict[str, Any]:
    """WebSocket constructor arguments; ``deflate`` True/False forces an inflater or none."""
    sizes = st.sampled_from([0, 1, 2, 10, 125, 126, 127, 200, 1000, 65535, 65536, 2 * 1024**2])
    config: dict[str, Any] = {
        "fd": draw(st.integers(0, 1 << 20)),
        "max_message_size": draw(sizes | st.integers(0, 300)) if small else 2 * 1024**2,
        "deliver_close": draw(st.booleans()),
        "deliver_ping": draw(st.booleans()),
        "deliver_pong": draw(st.booleans()),
    }
    if deflate if deflate is not None else draw(st.booleans()):
        config["deflate"] = DeflateParams(
            draw(st.booleans()), draw(st.booleans()), 15, draw(st.integers(8, 15))
        )
    return config


@st.composite
def stream_for(draw: st.DrawFn, config: dict[str, Any]) -> bytes:
    """A client stream that fits ``config``: compressed messages only with an inflater,
    compressed with a window the server reads and, if agreed, context takeover."""
    params: DeflateParams | None = config.get("deflate")
    if params is None:
        return draw(client_streams())
    wbits = max(9, params.client_max_window_bits)
    takeover = not params.client_no_context_takeover and draw(st.booleans())
    return draw(client_streams(compress_wbits=wbits, takeover=takeover))


# -- robustness -------------------------------------------------------------------------------


def check_ending(got: Observed, closing_first: bool) -> None:
    """How a fed connection may end: open (nothing queued), failed with 1002/1007/1009
    (exactly that close frame queued), or closed by the peer (its code echoed)."""
    if got.state == OPEN:
        assert not closing_first
        assert got.out == b"" and not got.close_transport
        return
    if closing_first and got.state != CLOSED:
        assert got.out == b"" and not got.close_transport
        return
    assert got.state == CLOSED and got.close_transport
    if closing_first:
        assert got.out == b""  # our close frame went out with send_close()
        assert got.close_code == 1000 or got.close_received
    elif got.close_received:
        reply = b"" if got.close_code == 1005 else got.close_code.to_bytes(2, "big")
        assert got.out == bytes((0x88, len(reply))) + reply
    else:
        assert got.close_code in FAILURE_CODES
        assert server_close(got.out)[0] == got.close_code


@given(st.binary(max_size=300), configs(), st.booleans(), st.data())
def test_random_bytes_end_in_a_defined_state(
    stream: bytes, config: dict[str, Any], closing_first: bool, data: st.DataObject
) -> None:
    chunks = data.draw(splits(stream))
    got = feed(chunks, config, closing_first)
    check_ending(got, closing_first)


@budget(1.5)
@given(st.data())
def test_client_streams_end_in_a_defined_state(data: st.DataObject) -> None:
    """Structured streams, any config (compression too, also after our own close frame):
    only defined events and endings; data frames after our close frame are discarded; a
    CLOSED connection ignores whatever comes next."""
    config = data.draw(configs())
    closing_first = data.draw(st.integers(0, 4)) == 0
    stream = data.draw(stream_for(config))
    got = feed(data.draw(splits(stream)), config, closing_first)
    check_ending(got, closing_first)
    if closing_first:
        assert not [e for e in got.events if e[0] == "Frame" and e[2] in (1, 2)]
        assert not [e for e in got.events if e[0] == "SendData"]
    # after CLOSED nothing more happens, whatever arrives
    ws = WebSocket(**{k: v for k, v in config.items() if k != "deflate"})
    ws.receive_data(masked(8, b"\x03\xe8"))
    assert ws.state == CLOSED and ws.data_to_send()
    for late in (stream, masked(1, b"late"), masked(9, b"ping"), b"\x00"):
        assert ws.receive_data(late) == []
        assert ws.data_to_send() == b"" and ws.state == CLOSED and not ws._buf


# -- split invariance and the differential ------------------------------------------------------


@budget(1.5)
@given(st.data())
def test_split_invariance(data: st.DataObject) -> None:
    """Fed whole or cut anywhere, a stream gives the same events, bytes and final state."""
    config = data.draw(configs())
    stream = data.draw(stream_for(config))
    whole = feed([stream], config)
    assert feed(data.draw(splits(stream)), config) == whole


@budget(1.5)
@given(st.data())
def test_split_invariance_while_closing(data: st.DataObject) -> None:
    """After our own close frame too: what arrives is discarded unchecked (section 5.5.1),
    whatever the cuts (a text frame's UTF-8 was checked or not depending on them)."""
    config = data.draw(configs(deflate=False))
    stream = data.draw(client_streams())
    whole = feed([stream], config, closing_first=True)
    assert feed(data.draw(splits(stream)), config, closing_first=True) == whole


def test_closing_invalid_text_outcome_does_not_depend_on_the_cut() -> None:
    bad = masked(1, b"\xffab")  # a whole, single-frame text message, invalid UTF-8
    close = masked(8, (1000).to_bytes(2, "big"))
    outcomes = []
    for reads in ([bad + close], [bad[:-1], bad[-1:] + close]):
        ws = WebSocket(deliver_close=True)
        ws.send_close()
        events = []
        for read in reads:
            events += ws.receive_data(read)
        outcomes.append((events, ws.state, ws.close_received))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][2]  # the bad frame was discarded; the close came through


@pytest.mark.parametrize(
    "between", [b"", masked(1, b"")], ids=["right-after", "after-a-plain-message-too"]
)
def test_partial_bad_text_after_a_compressed_message_fails_at_once(between: bytes) -> None:
    # A stale flag of the compressed message before turned the early UTF-8 check off.
    ws = WebSocket(inflater=PerMessageDeflate(DeflateParams(True, True, 15, 15)))
    data = masked(1, b"\x00", rsv=0x40) + between + masked(1, b"\xffabc")[:-2]
    events = ws.receive_data(data)
    assert all(e.data == "" for e in events) and len(events) == (2 if between else 1)
    assert ws.state != OPEN and ws.close_code == 1007  # as without the compressed one


@budget(2)
@given(st.data())
def test_parsers_match_the_reference(data: st.DataObject) -> None:
    """The pure-Python path, and the compiled one when this build has it, give exactly what
    the reference decoder gives, for the same stream cut the same way."""
    config = data.draw(configs(small=data.draw(st.booleans())))
    if "deflate" in config:
        config["max_message_size"] = 2 * 1024**2  # see reference(): inflation has no limit there
    stream = data.draw(stream_for(config))
    chunks = data.draw(splits(stream))
    expected = reference(stream, config)
    tally(f"ends {expected.ending} {expected.code or ''}".strip())
    tally(f"{min(len(expected.events), 3)}+ events" if expected.events else "no events")
    with parser("pure"):
        pure = feed(chunks, config)
    assert_matches(pure, expected)
    if speedups is not None:
        with parser("compiled"):
            compiled = feed(chunks, config)
        assert compiled == pure


@budget(1)
@given(st.data())
def test_compiled_matches_pure_with_limits_and_compression(data: st.DataObject) -> None:
    """Where the reference does not reach (inflation against small limits): the compiled
    and pure paths agree; in the pure build, whole and byte-at-a-time reads agree and the
    outcome is defined (the compiled path is not there to compare with)."""
    config = data.draw(configs(deflate=True))
    stream = data.draw(stream_for(config))
    chunks = data.draw(splits(stream))
    with parser("pure"):
        pure = feed(chunks, config)
    check_ending(pure, False)
    if speedups is not None:
        with parser("compiled"):
            assert feed(chunks, config) == pure
    else:
        assert feed([stream[i : i + 1] for i in range(len(stream))], config) == pure


# -- limits -------------------------------------------------------------------------------------


@st.composite
def oversize_messages(draw: st.DrawFn) -> tuple[bytes, int, bool, int, int, int]:
    """One valid message (maybe fragmented, maybe compressed, maybe a small deflate bomb),
    its ``max_message_size``, whether it is compressed, its size, its size on the wire and
    the length of its longest frame (header included)."""
    compressed = draw(st.booleans())
    opcode = draw(st.sampled_from([1, 2]))
    if draw(st.booleans()):
        content = bytes(draw(st.integers(0, 200_000)))  # zeros: compresses ~1000:1
    elif opcode == 1:
        content = draw(st.text(min_size=1, max_size=200)).encode()
    else:
        content = draw(st.binary(min_size=1, max_size=300))
    limit = draw(st.integers(0, 2 * len(content) + 10))
    if compressed:
        wire = client_compress(zlib.compressobj(6, zlib.DEFLATED, -15), content)
    else:
        wire = content
    points = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=4)))
    pieces = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    frames_ = [
        client_frame(
            opcode if i == 0 else 0,
            piece,
            fin=i == len(pieces) - 1,
            rsv=0x40 if compressed and i == 0 else 0,
            mask=draw(MASKS),
        )
        for i, piece in enumerate(pieces)
    ]
    longest = max(len(frame) for frame in frames_)
    return b"".join(frames_), limit, compressed, len(content), len(wire), longest


@budget(0.5)
@given(oversize_messages(), st.data())
def test_messages_over_the_limit_end_in_1009(
    message: tuple[bytes, int, bool, int, int, int], data: st.DataObject
) -> None:
    """A message over ``max_message_size`` fails with 1009 (never delivered, whatever its
    framing, compression or ratio); one within it is delivered. ``feed`` checks after every
    read that no buffer grew past the limit.

    A compressed message is also held to the limit on the wire (its frames are buffered
    before they are inflated): it is certainly delivered only when its size plus its
    compressed size fit. And every frame must fit with its header (Swoole's
    package_max_length), so a frame over the limit fails too."""
    stream, limit, compressed, size, wire_size, longest = message
    config: dict[str, Any] = {"fd": 1, "max_message_size": limit}
    if compressed:
        config["deflate"] = DeflateParams(True, True, 15, 15)
    got = feed(data.draw(splits(stream, max_cuts=4)), config)
    delivered = got.state == OPEN and len(got.events) == 1
    failed = (got.state, got.close_code, got.events) == (CLOSED, 1009, [])
    assert delivered or failed
    if failed:
        assert server_close(got.out)[0] == 1009
    if size > limit or longest > limit:
        assert failed
    elif not compressed or size + wire_size <= limit:
        assert delivered


@st.composite
def deflate_sessions(draw: st.DrawFn) -> tuple[bytes, list[tuple[Any, ...]], DeflateParams]:
    """Valid messages, compressed or not, fragmented, pings between: the exact events."""
    params = DeflateParams(draw(st.booleans()), draw(st.booleans()), 15, draw(st.integers(9, 15)))
    takeover = not params.client_no_context_takeover and draw(st.booleans())
    compressor = zlib.compressobj(6, zlib.DEFLATED, -params.client_max_window_bits)
    stream = b""
    expected: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 6))):
        opcode = draw(st.sampled_from([1, 2]))
        text = draw(st.text(max_size=100))
        content = text.encode() if opcode == 1 else draw(st.binary(max_size=300))
        compressed = draw(st.booleans())
        wire = content
        if compressed:
            if not takeover:
                compressor = zlib.compressobj(6, zlib.DEFLATED, -params.client_max_window_bits)
            wire = client_compress(compressor, content)
        points = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=3)))
        pieces = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
        for i, piece in enumerate(pieces):
            rsv = 0x40 if compressed and i == 0 else 0
            fin = i == len(pieces) - 1
            stream += client_frame(opcode if i == 0 else 0, piece, fin=fin, rsv=rsv)
            if not fin and draw(st.booleans()):
                stream += client_frame(9, b"p")
                expected.append(("SendData", b"\x8a\x01p"))
        flags = MSG_COMPRESS if compressed else MSG
        expected.append(("Frame", 5, opcode, text if opcode == 1 else content, True, flags))
    return stream, expected, params


@budget(0.5)
@given(deflate_sessions(), st.data())
def test_compressed_messages_are_delivered_exactly(
    session: tuple[bytes, list[tuple[Any, ...]], DeflateParams], data: st.DataObject
) -> None:
    """permessage-deflate: what a client compressed (any window, with or without context
    takeover, fragmented anywhere) arrives as it was sent, flagged COMPRESS."""
    stream, expected, params = session
    config = {"fd": 5, "max_message_size": 1 << 20, "deflate": params}
    got = feed(data.draw(splits(stream)), config)
    assert got.events == expected
    assert got.state == OPEN and got.out == b""


@budget(0.2)
@given(
    st.lists(st.integers(0, 1000) | st.integers(100_000, 900_000), min_size=1, max_size=8),
    st.integers(0, 3),
    st.data(),
)
def test_inflation_is_batched(sizes: list[int], extra: int, data: st.DataObject) -> None:
    """A read full of small compressed messages that inflate big: one call inflates about
    ``INFLATE_BATCH`` at most (it stops at the first message boundary past it, sets
    ``input_pending`` and keeps the rest), and calling on with no new data delivers every
    message, in order."""
    params = DeflateParams(True, True, 15, 15)
    payloads = [client_compress(zlib.compressobj(1, zlib.DEFLATED, -15), bytes(n)) for n in sizes]
    stream = b"".join(client_frame(2, payload, rsv=0x40) for payload in payloads)
    # each message fits, both ways (a frame with its header: up to 14 bytes)
    limit = max(*sizes, *(len(p) + 14 for p in payloads)) + extra
    ws = WebSocket(max_message_size=limit, inflater=PerMessageDeflate(params))
    delivered: list[int] = []
    for chunk in data.draw(splits(stream, max_cuts=3)):
        got = ws.receive_data(chunk)
        while True:
            inflated = [len(e.data) for e in got]
            assert sum(inflated[:-1]) < INFLATE_BATCH  # it stops right after the batch
            delivered += inflated
            check_bounded(ws)
            if not ws.input_pending:
                break
            assert sum(inflated) >= INFLATE_BATCH
            tally("a read inflated in batches")
            got = ws.receive_data(b"")
    assert delivered == sizes and ws.state == OPEN and not ws._buf


@given(st.binary(max_size=60), st.integers(0, 50), st.booleans(), MASKS, st.integers(9, 15))
@example(b"\xff\xff", 100, True, b"\0\0\0\0", 15)  # not deflate at all
@example(b"\x03\x00", 100, False, b"\0\0\0\0", 15)  # a BFINAL empty block, then data
def test_compressed_garbage_ends_in_1007_or_1009(
    garbage: bytes, limit: int, binary: bool, mask: bytes, wbits: int
) -> None:
    """Random bytes as a compressed message: delivered (they were deflate data after all)
    within the limit, or failed with 1007 (invalid data) or 1009 (inflated over the limit),
    nothing else. (Which of 1007 and 1009 wins when both apply is for the reference test.)"""
    stream = client_frame(2 if binary else 1, garbage, rsv=0x40, mask=mask)
    config = {"fd": 0, "max_message_size": limit, "deflate": DeflateParams(True, True, 15, wbits)}
    got = feed([stream], config)
    if got.state == OPEN:
        [event] = got.events
        assert event[0] == "Frame" and event[5] == MSG_COMPRESS
        assert len(event[3].encode() if isinstance(event[3], str) else event[3]) <= limit
    else:
        assert got.close_code in (1007, 1009) and got.events == []
        assert server_close(got.out)[0] == got.close_code


# -- targeted examples ------------------------------------------------------------------------


@given(utf8_payloads(max_size=30), st.integers(0, 6))
def test_text_split_inside_a_character_matches_the_reference(payload: bytes, at: int) -> None:
    """Fragment boundaries inside a multi-byte character are fine (section 5.6); an invalid
    sequence fails with 1007 wherever the fragments or reads cut it."""
    at = min(at, len(payload))
    stream = masked(1, payload[:at], fin=False) + masked(0, payload[at:])
    config = {"fd": 0, "max_message_size": 1000, "deliver_close": False}
    config |= {"deliver_ping": False, "deliver_pong": False}
    expected = reference(stream, config)
    for cut in range(len(stream) + 1):
        assert_matches(feed([stream[:cut], stream[cut:]], config), expected)
