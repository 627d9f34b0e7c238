"""``dispatch_mode`` and ``dispatch_func`` in SWOOLE_PROCESS mode, and SWOOLE_PROCESS with
one worker, end to end (``programs/dispatch_server.py`` as a subprocess, real WebSocket
clients; every reply says which worker ran the callback).

pyswoole's master picks a connection's worker once, at its first event, by the mode
(:mod:`pyswoole.server.dispatch`), and every later event of that connection goes there,
except that ``dispatch_mode=5`` moves a connection to ``uid % worker_num`` once it is bound,
without reordering its events.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from tests.integration.conftest import ROOT
from tests.integration.serverproc import (
    EVENT_TIMEOUT,
    Client,
    ServerProcess,
    client_pool,
    connect,
)

PROGRAM = ROOT / "tests" / "integration" / "programs" / "dispatch_server.py"


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, workers: int, *args: str, manager: bool = True
) -> AsyncIterator[ServerProcess]:
    """Start the program; yield once every worker runs (``workers`` 0: worker_num unset)."""
    server = ServerProcess(PROGRAM, tmp_path, "--workers", str(workers), *args)
    try:
        await asyncio.to_thread(server.wait_ready, max(workers, 1), manager)
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def connect_in_turn(server: ServerProcess, pool: list[Client], n: int) -> list[Client]:
    """``n`` clients, one after the other (each identified before the next connects)."""
    return [await connect(server, pool) for _ in range(n)]


async def connect_until(
    server: ServerProcess, pool: list[Client], worker: int, limit: int
) -> list[Client]:
    """Connect clients one after the other until one lands on ``worker`` (at most
    ``limit``, within EVENT_TIMEOUT): a worker that just finished a callback may look busy
    for a moment (its reply can reach the client before it records that the callback
    returned, and a loaded machine may not run it again at once)."""
    clients: list[Client] = []
    deadline = time.monotonic() + EVENT_TIMEOUT
    while len(clients) < limit and worker not in {c.worker for c in clients}:
        if time.monotonic() > deadline:
            break
        clients.append(await connect(server, pool))
    return clients


async def connect_path(server: ServerProcess, pool: list[Client], path: str) -> Client:
    client = await Client.connect(server.port, path)
    pool.append(client)
    return await client.identify()


def swoole_ip_key(ip: str) -> int:
    """What Swoole's master hashes for dispatch_mode 4 (src/server/master.cc
    ``schedule_worker``): ``sin_addr.s_addr`` as a native-order uint32."""
    return int.from_bytes(socket.inet_aton(ip), sys.byteorder)


# -- dispatch_mode ---------------------------------------------------------------------------


async def test_round_robin_spreads_connections_evenly(tmp_path: Path) -> None:
    """dispatch_mode 1: connection k goes to worker k % worker_num, and stays there."""
    async with running(tmp_path, 3, "--mode", "1") as server, client_pool() as pool:
        clients = await connect_in_turn(server, pool, 6)
        assert [c.worker for c in clients] == [0, 1, 2, 0, 1, 2], clients
        for c in clients:  # every later event of a connection reaches the same worker
            assert (await c.request("seq:1"))["worker"] == c.worker


async def test_fd_mode_is_the_default(tmp_path: Path) -> None:
    """No dispatch_mode set (2): worker fd % worker_num."""
    async with running(tmp_path, 3) as server, client_pool() as pool:
        clients = await connect_in_turn(server, pool, 5)
        assert [c.worker for c in clients] == [c.fd % 3 for c in clients], clients
        assert len({c.worker for c in clients}) == 3


async def test_ip_mode_puts_one_address_on_one_worker(tmp_path: Path) -> None:
    """dispatch_mode 4: every client from 127.0.0.1 on Swoole's s_addr % worker_num (with 4
    workers 3 on a little-endian machine, where ip2long % 4 would be 1)."""
    async with running(tmp_path, 4, "--mode", "4") as server, client_pool() as pool:
        clients = await connect_in_turn(server, pool, 5)
        expected = swoole_ip_key("127.0.0.1") % 4
        assert {c.worker for c in clients} == {expected}, clients


async def test_fewest_connections_mode(tmp_path: Path) -> None:
    """dispatch_mode 8: a new connection goes to the worker with the fewest connections."""
    async with running(tmp_path, 3, "--mode", "8") as server, client_pool() as pool:
        clients = await connect_in_turn(server, pool, 3)
        assert sorted(c.worker for c in clients) == [0, 1, 2], clients
        leaving = next(c for c in clients if c.worker == 1)
        mark = server.mark()
        await leaving.close()
        await server.expect(rf"close {leaving.fd} 1", start=mark)
        newcomer = await connect(server, pool)
        assert newcomer.worker == 1, newcomer


async def test_preemptive_mode_avoids_a_busy_worker(tmp_path: Path) -> None:
    """dispatch_mode 3: while a worker's loop is blocked in a callback, new connections go
    to the idle ones; once it is free again it gets connections again."""
    release = tmp_path / f"release-{uuid.uuid4().hex[:8]}"
    async with running(tmp_path, 3, "--mode", "3") as server, client_pool() as pool:
        busy = await connect(server, pool)
        mark = server.mark()
        await busy.send(f"hold:{release}")
        await server.expect(rf"held {busy.worker}", start=mark)
        others = await connect_in_turn(server, pool, 4)
        assert all(c.worker != busy.worker for c in others), (busy, others)
        assert len({c.worker for c in others}) == 2, others
        release.touch()
        assert (await busy.reply())["worker"] == busy.worker
        later = await connect_until(server, pool, busy.worker, 30)
        assert busy.worker in {c.worker for c in later}, (busy, later)


async def test_preemptive_mode_after_a_worker_died_in_a_callback(tmp_path: Path) -> None:
    """A worker that dies inside a callback never finishes that event: its replacement
    counts it, so the worker is idle again and gets new connections."""
    async with running(tmp_path, 2, "--mode", "3") as server, client_pool() as pool:
        victim = await connect(server, pool)
        old_pid = victim.pid
        mark = server.mark()
        await victim.send("exit")
        await server.expect(rf"workerError {victim.worker} {old_pid} 1 0", start=mark)
        await server.expect(rf"workerStart {victim.worker} \d+ worker", start=mark)
        who = await victim.request("whoami")  # the connection stayed in the master
        assert who["worker"] == victim.worker and who["pid"] != old_pid, who
        later = await connect_until(server, pool, victim.worker, 30)
        assert victim.worker in {c.worker for c in later}, later


async def test_stream_mode_is_preemptive(tmp_path: Path) -> None:
    """dispatch_mode 7 (Swoole's stream mode, no longer in recent swoole-src's
    DispatchMode) behaves as 3."""
    release = tmp_path / f"release-{uuid.uuid4().hex[:8]}"
    async with running(tmp_path, 2, "--mode", "7") as server, client_pool() as pool:
        busy = await connect(server, pool)
        mark = server.mark()
        await busy.send(f"hold:{release}")
        await server.expect(rf"held {busy.worker}", start=mark)
        others = await connect_in_turn(server, pool, 3)
        assert {c.worker for c in others} == {1 - busy.worker}, (busy, others)
        release.touch()
        assert (await busy.reply())["worker"] == busy.worker


async def test_uid_mode_moves_a_bound_connection_without_reordering(tmp_path: Path) -> None:
    """dispatch_mode 5: fd % worker_num until bind(fd, uid), then uid % worker_num. While
    the old worker is still busy with the bind (300 ms), later messages already go to the
    new one: their answers still come in order, the old worker's first."""
    async with running(tmp_path, 3, "--mode", "5") as server, client_pool() as pool:
        first = await connect(server, pool)
        assert first.worker == first.fd % 3
        uid = 30 + (first.worker + 1) % 3  # a uid that lives on another worker
        target = uid % 3
        mark = server.mark()
        await first.send(f"bind:{uid}:300")
        for n in range(1, 11):  # most likely read by the master before the bind
            await first.send(f"seq:{n}")
        await server.expect(rf"bound {first.fd} {first.worker} True", start=mark)
        for n in range(11, 21):  # after the master moved fd: held until the old worker is done
            await first.send(f"seq:{n}")
        bound = await first.reply()
        assert bound == {"re": "bind", "ok": True, "worker": first.worker}, bound
        replies = [await first.reply() for _ in range(20)]
        assert [r["n"] for r in replies] == list(range(1, 21)), replies
        workers = [r["worker"] for r in replies]
        switch = workers.index(target)
        assert set(workers[:switch]) <= {first.worker}, workers
        assert set(workers[switch:]) == {target}, workers
        assert (await first.request("whoami"))["worker"] == target
        info = await first.request("info")
        assert info == {"re": "info", "uid": uid, "worker": target}, info
        again = await first.request(f"bind:{uid + 3}")
        assert again["ok"] is False, again  # bound once, as in Swoole
        # another connection of the same user joins it there once bound
        second = await connect(server, pool)
        assert second.worker == second.fd % 3
        assert (await second.request(f"bind:{uid}"))["ok"] is True
        assert (await second.request("whoami"))["worker"] == target


