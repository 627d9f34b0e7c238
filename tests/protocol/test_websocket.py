"""Byte-in / byte-out tests of the WebSocket state machine (pyswoole.protocol.websocket)."""

from __future__ import annotations

import pytest

from pyswoole.constants import (
    SWOOLE_WEBSOCKET_FLAG_FIN,
    SWOOLE_WEBSOCKET_FLAG_MASK,
    WEBSOCKET_OPCODE_BINARY,
    WEBSOCKET_OPCODE_CLOSE,
    WEBSOCKET_OPCODE_CONTINUATION,
    WEBSOCKET_OPCODE_PING,
    WEBSOCKET_OPCODE_PONG,
    WEBSOCKET_OPCODE_TEXT,
)
from pyswoole.protocol import websocket
from pyswoole.protocol.frames import CloseFrame, Frame, encode_frame, unpack
from pyswoole.protocol.websocket import (
    CLOSED,
    CLOSING,
    EVENT_BATCH,
    FLAGS_COMPRESSED,
    FLAGS_MESSAGE,
    OPEN,
    SendData,
    WebSocket,
)

FIN = SWOOLE_WEBSOCKET_FLAG_FIN
MASK = b"\x37\xfa\x21\x3d"
TEXT = WEBSOCKET_OPCODE_TEXT
BINARY = WEBSOCKET_OPCODE_BINARY
CONT = WEBSOCKET_OPCODE_CONTINUATION
CLOSE = WEBSOCKET_OPCODE_CLOSE
PING = WEBSOCKET_OPCODE_PING
PONG = WEBSOCKET_OPCODE_PONG


def client(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0) -> bytes:
    """A frame as a client sends it: masked (section 5.3)."""
    return encode_frame(opcode, payload, fin, rsv, MASK)


def server_frames(data: bytes) -> list[Frame]:
    """Split what the server wrote into frames; server frames are never masked (5.1)."""
    frames: list[Frame] = []
    pos = 0
    while pos < len(data):
        assert not data[pos + 1] & 0x80, "server frame is masked"
        length = data[pos + 1] & 0x7F
        hlen = 2
        if length == 126:
            length, hlen = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            length, hlen = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
        end = pos + hlen + length
        assert end <= len(data), "truncated server frame"
        frames.append(unpack(data[pos:end]))
        pos = end
    return frames


def assert_failed(ws: WebSocket, code: int) -> None:
    """The connection was failed (7.1.7): one close frame with ``code`` queued, TCP to close."""
    [frame] = server_frames(ws.data_to_send())
    assert isinstance(frame, CloseFrame)
    assert frame.code == code
    assert ws.close_code == code
    assert ws.state == CLOSED
    assert ws.close_transport is True
    assert ws.close_sent is True


def assert_open(ws: WebSocket) -> None:
    assert ws.state == OPEN
    assert ws.close_transport is False
    assert ws.close_sent is False


def text(data: str, fd: int = 0) -> Frame:
    """A text message as delivered: whole, flags FIN|MASK as Swoole reports them."""
    return Frame(fd, data, TEXT, True, FLAGS_MESSAGE)


def binary(data: bytes, fd: int = 0) -> Frame:
    return Frame(fd, data, BINARY, True, FLAGS_MESSAGE)


# -- messages ---------------------------------------------------------------------------------


def test_text_arrives_as_str_and_binary_as_bytes() -> None:
    ws = WebSocket(fd=42)
    events = ws.receive_data(client(TEXT, "héllo ✓".encode()) + client(BINARY, b"\x00\xff"))
    assert events == [text("héllo ✓", 42), binary(b"\x00\xff", 42)]
    first, second = events
    assert type(first.data) is str
    assert type(second.data) is bytes
    for event in events:
        assert event.finish is True
        assert event.flags == FIN | SWOOLE_WEBSOCKET_FLAG_MASK == 33  # as Swoole 6.2 reports
        assert event.fd == 42
    assert ws.data_to_send() == b""
    assert_open(ws)


def test_empty_messages() -> None:
    ws = WebSocket()
    assert ws.receive_data(client(TEXT) + client(BINARY)) == [text(""), binary(b"")]


@pytest.mark.parametrize("n", [125, 126, 65535, 65536, 70000])
def test_length_forms(n: int) -> None:
    payload = bytes(i & 0xFF for i in range(n))
    ws = WebSocket()
    assert ws.receive_data(client(BINARY, payload)) == [binary(payload)]


def test_fragmented_messages_are_reassembled() -> None:
    ws = WebSocket()
    stream = (
        client(TEXT, b"Hel", fin=False)
        + client(CONT, b"", fin=False)
        + client(CONT, b"lo")
        + client(BINARY, b"\x01", fin=False)
        + client(CONT, b"\x02", fin=False)
        + client(CONT, b"\x03")
        + client(TEXT, b"", fin=False)
        + client(CONT, b"")
    )
    assert ws.receive_data(stream) == [text("Hello"), binary(b"\x01\x02\x03"), text("")]


