"""Deferred writes: what a read's callbacks write to OTHER connections leaves when they return.

While the callbacks of one read run (``WorkerState.depth`` > 0), a connection of the worker
that gets a write (push, broadcast, a disconnect's close frame) is corked and listed in
``worker.state.deferred``; when the outermost dispatch ends, each one is uncorked and what it
collected is written at once. The send-buffer limit is checked before corking; outside a
dispatch writes go out immediately. Connections run on a fake recording transport without a
running loop; a read goes through ``buffer_updated`` (compiled read path, when built) or
``data_received`` (the Python dispatch), which must behave the same.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pyswoole import WebSocketServer
from pyswoole.constants import (
    SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW,
    WEBSOCKET_STATUS_ACTIVE,
    WEBSOCKET_STATUS_CLOSING,
)
from pyswoole.protocol.frames import encode_frame
from pyswoole.runtime import state as state_module
from pyswoole.runtime.connection import Connection
from pyswoole.runtime.state import FASTPATH
from pyswoole.server import websocket_server
from tests.runtime.fakes import (
    UPGRADE_HEAD,
    RecordingTransport,
    build_worker,
    feed,
    frames_of,
    needs_c,
    settle,
    text,
)

_fastpath: Any = state_module._fastpath
# how a read reaches the callbacks: buffer_updated (compiled) or data_received (Python)
READ_PATHS = [pytest.param(True, marks=needs_c, id="buffer_updated"), pytest.param(False, id="py")]

DEFLATE_OFFER = b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
CLOSE_FRAME = encode_frame(8, (1000).to_bytes(2, "big"))


class Harness:
    """A WebSocketServer with a worker built as start() builds it, minus the loop running."""

    def __init__(self, **settings: Any) -> None:
        self.handler: Callable[[Any, Any], Any] = lambda srv, frame: None
        self.server = server = WebSocketServer("127.0.0.1", 0)
        if settings:
            server.set(settings)
        server.on("message", lambda srv, frame: self.handler(srv, frame))
        self.worker = build_worker(server)
        self.state: Any = self.worker.state

    def open(self, offer: bytes = b"") -> tuple[Connection, RecordingTransport]:
        """An established connection; its transport's records start after the 101."""
        conn = Connection(self.worker, self.server, 9001)
        transport = RecordingTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        conn.data_received(UPGRADE_HEAD + offer + b"\r\n")
        settle(self.worker)  # the 101 leaves once the loop has run the poll's reads
        assert conn.status == WEBSOCKET_STATUS_ACTIVE
        assert transport.calls[0][1].startswith(b"HTTP/1.1 101 ")
        transport.clear()
        return conn, transport

    def close(self) -> None:
        self.worker.loop.close()


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


def one_write(transport: RecordingTransport) -> bytes:
    """The bytes of the transport's only write (write() or writelines(): one call)."""
    assert len(transport.calls) == 1, transport.calls
    return transport.calls[0][1]


def settled(h: Harness, *conns: Connection) -> None:
    """The dispatch is over: nothing corked or deferred."""
    assert h.state.depth == 0 and list(h.state.deferred) == []
    assert [c.corked for c in conns] == [False] * len(conns)
    assert all(c.out == [] for c in conns)


MESSAGES = ["one", "two", "три"]
ENCODED = [encode_frame(1, m.encode()) for m in MESSAGES]


# -- broadcast and push during a dispatch --------------------------------------------------


