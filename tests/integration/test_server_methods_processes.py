"""The Server methods of issue 12 across processes (programs/control_server.py): ``stop``
of another worker and of the current one (the manager replaces it), the worker queries
against the real pids, ``pause``/``resume`` of a connection the caller's worker does not
own (SWOOLE_PROCESS: the master owns it), and ``stats()`` adding up every process's wire
bytes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pyswoole import SWOOLE_WORKER_BUSY, SWOOLE_WORKER_IDLE
from tests.integration.serverproc import (
    EVENT_TIMEOUT,
    Client,
    ServerProcess,
    client_pool,
    connect,
)

PROGRAM = Path(__file__).parent / "programs" / "control_server.py"
WORKERS = 2


@asynccontextmanager
async def control_server(
    tmp_path: Path, mode: str, *args: str, processes: int = WORKERS
) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(PROGRAM, tmp_path, "--mode", mode, "--workers", str(WORKERS), *args)
    try:
        await asyncio.to_thread(server.wait_ready, processes, True)
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def test_stop_another_worker_and_the_worker_queries(tmp_path: Path) -> None:
    async with control_server(tmp_path, "base") as server, client_pool() as pool:
        client = await connect(server, pool)
        own, other = client.worker, 1 - client.worker
        pids = server.pids()
        answer = await client.request("pids")
        assert answer["manager"] == server.manager_pid
        assert answer["master"] == server.proc.pid  # SWOOLE_BASE: the process that started
        assert answer["worker_id"] == own
        assert (await client.request(f"pid:{other}"))["pid"] == pids[other]
        assert (await client.request("pid:-1"))["pid"] == pids[own] == client.pid
        assert (await client.request("pid:7"))["pid"] is False
        assert (await client.request(f"status:{other}"))["status"] == SWOOLE_WORKER_IDLE
        assert (await client.request("status:-1"))["status"] == SWOOLE_WORKER_BUSY
        assert (await client.request("status:7"))["status"] is False
        assert (await client.request("stop:7"))["ok"] is False

        mark = server.mark()
        assert (await client.request(f"stop:{other}"))["ok"] is True
        await server.expect(rf"workerStop {other} {pids[other]}", EVENT_TIMEOUT, mark)
        started = await server.expect(rf"workerStart {other} (\d+) worker", EVENT_TIMEOUT, mark)
        new_pid = int(started[1])
        assert new_pid != pids[other]
        assert not server.matching(r"workerError .*", mark)  # a planned, clean exit
        assert (await client.request(f"pid:{other}"))["pid"] == new_pid
        await client.echo("still served")  # the caller's worker went on


async def test_stop_current_worker_closes_its_clients_and_is_replaced(tmp_path: Path) -> None:
    async with control_server(tmp_path, "base") as server, client_pool() as pool:
        client = await connect(server, pool)
        mark = server.mark()
        assert (await client.request("stop:-1"))["ok"] is True
        assert await client.wait_closed() == 1001  # its graceful stop: going away
        await server.expect(rf"workerStop {client.worker} {client.pid}", EVENT_TIMEOUT, mark)
        started = await server.expect(
            rf"workerStart {client.worker} (\d+) worker", EVENT_TIMEOUT, mark
        )
        assert int(started[1]) != client.pid
        fresh = await connect(server, pool)
        await fresh.echo("served after the restart")


async def test_pause_and_resume_a_connection_the_master_owns(tmp_path: Path) -> None:
    async with control_server(tmp_path, "process") as server, client_pool() as pool:
        # the master runs no worker: no worker id or pid there, as in Swoole
        start = server.wait_line(r"start (\S+) (\S+) (\d+)", EVENT_TIMEOUT)
        assert start.group(1, 2) == ("False", "False")
        a = await connect(server, pool)
        b = await connect(server, pool)
        assert (await b.request(f"pause:{a.fd}"))["ok"] is True  # IPC to the master
        assert (await b.request("pause:99999"))["ok"] is False
        await a.send("e:held")
        for _ in range(5):  # round trips through the master while a's message waits
            await b.request("pids")
        assert a.messages.empty()
        assert (await b.request(f"resume:{a.fd}"))["ok"] is True
        assert await a.message() == "e:held"
        assert (await b.request(f"protect:{a.fd}"))["ok"] is True


async def wait_stats(client: Client, done: object, what: str) -> dict[str, object]:
    """Ask for stats() until ``done(stats)`` holds: other processes publish every 0.5 s."""
    deadline = time.monotonic() + EVENT_TIMEOUT
    for _ in range(200):
        stats = (await client.request("stats"))["stats"]
        if done(stats):  # type: ignore[operator]
            return stats  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"stats never showed {what}: {stats}"
        await asyncio.sleep(0.05)  # polling interval for another process's publication
    raise AssertionError(f"stats never showed {what}")


async def test_stats_add_up_the_masters_wire_bytes(tmp_path: Path) -> None:
    async with control_server(tmp_path, "process") as server, client_pool() as pool:
        a = await connect(server, pool)
        first = (await a.request("stats"))["stats"]
        assert first["worker_num"] == WORKERS and first["connection_num"] == 1
        assert "tasking_num" not in first
        payload = "e:" + "x" * 5000
        await a.send(payload)
        assert await a.message() == payload
        # the master read a 5010-byte frame (2 + 2 + 4 + 5002) and wrote a 5006-byte one
        grown = await wait_stats(
            a,
            lambda s: (
                s["total_recv_bytes"] - first["total_recv_bytes"] >= 5010
                and s["total_send_bytes"] - first["total_send_bytes"] >= 5006
            ),
            "the echo's bytes",
        )
        assert grown["accept_count"] == 1


async def test_heartbeat_from_a_worker_covers_the_masters_connections(tmp_path: Path) -> None:
    async with (
        control_server(tmp_path, "process", "--heartbeat") as server,
        client_pool() as pool,
    ):
        a = await connect(server, pool)
        b = await connect(server, pool)
        c = await connect(server, pool)
        assert (await a.request(f"protect:{c.fd}"))["ok"] is True
        # a keeps talking (its activity reaches the shared table within 0.5 s); b and c
        # stay quiet until b is idle for 1 s; c is protected
        deadline = time.monotonic() + EVENT_TIMEOUT
        while True:
            fds = (await a.request("hb:0:1.0"))["fds"]
            if b.fd in fds:
                break
            assert time.monotonic() < deadline, f"{b.fd} never idle: {fds}"
            await asyncio.sleep(0.1)  # a's pace: it must stay active, b quiet
        assert fds == [b.fd]  # listed only: not closed
        assert (await a.request("hb:1:1.0"))["fds"] == [b.fd]
        assert await b.wait_closed() == 1001  # closed by the master, as the periodic check
        await c.echo("protected, still here")


async def test_delay_receive_confirmed_by_a_worker(tmp_path: Path) -> None:
    """SWOOLE_PROCESS: the master holds a new connection unread; on("connect") runs in a
    worker, whose confirm(fd) reaches the master over IPC; only then is the handshake read."""
    async with control_server(tmp_path, "process", "--delay") as server, client_pool() as pool:
        mark = server.mark()
        client = await connect(server, pool)  # the handshake completes: confirmed
        await server.expect(rf"connect {client.fd} {client.worker}", EVENT_TIMEOUT, mark)
        await client.echo("read after confirm")
        assert (await client.request("confirm:99999"))["ok"] is False


async def test_stats_in_a_task_worker(tmp_path: Path) -> None:
    async with (
        control_server(tmp_path, "base", "--task-workers", "1", processes=WORKERS + 1) as server,
        client_pool() as pool,
    ):
        client = await connect(server, pool)
        mine = (await client.request("stats"))["stats"]
        theirs = (await client.request("taskstats"))["stats"]
        assert theirs["start_time"] == mine["start_time"]  # the server's, not the process's
        assert theirs["task_worker_num"] == 1 and theirs["connection_num"] == 1
        assert {"tasking_num", "task_idle_worker_num", "worker_request_count"} <= set(theirs)
        assert mine["tasking_num"] == 0 and mine["task_idle_worker_num"] == 1
