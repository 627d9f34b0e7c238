"""``pyswoole.Server``: plain TCP with Swoole's connect/receive/close callbacks."""

from __future__ import annotations

import os
import threading
from typing import Any

from pyswoole import Server


def echo_server(events: dict[str, Any]) -> Server:
    server = Server("127.0.0.1", 0)
    events.setdefault("connect", [])
    events.setdefault("close", [])
    connected = events.setdefault("connected", threading.Event())
    closed = events.setdefault("closed", threading.Event())

    @server.on("connect")
    def on_connect(server, fd, reactor_id):
        events["connect"].append(fd)
        connected.set()

    @server.on("receive")
    def on_receive(server, fd, reactor_id, data):
        if data == b"quit\n":
            server.close(fd)
            return
        assert server.send(fd, data)

    @server.on("close")
    def on_close(server, fd, reactor_id):
        events["close"].append(fd)
        closed.set()

    return server


def test_echo_connect_close(serve, raw_client) -> None:
    events: dict[str, Any] = {}
    server = serve(echo_server(events))
    client = raw_client(server.port)
    assert events["connected"].wait(5)
    assert events["connect"] == [1]
    client.send(b"hello")
    assert client.recv_exact(5) == b"hello"
    big = os.urandom(200_000)
    client.send(big)
    assert client.recv_exact(len(big)) == big
    assert not events["closed"].is_set()
    client.close()
    assert events["closed"].wait(5)
    assert events["close"] == [1]


def test_server_close_fd(serve, raw_client) -> None:
    events: dict[str, Any] = {}
    server = serve(echo_server(events))
    client = raw_client(server.port)
    client.send(b"ping")
    assert client.recv_exact(4) == b"ping"
    client.send(b"quit\n")
    assert client.is_closed_by_peer()
    assert events["closed"].wait(5)
    assert events["connect"] == events["close"] == [1]


def test_http_bytes_are_just_data(serve, raw_client) -> None:
    """A plain ``Server`` does not speak HTTP: a request line is echoed like any data."""
    events: dict[str, Any] = {}
    server = serve(echo_server(events))
    client = raw_client(server.port)
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    client.send(request)
    assert client.recv_exact(len(request)) == request


def test_fds_increase_per_connection(serve, raw_client) -> None:
    events: dict[str, Any] = {}
    server = serve(echo_server(events))
    first = raw_client(server.port)
    first.send(b"a")
    assert first.recv_exact(1) == b"a"
    second = raw_client(server.port)
    second.send(b"b")
    assert second.recv_exact(1) == b"b"
    assert events["connect"] == [1, 2]


def test_sendfile_streams_a_file_range(serve, raw_client, tmp_path) -> None:
    """``Server::sendfile(fd, filename, offset, length)``: the file's bytes on the wire."""
    content = os.urandom(3_000_000)
    path = tmp_path / "blob.bin"
    path.write_bytes(content)
    server = Server("127.0.0.1", 0)
    results: list[Any] = []

    @server.on("receive")
    def on_receive(server, fd, reactor_id, data):
        if data == b"all":
            results.append(server.sendfile(fd, str(path)))
        elif data == b"range":
            results.append(server.sendfile(fd, str(path), 1000, 500))
        else:
            results.append(server.sendfile(fd, str(tmp_path / "missing")))
            results.append(server.get_last_error())
            server.send(fd, b"done")

    serve(server)
    client = raw_client(server.port)
    client.send(b"all")
    assert client.recv_exact(len(content)) == content
    client.send(b"range")
    assert client.recv_exact(500) == content[1000:1500]
    client.send(b"missing")
    assert client.recv_exact(4) == b"done"
    from pyswoole import SWOOLE_ERROR_FILE_NOT_EXIST

    assert results == [True, True, False, SWOOLE_ERROR_FILE_NOT_EXIST]


def test_get_socket_is_the_listening_socket(serve) -> None:
    server = Server("127.0.0.1", 0)
    server.on("receive", lambda server, fd, reactor_id, data: None)
    serve(server)
    sock = server.get_socket()
    assert sock is not None and sock is server.getSocket()
    assert sock.getsockname()[1] == server.port
    assert server.get_socket(server.port + 1 if server.port < 65535 else 1) is None