async def test_uid_mode_close_during_a_move(tmp_path: Path) -> None:
    """A client that closes while its connection moves: the close waits for the move, and
    on('close') runs once, in the new worker."""
    async with running(tmp_path, 3, "--mode", "5") as server, client_pool() as pool:
        client = await connect(server, pool)
        uid = 30 + (client.worker + 1) % 3
        mark = server.mark()
        await client.send(f"bind:{uid}:300")
        await server.expect(rf"bound {client.fd} {client.worker} True", start=mark)
        await client.close()
        assert client.close_code == 1000
        await server.expect(rf"close {client.fd} {uid % 3}", start=mark)
        assert len(server.matching(rf"close {client.fd} \d+", mark)) == 1
        other = await connect(server, pool)  # the server goes on serving
        assert other.worker == other.fd % 3


# -- dispatch_func ---------------------------------------------------------------------------


async def test_dispatch_func_routes_as_returned(tmp_path: Path) -> None:
    """dispatch_func(server, fd, type, data) is called once per connection, with type 0 and
    the request's bytes (the open event); its result picks the worker; -3 falls back to
    dispatch_mode (fd % worker_num)."""
    async with running(tmp_path, 3, "--func", "path") as server, client_pool() as pool:
        for path, worker in (("/w2", 2), ("/w0", 0), ("/w1", 1), ("/w2", 2)):
            mark = server.mark()
            client = await connect_path(server, pool, path)
            assert client.worker == worker, (path, client)
            line = await server.expect(rf"dispatch {client.fd} (\d+) (.*)", start=mark)
            assert line[1] == "0" and line[2].startswith(f"b'GET {path} HTTP"), line[0]
            assert (await client.request("seq:1"))["worker"] == worker
        other = await connect_path(server, pool, "/x")
        assert other.worker == other.fd % 3, other
        calls = server.matching(rf"dispatch {other.fd} .*")
        assert len(calls) == 1, calls  # once per connection, not per message