@pytest.mark.parametrize("c_loop", [pytest.param(True, marks=needs_c), False], ids=["c", "py"])
@pytest.mark.parametrize("compiled", READ_PATHS)
def test_broadcast_of_every_message_is_one_write_per_client(
    h: Harness, compiled: bool, c_loop: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not c_loop:  # broadcast's Python loop instead of _fastpath.broadcast_frame
        monkeypatch.setattr(websocket_server, "_broadcast_frame", None)
    (a, ta), (b, tb), (c, tc) = h.open(), h.open(), h.open()
    seen = []

    def handler(server: Any, frame: Any) -> None:
        assert server.broadcast(frame.data) == 3
        seen.append((h.state.depth, list(h.state.deferred), b.corked, c.corked, len(tb.calls)))

    h.handler = handler
    feed(a, b"".join(text(m) for m in MESSAGES), compiled)
    # B and C were deferred once, at the first message, and nothing was written meanwhile
    assert seen == [(1, [b, c], True, True, 0)] * 3
    for transport in (ta, tb, tc):
        assert one_write(transport) == b"".join(ENCODED)
    settled(h, a, b, c)


@pytest.mark.parametrize("push", ["push", "_push_local"])  # maybe compiled; the Python one
@pytest.mark.parametrize("compiled", READ_PATHS)
def test_push_to_others_is_one_write_per_client(h: Harness, compiled: bool, push: str) -> None:
    (a, ta), (b, tb), (c, tc) = h.open(), h.open(), h.open()

    def handler(server: Any, frame: Any) -> None:
        for fd in (c.fd, b.fd):
            assert getattr(server, push)(fd, frame.data) is True
        assert list(h.state.deferred) == [c, b] and tb.calls == tc.calls == []

    h.handler = handler
    feed(a, b"".join(text(m) for m in MESSAGES), compiled)
    assert ta.calls == []
    for transport in (tb, tc):
        assert one_write(transport) == b"".join(ENCODED)
    settled(h, a, b, c)


@pytest.mark.parametrize("compiled", READ_PATHS)
def test_a_full_buffer_is_refused_before_corking(h: Harness, compiled: bool) -> None:
    (a, _ta), (b, tb), (c, tc) = h.open(), h.open(), h.open()
    tb.buffered = h.server._buffer_limit
    results = []

    def handler(server: Any, frame: Any) -> None:
        server._last_error = 0
        results.append(server.push(b.fd, "to b"))
        results.append(server.get_last_error())
        results.append((b.corked, b in h.state.deferred))
        results.append(server.push(c.fd, "to c"))
        results.append(server.broadcast("all", [b.fd, c.fd]))  # B skipped

    h.handler = handler
    feed(a, text("go"), compiled)
    assert results == [False, SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW, (False, False), True, 1]
    assert tb.calls == []
    assert one_write(tc) == encode_frame(1, b"to c") + encode_frame(1, b"all")
    settled(h, a, b, c)


@pytest.mark.parametrize("compiled", READ_PATHS)
def test_push_then_disconnect_keeps_order(h: Harness, compiled: bool) -> None:
    (a, _ta), (b, tb) = h.open(), h.open()

    def handler(server: Any, frame: Any) -> None:
        assert server.push(b.fd, "last words") is True
        assert server.disconnect(b.fd) is True
        assert server.push(b.fd, "too late") is False  # closing: not established
        assert tb.calls == []

    h.handler = handler
    feed(a, text("go"), compiled)
    assert one_write(tb) == encode_frame(1, b"last words") + CLOSE_FRAME
    assert b.status == WEBSOCKET_STATUS_CLOSING and not tb.closing
    settled(h, a, b)


class Interrupt(BaseException):
    pass


@pytest.mark.parametrize("compiled", READ_PATHS)
def test_base_exception_propagates_and_deferred_writes_still_leave(
    h: Harness, compiled: bool
) -> None:
    (a, ta), (b, tb) = h.open(), h.open()

    def handler(server: Any, frame: Any) -> None:
        assert server.push(b.fd, frame.data) is True
        if frame.data == "stop":
            raise Interrupt

    h.handler = handler
    with pytest.raises(Interrupt):
        feed(a, text("one") + text("stop") + text("never"), compiled)
    assert one_write(tb) == encode_frame(1, b"one") + encode_frame(1, b"stop")
    assert h.state.depth == 0 and list(h.state.deferred) == [] and not b.corked
    assert not a.corked
    feed(a, text("again"), compiled)  # and the worker goes on
    assert tb.calls[1:] == [("write", encode_frame(1, b"again"))]
    settled(h, b)
    assert ta.calls == []


@pytest.mark.parametrize("compiled", READ_PATHS)
def test_callback_exception_is_logged_and_deferred_writes_leave(
    h: Harness, compiled: bool, caplog: pytest.LogCaptureFixture
) -> None:
    (a, _ta), (b, tb) = h.open(), h.open()

    def handler(server: Any, frame: Any) -> None:
        assert server.push(b.fd, frame.data) is True
        if frame.data == "m0":
            raise ValueError("boom")

    h.handler = handler
    with caplog.at_level(logging.ERROR, logger="pyswoole"):
        feed(a, text("m0") + text("m1"), compiled)
    errors = [r for r in caplog.records if "exception in message callback" in r.getMessage()]
    assert len(errors) == 1 and f"fd {a.fd}" in errors[0].getMessage()
    assert one_write(tb) == encode_frame(1, b"m0") + encode_frame(1, b"m1")
    settled(h, a, b)


@pytest.mark.parametrize("push", ["push", "_push_local"])
def test_outside_a_dispatch_writes_go_out_at_once(h: Harness, push: str) -> None:
    (_a, _ta), (b, tb), (c, tc) = h.open(), h.open(), h.open()
    assert getattr(h.server, push)(b.fd, "x") is True
    assert tb.calls == [("write", encode_frame(1, b"x"))] and not b.corked
    assert list(h.state.deferred) == []
    assert h.server.broadcast("y", [b.fd, c.fd]) == 2
    assert tb.calls[1:] == tc.calls == [("write", encode_frame(1, b"y"))]
    h.server.disconnect(c.fd)
    assert tc.calls[1:] == [("write", CLOSE_FRAME)]
    settled(h, b, c)


@pytest.mark.parametrize(
    "sizes",
    [[30 * 1024] * 3, [5, 20 * 1024, 5], [16 * 1024, 48 * 1024 - 20]],
    ids=["3x30KiB", "small-big-small", "about-64KiB"],
)
@pytest.mark.parametrize("compiled", READ_PATHS)
def test_large_deferred_payloads(h: Harness, compiled: bool, sizes: list[int]) -> None:
    (a, _ta), (b, tb) = h.open(), h.open()
    payloads = [bytes([i + 1]) * n for i, n in enumerate(sizes)]

    def handler(server: Any, frame: Any) -> None:
        for payload in payloads:
            assert server.push(b.fd, payload, 2) is True
        assert tb.calls == [] and b.corked

    h.handler = handler
    feed(a, text("go"), compiled)
    expected = b"".join(encode_frame(2, p) for p in payloads)
    assert one_write(tb) == expected
    # compiled flush: joined into one write() up to 64 KiB, else one writelines()
    small = FASTPATH and len(expected) <= 64 * 1024
    assert tb.calls[0][0] == ("write" if small else "writelines")
    settled(h, a, b)


@pytest.mark.parametrize("takeover", [False, True], ids=["shared", "own-context"])
@pytest.mark.parametrize("compiled", READ_PATHS)
def test_broadcast_reaches_a_deflate_connection(compiled: bool, takeover: bool) -> None:
    h = Harness(websocket_compression=True, websocket_compression_context_takeover=takeover)
    try:
        (a, _ta), (b, tb), (c, tc) = h.open(), h.open(), h.open(DEFLATE_OFFER)
        assert a.deflate is None and c.deflate is not None
        messages = [f"message {i} " + "abcdefgh" * 20 for i in range(3)]

        def handler(server: Any, frame: Any) -> None:
            assert server.broadcast(messages[int(frame.data)]) == 3
            assert tc.calls == [] and c.corked

        h.handler = handler
        feed(a, text("0") + text("1") + text("2"), compiled)
        assert tb.written == b"".join(encode_frame(1, m.encode()) for m in messages)
        assert len(tc.calls) == 1
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        got = []
        for b0, payload in frames_of(tc.written):
            assert b0 == 0x80 | 0x40 | 1  # FIN, RSV1 (compressed), text
            got.append(inflater.decompress(payload + b"\x00\x00\xff\xff").decode())
        assert got == messages
        settled(h, a, b, c)
    finally:
        h.close()


# -- flush_deferred and WorkerState -----------------------------------------------------------


def flushers() -> list[Any]:
    py = pytest.param(state_module._flush_deferred, id="py")
    return [pytest.param(_fastpath and _fastpath.flush_deferred, marks=needs_c, id="c"), py]


@pytest.mark.parametrize("flush", flushers())
def test_flush_deferred_writes_each_connection_once(h: Harness, flush: Any) -> None:
    (b, tb), (c, tc) = h.open(), h.open()
    h.state.depth = 1  # as during a read's callbacks
    assert h.server.push(b.fd, "b1") and h.server.push(c.fd, "c1") and h.server.push(b.fd, "b2")
    assert list(h.state.deferred) == [b, c] and b.corked and c.corked
    assert tb.calls == tc.calls == []
    h.state.depth = 0
    flush(h.state)
    assert one_write(tb) == encode_frame(1, b"b1") + encode_frame(1, b"b2")
    joined = flush is not state_module._flush_deferred  # the C one joins small bytes
    assert tb.calls[0][0] == ("write" if joined else "writelines")
    assert one_write(tc) == encode_frame(1, b"c1")
    settled(h, b, c)


@pytest.mark.parametrize(
    "flush",
    [
        flushers()[0],
        pytest.param(state_module._flush_deferred, id="py"),
    ],
)
def test_a_failing_write_does_not_keep_the_others_back(h: Harness, flush: Any) -> None:
    (b, tb), (c, tc) = h.open(), h.open()
    h.state.depth = 1
    assert h.server.push(b.fd, "to b") and h.server.push(c.fd, "to c")
    h.state.depth = 0
    tb.fail = OSError("broken pipe")
    with pytest.raises(OSError, match="broken pipe"):
        flush(h.state)
    assert one_write(tc) == encode_frame(1, b"to c")
    assert not b.corked and not c.corked and list(h.state.deferred) == []


def test_python_worker_state() -> None:
    state = state_module.WorkerState(1024)
    fields = ("request_count", "read_buffer", "deferred", "depth")
    assert [getattr(state, name) for name in fields] == [0, None, [], 0]


@needs_c
def test_compiled_worker_state() -> None:
    state = _fastpath.WorkerState(1024)
    assert (state.request_count, state.deferred, state.depth) == (0, [], 0)
    assert type(state.read_buffer) is bytearray and len(state.read_buffer) == 1024
    assert _fastpath.WorkerState().read_buffer is None
    state.request_count = 7
    state.depth = 2
    assert (state.request_count, state.depth) == (7, 2)
    for name in ("read_buffer", "deferred"):
        with pytest.raises(AttributeError):
            setattr(state, name, [])
    for bad in (object(), None, state_module.WorkerState()):
        with pytest.raises(TypeError):
            _fastpath.flush_deferred(bad)
    assert _fastpath.flush_deferred(state) is None  # nothing deferred: nothing to do


@needs_c
def test_broadcast_frame_filters_connections() -> None:
    def conn(**fields: Any) -> Any:
        c = _fastpath.ConnectionBase()
        c.transport = RecordingTransport()
        c.out = []
        c.status = WEBSOCKET_STATUS_ACTIVE
        for name, value in fields.items():
            setattr(c, name, value)
        return c

    plain, closed, closing = conn(), conn(closed=True), conn(status=WEBSOCKET_STATUS_CLOSING)
    deflate, other, full = conn(deflate=object()), object(), conn()
    full.transport.buffered = 100
    corked = conn(corked=True)
    corked.transport.buffered = 90
    corked.out_bytes = 9  # the transport's bytes and the corked ones: 99, under the limit
    corked_full = conn(corked=True, out=[b"x" * 10], out_bytes=10)
    corked_full.transport.buffered = 90  # 100 queued in all: the limit counts corked bytes
    frame = encode_frame(1, b"hi")
    targets = [plain, None, closed, closing, deflate, other, full, corked, corked_full]
    sent, rest = _fastpath.broadcast_frame(iter(targets), frame, 100)
    assert sent == 2
    assert len(rest) == 2 and rest[0] is deflate and rest[1] is other
    assert plain.transport.calls == [("write", frame)] and corked.out == [frame]
    assert corked.out_bytes == 9 + len(frame)
    assert corked_full.out == [b"x" * 10] and corked_full.out_bytes == 10
    for c in (closed, closing, deflate, full, corked_full):
        assert c.transport.calls == []
    for c in (closed, closing, deflate, full):
        assert c.out == []
    for bad in ("hi", bytearray(frame), memoryview(frame)):
        with pytest.raises(TypeError):
            _fastpath.broadcast_frame([plain], bad, 100)
    with pytest.raises(TypeError):
        _fastpath.broadcast_frame([plain], frame)
    assert plain.transport.calls == [("write", frame)]
