"""pyswoole.testing: the helpers users test their own applications with, used as a user would
(real servers, real ``websockets`` clients, a real subprocess through the CLI)."""

from __future__ import annotations

import asyncio
import re
import socket
import textwrap
from pathlib import Path
from typing import Any

import pytest

import pyswoole.testing
from pyswoole import Frame, Request, Response, WebSocketServer
from pyswoole.exceptions import BindError
from pyswoole.testing import running, running_app

TIMEOUT = 10.0


def echo_server(**settings: Any) -> WebSocketServer:
    server = WebSocketServer("127.0.0.1", 0)
    if settings:
        server.set(settings)

    @server.on("open")
    def on_open(server: WebSocketServer, request: Request) -> None:
        server.push(request.fd, f"welcome {request.fd}")

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> str:
        server.push(frame.fd, frame.data)
        return "pushed"

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int) -> None:
        pass

    return server


def test_running_records_the_callbacks_a_client_causes() -> None:
    server = echo_server()
    on_message = server.get_callback("message")
    with running(server) as live:
        assert live.port == server.port != 0
        assert live.url("/chat") == f"ws://127.0.0.1:{server.port}/chat"
        with live.connect_sync("/chat") as ws:
            assert ws.recv(timeout=TIMEOUT) == "welcome 1"
            ws.send("hello")
            assert ws.recv(timeout=TIMEOUT) == "hello"
        (message,) = live.wait_for("message")
        assert message.args[0] is server
        assert message.args[1].data == "hello" and message.args[1].fd == 1
        assert message.result == "pushed" and message.error is None
        assert message.port == f"127.0.0.1:{server.port}"
        (close,) = live.wait_for("onClose")  # any spelling of the event
        assert close.args[1] == 1
        (opened,) = live.calls("open")
        assert opened.args[1].server["request_uri"] == "/chat"
        events = [call.event for call in live.calls()]
        assert events.index("open") < events.index("message") < events.index("close")
    assert server.get_callback("message") is on_message  # the user's function, unwrapped


async def test_async_callbacks_are_recorded_once_finished() -> None:
    server = WebSocketServer("127.0.0.1", 0)
    release = asyncio.Event()

    @server.on("message")
    async def on_message(server: WebSocketServer, frame: Frame) -> int:
        if frame.data == "wait":
            await release.wait()
        server.push(frame.fd, frame.data)
        return len(frame.data)

    with running(server) as live:
        async with live.connect() as ws:
            await ws.send("wait")
            with pytest.raises(AssertionError, match=r"on\('message'\) ran 0 time"):
                await live.wait_for_async("message", timeout=0.3)
            loop = server._loop
            assert loop is not None
            loop.call_soon_threadsafe(release.set)
            (call,) = await live.wait_for_async("message")
            assert call.result == 4 and call.done.is_set()
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "wait"


def test_a_failing_callback_is_recorded_with_its_error() -> None:
    server = WebSocketServer("127.0.0.1", 0)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        if frame.data == "boom":
            raise ValueError("boom")
        server.push(frame.fd, "ok")

    with running(server) as live, live.connect_sync() as ws:
        ws.send("boom")
        ws.send("fine")
        assert ws.recv(timeout=TIMEOUT) == "ok"  # the server went on
        first, second = live.wait_for("message", count=2)
        assert isinstance(first.error, ValueError) and second.error is None


def test_http_request_and_the_request_callback() -> None:
    server = WebSocketServer("127.0.0.1", 0)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        pass

    @server.on("request")
    def on_request(request: Request, response: Response) -> None:
        response.header("X-Path", request.server["request_uri"])
        response.end(request.rawContent() or b"empty")

    with running(server) as live:
        status, headers, body = live.request("POST", "/form", body=b"a=1")
        assert (status, headers["x-path"], body) == (200, "/form", b"a=1")
        (call,) = live.wait_for("request")
        assert call.args[0].server["request_method"] == "POST"


def test_port_callbacks_are_recorded_with_their_port() -> None:
    server = echo_server()
    port = server.listen("127.0.0.1", 0)

    @port.on("message")
    def on_port_message(server: WebSocketServer, frame: Frame) -> None:
        server.push(frame.fd, "from the port")

    with running(server) as live:
        with live.connect_sync() as ws:
            ws.recv(timeout=TIMEOUT)
            with socket.create_connection(("127.0.0.1", port.port)):
                pass  # a probe that never upgrades: no message
            other = f"ws://127.0.0.1:{port.port}/"
            from websockets.sync.client import connect

            with connect(other, open_timeout=TIMEOUT) as ws2:
                ws2.recv(timeout=TIMEOUT)  # the server's open callback (ports share it)
                ws2.send("x")
                assert ws2.recv(timeout=TIMEOUT) == "from the port"
        (call,) = live.wait_for("message")
        assert call.port == f"127.0.0.1:{port.port}"


def test_wait_for_names_what_it_saw_instead() -> None:
    with running(echo_server()) as live:
        with live.connect_sync() as ws:
            ws.recv(timeout=TIMEOUT)
        live.wait_for("close")
        with pytest.raises(AssertionError, match=r"not 1.*calls seen: \['open', 'close'\]"):
            live.wait_for("message", timeout=0.2)


def test_a_start_error_is_raised_by_running() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = echo_server()
        server._listeners[0].port = taken.getsockname()[1]
        with pytest.raises(BindError, match=r"127\.0\.0\.1"), running(server):
            pass


def test_the_module_docstring_example_runs() -> None:
    """The first example of pyswoole.testing's docstring, executed as written."""
    doc = pyswoole.testing.__doc__
    assert doc is not None
    lines = doc.split("A pytest test::", 1)[1].splitlines()[1:]
    end = next(i for i, line in enumerate(lines) if line and not line.startswith(" "))
    block = "\n".join(lines[:end])
    namespace: dict[str, Any] = {}
    exec(compile(textwrap.dedent(block), "pyswoole.testing docstring", "exec"), namespace)
    namespace["test_echo_upper"]()


APP = """
from pyswoole import WebSocketServer

server = WebSocketServer("127.0.0.1", 9501)

@server.on("message")
def on_message(server, frame):
    print(f"worker {server.worker_id} got {frame.data}", flush=True)
    server.push(frame.fd, frame.data.upper())
"""


def test_running_app_runs_the_cli_in_a_subprocess(tmp_path: Path) -> None:
    (tmp_path / "upper_app.py").write_text(APP)
    with running_app("upper_app:server", "--workers", "2", cwd=tmp_path) as app:
        assert app.port not in (0, 9501)
        with app.connect_sync() as ws:
            ws.send("hi")
            assert ws.recv(timeout=TIMEOUT) == "HI"
        found = app.wait_for_line(r"worker (\d) got hi")
        assert found.group(1) in ("0", "1")
        assert any("2 workers" in line for line in app.output)
    assert app.proc.returncode == 0, "".join(app.output)


def test_running_app_reports_a_start_failure(tmp_path: Path) -> None:
    with (
        pytest.raises(AssertionError, match=r"(?s)ended .*missing_app"),
        running_app("missing_app:server", cwd=tmp_path, timeout=TIMEOUT),
    ):
        pass  # pragma: no cover - never reached


def test_no_test_prefixed_public_names() -> None:
    """pytest collects ``Test*`` classes imported into a test module: none here."""
    assert not [n for n in pyswoole.testing.__all__ if re.match(r"(?i)test", n)]
