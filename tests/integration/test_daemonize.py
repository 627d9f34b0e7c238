"""daemonize: the program returns at once, the server detaches and serves, pid_file is its
pid while it runs and is removed after SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import websockets

TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    """Bounded polling for state that has no event (a file appearing, a pid going away)."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_daemonize_detaches_serves_and_stops(tmp_path: Path) -> None:
    port = free_port()
    pid_file = tmp_path / "server.pid"
    program = tmp_path / "daemon.py"
    program.write_text(
        textwrap.dedent(
            f"""
            from pyswoole import WebSocketServer
            server = WebSocketServer("127.0.0.1", {port})
            server.set(daemonize=True, pid_file={str(pid_file)!r},
                       log_file={str(tmp_path / "server.log")!r}, worker_num=2)

            @server.on("message")
            def on_message(server, frame):
                server.push(frame.fd, "daemon:" + frame.data)

            server.start()
            """
        )
    )
    launcher = subprocess.run(
        [sys.executable, str(program)], timeout=TIMEOUT, capture_output=True, text=True
    )
    assert launcher.returncode == 0, launcher.stderr
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), "the pid file")
    pid = int(pid_file.read_text())
    try:
        assert alive(pid)  # still running after the launcher returned
        assert os.getsid(pid) != os.getsid(0)  # its own session: detached from ours

        async def talk() -> str:
            async with websockets.connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as ws:
                await ws.send("x")
                return str(await asyncio.wait_for(ws.recv(), TIMEOUT))

        deadline = time.monotonic() + TIMEOUT
        while True:  # the daemon may still be binding: retry connection refusals, bounded
            try:
                assert asyncio.run(talk()) == "daemon:x"
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not alive(pid), "the daemon to exit")
    wait_for(lambda: not pid_file.exists(), "the pid file to be removed")
