"""Per-call cost of pyswoole's hot paths with a fake transport (no sockets, no loop).

    PYTHONPATH=src .venv/bin/python bench/micro.py            # compiled helpers
    PYSWOOLE_NO_EXTENSIONS=1 PYTHONPATH=src .venv/bin/python bench/micro.py

``echo``: one 32-byte masked text frame per read, echoed with ``push`` (scenario B's
server work). ``connect``: connection_made, upgrade request, 101, client close frame,
close reply, connection_lost (scenario E's server work). ``fanout``: one broadcast to
1,000 connections (scenario G). Times are per message / handshake / delivery.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from pyswoole import WebSocketServer
from pyswoole.runtime.connection import Connection

MASK = b"\x01\x02\x03\x04"
PAYLOAD = b"x" * 32
FRAME = bytes((0x81, 0x80 | 32)) + MASK + bytes(b ^ MASK[i & 3] for i, b in enumerate(PAYLOAD))
CLOSE = bytes((0x88, 0x82)) + MASK + bytes(b ^ MASK[i & 3] for i, b in enumerate(b"\x03\xe8"))
UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class FakeTransport:
    def __init__(self) -> None:
        self.written = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def writelines(self, items: Any) -> None:
        for data in items:
            self.written += len(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


def build(fanout: bool) -> tuple[WebSocketServer, Any]:
    server = WebSocketServer("127.0.0.1", 0)
    server.set({"package_max_length": 16 * 1024 * 1024})

    @server.on("message")
    def on_message(server: Any, frame: Any) -> None:
        if fanout:
            server.broadcast(frame.data, opcode=frame.opcode)
        else:
            server.push(frame.fd, frame.data, frame.opcode)

    # start() sets the send-buffer limit before building the worker (0 refuses every push)
    server._buffer_limit = server._settings.get_value("socket_buffer_size")
    worker = server._build_worker(0)
    return server, worker


def open_conn(server: WebSocketServer, worker: Any) -> Connection:
    conn = Connection(worker, server, 9001)
    conn.connection_made(FakeTransport())  # type: ignore[arg-type]
    conn.data_received(UPGRADE)
    settle(worker)
    assert conn.ws is not None
    return conn


def settle(worker: Any) -> None:
    """What the loop does after a poll: send what an upgrade left corked (end_batch_soon)."""
    if worker._flush_soon:
        worker._flush_batch()


def reader(conn: Connection) -> Any:
    """What the event loop calls for one read: the buffered protocol when the compiled read
    path is built (uvloop reads into the worker's buffer), else data_received."""
    if not hasattr(conn, "get_buffer"):
        return conn.data_received
    view = memoryview(conn.get_buffer(-1))

    def feed(data: bytes) -> None:
        view[: len(data)] = data  # stands in for the kernel's copy into the buffer
        conn.buffer_updated(len(data))

    return feed


def bench(name: str, fn: Any, n: int, per: int = 1) -> None:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t0)
    print(f"{name:8s} {best / (n * per) * 1e6:7.3f} µs")


def main() -> None:
    server, worker = build(False)
    conn = open_conn(server, worker)
    feed = reader(conn)

    def echo(n: int) -> None:
        for _ in range(n):
            feed(FRAME)

    def connect(n: int) -> None:
        for _ in range(n):
            c = Connection(worker, server, 9001)
            c.connection_made(FakeTransport())  # type: ignore[arg-type]
            read = reader(c)
            read(UPGRADE)
            settle(worker)
            read(CLOSE)
            c.connection_lost(None)

    fserver, fworker = build(True)
    conns = [open_conn(fserver, fworker) for _ in range(1000)]
    sender = reader(conns[0])

    def fanout(n: int) -> None:
        for _ in range(n):
            sender(FRAME)

    print("extensions:", "off" if os.environ.get("PYSWOOLE_NO_EXTENSIONS") else "on")
    bench("echo", echo, 200_000)
    bench("connect", connect, 20_000)
    bench("fanout", fanout, 200, per=1000)


if __name__ == "__main__":
    main()
