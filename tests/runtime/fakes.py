"""What the runtime tests share: client frames and a recording stand-in for the transport.

No module-level skip here: the pure-Python cases of the runtime tests use it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pyswoole.runtime.state import FASTPATH

if TYPE_CHECKING:
    from pyswoole import WebSocketServer
    from pyswoole.runtime.worker import Worker

UPGRADE_HEAD = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)
#: a whole upgrade request (UPGRADE_HEAD plus the empty line)
UPGRADE = UPGRADE_HEAD + b"\r\n"
MASK = b"\x37\xfa\x21\x3d"

needs_c = pytest.mark.skipif(not FASTPATH, reason="compiled helpers not available")
#: the compiled read path and push (buffer_updated, Pusher, broadcast_frame), or the Python ones
FLAVORS = [pytest.param(True, marks=needs_c, id="c"), pytest.param(False, id="py")]


def frames_of(data: bytes) -> list[tuple[int, bytes]]:
    """The (first byte, payload) of each unmasked server frame in ``data`` (whole frames)."""
    result = []
    pos = 0
    while pos < len(data):
        b0, n = data[pos], data[pos + 1] & 0x7F
        pos += 2
        if n >= 126:
            size = 2 if n == 126 else 8
            n = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        result.append((b0, data[pos : pos + n]))
        pos += n
    assert pos == len(data), "a partial frame at the end"
    return result


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The (opcode, payload) of each unmasked server frame in ``data``."""
    return [(b0 & 0x0F, payload) for b0, payload in frames_of(data)]


