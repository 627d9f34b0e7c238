"""A port's own ``set()`` in SWOOLE_PROCESS mode (Swoole's ``Port::set``): the master, which
owns every connection, applies the port's protocol settings (its WebSocket limit and
subprotocol; HTTP only), and the worker runs the server's callbacks for it. (The port's own
callbacks, ``Port::on``, are not built in this mode: test_ports.py.) The SWOOLE_BASE twin is
tests/integration/test_ports.py::test_a_websocket_port_has_its_own_limit_and_subprotocol."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.integration.serverproc import START_TIMEOUT, ServerProcess

PROGRAM = Path(__file__).parent / "programs" / "process_port_server.py"
TIMEOUT = 10.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, int, int]]:
    proc = ServerProcess(PROGRAM, tmp_path)
    try:
        ports = proc.wait_line(r"PORTS (\d+) (\d+)", START_TIMEOUT)
        proc.wait_ready(1)
        yield proc, int(ports[1]), int(ports[2])
    finally:
        proc.stop()


async def test_a_port_set_applies_in_the_master(server: tuple[ServerProcess, int, int]) -> None:
    proc, ws_port, http_port = server
    master = proc.proc.pid
    big = "x" * 200
    async with websockets.connect(f"ws://127.0.0.1:{proc.port}/", open_timeout=TIMEOUT) as ws:
        await ws.send(big)  # the main port: the default 2 MiB limit
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == f"main:{big}"
    async with websockets.connect(
        f"ws://127.0.0.1:{ws_port}/", open_timeout=TIMEOUT, subprotocols=["chat"]
    ) as ws:
        assert ws.subprotocol == "chat"
        await ws.send("small")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "main:small"
        await ws.send(big)  # over the port's own package_max_length (100)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 1009

    def get(path: str) -> bytes:
        with socket.create_connection(("127.0.0.1", http_port), timeout=TIMEOUT) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data

    answer = await asyncio.to_thread(get, "/hello")
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    uri, pid = answer.rsplit(b"\r\n\r\n", 1)[1].split()[1:]
    assert uri == b"/hello" and int(pid) != master  # answered by the worker
    with pytest.raises((websockets.InvalidStatus, websockets.InvalidHandshake)):
        async with websockets.connect(f"ws://127.0.0.1:{http_port}/", open_timeout=TIMEOUT):
            pass  # an HTTP-only port refuses the upgrade


async def test_close_in_a_worker_calls_on_close_after_it_returns(
    server: tuple[ServerProcess, int, int],
) -> None:
    """Swoole's SWOOLE_PROCESS worker runs onClose inside close() (ProcessFactory::end,
    reactor_id -1); pyswoole's asks the master, which owns the connection, and on("close")
    runs when its close event comes back (docs/swoole-differences.md)."""
    proc, _, _ = server
    mark = proc.mark()
    async with websockets.connect(f"ws://127.0.0.1:{proc.port}/", open_timeout=TIMEOUT) as ws:
        await ws.send("close me")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    returned = proc.wait_line(r"close-returned (\d+) True", TIMEOUT, mark)
    closed = proc.wait_line(rf"onclose {returned[1]} (-?\d+)", TIMEOUT, mark)
    lines = proc.matching(r"(close-returned|onclose) .*", mark)
    assert [m[1] for m in lines] == ["close-returned", "onclose"]
    assert closed[1] == "-1"  # the server closed it itself (Swoole's CLOSE_ACTIVELY)