def test_a_reassembled_message_reports_its_first_frames_flags_plus_fin() -> None:
    """Swoole's dispatch_frame keeps the first frame's flags (MASK; no FIN yet) and adds FIN
    when the last fragment arrives: FIN|MASK (33), like a single-frame message."""
    ws = WebSocket()
    [message] = ws.receive_data(client(TEXT, b"a", fin=False) + client(CONT, b"b"))
    assert (message.flags, message.finish) == (33, True)


def test_a_delivered_close_frame_reports_its_header_bits() -> None:
    ws = WebSocket(fd=3, deliver_close=True)
    [close] = ws.receive_data(client(CLOSE, (1000).to_bytes(2, "big") + b"ok"))
    assert isinstance(close, CloseFrame)
    assert (close.fd, close.code, close.reason, close.flags, close.finish) == (
        3,
        1000,
        "ok",
        33,
        True,
    )


def test_many_frames_in_one_feed() -> None:
    ws = WebSocket()
    stream = b"".join(client(TEXT, str(i).encode()) for i in range(1000))
    stream += b"".join(client(BINARY, bytes([i])) for i in range(256))
    events = ws.receive_data(stream)
    # (with the compiled parser, simple frames come all at once; the state machine's own
    # loop hands out EVENT_BATCH at a time and keeps the rest for receive_data(b""))
    while ws.input_pending:
        more = ws.receive_data(b"")
        assert 0 < len(more) <= EVENT_BATCH
        events += more
    assert events == [text(str(i)) for i in range(1000)] + [binary(bytes([i])) for i in range(256)]
    assert ws.data_to_send() == b"" and ws.buffered_bytes == 0


def test_the_state_machine_hands_out_events_in_batches() -> None:
    ws = WebSocket()
    pings = b"".join(client(PING, i.to_bytes(2, "big")) for i in range(1200))
    sizes = [len(ws.receive_data(pings))]
    while ws.input_pending:
        sizes.append(len(ws.receive_data(b"")))
    assert sizes == [EVENT_BATCH, EVENT_BATCH, 1200 - 2 * EVENT_BATCH]


def test_a_partial_frame_is_kept_until_complete() -> None:
    ws = WebSocket()
    frame = client(TEXT, b"abc")
    assert ws.receive_data(client(TEXT, b"x") + frame[:3]) == [text("x")]
    assert ws.receive_data(frame[3:-1]) == []
    assert ws.receive_data(frame[-1:] + client(TEXT, b"y")) == [text("abc"), text("y")]


# -- every split gives the same events --------------------------------------------------------

SCENARIOS = {
    "text": client(TEXT, b"Hello"),
    "binary-16bit": client(BINARY, bytes(range(200))),
    "fragments-with-pings": (
        client(TEXT, "h€".encode()[:2], fin=False)
        + client(PING, b"1")
        + client(CONT, "h€".encode()[2:] + "😀".encode()[:1], fin=False)
        + client(PONG, b"unsolicited")
        + client(PING, b"2")
        + client(CONT, "😀".encode()[1:])
        + client(BINARY, b"b" * 130, fin=False)
        + client(CONT, b"c")
    ),
    "ping-then-close": client(PING, b"p") + client(CLOSE, b"\x03\xe8bye") + client(TEXT, b"x"),
    "message-then-error": client(TEXT, b"ok") + encode_frame(BINARY, b"unmasked"),
    "bad-utf8-fragment": client(TEXT, b"ok", fin=False) + client(CONT, b"\xed\xa0", fin=False),
}


def split_events(events: list[Frame | SendData]) -> tuple[list[Frame], bytes]:
    """Messages, and the bytes of the in-order replies (pongs) among them."""
    frames = [e for e in events if isinstance(e, Frame)]
    replies = b"".join(e.data for e in events if isinstance(e, SendData))
    return frames, replies


def run(chunks: list[bytes]) -> tuple[list[Frame], bytes, int, bool]:
    """Feed ``chunks``; return messages, everything written (pongs, then close), state."""
    ws = WebSocket(fd=3)
    events: list[Frame | SendData] = []
    for chunk in chunks:
        events.extend(ws.receive_data(chunk))
    frames, replies = split_events(events)
    return frames, replies + ws.data_to_send(), ws.state, ws.close_transport


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_split_gives_the_same_events(name: str) -> None:
    stream = SCENARIOS[name]
    whole = run([stream])
    assert whole[0] or whole[1]  # every scenario produces something
    for cut in range(len(stream) + 1):
        assert run([stream[:cut], stream[cut:]]) == whole, cut
    assert run([stream[i : i + 1] for i in range(len(stream))]) == whole


