"""The ``pyswoole`` command for real: ``python -m pyswoole module:attr`` and the console
script as subprocesses on port 0, talked to with ``websockets``; its startup line, its
one-line errors (exit code 1) and ``--reload`` restarting on an edit.

Each program runs in a session of its own; its stderr lines are read by a thread and tests
wait for lines (the startup line carries the port), never sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.integration.serverproc import LineReader

START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
REPLY_TIMEOUT = 10.0
SCRIPT = Path(sys.executable).parent / "pyswoole"
SERVING = r".*pyswoole serving ws://127\.0\.0\.1:(\d+) \((.*)\)"

APP = """
from pyswoole import SWOOLE_BASE, WebSocketServer

VERSION = "v1"

server = WebSocketServer("127.0.0.1", 9501)


@server.on("message")
async def on_message(server, frame):
    if frame.data == "boom":
        raise RuntimeError("boom")
    server.push(frame.fd, f"{VERSION}:{frame.data}")


def on_close(server, fd):
    if CLOSE_FAILS:
        raise RuntimeError("close failed")


CLOSE_FAILS = False
server.on("close", on_close)


def make(mode=SWOOLE_BASE, port=9502):
    global CLOSE_FAILS
    CLOSE_FAILS = True
    s = WebSocketServer("127.0.0.1", port, mode)
    s.on("message", on_message)
    s.on("close", on_close)
    return s
