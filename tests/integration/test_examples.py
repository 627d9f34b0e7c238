"""The example programs, run as real processes: ``examples/seed.py`` and ``examples/echo.py``."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websockets

from tests.integration.conftest import ROOT, echo_process, read_line, stop

SEED = ROOT / "examples" / "seed.py"
TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_listening(port: int) -> bool:
    """True once some socket listens on 127.0.0.1:``port``, found without connecting to it
    (a probe connection would be a client of the server: its fd and its close callback)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        next(table)
        return any(
            fields[1] == want and fields[3] == "0A"  # 0A: TCP_LISTEN
            for fields in (line.split() for line in table)
        )


def wait_listening(proc: subprocess.Popen[str], port: int, stderr: Path) -> None:
    """Wait until the program listens (seed.py prints nothing when it starts)."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp to see the listening socket")
    deadline = time.monotonic() + TIMEOUT
    while not is_listening(port):
        assert proc.poll() is None, f"exited with {proc.returncode}: {stderr.read_text()}"
        assert time.monotonic() < deadline, f"port {port} not listening after {TIMEOUT} s"
        time.sleep(0.02)  # polling interval for readiness, not an ordering assumption


async def test_seed_example(tmp_path: Path) -> None:
    """Swoole's introductory example, verbatim but for its port, behaves like Swoole's."""
    source = SEED.read_text()
    assert source.count("9501") == 1
    port = free_port()
    script = tmp_path / "seed.py"
    script.write_text(source.replace("9501", str(port)))
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(script)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # so each line can be awaited
        )
    try:
        wait_listening(proc, port, stderr_path)
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/", ping_interval=None, close_timeout=5
        ) as ws:
            await ws.send("hello swoole")
            reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert reply == "This message is from swoole websocket server."
        assert ws.close_code == 1000
        lines = [read_line(proc.stdout, TIMEOUT) for _ in range(3)]
        assert lines == [
            "server: handshake success with fd1\n",
            "receive from 1:hello swoole,opcode:1,fin:True\n",
            "client 1 closed\n",
        ]
        code = stop(proc, signal.SIGINT)
        rest = proc.stdout.read()
        assert rest == "", f"unexpected output after the close: {rest!r}"
        assert code == 0, f"exit code {code} after SIGINT; stderr: {stderr_path.read_text()}"
    finally:
        stop(proc)
        proc.stdout.close()


async def test_echo_options_and_sigterm() -> None:
    """``--max-length`` and ``--workers 1`` are honoured; SIGTERM closes clients with 1001
    and the program exits with code 0."""
    with echo_process("--max-length", "2048", "--workers", "1") as server:
        async with websockets.connect(
            server.url, max_size=None, ping_interval=None, close_timeout=5
        ) as ws:
            # the limit counts the frame with its header (4 length + 4 mask bytes here)
            await ws.send("*" * 2040)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "*" * 2040
            await ws.send(b"\xfe" * 2041)
            with pytest.raises(websockets.ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 1009

        async with websockets.connect(
            server.url, max_size=None, ping_interval=None, close_timeout=5
        ) as ws:
            await ws.send(b"ping")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == b"ping"
            os.kill(server.proc.pid, signal.SIGTERM)
            await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
            assert ws.close_code == 1001
        code = await asyncio.to_thread(server.proc.wait, TIMEOUT)
        assert code == 0, f"exit code {code} after SIGTERM; stderr: {server.stderr()}"
        assert server.proc.stdout.read() == "", "echo.py prints one line only"


def test_echo_rejects_bad_options() -> None:
    """argparse errors exit with status 2 and a usage message, without serving."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "echo.py"), "--max-length", "lots"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 2
    assert "--max-length" in proc.stderr
    assert proc.stdout == ""
