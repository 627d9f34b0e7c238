"""SWOOLE_PROCESS mode over the wire: replies before the close, flow control across IPC,
and the buffer events, with ``tests/integration/programs/ipc_flow_server.py``.

The master owns every connection; the program's workers answer slowly on purpose (a
blocking or ``async def`` callback), so that what these tests check cannot pass by luck of
timing:

* the reply to a message that arrived whole leaves before the close frame, whether the
  client closes or fails the connection, and whether the callback is plain (slow) or
  ``async def`` (still running when the close arrives); a barrier left in the inbox of a
  reloading worker is answered by its replacement;
* a client flooding a slow worker gets every echo, in order, and the server's memory (the
  master and all its children) stays bounded;
* ``bufferFull``/``bufferEmpty`` run in the fd's worker;
* a worker's ``push`` to a client whose queue in the master overflows returns False (the
  master's mark in the shared table), ``push_async`` waits for room and fails when the
  client is gone (``tests/integration/programs/push_async_server.py``).

Synchronisation is on the program's event lines and on the socket, never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from pyswoole.constants import SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
from pyswoole.process.ipc import Inbox
from pyswoole.server.process_mode import IPC_HIGH_WATER, IPC_READ_SLACK
from tests.integration.hostile import RawWebSocket, client_frame
from tests.integration.serverproc import ServerProcess
from tests.integration.test_conformance import BINARY, TEXT, Client, close, frame

PROGRAM = Path(__file__).parent / "programs" / "ipc_flow_server.py"
WORKERS = 2
KiB = 1024
MiB = 1024 * KiB
TIMEOUT = 10.0  # every blocking read on a raw socket


@contextlib.contextmanager
def flow_server(tmp_path: Path, *args: str) -> Iterator[ServerProcess]:
    """The program in SWOOLE_PROCESS mode with 2 workers; stopped (by PID, then its
    process group) afterwards."""
    server = ServerProcess(PROGRAM, tmp_path, "--workers", str(WORKERS), *args)
    try:
        server.wait_ready(WORKERS, manager_line=True)
        yield server
    finally:
        server.stop()


def opened(server: ServerProcess, start: int) -> tuple[int, int, int]:
    """``(fd, worker_id, pid)`` of the next connection's ``open`` line after ``start``."""
    match = server.wait_line(r"open (\d+) (\d+) (\d+)", TIMEOUT, start)
    return int(match[1]), int(match[2]), int(match[3])


