"""``server/startup.py``: the startup line and the one-line bind errors; and
``server/callback_errors.py``: what the log says when a callback raises."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from pyswoole import (
    SWOOLE_BASE,
    SWOOLE_PROCESS,
    SWOOLE_SOCK_TCP,
    SWOOLE_SOCK_UNIX_STREAM,
    ConfigError,
    HttpServer,
    Server,
    WebSocketServer,
)
from pyswoole.exceptions import BindError
from pyswoole.runtime.listener import Listener
from pyswoole.server.callback_errors import describe_async, describe_call
from pyswoole.server.startup import bind_error, port_holder, startup_line

TIMEOUT = 10.0


def test_startup_line_names_every_listener_the_mode_and_workers(tmp_path: Path) -> None:
    server = WebSocketServer("127.0.0.1", 9501, SWOOLE_PROCESS)
    server.listen("::1", 9502, SWOOLE_SOCK_TCP)
    server.listen(str(tmp_path / "s.sock"), 0, SWOOLE_SOCK_UNIX_STREAM)
    server.set(worker_num=4, task_worker_num=2)
    assert startup_line(server) == (
        f"pyswoole serving ws://127.0.0.1:9501, ws://[::1]:9502, unix:{tmp_path}/s.sock "
        f"(WebSocketServer, SWOOLE_PROCESS, 4 workers, 2 task workers, pid {os.getpid()})"
    )


@pytest.mark.parametrize(
    ("cls", "scheme"), [(HttpServer, "http"), (Server, "tcp"), (WebSocketServer, "ws")]
)
def test_startup_line_scheme_follows_the_server(cls: type[Server], scheme: str) -> None:
    line = startup_line(cls("0.0.0.0", 80, SWOOLE_BASE))
    assert line.startswith(f"pyswoole serving {scheme}://0.0.0.0:80 ({cls.__name__}, ")
    assert "SWOOLE_BASE, 1 worker, pid" in line


def test_the_server_logs_its_startup_line_once_with_the_bound_port(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = WebSocketServer("127.0.0.1", 0)
    server.on("message", lambda s, f: None)
    server.on("start", lambda s: s.shutdown())
    caplog.set_level(logging.INFO, logger="pyswoole")
    thread = threading.Thread(target=server.start)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    lines = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("pyswoole serving")
    ]
    assert len(lines) == 1
    assert lines[0].startswith(f"pyswoole serving ws://127.0.0.1:{server.port} (")
    assert server.port != 0


def test_address_in_use_names_it_and_its_holder() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        server = WebSocketServer("127.0.0.1", port)
        server.on("message", lambda s, f: None)
        with pytest.raises(BindError) as info:
            server.start()
        error = info.value
        assert str(error).startswith(f"address 127.0.0.1:{port} is already in use by pid ")
        assert f"pid {os.getpid()} (" in str(error)  # this process holds it
        assert error.errno == errno.EADDRINUSE
        assert isinstance(error, OSError) and isinstance(error, ConfigError)
        assert "\n" not in str(error)
        assert port_holder(port).startswith(f"pid {os.getpid()} (")
    finally:
        holder.close()


def test_a_later_listener_failing_releases_the_earlier_ones() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        server = WebSocketServer("127.0.0.1", 0)
        server.on("message", lambda s, f: None)
        server.listen("127.0.0.1", holder.getsockname()[1])
        with pytest.raises(BindError, match="already in use"):
            server.start()
        assert server.get_socket() is None  # the main listener was bound, then closed
    finally:
        holder.close()


def _listener(host: str, port: int, sock_type: int = SWOOLE_SOCK_TCP) -> Listener:
    return Listener(host, port, sock_type)


def test_permission_denied_on_a_low_port() -> None:
    error = bind_error(_listener("0.0.0.0", 80), PermissionError(errno.EACCES, "denied"))
    assert str(error).startswith("permission denied to listen on 0.0.0.0:80: ports below ")
    assert "CAP_NET_BIND_SERVICE" in str(error) and error.errno == errno.EACCES
    high = bind_error(_listener("0.0.0.0", 8080), PermissionError(errno.EACCES, "denied"))
    assert str(high) == "permission denied to listen on 0.0.0.0:8080"


def test_unknown_host_and_foreign_address() -> None:
    gai = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert str(bind_error(_listener("nosuch.invalid", 9501), gai)).startswith(
        "cannot listen on nosuch.invalid:9501: unknown host 'nosuch.invalid'"
    )
    foreign = bind_error(_listener("10.9.9.9", 1), OSError(errno.EADDRNOTAVAIL, "x"))
    assert str(foreign) == "cannot listen on 10.9.9.9:1: 10.9.9.9 is not an address of this machine"


def test_a_real_unknown_host_fails_start_in_one_line() -> None:
    server = WebSocketServer("nosuch.invalid", 0)
    server.on("message", lambda s, f: None)
    with pytest.raises(BindError, match=r"^cannot listen on nosuch\.invalid:0: unknown host"):
        server.start()


def test_a_regular_file_in_the_way_of_a_unix_listener(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("keep")
    server = WebSocketServer(str(path), 0, SWOOLE_BASE, SWOOLE_SOCK_UNIX_STREAM)
    server.on("message", lambda s, f: None)
    with pytest.raises(BindError, match="the path exists and is not a socket"):
        server.start()
    assert path.read_text() == "keep"


# -- callback errors ---------------------------------------------------------------------------


def test_a_sync_callback_error_names_the_event_and_fd() -> None:
    def on_close(server: Any, fd: int) -> None: ...

    server = WebSocketServer("127.0.0.1", 0)
    server.on("close", on_close)
    adapted = server._callbacks["close"]
    assert adapted is not on_close  # cut to its arity: the name comes from the user's
    text = describe_call(server._callbacks, server._raw_callbacks, adapted, (server, 7, 0))
    assert text.startswith("on('close') callback ")
    assert text.endswith("<locals>.on_close (fd 7)")
    assert describe_call(server._callbacks, {}, print, (1,)) == "callback print"


class _Frame:
    fd = 12


def test_an_async_callback_error_names_the_event_and_fd() -> None:
    async def on_message(ws: Any, frame: Any) -> None:
        raise ValueError("boom")

    server = WebSocketServer("127.0.0.1", 0)
    server.on("message", on_message)
    coroutine = on_message(server, _Frame())
    with pytest.raises(ValueError) as info:
        asyncio.run(coroutine)
    text = describe_async(server._raw_callbacks, coroutine, info.value)
    assert text.startswith("async on('message') callback ")
    assert text.endswith("on_message (fd 12)")


def test_an_async_function_that_is_no_callback() -> None:
    async def helper() -> None:
        raise ValueError("boom")

    coroutine = helper()
    with pytest.raises(ValueError) as info:
        asyncio.run(coroutine)
    assert describe_async({}, coroutine, info.value).endswith("helper")
    assert describe_async({}, coroutine, info.value).startswith("async callback ")


def test_the_log_names_the_event_and_fd_of_an_async_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A real server: an ``async def`` open callback raises; the log line says which."""
    server = WebSocketServer("127.0.0.1", 0)
    failed = threading.Event()

    @server.on("open")
    async def on_open(ws: Any, request: Any) -> None:
        ws.after(1, ws.shutdown)
        raise RuntimeError("open failed")

    server.on("message", lambda s, f: None)
    server.on("start", lambda s: failed.set())

    thread = threading.Thread(target=server.start)
    thread.start()
    try:
        assert failed.wait(TIMEOUT)
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as client:
            client.sendall(
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            client.settimeout(TIMEOUT)
            assert client.recv(1024).startswith(b"HTTP/1.1 101")
    finally:
        thread.join(TIMEOUT)
    assert not thread.is_alive()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(
        m.startswith("exception in async on('open') callback") and m.endswith("on_open (fd 1)")
        for m in messages
    ), messages


def test_an_async_request_handler_error_names_the_event_and_fd(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An ``async def`` request handler raises: 500, and the log names ``on('request')``,
    the function and the fd (the sync one: the next test)."""
    server = HttpServer("127.0.0.1", 0)
    started = threading.Event()

    @server.on("request")
    async def on_request(request: Any, response: Any) -> None:
        raise RuntimeError("async failure")

    server.on("start", lambda s: started.set())
    thread = threading.Thread(target=server.start)
    thread.start()
    try:
        assert started.wait(TIMEOUT)
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as client:
            client.settimeout(TIMEOUT)
            client.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert client.recv(1024).startswith(b"HTTP/1.1 500")
    finally:
        server.shutdown()
        thread.join(TIMEOUT)
    assert not thread.is_alive()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(
        m.startswith("exception in async on('request') callback")
        and m.endswith("on_request (fd 1)")
        for m in messages
    ), messages


def test_a_sync_request_handler_error_names_the_event_and_fd(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = HttpServer("127.0.0.1", 0)
    started = threading.Event()

    def handle(request: Any, response: Any) -> None:
        raise RuntimeError("sync failure")

    server.on("request", handle)
    server.on("start", lambda s: started.set())
    thread = threading.Thread(target=server.start)
    thread.start()
    try:
        assert started.wait(TIMEOUT)
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as client:
            client.settimeout(TIMEOUT)
            client.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert client.recv(1024).startswith(b"HTTP/1.1 500")
    finally:
        server.shutdown()
        thread.join(TIMEOUT)
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(
        m.startswith("exception in on('request') callback") and m.endswith("handle (fd 1)")
        for m in messages
    ), messages


def test_tls_listeners_are_wss_and_https() -> None:
    from pyswoole import SWOOLE_SSL

    ws = WebSocketServer("127.0.0.1", 443, SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    ws.listen("127.0.0.1", 9000)
    assert startup_line(ws).startswith(
        "pyswoole serving wss://127.0.0.1:443, ws://127.0.0.1:9000 (WebSocketServer, "
    )
    http = HttpServer("::", 8443, SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    assert startup_line(http).startswith("pyswoole serving https://[::]:8443 (HttpServer, ")
