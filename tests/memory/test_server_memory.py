"""Table, Atomic and Lock in a real multi-process server: made before ``start()``, shared
by every worker and task worker (forked by the manager), read back by a WebSocket client."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

from tests.integration.conftest import ROOT
from tests.integration.serverproc import EVENT_TIMEOUT, START_TIMEOUT, Client, ServerProcess

PROGRAM = ROOT / "tests" / "memory" / "programs" / "table_server.py"
COUNT = 10_000


async def test_workers_a_task_worker_and_an_async_user_process_share_one_table(
    tmp_path: Path,
) -> None:
    """2 workers, 1 task worker and a user process whose callback is ``async def`` (its own
    loop, with ``server.tick`` and ``Timer.after``) all incr the same row: exact sums."""
    server = ServerProcess(
        PROGRAM, tmp_path, "--workers", "2", "--task-workers", "1", "--user"
    )  # fmt: skip
    try:
        port = int((await server.expect(r"READY (\d+)", START_TIMEOUT))[1])
        pids = {}
        for worker_id in range(4):  # 0, 1: workers, 2: the task worker, 3: the user process
            match = await server.expect(rf"counted {worker_id} (\d+)", START_TIMEOUT * 2)
            pids[worker_id] = int(match[1])
        assert len(set(pids.values())) == 4  # four processes
        client = await Client.connect(port)
        try:
            state = await client.request("get")
        finally:
            await client.ws.close()
        assert state["n"] == 4 * COUNT  # every incr of every process, none lost
        assert state["f"] == 4 * COUNT * 0.5
        assert state["atomic"] == 4 * COUNT
        assert state["locked"] == 4 * COUNT  # the Lock excluded the others each time
        rows = state["rows"]
        assert rows["utick"]["n"] == 3  # server.tick in the user process, then cleared
        assert rows["uafter"]["who"] == "after"  # Timer.after there
        assert state["count"] == 7
        assert {k: r["n"] for k, r in rows.items() if k.startswith("w")} == {
            f"w{worker_id}": pid for worker_id, pid in pids.items()
        }
        assert [rows[f"w{i}"]["who"] for i in range(4)] == ["worker", "worker", "task", "user"]
        assert state["pid"] in (pids[0], pids[1])  # read from a worker, not the test
    finally:
        await asyncio.to_thread(server.stop)


CLIENTS = 200


async def test_four_workers_two_task_workers_and_200_clients_share_rows(tmp_path: Path) -> None:
    """Issue 14's check: 4 workers and 2 task workers each incr the same row 10,000 times
    (the sum is exact); 200 clients spread over the 4 workers (round robin) make their
    workers, all at once, set one row each and incr a shared one; then every worker reads
    the whole table and all four read the same rows, each whole."""
    server = ServerProcess(PROGRAM, tmp_path, "--workers", "4", "--task-workers", "2", "--process")
    try:
        port = int((await server.expect(r"READY (\d+)", START_TIMEOUT))[1])
        for worker_id in range(6):
            await server.expect(rf"counted {worker_id} \d+", START_TIMEOUT * 3)
        clients = [await Client.connect(port) for _ in range(CLIENTS)]
        try:
            answers = await asyncio.gather(
                *(c.request(f"mark:{i}") for i, c in enumerate(clients))
            )  # fmt: skip
            states = [await clients[i].request("get") for i in range(4)]
        finally:
            await asyncio.gather(*(c.ws.close() for c in clients))
        served_by = [a["row"]["worker"] for a in answers]
        assert sorted(set(served_by)) == [0, 1, 2, 3]
        assert all(served_by.count(w) == CLIENTS // 4 for w in range(4))  # round robin
        assert len({state["pid"] for state in states}) == 4  # read by each of the 4 workers
        for state in states:
            assert state["n"] == 6 * COUNT  # 4 workers + 2 task workers, no incr lost
            assert state["rows"] == states[0]["rows"]  # every worker reads the same rows
        rows = states[0]["rows"]
        assert rows["shared"]["n"] == CLIENTS  # 200 incr from 4 workers at once
        for i, answer in enumerate(answers):
            assert answer["row"] == rows[f"c{i}"]  # what its worker wrote, read back by others
            assert rows[f"c{i}"]["n"] == answer["pid"]
    finally:
        await asyncio.to_thread(server.stop)


def consistent(row: dict[str, Any]) -> bool:
    """Whether a ``k`` row of the program is whole (its columns agree)."""
    a = row["worker"]
    return row == {"worker": a, "n": -a, "f": a / 4, "who": str(a)[::-1]}


async def test_a_worker_killed_while_writing_leaves_every_row_old_or_new(tmp_path: Path) -> None:
    """Issue 14's check: a worker writing rows in a loop is killed with SIGKILL at a random
    moment; another process then reads every row whole, and every row can be written again
    (the dead writer's row lock does not wedge the table)."""
    server = ServerProcess(
        PROGRAM, tmp_path, "--workers", "2", "--task-workers", "0", "--process", "--count", "0"
    )
    try:
        port = int((await server.expect(r"READY (\d+)", START_TIMEOUT))[1])
        for worker_id in range(2):
            await server.expect(rf"counted {worker_id} \d+", START_TIMEOUT)
        client = await Client.connect(port)
        try:
            mark = server.mark()
            await client.send("churn")
            churning = await server.expect(r"churning (\d+) (\d+)", EVENT_TIMEOUT, mark)
            os.kill(int(churning[2]), signal.SIGKILL)  # somewhere in the middle of its writes
            # the manager replaces it; then any worker answers
            await server.expect(rf"counted {churning[1]} \d+", EVENT_TIMEOUT, mark)
            answer = await client.request("check")
        finally:
            await client.ws.close()
        assert answer["pid"] != int(churning[2])
        rows = answer["rows"]
        assert all(row is not None and consistent(row) for row in rows.values()), rows
        assert len({row["worker"] for row in rows.values()}) > 1  # written by the churn
        assert answer["writable"] is True
    finally:
        await asyncio.to_thread(server.stop)
