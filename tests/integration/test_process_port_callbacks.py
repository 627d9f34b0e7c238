"""A port's own callbacks in SWOOLE_PROCESS mode (Swoole's ``Port::on``), over the wire with
2 workers: the master owns every connection and forwards each event of a port with its own
callbacks wrapped with the port's index (EV_PORT); the worker runs that port's callbacks
(the server's for the events the port did not set). Raw TCP ports (``on("receive")``)
work there too, and ``on("close")`` gets reactor_id -1 for the server's own closes.
The SWOOLE_BASE twins are in tests/integration/test_ports.py."""

from __future__ import annotations

import asyncio
import http.client
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.integration.serverproc import START_TIMEOUT, ServerProcess

PROGRAM = Path(__file__).parent / "programs" / "process_port_callbacks_server.py"
TIMEOUT = 10.0


class Ports:
    def __init__(self, proc: ServerProcess, http: int, ws: int, raw: int, hs: int) -> None:
        self.proc, self.http, self.ws, self.raw, self.hs = proc, http, ws, raw, hs


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ports]:
    proc = ServerProcess(PROGRAM, tmp_path_factory.mktemp("ports"))
    try:
        ports = proc.wait_line(r"PORTS (\d+) (\d+) (\d+) (\d+)", START_TIMEOUT)
        proc.wait_ready(2)
        yield Ports(proc, *(int(p) for p in ports.groups()))
    finally:
        proc.stop()


def http_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


async def test_an_http_port_runs_its_own_request_callback(server: Ports) -> None:
    """The HTTP port's on("request") answers it; the main port's requests get the server's."""
    assert await asyncio.to_thread(http_get, server.http, "/a") == (200, b"port http /a")
    assert await asyncio.to_thread(http_get, server.proc.port, "/b") == (200, b"main http /b")
    async with websockets.connect(
        f"ws://127.0.0.1:{server.proc.port}/", open_timeout=TIMEOUT
    ) as ws:
        await ws.send("hi")  # beside it, the main port's WebSocket is the server's
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "main:hi"


async def test_a_websocket_port_runs_its_own_open_and_message(server: Ports) -> None:
    proc = server.proc
    mark = proc.mark()
    async with websockets.connect(f"ws://127.0.0.1:{server.ws}/room", open_timeout=TIMEOUT) as ws:
        opened = await proc.expect(r"wsopen (\d+) /room", TIMEOUT, mark)
        for text in ("one", "two", "three"):  # in order, whichever worker serves it
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == f"wsport:{text}"
    # no on("close") of its own: the server's runs (the client closed: reactor_id 0)
    await proc.expect(rf"onclose {opened[1]} 0", TIMEOUT, mark)


def raw_connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(65536, size - len(data)))
        assert chunk, f"EOF after {len(data)} of {size} bytes"
        data += chunk
    return bytes(data)


async def test_a_raw_tcp_port_echoes_with_its_own_callbacks(server: Ports) -> None:
    """on("connect"), on("receive") + send(), and the port's own on("close"): reactor_id 0
    when the client closes, -1 when the worker's close() does (Swoole's CLOSE_ACTIVELY)."""
    proc = server.proc
    mark = proc.mark()
    with raw_connect(server.raw) as sock:
        fd = (await proc.expect(r"rawconnect (\d+) 0", TIMEOUT, mark))[1]
        sock.sendall(b"hello")
        assert await asyncio.to_thread(recv_exact, sock, 5) == b"hello"
        payload = bytes(range(256)) * 4096  # 1 MiB through the master and IPC, in order

        def send_all() -> None:
            sock.sendall(payload)

        sender = asyncio.create_task(asyncio.to_thread(send_all))
        echoed = await asyncio.to_thread(recv_exact, sock, len(payload))
        await sender
        assert echoed == payload
    await proc.expect(rf"rawclose {fd} 0", TIMEOUT, mark)
    second = proc.mark()
    with raw_connect(server.raw) as sock:
        other = (await proc.expect(r"rawconnect (\d+) 0", TIMEOUT, second))[1]
        sock.sendall(b"close\n")
        assert await asyncio.to_thread(sock.recv, 1) == b""  # the server closed it
    await proc.expect(rf"rawclose {other} -1", TIMEOUT, mark)
    assert not proc.matching(rf"onclose ({fd}|{other}) .*", mark)  # the port's, not the server's


