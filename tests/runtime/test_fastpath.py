"""The compiled read path (``_fastpath.ConnectionBase``) and compiled push (``Pusher``).

With the extension built, a connection is an asyncio buffered protocol: ``buffer_updated(n)``
dispatches the read's leading simple frames in C and hands the rest to
``Connection.data_received``. The promise: indistinguishable from ``data_received(data)``
with the same bytes: frames delivered, bytes written (maybe grouped in other write calls),
the close, callback errors, ``request_count``. So the same bytes are fed both ways through
fresh connections (fake transport, no sockets, no running loop) and compared: seeded random
streams of valid, fragmented, control and invalid frames cut at random points, then targeted
cases. ``Pusher`` (the compiled ``server.push``) is checked case by case: its common case
writes what ``encode_frame`` gives; anything else must reach the Python push unchanged.

Cases where the compiled path visibly differs from ``data_received`` are marked
``xfail(strict=True)`` with the exact input, so they turn into failures once fixed.
"""

from __future__ import annotations

import logging
import os
import random
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

if os.environ.get("PYSWOOLE_NO_EXTENSIONS"):
    pytest.skip("compiled helpers disabled (PYSWOOLE_NO_EXTENSIONS)", allow_module_level=True)
_fastpath = pytest.importorskip(
    "pyswoole.runtime._fastpath", reason="compiled read path not built on this machine"
)

from pyswoole import WebSocketServer  # noqa: E402
from pyswoole.constants import WEBSOCKET_STATUS_ACTIVE, WEBSOCKET_STATUS_CLOSING  # noqa: E402
from pyswoole.protocol.frames import encode_frame  # noqa: E402
from pyswoole.protocol.websocket import WebSocket  # noqa: E402
from pyswoole.runtime.connection import Connection  # noqa: E402
from pyswoole.runtime.state import FASTPATH  # noqa: E402
from tests.runtime.fakes import (  # noqa: E402
    UPGRADE,
    RecordingTransport,
    build_worker,
    client_frame,
    feed,
    text,
)

Pusher = _fastpath.Pusher
ConnectionBase = _fastpath.ConnectionBase

Record = tuple[Any, int, bool, int]  # a delivered frame's data, opcode, finish, flags
Observed = tuple[list[Record], bytes, bool, int]  # frames, bytes written, closed, request_count


CLOSE_1000 = client_frame(8, (1000).to_bytes(2, "big"))
ENDINGS = (  # fail with 1002, 1002, 1007; close normally
    client_frame(1, b"unmasked", mask=None),
    text("rsv1", rsv=0x40),
    client_frame(1, b"ok\xff\xfebad"),
    CLOSE_1000,
)


class SpyConnection(Connection):
    """Records what reaches the pure-Python path (the C code calls data_received by name)."""

    __slots__ = ("python_reads",)
    python_reads: list[bytes]

    def data_received(self, data: bytes) -> None:
        self.python_reads.append(data)
        super().data_received(data)


def echo(server: Any, frame: Any) -> Any:
    if frame.opcode in (1, 2):
        server.push(frame.fd, frame.data, frame.opcode)
    return None


class Harness:
    """A WebSocketServer with a worker built as start() builds it, minus the loop running."""

    def __init__(self, server_class: type[WebSocketServer] = WebSocketServer) -> None:
        self.handler: Callable[[Any, Any], Any] = echo
        self.frames: dict[int, list[Record]] = {}
        self.server = server = server_class("127.0.0.1", 0)

        @server.on("message")
        def on_message(srv: Any, frame: Any) -> Any:
            record = (frame.data, frame.opcode, frame.finish, frame.flags)
            self.frames.setdefault(frame.fd, []).append(record)
            return self.handler(srv, frame)

        self.worker = build_worker(server)

    def open(self, compiled: bool) -> tuple[SpyConnection, RecordingTransport, int]:
        """A connection past its handshake (the request fed as later reads will be); the
        index of the first write after the 101."""
        conn = SpyConnection(self.worker, self.server, 9001)
        conn.python_reads = []
        transport = RecordingTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        feed(conn, UPGRADE, compiled)  # the HTTP phase: all in Python
        assert conn.ws is not None and conn.python_reads == [UPGRADE]
        assert transport.writes[0].startswith(b"HTTP/1.1 101 ")
        conn.python_reads.clear()
        return conn, transport, 1

    def close(self) -> None:
        self.worker.loop.close()


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


