"""Per-port settings and callbacks (Swoole's ``Port::set``/``Port::on``), over the wire:
each port of one server speaks its own protocol with its own limits and callbacks."""

from __future__ import annotations

import asyncio
import queue
import socket
from unittest.mock import ANY

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from pyswoole import (
    SWOOLE_SOCK_TCP,
    ConfigError,
    Frame,
    WebSocketServer,
)
from tests.conftest import ws_url

TIMEOUT = 5.0


def server_with_port(**port_settings: object) -> tuple[WebSocketServer, object]:
    server = WebSocketServer("127.0.0.1", 0)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        server.push(frame.fd, f"main:{frame.data}")

    port = server.listen("127.0.0.1", 0, SWOOLE_SOCK_TCP)
    if port_settings:
        port.set(port_settings)
    return server, port


async def roundtrip(url: str, text: str, **kwargs: object) -> str:
    async with websockets.connect(url, open_timeout=TIMEOUT, **kwargs) as ws:
        await ws.send(text)
        return str(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def test_a_port_callback_serves_that_port_only(serve) -> None:
    server, port = server_with_port()

    @port.on("message")
    def on_port_message(server: WebSocketServer, frame: Frame) -> None:
        server.push(frame.fd, f"port:{frame.data}")

    assert server.ports[1] is port and port.get_callback("message") is on_port_message
    serve(server)
    assert await roundtrip(ws_url(server), "a") == "main:a"
    assert await roundtrip(f"ws://127.0.0.1:{port.port}/", "b") == "port:b"


def test_a_port_that_set_nothing_of_http_is_raw_tcp(serve, raw_client) -> None:
    """Swoole: a port that called set() does not inherit the server's protocol."""
    server, port = server_with_port(package_max_length=4096)

    @port.on("receive")
    def on_receive(server: WebSocketServer, fd: int, reactor_id: int, data: bytes) -> None:
        server.send(fd, b"raw:" + data)

    serve(server)
    client = raw_client(port.port)
    client.send(b"GET / HTTP/1.1\r\n\r\n")
    assert client.recv_exact(22) == b"raw:GET / HTTP/1.1\r\n\r\n"


async def test_an_http_only_port_answers_requests_and_refuses_upgrades(serve) -> None:
    server, port = server_with_port(open_http_protocol=True)

    @port.on("request")
    def on_request(request, response) -> None:
        response.end(f"port http {request.server['request_uri']}")

    serve(server)

    def get(path: str) -> bytes:
        with socket.create_connection(("127.0.0.1", port.port), timeout=TIMEOUT) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data

    answer = await asyncio.to_thread(get, "/hello")
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"port http /hello")
    with pytest.raises((websockets.InvalidStatus, websockets.InvalidHandshake)):
        await roundtrip(f"ws://127.0.0.1:{port.port}/", "x")


async def test_a_websocket_port_has_its_own_limit_and_subprotocol(serve) -> None:
    server, port = server_with_port(
        open_websocket_protocol=True, package_max_length=100, websocket_subprotocol="chat"
    )
    serve(server)
    big = "x" * 200
    assert await roundtrip(ws_url(server), big) == f"main:{big}"
    async with websockets.connect(
        f"ws://127.0.0.1:{port.port}/", open_timeout=TIMEOUT, subprotocols=["chat"]
    ) as ws:
        assert ws.subprotocol == "chat"
        await ws.send("small")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "main:small"
        await ws.send(big)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 1009


def test_what_a_port_cannot_take_is_an_error() -> None:
    _, port = server_with_port()
    with pytest.raises(ConfigError, match="'heartbeat_idle_time' cannot be set per port"):
        port.set({"heartbeat_idle_time": 5})
    with pytest.raises(ConfigError, match="is not a port event"):
        port.on("workerStart", lambda server, worker_id: None)
    with pytest.raises(ConfigError, match="did you mean 'package_max_length'"):
        port.set({"package_max_lenght": 5})


def test_a_raw_port_needs_on_receive() -> None:
    server, _ = server_with_port(package_max_length=4096)
    with pytest.raises(ConfigError, match="raw TCP port: it needs on\\('receive'\\)"):
        server.start()


async def test_on_close_reactor_id_says_who_closed(serve) -> None:
    """Swoole passes -1 to onClose when the server closed the connection itself (close(),
    disconnect(): ``CLOSE_ACTIVELY``), the reactor's id (0 here) when the client did; on a
    port's own on("close") too. (The SWOOLE_PROCESS twin: test_process_port_callbacks.py.)"""
    server, port = server_with_port(package_max_length=4096)
    closes: queue.Queue[tuple[str, int, int]] = queue.Queue()

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        if frame.data == "close me":
            server.close(frame.fd)
        elif frame.data == "bye":
            server.disconnect(frame.fd, 4000, "bye")
        else:
            server.push(frame.fd, str(frame.fd))

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int, reactor_id: int) -> None:
        closes.put(("main", fd, reactor_id))

    @port.on("receive")
    def on_receive(server: WebSocketServer, fd: int, reactor_id: int, data: bytes) -> None:
        if data == b"close\n":
            server.close(fd)
        else:
            server.send(fd, str(fd))

    @port.on("close")
    def on_port_close(server: WebSocketServer, fd: int, reactor_id: int) -> None:
        closes.put(("port", fd, reactor_id))

    serve(server)

    async def websocket(command: str | None) -> tuple[str, int, int]:
        async with websockets.connect(ws_url(server), open_timeout=TIMEOUT) as ws:
            await ws.send("fd?")
            fd = int(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if command is not None:
                await ws.send(command)
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
        closed = await asyncio.to_thread(closes.get, timeout=TIMEOUT)
        assert closed[1] == fd
        return closed

    assert await websocket("close me") == ("main", ANY, -1)
    assert await websocket("bye") == ("main", ANY, -1)
    assert await websocket(None) == ("main", ANY, 0)

    def raw(command: bytes | None) -> tuple[str, int, int]:
        with socket.create_connection(("127.0.0.1", port.port), timeout=TIMEOUT) as s:
            s.sendall(b"fd?")
            fd = int(s.recv(64))
            if command is not None:
                s.sendall(command)
                assert s.recv(1) == b""
        closed = closes.get(timeout=TIMEOUT)
        assert closed[1] == fd
        return closed

    assert await asyncio.to_thread(raw, b"close\n") == ("port", ANY, -1)
    assert await asyncio.to_thread(raw, None) == ("port", ANY, 0)


def test_the_main_port_is_the_server() -> None:
    server = WebSocketServer("127.0.0.1", 0)
    main = server.ports[0]

    def on_message(server: WebSocketServer, frame: Frame) -> None:
        pass

    main.on("message", on_message)
    main.set({"package_max_length": 1234})
    assert server.get_callback("message") is on_message
    assert server.setting["package_max_length"] == 1234