def test_scenario_results() -> None:
    """What the split scenarios must produce, so that "the same" is also "right"."""
    events, out, state, _ = run([SCENARIOS["fragments-with-pings"]])
    assert events == [text("h€😀", 3), binary(b"b" * 130 + b"c", 3)]
    assert out == encode_frame(PONG, b"1") + encode_frame(PONG, b"2")
    assert state == OPEN
    events, out, state, close_transport = run([SCENARIOS["ping-then-close"]])
    assert events == []
    assert out == b"\x8a\x01p\x88\x02\x03\xe8"
    assert (state, close_transport) == (CLOSED, True)
    events, out, state, close_transport = run([SCENARIOS["message-then-error"]])
    assert events == [text("ok", 3)]
    [close] = server_frames(out)
    assert isinstance(close, CloseFrame) and close.code == 1002
    events, out, state, close_transport = run([SCENARIOS["bad-utf8-fragment"]])
    assert events == []
    [close] = server_frames(out)
    assert isinstance(close, CloseFrame) and close.code == 1007


def test_64bit_frame_fed_in_pieces() -> None:
    payload = bytes(i & 0xFF for i in range(70000))
    stream = client(BINARY, payload) + client(TEXT, b"after")
    expected = [binary(payload, 3), text("after", 3)]
    for cut in [*range(16), 35000, len(stream) - 12, len(stream) - 11, len(stream) - 1]:
        assert run([stream[:cut], stream[cut:]])[0] == expected, cut
    assert run([stream[i : i + 1] for i in range(len(stream))])[0] == expected


# -- protocol errors: 1002 --------------------------------------------------------------------


def test_unmasked_client_frame_fails_with_1002() -> None:
    ws = WebSocket()
    assert ws.receive_data(encode_frame(TEXT, b"Hello")) == []
    assert_failed(ws, 1002)


def test_unmasked_is_detected_from_the_header_alone() -> None:
    for header in (b"\x82\x05", b"\x81\x7e\x01\x00", b"\x82\x7f" + b"\x00" * 5 + b"\x01\x00\x00"):
        ws = WebSocket()
        assert ws.receive_data(header) == []
        assert_failed(ws, 1002)


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10, 0x70])
@pytest.mark.parametrize("opcode", [TEXT, BINARY, PING, PONG, CLOSE])
def test_rsv_bits_without_extension_fail_with_1002(rsv: int, opcode: int) -> None:
    ws = WebSocket()
    assert ws.receive_data(client(opcode, b"", rsv=rsv)) == []
    assert_failed(ws, 1002)


