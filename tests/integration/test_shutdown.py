"""The graceful stop: what is in flight finishes, then clients get 1001; a second signal
stops at once. ``reload()`` drains a worker the same way.

The budget is ``max_wait_time``: the worker drains (HTTP responses in flight, queued
output, running callbacks), then sends every WebSocket client a 1001 close frame and waits
for the closing handshakes, then aborts what is left (runtime/worker.py, ``_shutdown``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import websockets

from tests.integration.hostile import RawWebSocket, client_frame
from tests.integration.serverproc import ServerProcess
from tests.integration.test_flow_control import PROGRAM, command

STOP_TIMEOUT = 20.0


def start(tmp_path: Path, *args: str, workers: int = 1) -> ServerProcess:
    server = ServerProcess(PROGRAM, tmp_path, "--workers", str(workers), *args)
    server.wait_ready(workers)
    return server


def http_get(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=STOP_TIMEOUT)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_sigterm_lets_an_http_response_in_flight_finish(tmp_path: Path) -> None:
    server = start(tmp_path, "--set", "max_wait_time=10")
    try:
        sock = http_get(server.port, "/slow?ms=800")
        with sock:
            server.wait_line(r"slow \d+", 10)
            os.kill(server.proc.pid, signal.SIGTERM)
            answer = read_to_eof(sock)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nslow")
        assert server.proc.wait(STOP_TIMEOUT) == 0
    finally:
        server.stop()


@pytest.mark.parametrize("mode", [(), ("--process",)], ids=["base", "process"])
def test_ctrl_c_to_the_process_group_is_one_graceful_stop(
    tmp_path: Path, mode: tuple[str, ...]
) -> None:
    """A terminal's Ctrl-C sends SIGINT to every process of the group. SWOOLE_BASE: the
    manager turns it into SIGTERM for its workers, which must not take their own SIGINT as a
    first signal and the manager's SIGTERM as a second (stop at once). SWOOLE_PROCESS: the
    master must not take the manager's exit during its own stop for a failure (it logged
    ERROR "the manager exited"). Either way the response in flight on a worker finishes,
    every process exits 0, and nothing is logged as an error or a second signal."""
    server = start(tmp_path, *mode, "--set", "max_wait_time=10", workers=2)
    try:
        sock = http_get(server.port, "/slow?ms=800")
        with sock:
            server.wait_line(r"slow \d+", 10)
            os.killpg(server.pgid, signal.SIGINT)
            answer = read_to_eof(sock)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nslow")
        assert server.proc.wait(STOP_TIMEOUT) == 0
        errors = server.stderr()
        assert "ERROR" not in errors and "second signal" not in errors, errors
    finally:
        server.stop()


def fill(server: ServerProcess, target: RawWebSocket, n: int) -> int:
    """Tag ``target`` and have the server push it ``n`` x 64 KiB: how many it accepted."""
    target.sock.sendall(client_frame(1, b"tag:target"))

    async def run() -> int:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            fd = (await command(ws, "tags"))[0]["tags"]["target"]  # type: ignore[index]
            filled, _ = await command(ws, f"fill:{fd}:{n}:65536")
            return filled["ok"][str(fd)]  # type: ignore[index,no-any-return]

    return asyncio.run(run())


def test_sigterm_writes_what_is_queued_then_sends_1001(tmp_path: Path) -> None:
    server = start(tmp_path, "--set", "max_wait_time=10")
    target = RawWebSocket(server.port)
    try:
        accepted = fill(server, target, 16)
        assert accepted == 16  # (1 MiB: under the default 8 MiB limit)
        os.kill(server.proc.pid, signal.SIGTERM)
        frames: list[tuple[int, bytes]] = []
        target.drain(b"", accepted + 1, lambda b0, body: frames.append((b0, body)))
        assert frames[:accepted] == [(0x82, b"f" * 65536)] * accepted  # all of it, intact
        b0, body = frames[accepted]
        assert b0 == 0x88 and int.from_bytes(body[:2], "big") == 1001
        target.sock.setblocking(True)
        target.sock.sendall(client_frame(8, body[:2]))  # the client's answer
        assert server.proc.wait(STOP_TIMEOUT) == 0
    finally:
        target.close()
        server.stop()


def test_a_second_sigterm_stops_at_once(tmp_path: Path) -> None:
    # A client that never reads keeps the drain waiting for the whole budget (30 s here);
    # a second SIGTERM ends it: the process exits within the bounded wait, well before.
    server = start(tmp_path, "--set", "max_wait_time=30")
    target = RawWebSocket(server.port)
    try:
        assert fill(server, target, 64) == 64  # 4 MiB queued, which it never reads
        os.kill(server.proc.pid, signal.SIGTERM)
        wait_refused(server.port)  # the stop began (two signals at once would coalesce)
        assert server.proc.poll() is None  # draining: the client has not read anything
        os.kill(server.proc.pid, signal.SIGTERM)
        assert server.proc.wait(10) == 0
        assert "second signal: stopping at once" in server.stderr()
    finally:
        target.close()
        server.stop()


def wait_refused(port: int, timeout: float = 10.0) -> None:
    """Poll until the listener is closed (no event tells another process's state): the
    connect is refused, or reset (it was in the backlog when the listening socket closed)."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, "the server still accepts connections"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except (ConnectionRefusedError, ConnectionResetError):
            return
        time.sleep(0.02)  # polling interval, not an ordering assumption


def test_reload_in_base_mode_lets_a_response_in_flight_finish(tmp_path: Path) -> None:
    server = start(tmp_path, "--set", "max_wait_time=10", workers=2)
    try:
        sock = http_get(server.port, "/slow?ms=800")
        with sock:
            server.wait_line(r"slow \d+", 10)
            mark = server.mark()
            os.kill(server.proc.pid, signal.SIGUSR1)  # the manager: reload
            answer = read_to_eof(sock)  # the old worker closes it once answered
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nslow")
        for worker_id in (0, 1):  # both workers were replaced
            server.wait_line(rf"workerStart {worker_id} \d+ worker", 20, mark)
    finally:
        server.stop()