"""


class Cli(LineReader):
    """``pyswoole ...`` in ``cwd``, its stderr lines collected by a thread."""

    def __init__(self, cwd: Path, *argv: str, script: bool = False) -> None:
        command = [str(SCRIPT)] if script else [sys.executable, "-m", "pyswoole"]
        self.proc = subprocess.Popen(
            [*command, *argv],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stderr is not None
        self._collect(self.proc.stderr)

    def wait_line(
        self, pattern: str, start: int = 0, timeout: float = START_TIMEOUT
    ) -> re.Match[str]:
        return self._find(pattern, timeout, start)

    def count(self, pattern: str) -> int:
        with self._cond:
            return sum(1 for line in self.lines if re.fullmatch(pattern, line))

    def stop(self) -> int:
        try:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(STOP_TIMEOUT)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.wait(STOP_TIMEOUT)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


@contextlib.contextmanager
def running(cwd: Path, *argv: str, script: bool = False) -> Iterator[Cli]:
    cli = Cli(cwd, *argv, script=script)
    try:
        yield cli
    finally:
        cli.stop()


async def echo(port: int, text: str) -> str:
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/", open_timeout=REPLY_TIMEOUT, ping_interval=None
    ) as ws:
        await ws.send(text)
        reply = await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT)
        assert isinstance(reply, str)
        return reply


async def test_python_m_pyswoole_runs_the_object(app_dir: Path) -> None:
    with running(app_dir, "app:server", "--port", "0") as cli:
        match = cli.wait_line(SERVING)
        port = int(match[1])
        assert match[2] == f"WebSocketServer, SWOOLE_BASE, 1 worker, pid {cli.proc.pid}"
        assert await echo(port, "hello") == "v1:hello"
        assert cli.stop() == 0  # SIGTERM: a graceful stop
    assert cli.count(r".*pyswoole serving .*") == 1


async def test_console_script_with_a_factory_in_process_mode(app_dir: Path) -> None:
    """``--mode process`` reaches the factory's constructor; the master prints the startup
    line once, whatever the number of workers."""
    argv = ("app:make", "--factory", "--mode", "process", "--workers", "2", "--port", "0")
    with running(app_dir, *argv, script=True) as cli:
        match = cli.wait_line(SERVING)
        assert match[2].startswith("WebSocketServer, SWOOLE_PROCESS, 2 workers, pid ")
        port = int(match[1])
        for text in ("a", "b", "c"):  # fds 1..3: both workers answer
            assert await echo(port, text) == f"v1:{text}"
        assert cli.count(r".*pyswoole serving .*") == 1


async def test_set_values_are_typed_and_applied(app_dir: Path) -> None:
    """``--set package_max_length=1K`` is read as Swoole reads sizes: a 2000-byte message
    is over it (close 1009), a 100-byte one passes."""
    argv = ("app:server", "--port", "0", "--set", "package_max_length=1K", "--log-level", "info")
    with running(app_dir, *argv) as cli:
        port = int(cli.wait_line(SERVING)[1])
        assert await echo(port, "x" * 100) == "v1:" + "x" * 100
        async with websockets.connect(f"ws://127.0.0.1:{port}/", ping_interval=None) as ws:
            await ws.send("y" * 2000)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT)
            assert ws.close_code == 1009


@pytest.mark.parametrize("mode", ["base", "process"])
async def test_async_and_sync_callback_errors_name_event_and_fd(app_dir: Path, mode: str) -> None:
    argv = ("app:make", "--factory", "--mode", mode, "--port", "0")
    with running(app_dir, *argv) as cli:
        port = int(cli.wait_line(SERVING)[1])
        async with websockets.connect(f"ws://127.0.0.1:{port}/", ping_interval=None) as ws:
            await ws.send("boom")
            await ws.send("after")  # the connection goes on after the failure
            assert await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT) == "v1:after"
        cli.wait_line(r".*exception in async on\('message'\) callback on_message \(fd 1\)")
        cli.wait_line(r".*exception in on\('close'\) callback on_close \(fd 1\)")
        assert cli.count(r"RuntimeError: boom") == 1


def run_error(cwd: Path, *argv: str, prefix: tuple[str, ...] = ()) -> tuple[int, str]:
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "pyswoole", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    return done.returncode, done.stderr


def test_address_in_use_is_one_line_naming_it_and_its_holder(app_dir: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, err = run_error(app_dir, "app:server", "--port", str(port))
    assert code == 1
    assert err.count("\n") == 1, err
    assert err.startswith(
        f"pyswoole: error: address 127.0.0.1:{port} is already in use by pid {os.getpid()} ("
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ("app:server", "--host", "nosuch.invalid"),
            "cannot listen on nosuch.invalid:9501: unknown host",
        ),
        (
            ("app:server", "--host", "192.0.2.1"),
            "cannot listen on 192.0.2.1:9501: 192.0.2.1 is not an address of this machine",
        ),
        (
            ("no_such_app:server",),
            "cannot import module 'no_such_app': no module named 'no_such_app'",
        ),
        (("app:srv",), "module 'app' has no attribute 'srv'"),
        (("app:server", "--mode", "process"), "app:server is built in base (SWOOLE_BASE) mode"),
        (
            ("app:server", "--set", "worker_nun=2"),
            "unknown setting 'worker_nun'; did you mean 'worker_num'",
        ),
    ],
)
def test_start_errors_are_one_line_and_exit_1(
    app_dir: Path, argv: tuple[str, ...], expected: str
) -> None:
    code, err = run_error(app_dir, *argv)
    assert code == 1
    assert err.count("\n") == 1, err
    assert err.startswith(f"pyswoole: error: {expected}"), err


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to drop CAP_NET_BIND_SERVICE",
)
def test_permission_denied_for_a_low_port(app_dir: Path) -> None:
    prefix = ("setpriv", "--bounding-set", "-net_bind_service")
    code, err = run_error(app_dir, "app:server", "--port", "1", prefix=prefix)
    assert code == 1
    assert err.count("\n") == 1, err
    assert err.startswith(
        "pyswoole: error: permission denied to listen on 127.0.0.1:1: ports below "
    )


async def test_reload_restarts_on_an_edit(app_dir: Path) -> None:
    pytest.importorskip("watchfiles")
    argv = ("app:server", "--port", "0", "--reload", "--reload-dir", str(app_dir))
    with running(app_dir, *argv) as cli:
        cli.wait_line(r"pyswoole: watching .* for changes \(--reload\)")
        first = cli.wait_line(SERVING)
        assert await echo(int(first[1]), "x") == "v1:x"
        mark = len(cli.lines)
        (app_dir / "app.py").write_text(APP.replace('VERSION = "v1"', 'VERSION = "v2"'))
        cli.wait_line(r"pyswoole: app\.py changed: restarting", mark)
        second = cli.wait_line(SERVING, mark)
        assert second[2] != first[2]  # a new process (its pid)
        assert await echo(int(second[1]), "x") == "v2:x"
        assert cli.stop() == 0
    child_pid = int(second[2].rpartition("pid ")[2])
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)


WEB_APP = """
from pyswoole import SWOOLE_BASE, WebSocketServer


