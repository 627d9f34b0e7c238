"""Integration fixtures: ``examples/echo.py`` as a real subprocess on a free port.

The conformance suite talks to the very program the external checkers (Autobahn|Testsuite's
fuzzingclient) will run, started the same way: ``python examples/echo.py --port 0``. The
program prints one line ``echo server listening on ws://127.0.0.1:PORT/`` when it serves;
the fixture reads the port from that line (bounded wait) and stops the process by PID
(SIGTERM; the program runs in a session of its own, so if it hangs, SIGKILL goes to that
process group: its workers too).

The session's echo servers run in every process mode (:data:`ECHO_MODES`): the default
one-process server, SWOOLE_BASE with 2 workers and SWOOLE_PROCESS with 2 workers. The
``echo_mode`` fixture is parametrized over them and both ``echo_server`` and
``small_echo_server`` follow it, so a test using either runs once per mode (its id names the
mode) and a test using both talks to two servers of the same mode.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ECHO = ROOT / "examples" / "echo.py"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0
_LISTENING = re.compile(r"^echo server listening on ws://127\.0\.0\.1:(\d+)/$")

#: the process modes of the session's echo servers: test id -> ``examples/echo.py`` options
ECHO_MODES: dict[str, tuple[str, ...]] = {
    "one-process": (),
    "base-2-workers": ("--mode", "base", "--workers", "2"),
    "process-2-workers": ("--mode", "process", "--workers", "2"),
}


@dataclass
class EchoProcess:
    proc: subprocess.Popen[str]
    port: int
    first_line: str
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def read_line(stream, timeout: float) -> str:
    """One line from a subprocess pipe, waiting at most ``timeout`` seconds."""
    box: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: box.put(stream.readline()), daemon=True).start()
    try:
        return box.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no line from the subprocess within {timeout} s") from None


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    """Send ``sig`` to the process (by PID) and wait for it; kill it if it hangs."""
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait(STOP_TIMEOUT)
            raise AssertionError(f"pid {proc.pid} ignored signal {sig}; killed") from None
    assert proc.returncode is not None
    return proc.returncode


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the process and, if it leads the session ``echo_process`` created for it,
    its group (the workers of a multi-process server)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
            return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def echo_process(*args: str) -> Iterator[EchoProcess]:
    """Run ``examples/echo.py --port 0 *args``; yield once it listens; stop it afterwards."""
    with tempfile.TemporaryDirectory(prefix="pyswoole-echo-") as tmp:
        stderr_path = Path(tmp) / "stderr.txt"
        with stderr_path.open("w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, str(ECHO), "--port", "0", *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=ROOT,
                start_new_session=True,
            )
        try:
            line = read_line(proc.stdout, START_TIMEOUT).rstrip("\n")
            match = _LISTENING.match(line)
            assert match, (
                f"unexpected first line {line!r}; stderr: {stderr_path.read_text()[-2000:]}"
            )
            yield EchoProcess(proc, int(match.group(1)), line, stderr_path)
        finally:
            stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture(scope="session", params=list(ECHO_MODES))
def echo_mode(request: pytest.FixtureRequest) -> str:
    """The process mode of the session's echo servers (an :data:`ECHO_MODES` key)."""
    return str(request.param)


@pytest.fixture(scope="session")
def echo_server(echo_mode: str) -> Iterator[EchoProcess]:
    """``examples/echo.py`` with the default settings (16 MiB messages) in ``echo_mode``,
    one per session and mode."""
    with echo_process(*ECHO_MODES[echo_mode]) as server:
        yield server


@pytest.fixture(scope="session")
def small_echo_server(echo_mode: str) -> Iterator[EchoProcess]:
    """``examples/echo.py --max-length 1024`` in ``echo_mode``: the message-too-big cases."""
    with echo_process("--max-length", "1024", *ECHO_MODES[echo_mode]) as server:
        yield server


GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


def swoole_handshake(request: Any, response: Any, extensions: str | None = None) -> bool:
    """Swoole's documented custom handshake sample, in Python: a 101 for a valid key (with
    the client's subprotocol echoed and ``extensions`` if given), else an empty answer."""
    key = request.header.get("sec-websocket-key", "")
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        valid = False
    if not valid:
        response.end()
        return False
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Accept": accept,
        "Sec-WebSocket-Version": "13",
    }
    if "sec-websocket-protocol" in request.header:
        headers["Sec-WebSocket-Protocol"] = request.header["sec-websocket-protocol"]
    if extensions is not None:
        headers["Sec-WebSocket-Extensions"] = extensions
    for name, value in headers.items():
        response.header(name, value)
    response.status(101)
    response.end()
    return True