def run_both(h: Harness, chunks: list[bytes]) -> tuple[Observed, Observed, int]:
    """Feed ``chunks`` to a compiled and a reference connection; what each observed, and how
    many bytes the compiled connection's C code handled itself."""
    results = []
    c_handled = 0
    for compiled in (True, False):
        conn, transport, start = h.open(compiled)
        before = h.worker.request_count
        for chunk in chunks:
            feed(conn, chunk, compiled)
        written = b"".join(transport.writes[start:])
        count = h.worker.request_count - before
        results.append((h.frames.get(conn.fd, []), written, transport.closing, count))
        if compiled:
            c_handled = sum(len(c) for c in chunks) - sum(len(r) for r in conn.python_reads)
        conn.connection_lost(None)  # leaves the worker's table
    return results[0], results[1], c_handled


# -- randomized parity ---------------------------------------------------------------------


def _random_text(rng: random.Random, n: int) -> str:
    alphabet = "abc xyz" if rng.random() < 0.5 else "aé€𝄞ü "
    return "".join(rng.choice(alphabet) for _ in range(n))


def random_stream(rng: random.Random) -> bytes:
    """Client frames: simple text/binary, control frames, fragmented messages, and now and
    then something invalid or a close at the end (followed by frames to be ignored)."""
    parts: list[bytes] = []

    def add(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> None:
        parts.append(client_frame(opcode, payload, fin, rsv, rng.randbytes(4)))

    for _ in range(rng.randint(1, 10)):
        kind = rng.random()
        if kind < 0.35:
            add(1, _random_text(rng, rng.choice([0, 1, 5, 40, 125, 126, 300])).encode())
        elif kind < 0.5:
            add(2, rng.randbytes(rng.choice([0, 3, 125, 126, 1000])))
        elif kind < 0.6:
            add(2, rng.randbytes(rng.randint(16 * 1024 - 2, 70 * 1024)))  # 16- and 64-bit
        elif kind < 0.7:
            add(9, rng.randbytes(rng.randint(0, 20)))
        elif kind < 0.75:
            add(10, rng.randbytes(rng.randint(0, 20)))
        else:  # a fragmented text message, maybe with a control frame in between
            data = _random_text(rng, rng.randint(2, 200)).encode()
            cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, min(2, len(data) - 1))))
            pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
            for i, piece in enumerate(pieces):
                add(1 if i == 0 else 0, piece, fin=i == len(pieces) - 1)
                if i == 0 and rng.random() < 0.4:
                    add(rng.choice([9, 10]), b"ctl")
    if rng.random() < 0.3:  # the end, then a frame to be ignored
        parts.append(rng.choice(ENDINGS))
        add(1, b"after the end")
    return b"".join(parts)


def random_chunks(rng: random.Random, data: bytes) -> list[bytes]:
    """``data`` cut at random points: mid-header, mid-payload, between frames, or not at all."""
    if rng.random() < 0.2 and len(data) <= 200_000:
        return [data]
    chunks = []
    pos = 0
    while pos < len(data):
        size = rng.randint(1, rng.choice((1, 3, 6, 10, 30, 100, 300, 1000, 3000, 30_000)))
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


def test_random_streams_match_data_received(harness: Harness) -> None:
    rng = random.Random(20240607)
    handled_in_c = 0
    for case in range(300):
        stream = random_stream(rng)
        chunks = random_chunks(rng, stream)
        compiled, reference, c_handled = run_both(harness, chunks)
        handled_in_c += c_handled
        assert compiled[0] == reference[0], f"case {case}: frames differ"
        assert compiled[1] == reference[1], f"case {case}: written bytes differ"
        assert compiled[2:] == reference[2:], f"case {case}: closed/request_count differ"
    assert handled_in_c > 100_000  # the comparison did exercise the C dispatch


