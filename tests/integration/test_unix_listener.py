"""Unix-socket listeners (``SWOOLE_SOCK_UNIX_STREAM``): a WebSocket server on a path, alone
or beside a TCP port, with a real ``websockets`` client connecting over the socket file."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
import websockets

from pyswoole import (
    SWOOLE_BASE,
    SWOOLE_SOCK_UDP,
    SWOOLE_SOCK_UNIX_STREAM,
    SWOOLE_SSL,
    ConfigError,
    Frame,
    WebSocketServer,
)
from tests.conftest import ws_url

TIMEOUT = 5.0


def echo_server(server: WebSocketServer) -> WebSocketServer:
    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        info = server.get_client_info(frame.fd)
        server.push(frame.fd, f"{frame.data} via port {info['server_port']}")

    return server


async def talk(path: str, text: str) -> str:
    async with websockets.unix_connect(path, "ws://localhost/", open_timeout=TIMEOUT) as ws:
        await ws.send(text)
        return str(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def test_a_unix_listener_beside_the_tcp_port(serve, tmp_path: Path) -> None:
    path = str(tmp_path / "ws.sock")
    server = echo_server(WebSocketServer("127.0.0.1", 0))
    port = server.listen(path, 0, SWOOLE_SOCK_UNIX_STREAM)
    assert port.type == SWOOLE_SOCK_UNIX_STREAM
    serve(server)
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert await talk(path, "hello") == "hello via port 0"
    async with websockets.connect(ws_url(server), open_timeout=TIMEOUT) as ws:
        await ws.send("tcp")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == f"tcp via port {server.port}"


async def test_the_main_listener_on_a_path_replaces_a_stale_socket_file(
    serve, tmp_path: Path
) -> None:
    import socket

    path = str(tmp_path / "main.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)  # left behind by an earlier run that was killed
    stale.close()
    server = echo_server(WebSocketServer(path, 0, SWOOLE_BASE, SWOOLE_SOCK_UNIX_STREAM))
    serve(server)
    assert await talk(path, "main") == "main via port 0"


def test_the_socket_file_is_removed_when_the_server_stops(tmp_path: Path) -> None:
    import threading

    path = str(tmp_path / "gone.sock")
    server = echo_server(WebSocketServer(path, 0, SWOOLE_BASE, SWOOLE_SOCK_UNIX_STREAM))

    @server.on("start")
    def on_start(server: WebSocketServer) -> None:
        server.shutdown()

    thread = threading.Thread(target=server.start)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert not os.path.exists(path)


def test_a_regular_file_in_the_way_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "not-a-socket"
    path.write_text("keep me")
    server = echo_server(WebSocketServer(str(path), 0, SWOOLE_BASE, SWOOLE_SOCK_UNIX_STREAM))
    with pytest.raises(OSError):
        server.start()
    assert path.read_text() == "keep me"


@pytest.mark.parametrize(
    ("sock_type", "message"),
    [
        (SWOOLE_SOCK_UDP, "no UDP"),
        (SWOOLE_SOCK_UNIX_STREAM | SWOOLE_SSL, "SWOOLE_SSL goes with SWOOLE_SOCK_TCP"),
    ],
)
def test_unsupported_socket_types_say_why(sock_type: int, message: str) -> None:
    server = WebSocketServer("127.0.0.1", 0)
    with pytest.raises(ConfigError, match=message):
        server.listen("127.0.0.1", 0, sock_type)
