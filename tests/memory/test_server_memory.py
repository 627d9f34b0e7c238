"""Table, Atomic and Lock in a real multi-process server: made before ``start()``, shared
by every worker and task worker (forked by the manager), read back by a WebSocket client."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.conftest import ROOT
from tests.integration.serverproc import START_TIMEOUT, Client, ServerProcess

PROGRAM = ROOT / "tests" / "memory" / "programs" / "table_server.py"
COUNT = 10_000


async def test_workers_and_a_task_worker_share_one_table(tmp_path: Path) -> None:
    server = ServerProcess(PROGRAM, tmp_path, "--workers", "2", "--task-workers", "1")
    try:
        port = int((await server.expect(r"READY (\d+)", START_TIMEOUT))[1])
        pids = {}
        for worker_id in range(3):
            match = await server.expect(rf"counted {worker_id} (\d+)", START_TIMEOUT * 2)
            pids[worker_id] = int(match[1])
        assert len(set(pids.values())) == 3  # three processes
        client = await Client.connect(port)
        try:
            state = await client.request("get")
        finally:
            await client.ws.close()
        assert state["n"] == 3 * COUNT  # every incr of every process, none lost
        assert state["f"] == 3 * COUNT * 0.5
        assert state["atomic"] == 3 * COUNT
        assert state["locked"] == 3 * COUNT  # the Lock excluded the others each time
        assert state["count"] == 4
        rows = state["rows"]
        assert {k: r["n"] for k, r in rows.items() if k != "hits"} == {
            f"w{worker_id}": pid for worker_id, pid in pids.items()
        }
        assert rows["w2"]["who"] == "task" and rows["w0"]["who"] == "worker"
        assert state["pid"] in (pids[0], pids[1])  # read from a worker, not the test
    finally:
        await asyncio.to_thread(server.stop)


CLIENTS = 200


async def test_four_workers_two_task_workers_and_200_clients_share_rows(tmp_path: Path) -> None:
    """Issue 14's check: 4 workers and 2 task workers each incr the same row 10,000 times
    (the sum is exact); 200 clients spread over the 4 workers (round robin) each make their
    worker set its own row and incr a shared one, and every row reads back whole."""
    server = ServerProcess(PROGRAM, tmp_path, "--workers", "4", "--task-workers", "2", "--process")
    try:
        port = int((await server.expect(r"READY (\d+)", START_TIMEOUT))[1])
        for worker_id in range(6):
            await server.expect(rf"counted {worker_id} \d+", START_TIMEOUT * 3)
        clients = [await Client.connect(port) for _ in range(CLIENTS)]
        try:
            answers = [await c.request(f"mark:{i}") for i, c in enumerate(clients)]
            state = await clients[0].request("get")
        finally:
            await asyncio.gather(*(c.ws.close() for c in clients))
        assert state["n"] == 6 * COUNT  # 4 workers + 2 task workers, no incr lost
        served_by = [a["row"]["worker"] for a in answers]
        assert sorted(set(served_by)) == [0, 1, 2, 3]
        assert all(served_by.count(w) == CLIENTS // 4 for w in range(4))  # round robin
        rows = state["rows"]
        assert rows["shared"]["n"] == CLIENTS
        for i, answer in enumerate(answers):
            assert answer["row"] == rows[f"c{i}"]  # what its worker wrote, read back by another
            assert rows[f"c{i}"]["n"] == answer["pid"]
    finally:
        await asyncio.to_thread(server.stop)