def make(mode=SWOOLE_BASE):
    server = WebSocketServer("127.0.0.1", 0, mode)

    @server.on("request")
    def on_request(request, response):
        response.status(201 if request.get.get("x") == "1" else 200)
        response.end("hello " + request.server["request_uri"])

    @server.on("message")
    def on_message(server, frame):
        server.push(frame.fd, frame.data)

    return server
"""
ACCESS = r'.*\] 127\.0\.0\.1:\d+ fd (\d+) "GET /hello\?x=1 HTTP/1\.1" 201 (\d+) [\d.]+ms'


def http_get(port: int, target: str) -> bytes:
    """One request on a raw socket; the whole response (the server closes: Connection: close)."""
    with socket.create_connection(("127.0.0.1", port), REPLY_TIMEOUT) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("mode", ["base", "process"])
async def test_access_log_for_http_and_websocket(tmp_path: Path, mode: str) -> None:
    (tmp_path / "web.py").write_text(WEB_APP)
    argv = ("web:make", "--factory", "--mode", mode, "--set", "access_log=true")
    with running(tmp_path, *argv) as cli:
        port = int(cli.wait_line(r".*pyswoole serving ws://127\.0\.0\.1:(\d+) .*")[1])
        answer = http_get(port, "/hello?x=1")
        assert answer.startswith(b"HTTP/1.1 201 ") and answer.endswith(b"hello /hello")
        line = cli.wait_line(ACCESS)
        assert int(line[2]) == len(answer)  # head and body, as sent
        async with websockets.connect(f"ws://127.0.0.1:{port}/chat", ping_interval=None) as ws:
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT) == "hi"
            fd = int(cli.wait_line(r".*\] 127\.0\.0\.1:\d+ fd (\d+) websocket open")[1])
            await ws.close(1000)
        cli.wait_line(rf".*\] 127\.0\.0\.1:\d+ fd {fd} websocket close 1000 [\d.]+s")


async def test_no_access_log_by_default_and_log_config_routes_it(tmp_path: Path) -> None:
    (tmp_path / "web.py").write_text(WEB_APP)
    with running(tmp_path, "web:make", "--factory") as cli:
        port = int(cli.wait_line(r".*pyswoole serving ws://127\.0\.0\.1:(\d+) .*")[1])
        assert http_get(port, "/hello?x=1").startswith(b"HTTP/1.1 201 ")
        assert cli.stop() == 0
    assert cli.count(r".*GET /hello.*") == 0  # off by default
    config = (
        '{"version": 1, "handlers": {"file": {"class": "logging.FileHandler", '
        '"filename": "access.log", "formatter": "plain"}, "err": {"class": '
        '"logging.StreamHandler", "formatter": "plain"}}, "formatters": {"plain": '
        '{"format": "%(name)s %(message)s"}}, "loggers": {"pyswoole.access": '
        '{"handlers": ["file"], "level": "INFO", "propagate": false}, "pyswoole": '
        '{"handlers": ["err"], "level": "INFO"}}}'
    )
    argv = ("web:make", "--factory", "--set", "access_log=1", "--set", f"log_config={config}")
    with running(tmp_path, *argv) as cli:  # (the startup line: the config's own format)
        port = int(cli.wait_line(r"pyswoole pyswoole serving ws://127\.0\.0\.1:(\d+) .*")[1])
        answer = http_get(port, "/hello?x=1")
        assert cli.stop() == 0
    lines = (tmp_path / "access.log").read_text().splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(
        rf'pyswoole\.access 127\.0\.0\.1:\d+ fd 1 "GET /hello\?x=1 HTTP/1\.1" 201 {len(answer)} '
        r"[\d.]+ms",
        lines[0],
    )
    assert cli.count(r".*GET /hello.*") == 0  # not on stderr: log_config routed it


async def test_reload_in_process_mode_keeps_the_connections(app_dir: Path) -> None:
    """SWOOLE_PROCESS: an edit is a reload() of the workers, which take the new code at
    their start; the connection opened before the edit stays open and gets the new code's
    answer, and the server is not restarted (one startup line)."""
    pytest.importorskip("watchfiles")
    argv = ("app:make", "--factory", "--mode", "process", "--workers", "2", "--port", "0")
    with running(app_dir, *argv, "--reload", "--reload-dir", str(app_dir)) as cli:
        port = int(cli.wait_line(SERVING)[1])
        async with websockets.connect(f"ws://127.0.0.1:{port}/", ping_interval=None) as ws:
            await ws.send("x")
            assert await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT) == "v1:x"
            mark = len(cli.lines)
            (app_dir / "app.py").write_text(APP.replace('VERSION = "v1"', 'VERSION = "v2"'))
            cli.wait_line(r"pyswoole: app\.py changed: reloading the workers .*", mark)
            for worker in (0, 1):
                cli.wait_line(rf".*reload: worker {worker} runs the new code of app:make", mark)
            await ws.send("y")  # the same connection, answered by the new code
            assert await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT) == "v2:y"
        assert await echo(port, "z") == "v2:z"
        assert cli.count(r".*pyswoole serving .*") == 1  # reloaded, not restarted


async def test_a_broken_edit_keeps_the_running_code(app_dir: Path) -> None:
    pytest.importorskip("watchfiles")
    argv = ("app:make", "--factory", "--mode", "process", "--port", "0", "--reload")
    with running(app_dir, *argv, "--reload-dir", str(app_dir)) as cli:
        port = int(cli.wait_line(SERVING)[1])
        mark = len(cli.lines)
        (app_dir / "app.py").write_text(APP + "\ndef broken(:\n")
        cli.wait_line(
            r".*reload: importing app:make failed: the workers keep the running code", mark
        )
        cli.wait_line(r"SyntaxError: .*", mark)
        assert await echo(port, "x") == "v1:x"


SHARED_APP = """
from pyswoole import SWOOLE_PROCESS, Atomic, WebSocketServer

