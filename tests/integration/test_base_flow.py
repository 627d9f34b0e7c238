"""SWOOLE_BASE with 2 workers over the wire: a push from one worker to a client another
worker owns, when that client reads nothing (server/base_flow.py).

The client's worker (A) hands the command to the other worker (B) with ``send_message``
(``other:`` in ``tests/integration/programs/push_async_server.py``), so every push crosses
IPC. A marks the fd full/overflowing in the shared table; B's ``push`` is then refused
without IPC, B's ``get_client_info`` reports A's queue, B's ``push_async`` waits for room,
and nothing B was told True for is lost. Synchronisation is on the program's event lines
and on the socket, never on sleeps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyswoole.constants import SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
from pyswoole.process.ipc import Inbox
from pyswoole.server.process_mode import IPC_HIGH_WATER, IPC_READ_SLACK
from tests.integration.hostile import RawWebSocket, client_frame
from tests.integration.serverproc import ServerProcess

PROGRAM = Path(__file__).parent / "programs" / "push_async_server.py"
KiB = 1024
MiB = 1024 * KiB
LIMIT = 256 * KiB  # the program's socket_buffer_size
TIMEOUT = 10.0


@contextlib.contextmanager
def base_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """The program in SWOOLE_BASE mode with 2 workers; stopped afterwards."""
    server = ServerProcess(PROGRAM, tmp_path, "--mode", "base", "--workers", "2")
    try:
        server.wait_ready(2)
        yield server
    finally:
        server.stop()


def from_other_worker(server: ServerProcess, client: RawWebSocket, command: str) -> int:
    """Have the worker that does not own the client's connection run ``command`` for it;
    the mark where its output starts."""
    mark = server.mark()
    client.sock.sendall(client_frame(1, f"other:{command}".encode()))
    forward = server.wait_line(r"forward (\d+) (\d+)", TIMEOUT, mark)
    fd, owner = int(forward[1]), int(forward[2])
    pipe = server.wait_line(rf"pipe {fd} (\d+) (-?\d+)", TIMEOUT, mark)
    assert int(pipe[1]) == 1 - owner, pipe[0]  # (runs in the other worker)
    assert int(pipe[2]) == owner, pipe[0]  # (its get_client_info names the owner)
    return mark


def test_a_push_from_another_worker_to_an_overflowing_fd_is_refused(tmp_path: Path) -> None:
    """Worker B pushes 64 KiB every 1 ms to A's client, which reads nothing: A queues up
    to socket_buffer_size (256 KiB) beyond the kernel's buffers, then marks the fd
    overflowing in the shared table, and B's next ``push`` returns False with
    SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW (as Swoole's ``conn->overflow``); B's
    ``get_client_info`` reports A's queue (``send_queued_bytes`` past the limit,
    ``buffer_full``). Nothing B was told True for is lost: once the client reads, every
    taken message arrives, in order, then B's ``push_async`` "done"; A logged no drop."""
    with base_server(tmp_path) as server:
        client = RawWebSocket(server.port)  # a 4 KiB receive buffer, not read yet
        try:
            mark = from_other_worker(server, client, "sync:2000:65536")
            refused = server.wait_line(r"refused (\d+) (\d+) (-?\d+) (-?\d+)", TIMEOUT, mark)
            taken, error, queued, full = (int(refused[i]) for i in range(1, 5))
            assert 0 < taken < 2000
            assert error == SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
            assert queued >= LIMIT and full == 1, refused[0]
            got: list[tuple[int, bytes]] = []
            client.drain(b"", taken + 1, lambda b0, body: got.append((b0, body)), 10.0)
            numbers = [int.from_bytes(body[:4], "little") for b0, body in got if b0 == 0x82]
            assert numbers == list(range(taken))
            assert got[taken] == (0x81, f"done {taken}".encode())
        finally:
            client.close()
        assert "output buffer overflow" not in server.stderr()


def test_push_async_from_another_worker_waits_for_room(tmp_path: Path) -> None:
    """Worker B's ``await push_async`` of 256 x 64 KiB (16 MiB: more than the limit, the
    kernel's socket buffers and the IPC in flight hold) to A's client that reads nothing
    yet waits for room (A's FULL mark in the table) instead of being dropped by A: the
    loop cannot finish before the client reads; then every message arrives, in order,
    and ``done 256``; A logged no drop."""
    count, size = 256, 64 * KiB
    with base_server(tmp_path) as server:
        client = RawWebSocket(server.port)
        try:
            mark = from_other_worker(server, client, f"go:{count}:{size}")
            with pytest.raises(AssertionError):  # waiting for room
                server.wait_line(r"pushed \d+", 0.5, mark)
            got: list[tuple[int, bytes]] = []
            client.drain(b"", count + 1, lambda b0, body: got.append((b0, body)), 10.0)
            numbers = [int.from_bytes(body[:4], "little") for b0, body in got if b0 == 0x82]
            assert numbers == list(range(count))
            assert got[count] == (0x81, f"done {count}".encode())
            assert server.wait_line(r"pushed (\d+)", TIMEOUT, mark)[1] == str(count)
        finally:
            client.close()
        assert "output buffer overflow" not in server.stderr()


def test_what_another_worker_sent_past_the_cap_is_dropped_with_one_warning(
    tmp_path: Path,
) -> None:
    """Worker B pushes ~22 MiB to A's client, then at once (before A can have marked the
    fd: the big push is still crossing IPC) 20 x 1 KiB; B was told True for all. A queues
    the big one, and the 20 arrive past the cap (socket_buffer_size plus an IPC window,
    ~10 MiB here): dropped with one warning naming the fd and the sizes, not 20; B's
    later pushes are refused. Once the client reads: the big message, then "done"."""
    inbox = Inbox(0)  # the kernel buffer the server's inboxes get here
    window = inbox.send_buffer + IPC_HIGH_WATER + IPC_READ_SLACK
    inbox.close()
    big, count = window + 12 * MiB, 20  # (past the cap whatever TCP's buffers take)
    with base_server(tmp_path) as server:
        client = RawWebSocket(server.port)
        try:
            mark = from_other_worker(server, client, f"burst:{count}:{big}:1024")
            assert int(server.wait_line(r"burst (\d+)", TIMEOUT, mark)[1]) == count + 1
            then = int(server.wait_line(r"then (\d+)", TIMEOUT, mark)[1])
            assert then == SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
            got: list[tuple[int, int]] = []
            client.drain(b"", 2, lambda b0, body: got.append((b0, len(body))), 10.0)
            assert got == [(0x82, big), (0x81, 4)], got
        finally:
            client.close()
        warnings = [
            line for line in server.stderr().splitlines() if "output buffer overflow" in line
        ]
        assert len(warnings) == 1, warnings
        assert "dropped 1024 bytes" in warnings[0] and "socket_buffer_size 262144" in warnings[0]