# -- targeted reads ------------------------------------------------------------------------


def test_simple_frames_are_handled_in_c_and_the_rest_by_the_state_machine(
    harness: Harness,
) -> None:
    conn, transport, start = harness.open(compiled=True)
    simple = text("one") + client_frame(2, b"\x00two") + text("три")
    ping = client_frame(9, b"hi")
    feed(conn, simple + ping + text("four"), compiled=True)
    # the ping and what follows went to WebSocket.receive_data, not through data_received
    assert conn.python_reads == []
    assert [r[0] for r in harness.frames[conn.fd]] == ["one", b"\x00two", "три", "four"]
    echoes = encode_frame(1, b"one") + encode_frame(2, b"\x00two") + encode_frame(1, "три".encode())
    pong = encode_frame(10, b"hi")
    assert b"".join(transport.writes[start:]) == echoes + pong + encode_frame(1, b"four")
    conn.python_reads.clear()
    mark = len(transport.writes)
    feed(conn, simple, compiled=True)  # only simple frames: no Python read at all
    assert conn.python_reads == []
    assert b"".join(transport.writes[mark:]) == echoes


def test_after_a_split_frame_the_next_read_is_handled_in_c(harness: Harness) -> None:
    """A frame split over two reads is held in WebSocket._buf (a bytearray) until it is
    whole; then _buf is the shared b"" again (no buffer kept by an idle connection), and
    the compiled path takes the next read."""
    conn, _transport, _start = harness.open(compiled=True)
    ws = conn.ws
    assert ws is not None and ws._buf == b"" and ws._out == b""
    frame = client_frame(2, b"x" * 300)
    feed(conn, frame[:7], compiled=True)
    assert isinstance(ws._buf, bytearray) and len(ws._buf) == 7
    feed(conn, frame[7:], compiled=True)
    assert type(ws._buf) is bytes and ws._buf == b""
    conn.python_reads.clear()
    feed(conn, text("next"), compiled=True)
    assert conn.python_reads == []  # not through data_received: C parsed it
    assert [r[0] for r in harness.frames[conn.fd]] == [b"x" * 300, "next"]