VERSION = "v1"


def make(mode=SWOOLE_PROCESS):
    counter = Atomic(0)  # shared by the workers, held by a closure: not a module global
    s = WebSocketServer("127.0.0.1", 0, mode)

    @s.on("message")
    def on_message(server, frame):
        server.push(frame.fd, f"{VERSION}:{counter.add(1)}")

    return s
"""


async def test_process_mode_with_closure_held_shared_memory_restarts(tmp_path: Path) -> None:
    """A reload could not keep an Atomic held in a closure (a new import makes a new,
    unshared one): such an application is restarted on a change, as in SWOOLE_BASE."""
    pytest.importorskip("watchfiles")
    (tmp_path / "shared.py").write_text(SHARED_APP)
    argv = ("shared:make", "--factory", "--workers", "2", "--port", "0", "--reload")
    with running(tmp_path, *argv, "--reload-dir", str(tmp_path)) as cli:
        cli.wait_line(r"pyswoole: the application holds Table/Atomic/Lock objects .*")
        first = cli.wait_line(SERVING)
        assert await echo(int(first[1]), "x") == "v1:1"
        assert await echo(int(first[1]), "x") == "v1:2"  # one counter for both workers
        mark = len(cli.lines)
        (tmp_path / "shared.py").write_text(SHARED_APP.replace('"v1"', '"v2"'))
        cli.wait_line(r"pyswoole: shared\.py changed: restarting", mark)
        second = cli.wait_line(SERVING, mark)
        assert await echo(int(second[1]), "x") == "v2:1"
