"""Flow control of a raw TCP connection (``Server``, ``on("receive")``, ``send``).

The same rules as for WebSocket connections (runtime/flow.py): past the high watermark the
connection is full and not read (a client that sends without reading cannot make an echo
server queue without bound), ``bufferFull``/``bufferEmpty`` run, and ``send()`` refuses
data while ``socket_buffer_size`` bytes are queued (False,
``SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW``, issue 11's "push, broadcast, publish, send").
The connection runs over ``FlowTransport`` (tests/runtime/fakes.py), drained by the test.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pyswoole import Server
from pyswoole.constants import SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
from pyswoole.runtime.connection import Connection
from pyswoole.runtime.flow import PAUSE_BACKPRESSURE
from tests.runtime.fakes import FlowTransport, build_worker

LIMIT, HIGH, LOW = 10_000, 8_000, 1_000


def test_a_raw_tcp_echo_that_is_not_read_pauses_and_send_refuses_at_the_limit() -> None:
    server = Server("127.0.0.1", 0)
    server.set({"socket_buffer_size": LIMIT, "buffer_low_watermark": LOW})
    sent: list[bool] = []
    events: list[tuple[str, int]] = []
    server.on("receive", lambda srv, fd, reactor_id, data: sent.append(srv.send(fd, data)))
    server.on("bufferFull", lambda srv, fd: events.append(("full", fd)))
    server.on("bufferEmpty", lambda srv, fd: events.append(("empty", fd)))
    worker = build_worker(server)

    def turn() -> None:
        """One turn of the loop: the buffer callbacks run after the write (call_soon)."""
        worker.loop.run_until_complete(asyncio.sleep(0))

    try:
        conn = Connection(worker, server, 9001, raw=True)
        t = FlowTransport(conn)
        conn.connection_made(t)
        assert t.limits == (HIGH, LOW)
        for _ in range(8):  # 8,000 bytes echoed: at the high watermark, not past it
            conn.data_received(b"x" * 1000)
        turn()
        assert sent == [True] * 8 and not conn.is_full and t.reading and events == []
        conn.data_received(b"x" * 1000)  # 9,000: full
        assert conn.is_full and conn._read_block == PAUSE_BACKPRESSURE and not t.reading
        turn()
        assert events == [("full", conn.fd)]
        info: Any = server.get_client_info(conn.fd)
        assert info["send_queued_bytes"] == 9000 and info["buffer_full"] is True
        # (a read the kernel had already delivered) full is not the limit: 10,000 queued
        conn.data_received(b"x" * 1000)
        assert sent[-1] is True and t.buffered == LIMIT
        assert server.send(conn.fd, b"more") is False  # at the limit
        assert server.get_last_error() == SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
        assert t.buffered == LIMIT
        t.drain(LIMIT - LOW)  # the client reads: down to the low watermark
        assert not conn.is_full and t.reading and conn._read_block == 0
        turn()
        assert events == [("full", conn.fd), ("empty", conn.fd)]
        assert t.reading_calls == ["pause", "resume"]
        assert server.send(conn.fd, b"more") is True
        assert t.written == b"x" * LIMIT + b"more"
    finally:
        worker.loop.close()