def test_callback_error_is_logged_and_the_other_frames_go_on(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(server: Any, frame: Any) -> None:
        if frame.data == "m1":
            raise ValueError("boom")
        echo(server, frame)

    harness.handler = handler
    data = b"".join(text(f"m{i}") for i in range(5))
    results = []
    for compiled in (True, False):
        caplog.clear()
        conn, transport, start = harness.open(compiled)
        before = harness.worker.request_count
        with caplog.at_level(logging.ERROR, logger="pyswoole"):
            feed(conn, data, compiled)
        assert [r[0] for r in harness.frames[conn.fd]] == [f"m{i}" for i in range(5)]
        errors = [r for r in caplog.records if "exception in message callback" in r.getMessage()]
        assert len(errors) == 1
        assert f"fd {conn.fd}" in errors[0].getMessage()
        assert errors[0].exc_info is not None and isinstance(errors[0].exc_info[1], ValueError)
        written = b"".join(transport.writes[start:])
        assert written == b"".join(encode_frame(1, f"m{i}".encode()) for i in (0, 2, 3, 4))
        assert not transport.closing and conn.status == WEBSOCKET_STATUS_ACTIVE
        results.append((written, harness.worker.request_count - before))
        if compiled:
            assert conn.python_reads == []
    assert results[0] == results[1]


class RecordingServer(WebSocketServer):
    results: list[Any]

    def callback_result(self, result: Any) -> Any:
        self.results.append(result)
        return None


def test_coroutine_result_goes_to_callback_result() -> None:
    h = Harness(RecordingServer)
    server: Any = h.server
    server.results = []

    async def later() -> None:
        pass

    h.handler = lambda srv, frame: later() if frame.data == "async" else 7
    try:
        conn, _transport, _start = h.open(compiled=True)
        feed(conn, text("async") + text("sync"), compiled=True)
        assert conn.python_reads == []
        assert len(server.results) == 2
        coro, value = server.results
        assert isinstance(coro, types.CoroutineType) and coro.cr_code is later.__code__
        assert value == 7
        coro.close()
    finally:
        h.close()


def test_disconnect_from_the_first_of_three_frames(harness: Harness) -> None:
    def handler(server: Any, frame: Any) -> None:
        if frame.data == "bye":
            assert server.disconnect(frame.fd)
        else:
            assert server.push(frame.fd, frame.data) is False  # closing: not established

    harness.handler = handler
    data = text("bye") + text("x") + text("y")
    compiled, reference, c_handled = run_both(harness, [data])
    assert c_handled == len(data)
    assert compiled == reference
    assert compiled[0] == [("bye", 1, True, 33), ("x", 1, True, 33), ("y", 1, True, 33)]
    assert compiled[1] == encode_frame(8, (1000).to_bytes(2, "big"))
    # then the client answers with its close: TCP closes, the same way on both paths
    compiled, reference, _ = run_both(harness, [data, CLOSE_1000])
    assert compiled == reference and compiled[2] is True


PING = client_frame(9, b"p")
FRAGMENT = text("x", fin=False)


@pytest.mark.parametrize("action", ["disconnect", "close"])
@pytest.mark.parametrize(
    "tail",
    [PING, FRAGMENT + client_frame(0, b"z")],  # a pong and a count; the message "xz"
    ids=["ping", "fragmented"],
)
def test_closing_then_non_simple_frames_in_the_same_read(
    harness: Harness, action: str, tail: bytes
) -> None:
    def handler(server: Any, frame: Any) -> None:
        if frame.data == "bye":
            assert getattr(server, action)(frame.fd)

    harness.handler = handler
    compiled, reference, _ = run_both(harness, [text("bye") + tail])
    assert compiled == reference


def test_request_count_seen_by_a_callback(harness: Harness) -> None:
    seen: list[int] = []
    harness.handler = lambda srv, frame: seen.append(srv.stats()["request_count"])
    deltas = []
    for compiled in (True, False):
        conn, _transport, _start = harness.open(compiled)
        seen.clear()
        before = harness.worker.request_count
        feed(conn, text("a") + text("b"), compiled)
        deltas.append([n - before for n in seen])
    assert deltas[0] == deltas[1] == [2, 2]  # the read's messages are counted first


class Interrupt(BaseException):
    pass


@pytest.mark.parametrize(
    "tail",
    [
        b"",
        PING,  # counted before the callbacks run
        FRAGMENT,  # started before the callbacks run
    ],
    ids=["none", "ping", "fragment"],
)
def test_base_exception_from_a_callback(harness: Harness, tail: bytes) -> None:
    def handler(server: Any, frame: Any) -> None:
        if frame.data == "stop":
            raise Interrupt
        echo(server, frame)

    harness.handler = handler
    results = []
    for compiled in (True, False):
        conn, transport, start = harness.open(compiled)
        before = harness.worker.request_count
        with pytest.raises(Interrupt):  # not the callback's own error: it propagates
            feed(conn, text("a") + text("stop") + text("c") + tail, compiled)
        assert harness.frames[conn.fd] == [("a", 1, True, 33), ("stop", 1, True, 33)]
        assert not conn.corked
        feed(conn, client_frame(0, b"y"), compiled)  # and the connection goes on
        written = b"".join(transport.writes[start:])
        count = harness.worker.request_count - before
        results.append((harness.frames[conn.fd], written, transport.closing, count))
    assert results[0] == results[1]


def test_last_recv_and_request_count(harness: Harness) -> None:
    conn, _transport, _start = harness.open(compiled=True)
    conn.last_recv = 0.0
    before = harness.worker.request_count
    t0 = time.monotonic()
    feed(conn, b"".join(text(str(i)) for i in range(4)), compiled=True)
    t1 = time.monotonic()
    assert conn.python_reads == []
    assert t0 <= conn.last_recv <= t1  # the same clock as time.monotonic()
    assert harness.worker.request_count == before + 4


def test_frames_survive_buffer_reuse(harness: Harness) -> None:
    kept: list[Any] = []
    harness.handler = lambda srv, frame: kept.append(frame)
    conn, _transport, _start = harness.open(compiled=True)
    first: list[Any] = [b"\x01" * 10, b"\x02" * 300, "héllo" * 40]
    feed(conn, client_frame(2, first[0]) + client_frame(2, first[1]) + text(first[2]), True)
    buffer: bytearray = conn.get_buffer(-1)  # type: ignore[assignment]
    feed(conn, client_frame(2, b"\xff" * 2000) + text("z" * 500), compiled=True)
    assert conn.get_buffer(-1) is buffer  # the same buffer served both reads
    buffer[:] = bytes(len(buffer))
    assert [f.data for f in kept[:3]] == first
    assert [f.data for f in kept[3:]] == [b"\xff" * 2000, "z" * 500]
    assert all(f.fd == conn.fd for f in kept)


@pytest.mark.parametrize("extra", [1, 1 << 20, -1, -1000])
def test_buffer_updated_out_of_range(harness: Harness, extra: int) -> None:
    conn, transport, start = harness.open(compiled=True)
    buf: bytearray = conn.get_buffer(-1)  # type: ignore[assignment]
    data = text("never")
    buf[: len(data)] = data
    n = len(buf) + extra if extra > 0 else extra
    state = (conn.last_recv, harness.worker.request_count, conn.status, conn.corked)
    with pytest.raises(RuntimeError):
        conn.buffer_updated(n)
    assert (conn.last_recv, harness.worker.request_count, conn.status, conn.corked) == state
    assert conn.fd not in harness.frames
    assert conn.python_reads == [] and len(transport.writes) == start
    assert conn.ws is not None and not conn.ws._buf and conn.out == []
    feed(conn, text("later"), compiled=True)  # and it goes on normally
    assert harness.frames[conn.fd] == [("later", 1, True, 33)]


class TracingWebSocket(WebSocket):
    __slots__ = ("reads",)
    reads: list[bytes]

    def receive_data(self, data: bytes) -> list[Any]:
        self.reads.append(data)
        return super().receive_data(data)


def test_websocket_subclass_takes_the_python_path(harness: Harness) -> None:
    conn, transport, start = harness.open(compiled=True)
    ws = TracingWebSocket(conn.fd, max_message_size=harness.worker.max_message_size)
    ws.reads = []
    conn.ws = ws
    data = text("a") + client_frame(2, b"b")
    feed(conn, data, compiled=True)
    assert conn.python_reads == [data] and ws.reads == [data]
    assert harness.frames[conn.fd] == [("a", 1, True, 33), (b"b", 2, True, 33)]
    assert b"".join(transport.writes[start:]) == encode_frame(1, b"a") + encode_frame(2, b"b")


# -- Pusher --------------------------------------------------------------------------------

LIMIT = 1000


class Fallback:
    """The Python push() stand-in: records its arguments, returns a sentinel."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.sentinel = object()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return self.sentinel


def make_pusher(**fields: Any) -> tuple[Any, Any, Fallback]:
    """A Pusher over {1: an established ConnectionBase (``fields`` set on it), 2: not a
    connection}; the connection; the fallback."""
    conn = ConnectionBase()
    conn.transport = RecordingTransport()
    conn.out = []
    conn.status = WEBSOCKET_STATUS_ACTIVE
    for name, value in fields.items():
        setattr(conn, name, value)
    fallback = Fallback()
    return Pusher({1: conn, 2: object()}, LIMIT, fallback), conn, fallback


def test_pusher_writes_the_common_case() -> None:
    push, conn, fallback = make_pusher()
    blob = bytes(range(256)) * 64
    assert push(1, "hello") is True
    assert push(1, "hé€𝄞", 1) is True
    assert push(1, b"\x00\x01", 2, 1) is True
    assert push(1, blob[: 16 * 1024 - 1], 2) is True
    assert fallback.calls == []
    assert conn.transport.writes[:3] == [
        encode_frame(1, b"hello"),
        encode_frame(1, "hé€𝄞".encode()),
        encode_frame(2, b"\x00\x01"),
    ]
    big = conn.transport.writes[3]
    assert big[:4] == bytes((0x82, 126)) + (16 * 1024 - 1).to_bytes(2, "big")
    assert big == encode_frame(2, blob[: 16 * 1024 - 1])
    for n in (0, 125, 126, 65535, 65536, 70000):  # 7-, 16- and 64-bit lengths
        data = "".join(chr(0x61 + i % 26) for i in range(n))
        assert push(1, data) is True
        assert conn.transport.writes[-1] == encode_frame(1, data.encode())
    assert len(conn.transport.writes) == 10 and fallback.calls == []


def test_pusher_corked_appends_to_out() -> None:
    push, conn, fallback = make_pusher(corked=True)
    assert push(1, "a") is True and push(1, b"b", 2) is True
    assert conn.out == [encode_frame(1, b"a"), encode_frame(2, b"b")]
    assert conn.out_bytes == 6 and conn.transport.writes == []
    big = b"\x07" * (64 * 1024)  # 16 KiB or more: the header, then the payload uncopied
    assert push(1, big, 2) is True
    assert conn.out[2:] == [encode_frame(2, big)[:10], big] and conn.out[3] is big
    assert conn.out_bytes == 6 + 10 + len(big) and fallback.calls == []


def test_pusher_corked_counts_the_corked_bytes_toward_the_limit() -> None:
    # The limit is on everything queued for the client: the transport's buffer and what a
    # read's callbacks corked. At it, the Python push() takes over (and reports overflow).
    push, conn, fallback = make_pusher(corked=True)
    conn.transport.buffered = LIMIT - 4
    assert push(1, "a") is True  # 3 bytes: LIMIT - 1 queued
    assert push(1, "b") is True  # refused only from the limit on: LIMIT + 2 queued now
    assert fallback.calls == []
    assert push(1, "c") is fallback.sentinel and push(1, b"\x07" * 20000, 2) is fallback.sentinel
    assert conn.out == [encode_frame(1, b"a"), encode_frame(1, b"b")] and conn.out_bytes == 6


@pytest.mark.parametrize(
    ("args", "fields"),
    [
        ((3, "unknown fd"), {}),
        ((2, "not a connection"), {}),
        (("1", "str fd"), {}),
        ((1,), {}),
        ((1, "a", 1, 1, "extra"), {}),
        ((1, "str as binary", 2), {}),
        ((1, b"bytes as text", 1), {}),
        ((1, b"x" * (16 * 1024), 2), {}),
        ((1, bytearray(b"ba"), 2), {}),
        ((1, "not final", 1, 0), {}),
        ((1, "bool opcode", True), {}),
        ((1, "bool flags", 1, True), {}),
        ((1, "huge opcode", 1 << 80), {}),
        ((1, "ping", 9), {}),
        ((1, "\ud800"), {}),
        ((1, "x"), {"deflate": object()}),
        ((1, "x"), {"_jobs": []}),
        ((1, "x"), {"status": WEBSOCKET_STATUS_CLOSING}),
        ((1, "x"), {"transport": None}),
        ((1, "x"), {"out": ()}),
    ],
)
def test_pusher_falls_back_unchanged(args: tuple[Any, ...], fields: dict[str, Any]) -> None:
    push, conn, fallback = make_pusher(**fields)
    assert push(*args) is fallback.sentinel
    [(got, kwargs)] = fallback.calls
    assert kwargs == {} and len(got) == len(args)
    assert all(a is b for a, b in zip(got, args, strict=True))
    assert conn.transport is None or conn.transport.writes == []
    assert conn.out in ([], ())


def test_pusher_falls_back_for_keywords_and_a_full_buffer() -> None:
    push, conn, fallback = make_pusher()
    assert push(1, "kw", opcode=1) is fallback.sentinel
    assert push(fd=1, data="kw") is fallback.sentinel
    conn.transport.buffered = LIMIT
    assert push(1, "full") is fallback.sentinel
    conn.transport.buffered = LIMIT - 1
    assert push(1, "room") is True
    assert fallback.calls == [
        ((1, "kw"), {"opcode": 1}),
        ((), {"fd": 1, "data": "kw"}),
        ((1, "full"), {}),
    ]
    assert conn.transport.writes == [encode_frame(1, b"room")]


def test_server_installs_a_compiled_push(harness: Harness) -> None:
    assert FASTPATH
    push = harness.server.__dict__["push"]
    assert type(push).__name__ == "Pusher"
    conn, transport, start = harness.open(compiled=True)
    assert harness.server.push(conn.fd, "direct") is True
    assert transport.writes[start:] == [encode_frame(1, b"direct")]
    # the fallback is the Python push(): an unknown fd reports an error, not a crash
    assert harness.server.push(9999, "nobody") is False


def test_a_subclass_push_stays_in_charge() -> None:
    pushed: list[tuple[Any, ...]] = []

    class OwnPush(WebSocketServer):
        def push(self, fd: int, data: Any, opcode: int = 1, flags: int = 1) -> bool:
            pushed.append((fd, data, opcode))
            return super().push(fd, data, opcode, flags)

    h = Harness(OwnPush)
    try:
        assert "push" not in h.server.__dict__
        conn, transport, start = h.open(compiled=True)
        feed(conn, text("hi"), compiled=True)
        assert pushed == [(conn.fd, "hi", 1)]
        assert b"".join(transport.writes[start:]) == encode_frame(1, b"hi")
    finally:
        h.close()


# -- direct sends (a real socket behind the transport) ----------------------------------------


class SocketTransport(RecordingTransport):
    """A RecordingTransport whose get_extra_info('socket') is one end of a real socketpair:
    the compiled path may send() to it directly while nothing is buffered."""

    def __init__(self, sock: Any, sslcontext: Any = None) -> None:
        super().__init__()
        self.sock = sock
        self.sslcontext = sslcontext

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self.sock
        if name == "sslcontext":
            return self.sslcontext
        return super().get_extra_info(name, default)


SocketConn = tuple[SpyConnection, SocketTransport, Any]
MakeSocketConn = Callable[..., SocketConn]


@pytest.fixture
def socket_conn(harness: Harness) -> Iterator[MakeSocketConn]:
    """``socket_conn(**transport_kw)``: an established connection whose transport has one
    end of a real socketpair, and the peer end; both closed at teardown."""
    import socket

    sockets: list[socket.socket] = []

    def make(**kw: Any) -> SocketConn:
        ours, peer = socket.socketpair()
        sockets.extend((ours, peer))
        ours.setblocking(False)
        peer.settimeout(5)
        conn = SpyConnection(harness.worker, harness.server, 9001)
        conn.python_reads = []
        transport = SocketTransport(ours, **kw)
        conn.connection_made(transport)  # type: ignore[arg-type]
        feed(conn, UPGRADE, True)
        # the 101 (corked until the poll's end) went straight to the socket, or through the
        # transport where a direct send does not apply (TLS)
        head = received(peer) + b"".join(transport.writes)
        assert head.startswith(b"HTTP/1.1 101 ")
        transport.clear()
        return conn, transport, peer

    yield make
    for sock in sockets:
        sock.close()


def received(peer: Any) -> bytes:
    """What the peer can read right now (the other end is not closed, so no EOF)."""
    peer.setblocking(False)
    data = b""
    try:
        while chunk := peer.recv(65536):
            data += chunk
    except BlockingIOError:
        pass
    return data


def test_an_echo_goes_straight_to_an_idle_socket(
    harness: Harness, socket_conn: MakeSocketConn
) -> None:
    conn, transport, peer = socket_conn()
    feed(conn, text("one") + text("two"), True)
    assert transport.writes == []  # the transport's write was not used
    assert received(peer) == encode_frame(1, b"one") + encode_frame(1, b"two")
    harness.server.push(conn.fd, "pushed")  # outside a dispatch: straight out too
    assert received(peer) == encode_frame(1, b"pushed") and transport.writes == []


def test_a_busy_transport_keeps_the_order(socket_conn: MakeSocketConn) -> None:
    conn, transport, peer = socket_conn()
    transport.buffered = 10  # bytes wait in the transport: they must go first
    feed(conn, text("after"), True)
    assert transport.writes == [encode_frame(1, b"after")]
    assert received(peer) == b""


def test_a_closing_transport_never_gets_a_direct_send(
    harness: Harness, socket_conn: MakeSocketConn
) -> None:
    """Once the transport is closing its descriptor may be closed and reused by another
    connection: a push then goes through transport.write (which refuses it here)."""
    conn, transport, peer = socket_conn()
    transport.closing = True  # e.g. uvloop closed it on an error; status still ACTIVE
    assert conn.status == WEBSOCKET_STATUS_ACTIVE
    with pytest.raises(AssertionError, match="write after close"):
        harness.server.push(conn.fd, "late")
    assert received(peer) == b""


def test_a_tls_transport_never_gets_a_direct_send(socket_conn: MakeSocketConn) -> None:
    conn, transport, peer = socket_conn(sslcontext=object())
    feed(conn, text("secret"), True)
    assert transport.writes == [encode_frame(1, b"secret")]
    assert received(peer) == b""  # raw bytes on a TLS socket would corrupt the stream


def test_what_the_kernel_does_not_take_goes_to_the_transport(
    harness: Harness, socket_conn: MakeSocketConn
) -> None:
    import socket

    conn, transport, peer = socket_conn()
    transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = "x" * (4 * 1024 * 1024)  # far more than the socket buffers
    harness.server.push(conn.fd, big)
    frame = encode_frame(1, big.encode())
    sent_directly = received(peer)
    assert 0 < len(sent_directly) < len(frame)
    assert sent_directly + b"".join(transport.writes) == frame  # in order, whole


def test_the_close_reply_is_the_last_send_before_the_fin(socket_conn: MakeSocketConn) -> None:
    """The answer to the client's close goes out with send_final (MSG_MORE, so the close()
    that follows puts the FIN in the same segment), not through the transport."""
    conn, transport, peer = socket_conn()
    feed(conn, CLOSE_1000, True)
    assert received(peer) == encode_frame(8, (1000).to_bytes(2, "big"))
    assert transport.writes == [] and transport.closing


def test_send_final_stands_aside_where_it_would_lose_bytes(socket_conn: MakeSocketConn) -> None:
    conn, transport, peer = socket_conn()
    peer.sendall(b"unread")  # close() with unread input sends RST: held bytes would die
    assert conn.send_final(b"bye") is False
    received(transport.sock)  # (the test reads it: nothing unread now)
    transport.buffered = 1  # bytes wait in the transport: they must go first
    assert conn.send_final(b"bye") is False
    transport.buffered = 0
    transport.closing = True
    assert conn.send_final(b"bye") is False
    transport.closing = False
    assert conn.send_final(bytearray(b"bye")) is False  # bytes only
    assert received(peer) == b""
    assert conn.send_final(b"bye") is True
    assert received(peer) == b"bye"
    tls, _tls_transport, _tls_peer = socket_conn(sslcontext=object())
    assert tls.send_final(b"bye") is False
