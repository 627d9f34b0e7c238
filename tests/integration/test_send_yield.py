"""``send_yield`` (Swoole: a ``push()``/``send()`` in a coroutine waits for room in a full
output buffer instead of failing). In pyswoole ``push()`` never waits; ``await
push_async()``/``send_async()`` are the waiting calls, and ``send_yield=False`` makes them
fail at once like ``push()``: False with SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW. (That they
wait with ``send_yield`` on is tests/integration/test_flow_control.py::
test_push_refuses_at_the_limit_and_push_async_waits_for_room.)"""

from __future__ import annotations

import queue
import socket
from typing import Any

import pytest

from pyswoole import (
    SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW,
    WEBSOCKET_OPCODE_BINARY,
    WEBSOCKET_OPCODE_TEXT,
    Frame,
    WebSocketServer,
)
from tests.conftest import masked

#: far below the 30 s each push_async() would wait if it waited
TIMEOUT = 10.0
MESSAGES = 1024  # x 64 KiB: more than a loopback connection's kernel buffers can hold


@pytest.mark.parametrize("call", ["push_async", "send_async"])
def test_without_send_yield_the_async_calls_fail_at_once(
    serve: Any, raw_client: Any, call: str
) -> None:
    done: queue.Queue[tuple[int, int]] = queue.Queue()
    server = WebSocketServer("127.0.0.1", 0)
    server.set(
        send_yield=False,
        socket_buffer_size=256 * 1024,
        kernel_socket_send_buffer_size=16 * 1024,
    )
    payload = b"y" * 65536

    @server.on("message")
    async def on_message(server: WebSocketServer, frame: Frame) -> None:
        accepted = 0
        for _ in range(MESSAGES):
            if call == "push_async":
                ok = await server.push_async(frame.fd, payload, WEBSOCKET_OPCODE_BINARY, timeout=30)
            else:  # raw bytes: a 64 KiB unmasked binary frame each
                frame_bytes = b"\x82\x7f" + len(payload).to_bytes(8, "big") + payload
                ok = await server.send_async(frame.fd, frame_bytes, timeout=30)
            if not ok:
                break
            accepted += 1
        done.put((accepted, server.get_last_error()))

    serve(server)
    client = raw_client(server.port)
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    assert client.handshake().startswith(b"HTTP/1.1 101")
    client.send(masked(WEBSOCKET_OPCODE_TEXT, b"fill"))  # then never read
    accepted, error = done.get(timeout=TIMEOUT)  # no wait for room: done at once
    assert 0 < accepted < MESSAGES
    assert error == SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