def test_rsv_bits_on_a_continuation_fail_with_1002() -> None:
    ws = WebSocket()
    ws.receive_data(client(TEXT, b"a", fin=False) + client(CONT, b"b", rsv=0x40))
    assert_failed(ws, 1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
def test_unknown_opcodes_fail_with_1002(opcode: int) -> None:
    ws = WebSocket()
    assert ws.receive_data(client(opcode, b"x")) == []
    assert_failed(ws, 1002)
    ws = WebSocket()
    assert ws.receive_data(client(opcode, b"x")[:2]) == []  # the header is enough
    assert_failed(ws, 1002)


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_control_frame_over_125_bytes_fails_with_1002(opcode: int) -> None:
    ws = WebSocket()
    assert ws.receive_data(client(opcode, b"\x03\xe8" + b"x" * 124)[:4]) == []
    assert_failed(ws, 1002)


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_control_frame_of_125_bytes_is_fine(opcode: int) -> None:
    ws = WebSocket()
    ws.receive_data(client(opcode, b"\x03\xe8" + b"x" * 123))
    assert ws.close_code != 1002
    assert ws.state == (CLOSED if opcode == CLOSE else OPEN)


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_fragmented_control_frame_fails_with_1002(opcode: int) -> None:
    ws = WebSocket()
    assert ws.receive_data(client(opcode, b"\x03\xe8", fin=False)) == []
    assert_failed(ws, 1002)


@pytest.mark.parametrize("fin", [True, False])
def test_continuation_without_start_fails_with_1002(fin: bool) -> None:
    ws = WebSocket()
    assert ws.receive_data(client(CONT, b"x", fin=fin)) == []
    assert_failed(ws, 1002)


def test_continuation_after_a_complete_message_fails_with_1002() -> None:
    ws = WebSocket()
    events = ws.receive_data(client(TEXT, b"a", fin=False) + client(CONT, b"b") + client(CONT))
    assert events == [text("ab")]
    assert_failed(ws, 1002)


@pytest.mark.parametrize("start", [TEXT, BINARY])
@pytest.mark.parametrize("intruder", [TEXT, BINARY])
@pytest.mark.parametrize("fin", [True, False])
def test_new_message_inside_a_fragmented_one_fails_with_1002(
    start: int, intruder: int, fin: bool
) -> None:
    ws = WebSocket()
    assert ws.receive_data(client(start, b"a", fin=False) + client(intruder, b"b", fin=fin)) == []
    assert_failed(ws, 1002)


def test_64bit_length_with_msb_set_fails_with_1002() -> None:
    ws = WebSocket()
    header = b"\x82\xff" + b"\x80" + b"\x00" * 7  # the header alone, no key, no payload
    assert ws.receive_data(header) == []
    assert_failed(ws, 1002)


def test_events_before_a_protocol_error_are_returned() -> None:
    ws = WebSocket()
    stream = (
        client(TEXT, b"one")
        + client(PING, b"p")
        + client(BINARY, b"two")
        + client(7, b"bad")
        + client(TEXT, b"never")
    )
    events = ws.receive_data(stream)
    # The pong is an event in place: after the reply to "one", before the one to "two".
    assert events[0] == text("one") and events[2] == binary(b"two") and len(events) == 3
    assert isinstance(events[1], SendData) and events[1].data == encode_frame(PONG, b"p")
    frames = server_frames(ws.data_to_send())
    assert [f.opcode for f in frames] == [CLOSE]
    close = frames[0]
    assert isinstance(close, CloseFrame) and close.code == 1002
    assert ws.state == CLOSED and ws.close_transport


def test_pong_after_a_completed_message_keeps_arrival_order() -> None:
    ws = WebSocket()
    events = ws.receive_data(client(PING, b"a") + client(TEXT, b"msg") + client(PING, b"b"))
    assert events == [
        SendData(encode_frame(PONG, b"a")),
        text("msg"),
        SendData(encode_frame(PONG, b"b")),
    ]
    assert ws.data_to_send() == b""


def test_invalid_utf8_fails_inside_a_frame_that_has_only_partly_arrived() -> None:
    ws = WebSocket()
    frame = client(TEXT, "κόσμε".encode() + b"\xf4\x90\x80\x80" + b"x" * 100)
    assert ws.receive_data(frame[:20]) == []  # header + the bad bytes, frame not complete
    assert_failed(ws, 1007)


def test_valid_text_split_inside_a_frame_and_a_character() -> None:
    payload = ("é€𝄞" * 50).encode()
    frame = client(TEXT, payload)
    for cut in range(1, len(frame)):
        ws = WebSocket()
        assert ws.receive_data(frame[:cut]) + ws.receive_data(frame[cut:]) == [
            text(payload.decode())
        ]
        assert ws.state != CLOSED


def test_nothing_is_parsed_after_a_failure() -> None:
    ws = WebSocket()
    ws.receive_data(encode_frame(TEXT, b"x"))
    assert_failed(ws, 1002)
    assert ws.receive_data(client(TEXT, b"late") + client(PING, b"p")) == []
    assert ws.data_to_send() == b""


# -- UTF-8: 1007, failing fast ----------------------------------------------------------------

INVALID_UTF8 = [
    b"\xff",
    b"\xc0\xaf",  # overlong
    b"\xe0\x80\xaf",  # overlong
    b"\xed\xa0\x80",  # surrogate U+D800
    b"\xed\xbf\xbf",  # surrogate U+DFFF
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xf5\x80\x80\x80",
    b"\x80",  # lone continuation byte
    b"ok\xe2\x82",  # truncated at the end of the message
]


@pytest.mark.parametrize("payload", INVALID_UTF8)
def test_invalid_utf8_text_fails_with_1007(payload: bytes) -> None:
    ws = WebSocket()
    assert ws.receive_data(client(TEXT, payload)) == []
    assert_failed(ws, 1007)


@pytest.mark.parametrize("payload", INVALID_UTF8)
def test_invalid_utf8_in_the_last_fragment_fails_with_1007(payload: bytes) -> None:
    ws = WebSocket()
    assert ws.receive_data(client(TEXT, b"fine", fin=False) + client(CONT, payload)) == []
    assert_failed(ws, 1007)


@pytest.mark.parametrize(
    "first",
    [
        b"\xff",
        b"abc\xc0",
        b"abc\xed\xa0",  # a surrogate, cut after two bytes
        b"\xed\xbf",
        b"abc\xf4\x90",  # above U+10FFFF, cut after two bytes
        b"\xe0\x80",
        b"\xf0\x80",
        b"\xf8",
        b"ok\x80",
    ],
)
def test_invalid_first_fragment_fails_before_fin(first: bytes) -> None:
    ws = WebSocket()
    assert ws.receive_data(client(TEXT, first, fin=False)) == []
    assert_failed(ws, 1007)


@pytest.mark.parametrize("second", [b"\xa0", b"\xa0\x80", b"\xbf"])
def test_surrogate_split_across_fragments_fails_before_fin(second: bytes) -> None:
    ws = WebSocket()
    stream = client(TEXT, b"a\xed", fin=False) + client(CONT, second, fin=False)
    assert ws.receive_data(stream) == []
    assert_failed(ws, 1007)


@pytest.mark.parametrize("char", ["é", "€", "😀", "\U0010ffff", "\ud7ff", "\ue000"])
def test_valid_characters_split_across_fragments(char: str) -> None:
    encoded = char.encode()
    for cut in range(len(encoded) + 1):
        ws = WebSocket()
        stream = client(TEXT, b"<" + encoded[:cut], fin=False)
        stream += client(CONT, b"", fin=False)
        stream += client(CONT, encoded[cut:] + b">")
        assert ws.receive_data(stream) == [text(f"<{char}>")], cut
        assert ws.data_to_send() == b""


def test_valid_characters_split_byte_per_fragment() -> None:
    message = "aé€😀z".encode()
    stream = client(TEXT, message[:1], fin=False)
    stream += b"".join(client(CONT, message[i : i + 1], fin=False) for i in range(1, len(message)))
    stream += client(CONT)
    ws = WebSocket()
    assert ws.receive_data(stream) == [text("aé€😀z")]


def test_utf8_is_not_checked_for_binary() -> None:
    ws = WebSocket()
    stream = client(BINARY, b"\xed\xa0", fin=False) + client(CONT, b"\xff")
    assert ws.receive_data(stream) == [binary(b"\xed\xa0\xff")]
    assert_open(ws)


# -- message size: 1009 on the header ---------------------------------------------------------


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_oversize_frame_fails_with_1009_on_its_header(opcode: int) -> None:
    ws = WebSocket(max_message_size=1000)
    assert ws.receive_data(client(opcode, b"x" * 1001)[:4]) == []  # 2 + 2 length bytes
    assert_failed(ws, 1009)


def test_oversize_64bit_frame_fails_with_1009_on_its_header() -> None:
    ws = WebSocket(max_message_size=1 << 20)
    header = b"\x82\xff" + (1 << 40).to_bytes(8, "big")
    assert ws.receive_data(header) == []
    assert_failed(ws, 1009)


def test_oversize_7bit_frame_fails_with_1009_on_its_header() -> None:
    ws = WebSocket(max_message_size=10)
    assert ws.receive_data(b"\x81\x8b") == []  # 11 bytes announced
    assert_failed(ws, 1009)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize(("limit", "hlen"), [(100, 6), (1000, 8), (70000, 14)])
def test_the_limit_counts_the_frame_with_its_header(
    limit: int, hlen: int, compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Swoole's package_max_length bounds the whole frame: 2/4/10 header bytes + 4 of mask
    (the compiled fast path, when built, agrees with the pure-Python parser)."""
    if not compiled:
        monkeypatch.setattr(websocket, "_parse_simple", None)
    ws = WebSocket(max_message_size=limit)
    fits = client(BINARY, b"x" * (limit - hlen))
    assert len(fits) == limit
    assert ws.receive_data(fits) == [binary(b"x" * (limit - hlen))]
    assert_open(ws)
    over = client(BINARY, b"x" * (limit - hlen + 1))
    assert ws.receive_data(over[:hlen]) == []  # refused on its header
    assert_failed(ws, 1009)


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_a_payload_of_exactly_the_limit_is_over(opcode: int) -> None:
    ws = WebSocket(max_message_size=1000)
    assert ws.receive_data(client(opcode, b"x" * 1000)) == []
    assert_failed(ws, 1009)


def test_reassembled_message_of_exactly_the_limit_is_accepted() -> None:
    """The payloads of a fragmented message add up to at most the limit (headers not
    counted: Swoole's dispatch_frame), each frame fitting with its header."""
    ws = WebSocket(max_message_size=1000)
    stream = client(TEXT, b"a" * 400, fin=False) + client(CONT, b"b" * 600, fin=False)
    stream += client(CONT, b"")
    assert ws.receive_data(stream) == [text("a" * 400 + "b" * 600)]
    assert_open(ws)


def test_fragmented_message_over_the_limit_fails_with_1009_on_the_header() -> None:
    ws = WebSocket(max_message_size=1000)
    stream = client(TEXT, b"a" * 400, fin=False) + client(CONT, b"b" * 500, fin=False)
    assert ws.receive_data(stream) == []
    assert_open(ws)
    assert ws.receive_data(client(CONT, b"c" * 101)[:2]) == []  # header only: 900 + 101
    assert_failed(ws, 1009)


def test_control_frames_do_not_count_towards_the_message_size() -> None:
    ws = WebSocket(max_message_size=10)
    stream = client(TEXT, b"a" * 4, fin=False) + client(PING, b"p" * 4)
    stream += client(CONT, b"b" * 4, fin=False) + client(CONT, b"c" * 2)
    assert ws.receive_data(stream) == [SendData(encode_frame(PONG, b"p" * 4)), text("aaaabbbbcc")]
    assert ws.data_to_send() == b""


def test_a_control_frame_over_the_limit_with_its_header_fails_with_1009() -> None:
    """Swoole checks every frame's length, whatever its opcode, before dispatching it."""
    ws = WebSocket(max_message_size=10)
    assert ws.receive_data(client(PING, b"p" * 5)) == []  # 6 + 5 bytes
    assert_failed(ws, 1009)


def test_message_size_resets_between_messages() -> None:
    ws = WebSocket(max_message_size=10)
    one = client(TEXT, b"a" * 4, fin=False) + client(CONT, b"b" * 4, fin=False)
    one += client(CONT, b"c" * 2)
    assert ws.receive_data(one * 3) == [text("aaaabbbbcc")] * 3
    assert_open(ws)


def test_reassembled_message_one_byte_over_fails_with_1009() -> None:
    ws = WebSocket(max_message_size=10)
    stream = client(TEXT, b"a" * 4, fin=False) + client(CONT, b"b" * 4, fin=False)
    assert ws.receive_data(stream + client(CONT, b"c" * 3)) == []
    assert_failed(ws, 1009)


# -- ping / pong ------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"x", b"Hello", bytes(range(125))])
def test_ping_is_answered_with_a_pong_of_the_same_payload(payload: bytes) -> None:
    ws = WebSocket()
    assert ws.receive_data(client(PING, payload)) == [SendData(encode_frame(PONG, payload))]
    assert ws.data_to_send() == b""
    assert_open(ws)


def test_pongs_are_sent_in_order() -> None:
    ws = WebSocket()
    _, replies = split_events(ws.receive_data(b"".join(client(PING, bytes([i])) for i in range(5))))
    frames = server_frames(replies)
    assert [(f.opcode, f.data) for f in frames] == [(PONG, bytes([i])) for i in range(5)]


def test_unsolicited_pong_is_ignored() -> None:
    ws = WebSocket()
    assert ws.receive_data(client(PONG, b"hi")) == []
    assert ws.data_to_send() == b""
    assert_open(ws)


def test_deliver_ping_turns_pings_into_events_without_a_pong() -> None:
    ws = WebSocket(fd=5, deliver_ping=True)
    assert ws.receive_data(client(PING, b"hi")) == [Frame(5, b"hi", PING, True, FLAGS_MESSAGE)]
    assert ws.data_to_send() == b""


def test_deliver_pong_turns_pongs_into_events() -> None:
    ws = WebSocket(fd=5, deliver_pong=True)
    assert ws.receive_data(client(PONG, b"hi")) == [Frame(5, b"hi", PONG, True, FLAGS_MESSAGE)]
    assert ws.data_to_send() == b""


def test_deliver_options_keep_the_order_of_events() -> None:
    ws = WebSocket(deliver_ping=True, deliver_pong=True, deliver_close=True)
    stream = (
        client(TEXT, b"a", fin=False)
        + client(PING, b"1")
        + client(CONT, b"b")
        + client(PONG, b"2")
        + client(CLOSE, b"\x03\xe8")
    )
    events = ws.receive_data(stream)
    assert [e.opcode for e in events] == [PING, TEXT, PONG, CLOSE]
    assert events[1].data == "ab"


# -- closing handshake ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "echo"),
    [
        (b"\x03\xe8", b"\x88\x02\x03\xe8"),
        (b"\x03\xe8bye", b"\x88\x02\x03\xe8"),
        (b"\x03\xe9", b"\x88\x02\x03\xe9"),
        (b"\x03\xf3", b"\x88\x02\x03\xf3"),  # 1011
        (b"\x0b\xb8reason", b"\x88\x02\x0b\xb8"),  # 3000
        (b"\x13\x87", b"\x88\x02\x13\x87"),  # 4999
    ],
)
def test_close_is_echoed(payload: bytes, echo: bytes) -> None:
    ws = WebSocket()
    assert ws.receive_data(client(CLOSE, payload)) == []
    assert ws.data_to_send() == echo
    assert ws.state == CLOSED
    assert ws.close_transport is True
    assert ws.close_received is True
    assert ws.close_code == int.from_bytes(payload[:2], "big")
    assert ws.close_reason == payload[2:].decode()


def test_empty_close_is_answered_with_an_empty_close() -> None:
    ws = WebSocket()
    assert ws.receive_data(client(CLOSE)) == []
    assert ws.data_to_send() == b"\x88\x00"
    assert ws.close_code == 1005
    assert ws.state == CLOSED and ws.close_transport


def test_one_byte_close_payload_fails_with_1002() -> None:
    ws = WebSocket()
    ws.receive_data(client(CLOSE, b"\x03"))
    assert_failed(ws, 1002)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_invalid_close_code_fails_with_1002(code: int) -> None:
    ws = WebSocket()
    ws.receive_data(client(CLOSE, code.to_bytes(2, "big")))
    assert_failed(ws, 1002)


@pytest.mark.parametrize("reason", [b"\xff", b"ok\xc3", b"\xed\xa0\x80"])
def test_close_reason_not_utf8_fails_with_1007(reason: bytes) -> None:
    ws = WebSocket()
    ws.receive_data(client(CLOSE, b"\x03\xe8" + reason))
    assert_failed(ws, 1007)


def test_data_after_the_peers_close_is_ignored() -> None:
    ws = WebSocket()
    stream = client(TEXT, b"before") + client(CLOSE, b"\x03\xe8") + client(TEXT, b"after")
    stream += client(PING, b"p")
    assert ws.receive_data(stream) == [text("before")]
    assert ws.data_to_send() == b"\x88\x02\x03\xe8"
    assert ws.receive_data(client(TEXT, b"later") + client(PING, b"q")) == []
    assert ws.data_to_send() == b""


def test_nothing_after_the_peers_close_becomes_an_event() -> None:
    ws = WebSocket(deliver_close=True, deliver_ping=True, deliver_pong=True)
    stream = client(CLOSE, b"\x03\xe8") + client(PING, b"p") + client(PONG, b"q")
    stream += client(CLOSE, b"\x03\xe9") + client(3, b"bad")
    [event] = ws.receive_data(stream)
    assert isinstance(event, CloseFrame)
    assert event.code == 1000
    assert ws.close_code == 1000
    assert ws.data_to_send() == b"\x88\x02\x03\xe8"


def test_deliver_close_turns_the_close_into_an_event() -> None:
    ws = WebSocket(fd=9, deliver_close=True)
    [event] = ws.receive_data(client(CLOSE, b"\x0f\xa0bye"))
    assert isinstance(event, CloseFrame)
    assert (event.fd, event.code, event.reason, event.opcode) == (9, 4000, "bye", CLOSE)
    assert ws.data_to_send() == b"\x88\x02\x0f\xa0"  # still answered
    assert ws.state == CLOSED


def test_deliver_close_with_an_empty_close() -> None:
    ws = WebSocket(deliver_close=True)
    [event] = ws.receive_data(client(CLOSE))
    assert isinstance(event, CloseFrame)
    assert (event.code, event.reason) == (1005, "")


def test_send_close_then_the_peers_close_completes_the_handshake() -> None:
    ws = WebSocket()
    assert ws.send_close(1000) == b"\x88\x02\x03\xe8"
    assert ws.state == CLOSING
    assert ws.close_sent is True
    assert ws.close_transport is False
    assert ws.send_close(1001) == b""  # only one close frame is ever sent
    stream = (
        client(TEXT, b"dropped")
        + client(BINARY, b"dropped")
        + client(TEXT, b"frag", fin=False)
        + client(CONT, b"mented")
        + client(PING, b"p")
    )
    assert ws.receive_data(stream) == []
    assert ws.data_to_send() == b""  # no pong after our close
    assert ws.state == CLOSING
    assert ws.receive_data(client(CLOSE, b"\x03\xe8done")) == []
    assert ws.data_to_send() == b""  # our close was already sent: no second one
    assert ws.state == CLOSED
    assert ws.close_transport is True
    assert ws.close_received is True
    assert (ws.close_code, ws.close_reason) == (1000, "done")


def test_send_close_with_reason_and_empty() -> None:
    ws = WebSocket()
    assert ws.send_close(4000, "bye") == b"\x88\x05\x0f\xa0bye"
    assert (ws.close_code, ws.close_reason) == (4000, "bye")
    assert WebSocket().send_close(1005) == b"\x88\x00"


def test_send_close_after_closed_returns_nothing() -> None:
    ws = WebSocket()
    ws.receive_data(client(CLOSE, b"\x03\xe8"))
    ws.data_to_send()
    assert ws.send_close() == b""


def test_fail_from_the_server_side() -> None:
    ws = WebSocket()
    ws.fail(1011, "internal error")
    out = ws.data_to_send()
    assert out == b"\x88\x10\x03\xf3internal error"
    assert ws.state == CLOSED and ws.close_transport
    assert (ws.close_code, ws.close_reason) == (1011, "internal error")
    assert ws.receive_data(client(TEXT, b"x")) == []


def test_receive_eof_without_close_is_1006() -> None:
    ws = WebSocket()
    ws.receive_data(client(TEXT, b"partial")[:4])
    ws.receive_eof()
    assert ws.state == CLOSED
    assert ws.close_transport is True
    assert ws.close_code == 1006
    assert ws.close_received is False
    assert ws.receive_data(b"rest") == []
    assert ws.data_to_send() == b""


# -- compression hook (RFC 7692) --------------------------------------------------------------


class FakeInflater:
    """Inflates by reversing each frame; enough to see the parser's side of the contract."""

    def __init__(self, error: type[Exception] | None = None) -> None:
        self.calls: list[tuple[bytes, bool, int]] = []
        self.error = error

    def inflate(self, data: bytes, final: bool, limit: int) -> bytes:
        self.calls.append((data, final, limit))
        if self.error is not None:
            raise self.error
        return data[::-1]


def test_compressed_message_goes_through_the_inflater() -> None:
    # A compressed message stays compressed until its last fragment, then is inflated in
    # one call bounded by the message limit (an unfinished one costs its compressed size).
    inflater = FakeInflater()
    ws = WebSocket(inflater=inflater, max_message_size=100)
    stream = client(TEXT, b"fed", fin=False, rsv=0x40) + client(CONT, b"cba")
    stream += client(TEXT, b"plain")
    assert ws.receive_data(stream[:12]) == [] and inflater.calls == []
    assert ws.buffered_bytes == 3 + (12 - 9)  # a compressed fragment and part of a frame
    events = ws.receive_data(stream[12:])
    assert events == [Frame(0, "abcdef", TEXT, True, FLAGS_COMPRESSED), text("plain")]
    assert inflater.calls == [(b"fedcba", True, 100)]
    assert ws.buffered_bytes == 0


def test_compressed_text_is_validated_once_inflated() -> None:
    ws = WebSocket(inflater=FakeInflater())
    ws.receive_data(client(TEXT, b"\xff\xfe", fin=False, rsv=0x40) + client(CONT, b""))
    assert_failed(ws, 1007)


def test_one_call_inflates_one_batch_then_leaves_the_rest() -> None:
    # Each message inflates to 400 KiB: a call stops at the first message boundary past
    # INFLATE_BATCH, keeps the rest and says so; receive_data(b"") goes on.
    class Expanding:
        def inflate(self, data: bytes, final: bool, limit: int) -> bytes:
            return data * (400 * 1024)

    ws = WebSocket(inflater=Expanding(), max_message_size=1 << 30)
    stream = b"".join(client(BINARY, bytes([i]), rsv=0x40) for i in range(7))
    batches = []
    events = ws.receive_data(stream)
    while True:
        batches.append([e.data[0] for e in events])
        assert all(len(e.data) == 400 * 1024 for e in events)
        if not ws.input_pending:
            break
        assert ws.buffered_bytes > 0
        events = ws.receive_data(b"")
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]
    assert ws.buffered_bytes == 0 and ws.state == 3


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_compressed_single_frame_goes_through_the_inflater(opcode: int) -> None:
    inflater = FakeInflater()
    ws = WebSocket(fd=2, inflater=inflater)
    [event] = ws.receive_data(client(opcode, b"cba", rsv=0x40))
    assert event.data == ("abc" if opcode == TEXT else b"abc")
    assert event.flags == FLAGS_COMPRESSED == 39  # FIN|COMPRESS|RSV1|MASK, as Swoole 6.2
    assert (event.fd, event.opcode, event.finish) == (2, opcode, True)
    assert len(inflater.calls) == 1


def test_rsv1_on_a_continuation_fails_even_with_an_inflater() -> None:
    ws = WebSocket(inflater=FakeInflater())
    ws.receive_data(client(TEXT, b"a", fin=False, rsv=0x40) + client(CONT, b"b", rsv=0x40))
    assert_failed(ws, 1002)


@pytest.mark.parametrize(("error", "code"), [(OverflowError, 1009), (ValueError, 1007)])
def test_inflater_errors(error: type[Exception], code: int) -> None:
    ws = WebSocket(inflater=FakeInflater(error))
    ws.receive_data(client(BINARY, b"x", rsv=0x40))
    assert_failed(ws, code)


@pytest.mark.parametrize("rsv", [0x20, 0x10])
def test_other_rsv_bits_fail_even_with_an_inflater(rsv: int) -> None:
    ws = WebSocket(inflater=FakeInflater())
    ws.receive_data(client(TEXT, b"x", rsv=rsv))
    assert_failed(ws, 1002)