async def test_raising_dispatch_func_falls_back_to_fd_mode(tmp_path: Path) -> None:
    async with running(tmp_path, 3, "--func", "raise") as server, client_pool() as pool:
        clients = await connect_in_turn(server, pool, 4)
        assert [c.worker for c in clients] == [c.fd % 3 for c in clients], clients
    assert "dispatch_func failed" in server.stderr()
    assert "boom from dispatch_func" in server.stderr()


async def test_dispatch_func_returning_a_non_int_falls_back(tmp_path: Path) -> None:
    async with running(tmp_path, 3, "--func", "notint") as server, client_pool() as pool:
        clients = await connect_in_turn(server, pool, 4)
        assert [c.worker for c in clients] == [c.fd % 3 for c in clients], clients
    assert "not an int" in server.stderr()


# -- SWOOLE_PROCESS with one worker, SWOOLE_BASE -----------------------------------------------


async def test_one_worker_process_mode_reloads_and_keeps_connections(tmp_path: Path) -> None:
    """worker_num unset: a master and one worker, so reload() replaces the worker while
    the master keeps the client's connection (and its fd)."""
    async with running(tmp_path, 0) as server, client_pool() as pool:
        client = await connect(server, pool)
        assert client.worker == 0
        assert client.pid != server.proc.pid  # the callback ran in a worker, not the master
        old_pid = client.pid
        mark = server.mark()
        assert (await client.request("reload"))["ok"] is True
        await server.expect(rf"workerStop 0 {old_pid}", start=mark)
        started = await server.expect(r"workerStart 0 (\d+) worker", start=mark)
        new_pid = int(started[1])
        assert new_pid != old_pid
        who = await client.request("whoami")
        assert (who["fd"], who["worker"], who["pid"]) == (client.fd, 0, new_pid), who
        await client.echo("still here")
        assert client.close_code is None


async def test_dispatch_mode_in_base_mode_warns(tmp_path: Path) -> None:
    """SWOOLE_BASE: the kernel gives a connection to the worker that accepts it, so
    dispatch_mode has no effect; start() says so once."""
    server = ServerProcess(PROGRAM, tmp_path, "--workers", "2", "--mode", "1", "--base")
    try:
        await asyncio.to_thread(server.wait_ready, 2, True)
        async with client_pool() as pool:
            client = await connect(server, pool)
            assert client.worker in (0, 1)
        text = server.stderr()
        assert text.count("dispatch_mode has no effect in SWOOLE_BASE mode") == 1, text
    finally:
        await asyncio.to_thread(server.stop)