async def test_on_close_reactor_id_says_who_closed(server: Ports) -> None:
    """Swoole passes -1 to onClose when the server closed the connection itself (close(),
    disconnect()), the reactor's id (0 here) when the client did."""
    proc = server.proc
    url = f"ws://127.0.0.1:{proc.port}/"
    mark = proc.mark()
    reactor_ids = []
    for command in ("close me", "bye", None):
        async with websockets.connect(url, open_timeout=TIMEOUT) as ws:
            await ws.send("fd?")
            fd = int(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if command is not None:
                await ws.send(command)
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
                if command == "bye":
                    assert ws.close_code == 4000
        reactor_ids.append((await proc.expect(rf"onclose {fd} (-?\d+)", TIMEOUT, mark))[1])
    assert reactor_ids == ["-1", "-1", "0"]


async def test_a_raw_tcp_server_serves_in_process_mode(tmp_path: Path) -> None:
    """A plain ``Server`` (raw TCP, on("receive")) in SWOOLE_PROCESS mode: the master hands
    the bytes to the fd's worker, which answers with send() and close() through it."""
    proc = ServerProcess(PROGRAM, tmp_path, "--plain")
    try:
        proc.wait_ready(2)
        mark = proc.mark()
        with raw_connect(proc.port) as sock:
            sock.sendall(b"ping")
            assert await asyncio.to_thread(recv_exact, sock, 4) == b"ping"
            fd, pid = (await proc.expect(r"receive (\d+) (\d+)", TIMEOUT, mark)).groups()
            assert int(pid) in proc.pids().values() and int(pid) != proc.proc.pid
            sock.sendall(b"close\n")
            assert await asyncio.to_thread(sock.recv, 1) == b""
        await proc.expect(rf"close {fd} -1 {pid}", TIMEOUT, mark)
    finally:
        proc.stop()


async def test_handshake_callbacks_run_in_the_worker(server: Ports) -> None:
    """on("handshake") (a port's own) answers in a worker: its 101 makes a WebSocket in the
    master, its 403 closes; on("beforeHandshakeResponse") (the server's, on the main port
    and on a port that did not set its own) adds its headers and cookie to the master's
    101. Swoole runs both in the worker too."""
    proc = server.proc
    workers = set(proc.pids().values())
    mark = proc.mark()
    async with websockets.connect(f"ws://127.0.0.1:{server.hs}/ok", open_timeout=TIMEOUT) as ws:
        assert int(ws.response.headers["X-Worker"]) in workers
        pid = (await proc.expect(r"handshake \d+ (\d+)", TIMEOUT, mark))[1]
        assert int(pid) == int(ws.response.headers["X-Worker"])
        # the extension the master agreed is in the worker's 101 and in force
        assert ws.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        text = "x" * 3000
        await ws.send(text)
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == f"hs:{text}"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"ws://127.0.0.1:{server.hs}/no", open_timeout=TIMEOUT):
            pass
    assert refused.value.response.status_code == 403
    for port, path in ((proc.port, "/main"), (server.ws, "/wsport")):
        async with websockets.connect(f"ws://127.0.0.1:{port}{path}", open_timeout=TIMEOUT) as ws:
            headers = ws.response.headers
            assert int(headers["X-Worker"]) in workers
            assert headers["Set-Cookie"].startswith(f"seen={path.replace('/', '%2F')}")
            await ws.send("y")
            assert (await asyncio.wait_for(ws.recv(), TIMEOUT)).endswith(":y")