def memory(pids: list[int], field: str) -> int:
    """The sum of ``field`` (VmRSS, VmHWM: kB) of ``pids`` in bytes, from /proc."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                total += int(line.split()[1]) * 1024
    return total


# -- replies before the close --------------------------------------------------------------


def test_replies_leave_before_the_close_frame(tmp_path: Path) -> None:
    """A reply made 300 ms after its message arrived (blocking or ``async def``) still
    precedes the close frame, for a client's close and for a protocol error (the 3.x/4.x
    family of Autobahn, with a slow worker)."""
    with flow_server(tmp_path) as server:
        rsv1, rsv2 = frame(TEXT, b"x", rsv=1), frame(TEXT, b"x", rsv=2)
        cases = [
            ([frame(TEXT, b"a:300:async-then-close"), close(1000)], b"async-then-close", 1000),
            ([frame(TEXT, b"a:300:async-then-rsv"), rsv1], b"async-then-rsv", 1002),
            ([frame(TEXT, b"s:300:slow-then-rsv"), rsv2], b"slow-then-rsv", 1002),
            ([frame(TEXT, b"s:300:slow-then-opcode"), frame(3)], b"slow-then-opcode", 1002),
            ([frame(BINARY, b"\x00\xff" * 300), close(1001)], b"\x00\xff" * 300, 1001),
        ]
        for frames, reply, code in cases:
            c = Client(server.port, TIMEOUT)
            try:
                c.send_frames(frames)
                c.expect_message(BINARY if reply.startswith(b"\x00") else TEXT, reply)
                if code == 1002:
                    c.expect_failure(code)
                else:
                    c.expect_close(code)
                    c.expect_eof()
            finally:
                c.close()
        assert "closing without waiting longer" not in server.stderr()


def test_the_close_waits_at_most_max_wait_time(tmp_path: Path) -> None:
    """An ``async def`` callback slower than ``max_wait_time`` does not hold the close
    longer: the close reply comes after about max_wait_time, without the late reply."""
    with flow_server(tmp_path, "--max-wait-time", "1") as server:
        c = Client(server.port, TIMEOUT)
        try:
            start = time.monotonic()
            c.send_frames([frame(TEXT, b"a:4000:too-late"), close(1000)])
            c.expect_close(1000)
            waited = time.monotonic() - start
            c.expect_eof()
        finally:
            c.close()
        # (expect_close saw the close frame first: the late reply was not sent before it)
        assert 0.8 <= waited < 3.5, f"the close came after {waited:.2f} s (max_wait_time 1 s)"


def test_a_barrier_left_in_a_reloading_workers_inbox_is_answered(tmp_path: Path) -> None:
    """The message and the close a client sends after its worker stopped reading (it is
    being reloaded) wait in that worker's inbox; the replacement echoes the message and
    acknowledges the barrier: echo, then close reply, long before max_wait_time (8 s)."""
    with flow_server(tmp_path, "--max-wait-time", "8") as server:
        mark = server.mark()
        c = Client(server.port, TIMEOUT)
        try:
            fd, worker_id, pid = opened(server, mark)
            assert worker_id == fd % WORKERS
            c.send(frame(TEXT, b"before"))
            c.expect_message(TEXT, b"before")
            mark = server.mark()
            os.kill(server.proc.pid, signal.SIGUSR1)  # the master passes it to the manager
            server.wait_line(rf"workerStop {worker_id} {pid}", TIMEOUT, mark)
            start = time.monotonic()
            c.send_frames([frame(TEXT, b"after"), close(1000)])
            c.expect_message(TEXT, b"after")
            c.expect_close(1000)
            c.expect_eof()
            waited = time.monotonic() - start
        finally:
            c.close()
        new_pid = int(server.wait_line(rf"workerStart {worker_id} (\d+) worker", TIMEOUT, mark)[1])
        assert new_pid != pid
        assert waited < 5.0, f"the close came after {waited:.2f} s: the barrier timed out"


# -- flow control across IPC -----------------------------------------------------------------


async def test_a_slow_worker_loses_no_event_and_memory_stays_bounded(tmp_path: Path) -> None:
    """A client floods 100 MiB (1600 x 64 KiB) at a worker that takes 2 ms per message while
    it reads the echoes: the master stops reading the client while the worker's IPC queue
    is long, so every echo arrives, in order, and the RSS of the master and its children
    grows by less than 64 MiB over idle (the Mailer alone would have queued 64 MiB, then
    dropped events)."""
    count, size = 1600, 64 * KiB
    with flow_server(tmp_path, "--slow-ms", "2") as server:
        pids = [server.proc.pid, server.manager_pid, *server.pids().values()]
        url = f"ws://127.0.0.1:{server.port}/"
        async with websockets.connect(
            url, max_size=None, compression=None, ping_interval=None, close_timeout=5
        ) as ws:
            await ws.send(b"warm-up")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == b"warm-up"
            idle = memory(pids, "VmRSS")

            def body(seq: int) -> bytes:
                return seq.to_bytes(4, "little") * (size // 4)

            async def send_all() -> None:
                for seq in range(count):
                    await ws.send(body(seq))

            async def read_all() -> int:
                for seq in range(count):
                    got = await asyncio.wait_for(ws.recv(), 30)
                    assert isinstance(got, bytes) and len(got) == size, f"echo {seq}: {len(got)}"
                    number = int.from_bytes(got[:4], "little")
                    assert got == body(seq), f"echo {seq} lost or out of order (got {number})"
                return count

            start = time.monotonic()
            _, received = await asyncio.wait_for(asyncio.gather(send_all(), read_all()), 120)
            elapsed = time.monotonic() - start
        peak = memory(pids, "VmHWM")
        assert received == count
        assert elapsed >= count * 0.002, "the worker was not slow: nothing was tested"
        growth = peak - idle
        print(
            f"flood: {count * size / MiB:.0f} MiB in {elapsed:.1f} s, RSS +{growth / MiB:.1f} MiB"
        )
        assert growth < 64 * MiB, f"RSS grew by {growth / MiB:.1f} MiB (idle {idle / MiB:.1f} MiB)"
        assert "could not hand event" not in server.stderr()


# -- buffer events ---------------------------------------------------------------------------


def test_buffer_full_and_empty_run_in_the_fds_worker(tmp_path: Path) -> None:
    """A client that does not read while its worker pushes 12 MiB (the kernel takes at most
    ~4 MiB of it, the high watermark is 1 MiB, the buffer limit 16 MiB: nothing is
    refused): ``bufferFull`` runs in worker fd % worker_num (not in the master); once the
    client reads, ``bufferEmpty`` runs there too, as often as ``bufferFull`` did, each
    followed by its push ("drained"), and every pushed message arrives, in order."""
    count = 192
    args = ("--buffer-size", str(16 * MiB), "--high-water", str(MiB))
    with flow_server(tmp_path, *args) as server:
        workers = server.pids()
        mark = server.mark()
        c = Client(server.port, TIMEOUT)
        try:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KiB)
            fd, _, _ = opened(server, mark)
            where = (fd % WORKERS, workers[fd % WORKERS])
            c.send(frame(TEXT, f"flood:{count}:65536".encode()))
            full = server.wait_line(rf"bufferFull {fd} (\d+) (\d+)", TIMEOUT, mark)
            assert (int(full[1]), int(full[2])) == where, full[0]
            assert not server.matching(rf"bufferEmpty {fd} .*", mark), "empty before reading"
            numbers: list[int] = []
            drained = 0
            for _ in range(count + 100):  # the pushes, with "drained" between them
                opcode, data = message(c)
                if opcode == TEXT:
                    assert data == b"drained", data[:40]
                    drained += 1
                else:
                    assert len(data) == 65536
                    numbers.append(int.from_bytes(data[:4], "little"))
                    if len(numbers) == count:
                        break
            assert numbers == list(range(count))
            # The last bufferEmpty was sent to the worker before "end" was read: its
            # "drained" comes before "end".
            c.send(frame(TEXT, b"s:0:end"))
            for _ in range(100):
                opcode, data = message(c)
                if data == b"end":
                    break
                assert (opcode, data) == (TEXT, b"drained"), data[:40]
                drained += 1
            fulls = server.matching(rf"bufferFull {fd} (\d+) (\d+)", mark)
            empties = server.matching(rf"bufferEmpty {fd} (\d+) (\d+)", mark)
            assert all((int(m[1]), int(m[2])) == where for m in fulls + empties)
            assert len(fulls) == len(empties) == drained >= 1, (len(fulls), len(empties), drained)
            c.closing_handshake()
        finally:
            c.close()


def message(c: Client) -> tuple[int, bytes]:
    """The next whole message from the server (the program's pushes are never fragmented)."""
    fin, opcode, data = c.next_frame()
    assert fin and opcode in (TEXT, BINARY), (fin, opcode, data[:40])
    return opcode, data


# -- push_async ------------------------------------------------------------------------------

PUSH_ASYNC = Path(__file__).parent / "programs" / "push_async_server.py"


def test_push_async_waits_for_room_in_process_mode(tmp_path: Path) -> None:
    """A worker's ``await push_async`` of 256 x 64 KiB to a client that reads nothing yet
    (socket_buffer_size 256 KiB; 16 MiB, more than the kernel's socket buffers absorb)
    waits for room, as in SWOOLE_BASE (test_flow_control.py): once the client reads, every
    message arrives, in order, then ``done 256``."""
    count, size = 256, 64 * KiB
    server = ServerProcess(PUSH_ASYNC, tmp_path, "--mode", "process", "--workers", "1")
    try:
        server.wait_ready(1)
        client = RawWebSocket(server.port)  # a 4 KiB receive buffer, not read yet
        try:
            mark = server.mark()
            client.sock.sendall(client_frame(1, f"go:{count}:{size}".encode()))
            # Waiting, the loop cannot finish before the client reads (16 MiB: more than
            # the limit, the kernel's socket buffers and the IPC in flight hold)
            with pytest.raises(AssertionError):
                server.wait_line(r"pushed \d+", 1.0, mark)
            got: list[tuple[int, bytes]] = []
            client.drain(b"", count + 1, lambda b0, body: got.append((b0, body)), 10.0)
            numbers = [int.from_bytes(body[:4], "little") for b0, body in got if b0 == 0x82]
            assert numbers == list(range(count))
            assert got[count] == (0x81, f"done {count}".encode())
        finally:
            client.close()
        assert "output buffer overflow" not in server.stderr()
    finally:
        server.stop()


def test_push_async_fails_when_the_connection_closes_while_it_waits(tmp_path: Path) -> None:
    """A worker's ``push_async`` waiting for room returns False once the client is gone
    (SWOOLE_ERROR_SESSION_NOT_EXIST): the loop ends early, long before its 30 s timeout."""
    count, size = 256, 64 * KiB
    server = ServerProcess(PUSH_ASYNC, tmp_path, "--mode", "process", "--workers", "1")
    try:
        server.wait_ready(1)
        client = RawWebSocket(server.port)  # not read
        mark = server.mark()
        try:
            client.sock.sendall(client_frame(1, f"go:{count}:{size}".encode()))
            with pytest.raises(AssertionError):  # waiting for room
                server.wait_line(r"pushed \d+", 0.5, mark)
        finally:
            client.close()
        start = time.monotonic()
        pushed = int(server.wait_line(r"pushed (\d+)", TIMEOUT, mark)[1])
        assert pushed < count
        assert time.monotonic() - start < 5.0
    finally:
        server.stop()


def test_a_workers_push_to_an_overflowing_fd_is_refused(tmp_path: Path) -> None:
    """A worker's plain ``push`` to a client that reads nothing: the master queues what
    it can up to socket_buffer_size (256 KiB) beyond the kernel's buffers, then marks the
    fd overflowing in the shared table and the worker's next push returns False with
    SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW, as in SWOOLE_BASE; ``get_client_info`` in the
    worker reports the master's queue (``send_queued_bytes`` past the limit,
    ``buffer_full``). Nothing the worker was told True for is lost: once the client
    reads, every taken message arrives, in order, and the master logged no drop."""
    limit, size = 256 * KiB, 64 * KiB
    server = ServerProcess(PUSH_ASYNC, tmp_path, "--mode", "process", "--workers", "1")
    try:
        server.wait_ready(1)
        client = RawWebSocket(server.port)  # a 4 KiB receive buffer, not read yet
        try:
            mark = server.mark()
            client.sock.sendall(client_frame(1, f"sync:2000:{size}".encode()))
            refused = server.wait_line(r"refused (\d+) (\d+) (-?\d+) (-?\d+)", TIMEOUT, mark)
            taken, error, queued, full = (int(refused[i]) for i in range(1, 5))
            assert 0 < taken < 2000
            assert error == SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
            assert queued >= limit and full == 1, refused[0]
            got: list[tuple[int, bytes]] = []
            client.drain(b"", taken + 1, lambda b0, body: got.append((b0, body)), 10.0)
            numbers = [int.from_bytes(body[:4], "little") for b0, body in got if b0 == 0x82]
            assert numbers == list(range(taken))
            assert got[taken] == (0x81, f"done {taken}".encode())
        finally:
            client.close()
        assert "output buffer overflow" not in server.stderr()
    finally:
        server.stop()


def test_what_arrives_past_the_cap_is_dropped_with_one_warning(tmp_path: Path) -> None:
    """A worker pushes ~22 MiB to a client that reads nothing, then at once (before the
    master can have marked the fd: the big push is still being handed over) 20 more
    messages; its pushes returned True. The master queues the big one, marks the fd
    overflowing, and drops the 20 that arrive past the cap (socket_buffer_size plus an IPC
    window, ~10 MiB here) with one warning naming the fd and the sizes, not 20; the
    worker's later pushes are refused (SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW). Once the
    client reads: the big message, then the ``push_async`` "done", nothing else."""
    inbox = Inbox(0)  # the kernel buffer the server's inboxes get here
    window = inbox.send_buffer + IPC_HIGH_WATER + IPC_READ_SLACK
    inbox.close()
    big, count = window + 12 * MiB, 20  # (past the cap whatever TCP's buffers take)
    server = ServerProcess(PUSH_ASYNC, tmp_path, "--mode", "process", "--workers", "1")
    try:
        server.wait_ready(1)
        client = RawWebSocket(server.port)  # not read yet
        try:
            mark = server.mark()
            client.sock.sendall(client_frame(1, f"burst:{count}:{big}:1024".encode()))
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
    finally:
        server.stop()
