"""User processes (``server.add_process``) over the wire: supervised, and able to push.

The program (``programs/user_process_server.py``) runs in its own session; the tests wait
for its stdout lines and for messages on real WebSocket clients, never sleep.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT
from tests.integration.serverproc import EVENT_TIMEOUT, Client, ServerProcess, wait_gone

PROGRAM = ROOT / "tests" / "integration" / "programs" / "user_process_server.py"
TICK = re.compile(r"tick (\d+) (\d+)")


@contextlib.contextmanager
def running(tmp_path: Path, *args: str, workers: int = 2) -> Iterator[ServerProcess]:
    proc = ServerProcess(PROGRAM, tmp_path, "--workers", str(workers), *args)
    try:
        proc.wait_ready(workers, manager_line=False)
        yield proc
    finally:
        proc.stop()


async def next_tick(client: Client) -> tuple[int, int]:
    """The next ``tick <pid> <n>`` pushed by the user process: (pid, n)."""
    for _ in range(1000):
        match = TICK.fullmatch(await client.message(EVENT_TIMEOUT))
        if match:
            return int(match[1]), int(match[2])
    raise AssertionError("no tick among 1000 messages")


async def ticks(client: Client, count: int) -> list[tuple[int, int]]:
    return [await next_tick(client) for _ in range(count)]


@pytest.mark.parametrize("mode", ["base", "process"])
async def test_a_user_process_pushes_to_every_client_of_every_worker(
    tmp_path: Path, mode: str
) -> None:
    with running(tmp_path, "--mode", mode) as proc:
        user = proc.wait_line(r"userStart (\d+) (\d+) (-?\d+)", EVENT_TIMEOUT)
        assert int(user[1]) == 2  # after worker 0 and 1 (no task workers)
        assert int(user[3]) == 2  # server.get_worker_id() in the user process is its id
        # its send_message reached worker 0's pipeMessage with its id as the source
        proc.wait_line(r"pipeMessage 0 2 hello", EVENT_TIMEOUT)
        clients = [await Client.connect(proc.port) for _ in range(6)]
        try:
            workers = set()
            for client in clients:
                await client.send("whoami")
                answer = await client.reply()
                workers.add(answer["worker"])
                assert answer["user_worker_num"] == 1  # stats() counts the added process
            if mode == "process":
                assert workers == {0, 1}  # fd % 2: both workers have clients
            for client in clients:
                got = await ticks(client, 3)
                assert {pid for pid, _ in got} == {int(user[2])}
                numbers = [n for _, n in got]
                assert numbers == sorted(numbers) and len(set(numbers)) == 3
        finally:
            for client in clients:
                await client.ws.close()


async def test_the_pushes_go_on_across_a_reload(tmp_path: Path) -> None:
    """SWOOLE_PROCESS: the clients stay with the master, the workers are replaced, and the
    user process -- not reloaded, as Swoole -- keeps pushing every 100 ms: each client gets
    every tick, numbered without a gap, before, during and after the reload."""
    with running(tmp_path, "--mode", "process") as proc:
        user_pid = int(proc.wait_line(r"userStart 2 (\d+) 2", EVENT_TIMEOUT)[1])
        clients = [await Client.connect(proc.port) for _ in range(4)]
        try:
            numbers: list[list[int]] = []
            for client in clients:
                got = await ticks(client, 2)
                assert {pid for pid, _ in got} == {user_pid}
                numbers.append([n for _, n in got])
            old_workers = proc.pids()
            mark = proc.mark()
            await clients[0].send("reload")
            await proc.expect(r"afterReload", EVENT_TIMEOUT, mark)
            for worker_id in (0, 1):  # both workers were replaced
                new = await proc.expect(
                    rf"workerStart {worker_id} (\d+) worker", EVENT_TIMEOUT, mark
                )
                assert int(new[1]) != old_workers[worker_id]
            for client, seen in zip(clients, numbers, strict=True):
                # the ticks received so far were pushed before or during the reload ...
                for _ in range(1000):
                    if client.messages.empty():
                        break
                    match = TICK.fullmatch(client.messages.get_nowait() or "")
                    assert match and int(match[1]) == user_pid
                    seen.append(int(match[2]))
                # ... and these after it
                got = await ticks(client, 3)
                assert {pid for pid, _ in got} == {user_pid}
                seen.extend(n for _, n in got)
                assert seen == list(range(seen[0], seen[0] + len(seen))), seen  # none lost
            # the user process was never restarted
            assert len(proc.matching(r"userStart .*")) == 1
            assert all(client.close_code is None for client in clients)
        finally:
            for client in clients:
                await client.ws.close()


async def test_a_user_process_that_raises_is_restarted(tmp_path: Path) -> None:
    with running(tmp_path, "--crasher") as proc:
        first = proc.wait_line(r"crasherStart 3 (\d+)", EVENT_TIMEOUT)
        proc.wait_line(rf"workerError 3 {first[1]} 1 0", EVENT_TIMEOUT)
        after = proc.lines.index(first[0]) + 1
        second = proc.wait_line(r"crasherStart 3 (\d+)", EVENT_TIMEOUT + 5, after)
        assert second[1] != first[1]
        assert "the crasher crashes" in proc.stderr()
        # the server still serves, and the pusher was not disturbed
        client = await Client.connect(proc.port)
        try:
            pid, _ = await next_tick(client)
            assert len(proc.matching(rf"userStart 2 {pid} 2")) == 1
        finally:
            await client.ws.close()


async def test_a_killed_user_process_is_restarted_and_stops_with_the_server(
    tmp_path: Path,
) -> None:
    with running(tmp_path, workers=1) as proc:  # worker_num=1: add_process brings a manager
        first = int(proc.wait_line(r"userStart 1 (\d+) 1", EVENT_TIMEOUT)[1])
        mark = proc.mark()
        os.kill(first, signal.SIGKILL)
        second = int(proc.wait_line(r"userStart 1 (\d+) 1", EVENT_TIMEOUT + 5, mark)[1])
        assert second != first
        client = await Client.connect(proc.port)
        try:
            pid, _ = await next_tick(client)
            assert pid == second
        finally:
            await client.ws.close()
        proc.stop()
        assert await wait_gone([second]) == []


async def test_timer_works_in_a_task_worker_and_ids_follow_the_task_workers(
    tmp_path: Path,
) -> None:
    with running(tmp_path, "--task-workers", "1") as proc:
        proc.wait_line(r"userStart 3 \d+ 3", EVENT_TIMEOUT)  # after 2 workers + 1 task worker
        proc.wait_line(r"pipeMessage 0 3 hello", EVENT_TIMEOUT)
        client = await Client.connect(proc.port)
        try:
            await client.send("task:abc")
            proc.wait_line(r"taskTimer 2 abc", EVENT_TIMEOUT)
        finally:
            await client.ws.close()


async def test_workers_write_to_a_user_process_pipe_and_it_broadcasts(tmp_path: Path) -> None:
    """Swoole's addProcess example: the user process blocks reading its pipe; any worker
    ``process.write()`` to it; it broadcasts to every client of every worker."""
    with running(tmp_path, "--relay", "--mode", "process") as proc:
        proc.wait_line(r"relayStart 3 \d+", EVENT_TIMEOUT)
        clients = [await Client.connect(proc.port) for _ in range(4)]
        try:
            workers = set()
            for client in clients:
                await client.send("whoami")
                workers.add((await client.reply())["worker"])
            assert workers == {0, 1}
            for n, client in enumerate(clients):  # written from both workers
                await client.send(f"relay:from-{n}")
                for receiver in clients:
                    for _ in range(1000):
                        text = await receiver.message()
                        if text.startswith("relay "):
                            break
                    assert text == f"relay from-{n}"
        finally:
            for client in clients:
                await client.ws.close()