def client_frame(
    opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bytes | None = MASK
) -> bytes:
    """A client frame (RFC 6455 section 5.2); ``mask=None`` leaves it unmasked (invalid)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | rsv | opcode
    mbit = 0 if mask is None else 0x80
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = bytes((b0, mbit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, mbit | 127)) + n.to_bytes(8, "big")
    if mask is None:
        return head + payload
    key = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + mask + body


def text(s: str, **kw: Any) -> bytes:
    """A client text frame carrying ``s``."""
    return client_frame(1, s.encode(), **kw)


class RecordingTransport:
    """Enough of asyncio.Transport for a Connection, recording what is written.

    ``calls`` holds one ``(kind, bytes)`` per write()/writelines() call; ``writes`` every
    buffer handed over, in order (writelines' items one by one).
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.writes: list[bytes] = []
        self.closing = False
        self.buffered = 0  # what get_write_buffer_size() reports
        self.fail: BaseException | None = None  # raised by the next write
        self.reading = True  # pause_reading()/resume_reading()
        self.limits: tuple[int | None, int | None] = (None, None)  # set_write_buffer_limits()
        self.eof = False  # write_eof() was called

    def _check(self) -> None:
        assert not self.closing, "write after close"
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error

    def write(self, data: bytes) -> None:
        self._check()
        self.calls.append(("write", bytes(data)))
        self.writes.append(bytes(data))

    def writelines(self, items: Any) -> None:
        self._check()
        items = [bytes(item) for item in items]
        self.calls.append(("writelines", b"".join(items)))
        self.writes.extend(items)

    def clear(self) -> None:
        """Forget what was written so far."""
        self.calls.clear()
        self.writes.clear()

    @property
    def written(self) -> bytes:
        return b"".join(self.writes)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    abort = close

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.limits = (high, low)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True


def build_worker(server: WebSocketServer) -> Worker:
    """The worker ``server.start()`` would run, built without running its loop (the caller
    closes ``worker.loop``). start() sets the send-buffer limit first; so does this."""
    server._buffer_limit = server._settings.get_value("socket_buffer_size")
    return server._build_worker(0)


# -- flow control and closing (test_flow.py, test_closing.py) -----------------------------------


class FlowTransport(RecordingTransport):
    """A RecordingTransport with a write buffer and marks, as asyncio's transports have.

    What is written stays in ``buffered`` (no kernel takes it; ``hold=False``: all taken at
    once) until :meth:`drain`. Like asyncio, it calls ``protocol.pause_writing()`` inside
    ``write()`` (or ``set_write_buffer_limits()``) when its buffer passes the high mark, and
    ``protocol.resume_writing()`` once drained to the low one. It also records the reading
    calls (``reading_calls``), refuses writes after ``write_eof()`` and counts aborts.
    """

    def __init__(self, protocol: Any = None, *, hold: bool = True) -> None:
        super().__init__()
        self.protocol = protocol
        self.hold = hold
        self.paused = False  # the protocol was told pause_writing (and not resume_writing)
        self.high, self.low = 64 * 1024, 16 * 1024  # asyncio's defaults
        self.reading_calls: list[str] = []
        self.aborted = False
        self.on_close: Any = None  # called once the transport closes (e.g. an Event's set)
        self.on_eof: Any = None  # called at write_eof()

    def _check(self) -> None:
        assert not self.eof, "write after write_eof"
        super()._check()

    def write(self, data: bytes) -> None:
        super().write(data)
        self._queued(len(data))

    def writelines(self, items: Any) -> None:
        items = [bytes(item) for item in items]
        super().writelines(items)
        self._queued(sum(len(item) for item in items))

    def _queued(self, n: int) -> None:
        if self.hold:
            self.buffered += n
        self._maybe_pause()

    def _maybe_pause(self) -> None:
        if not self.paused and self.buffered > self.high:
            self.paused = True
            self.protocol.pause_writing()

    def drain(self, n: int | None = None) -> None:
        """The kernel took ``n`` buffered bytes (all of them by default)."""
        self.buffered -= self.buffered if n is None else min(n, self.buffered)
        if self.paused and self.buffered <= self.low:
            self.paused = False
            self.protocol.resume_writing()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        super().set_write_buffer_limits(high, low)
        if high is None:  # asyncio's _set_write_buffer_limits
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        self.high, self.low = high, low
        self._maybe_pause()  # (asyncio only pauses here, never resumes)

    def pause_reading(self) -> None:
        self.reading_calls.append("pause" if not self.closing else "pause (closing)")
        super().pause_reading()

    def resume_reading(self) -> None:
        self.reading_calls.append("resume" if not self.closing else "resume (closing)")
        super().resume_reading()

    def close(self) -> None:
        was_closing, self.closing = self.closing, True
        if not was_closing and self.on_close is not None:
            self.on_close()

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def write_eof(self) -> None:
        assert not self.closing, "write_eof after close"
        super().write_eof()
        if self.on_eof is not None:
            self.on_eof()


def feed(conn: Any, data: bytes, compiled: bool) -> None:
    """A read of ``data``: through ``buffer_updated`` as the event loop does with a buffered
    protocol (the compiled read path), or ``data_received`` (the Python one)."""
    if compiled:
        buf: bytearray = conn.get_buffer(-1)
        assert len(buf) >= len(data)
        buf[: len(data)] = data
        conn.buffer_updated(len(data))
    else:
        conn.data_received(data)
    settle(conn.worker)


def settle(worker: Any) -> None:
    """What the event loop does next after a read: send the answers an HTTP request or an
    upgrade left corked for the end of the poll (``Worker.end_batch_soon``)."""
    if worker._flush_soon:
        worker._flush_batch()


def deflate_frames(messages: list[bytes], opcode: int = 2, compressor: Any = None) -> bytes:
    """Client frames carrying ``messages`` compressed (RFC 7692, context takeover: one
    ``compressor`` for all, as the server's inflater expects by default; pass the same one
    to go on with a later read)."""
    import zlib

    if compressor is None:
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    out = []
    for message in messages:
        data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        out.append(client_frame(opcode, data[:-4], rsv=0x40))
    return b"".join(out)


class FakeClock:
    """A stand-in for the event loop's timers and ``time.monotonic`` (monkeypatch both):
    ``call_later`` records, :meth:`advance` moves time on and runs what is due, in order."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.timers: list[FakeTimer] = []

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Any, *args: Any) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback, args)
        self.timers.append(timer)
        return timer

    def call_soon(self, callback: Any, *args: Any) -> FakeTimer:
        return self.call_later(0.0, callback, *args)

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, running each timer when its time comes."""
        end = self.now + seconds
        for _ in range(10_000):
            due = [t for t in self.timers if not t.cancelled and t.when <= end]
            if not due:
                break
            timer = min(due, key=lambda t: t.when)
            self.timers.remove(timer)
            self.now = max(self.now, timer.when)
            timer.callback(*timer.args)
        else:  # pragma: no cover - a timer that keeps rescheduling itself at once
            raise AssertionError("timers did not settle")
        self.now = end

    @property
    def pending(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled]


class FakeTimer:
    def __init__(self, when: float, callback: Any, args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FlowHarness:
    """A WebSocketServer (``server_class``, ``settings``) whose worker is built as start()
    builds it, its loop not running; connections run over :class:`FlowTransport`.

    ``frames`` holds every message delivered (``handler(server, frame)`` then runs),
    ``closes`` the fds whose close callback ran, ``buffer_events`` the ``(fd, full)`` of
    every ``worker.on_buffer`` call.
    """

    def __init__(self, server_class: Any = None, **settings: Any) -> None:
        from pyswoole import WebSocketServer

        self.server = server = (server_class or WebSocketServer)("127.0.0.1", 0)
        if settings:
            server.set(settings)
        self.frames: list[Any] = []
        self.handler: Any = lambda srv, frame: None
        self.closes: list[int] = []
        self.buffer_events: list[tuple[int, bool]] = []

        def on_message(srv: Any, frame: Any) -> Any:
            self.frames.append(frame)
            return self.handler(srv, frame)

        server.on("message", on_message)
        server.on("close", lambda srv, fd, reactor_id: self.closes.append(fd))
        self.worker = build_worker(server)
        self.loop = self.worker.loop
        self.worker.on_buffer = lambda conn, full: self.buffer_events.append((conn.fd, full))

    def connect(self, cls: Any = None, *, hold: bool = True) -> tuple[Any, FlowTransport]:
        """A new connection, in its HTTP phase."""
        from pyswoole.runtime.connection import Connection

        conn = (cls or Connection)(self.worker, self.server, 9001)
        transport = FlowTransport(conn, hold=hold)
        conn.connection_made(transport)
        return conn, transport

    def open(
        self, compiled: bool = False, offer: bytes = b"", cls: Any = None, *, hold: bool = True
    ) -> tuple[Any, FlowTransport]:
        """An established WebSocket connection; its transport empty, its records cleared."""
        from pyswoole.constants import WEBSOCKET_STATUS_ACTIVE

        conn, transport = self.connect(cls, hold=hold)
        feed(conn, UPGRADE_HEAD + offer + b"\r\n", compiled)
        assert conn.status == WEBSOCKET_STATUS_ACTIVE
        assert transport.writes[0].startswith(b"HTTP/1.1 101 ")
        transport.clear()
        transport.drain()
        return conn, transport

    def run(self, coro: Any, timeout: float = 5.0) -> Any:
        """Run ``coro`` on the worker's loop (bounded)."""
        import asyncio

        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def close(self) -> None:
        import asyncio

        loop = self.loop
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()
