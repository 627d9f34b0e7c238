"""Task workers as Swoole 6.2 has them (issue 12), end to end: failures reported at once,
the checks and return values of task()/taskwait()/taskWaitMulti()/taskCo(),
``task_enable_coroutine`` (on("task") gets a Task) and ``task_max_request``.

Every test runs ``tests/integration/programs/task_server.py`` (it forks; pytest never does)
and drives it over a real WebSocket connection; the program's stdout lines (``task``,
``holding``, ``LOG <LEVEL> ...`` for pyswoole's log records) are awaited, never slept for.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from pyswoole import (
    SWOOLE_ERROR_TASK_DISPATCH_FAIL,
    SWOOLE_ERROR_TASK_TIMEOUT,
    SWOOLE_TASK_CALLBACK,
    SWOOLE_TASK_COROUTINE,
    SWOOLE_TASK_NONBLOCK,
    SWOOLE_TASK_SERIALIZE,
    SWOOLE_TASK_WAITALL,
)
from tests.integration.conftest import ROOT
from tests.integration.serverproc import (
    EVENT_TIMEOUT,
    Client,
    ServerProcess,
    client_pool,
    connect,
    option,
    started,
)

PROGRAM = ROOT / "tests" / "integration" / "programs" / "task_server.py"
#: a timeout no answer in these tests should come near: "at once" means well under it
SLOW = 30.0


def running(tmp_path: Path, *args: str) -> contextlib.AbstractAsyncContextManager[ServerProcess]:
    """Start the program with ``args``; yield once every process has started."""
    workers = int(option(args, "--workers", "1"))
    tasks = int(option(args, "--task-workers", "1"))
    return started(PROGRAM, tmp_path, *args, processes=workers + tasks)


async def call(client: Client, method: str, **spec: Any) -> dict[str, Any]:
    """``<method>:<json>`` -> the program's reply (see its docstring)."""
    return await client.request(f"{method}:{json.dumps(spec)}", timeout=SLOW + 10)


def square(n: int) -> dict[str, Any]:
    return {"op": "square", "n": n}


def hold(path: Path) -> dict[str, Any]:
    return {"op": "hold", "path": str(path)}


def assert_task_error(answer: dict[str, Any], *fragments: str) -> None:
    assert answer.get("raised") == "TaskError", answer
    for fragment in fragments:
        assert fragment in answer["message"], answer
    assert answer["elapsed"] < SLOW / 3, f"the failure took the timeout to show: {answer}"


# -- 1. failures ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["base", "process"])
async def test_a_failed_task_fails_its_waiter_at_once(tmp_path: Path, mode: str) -> None:
    """on('task') raising, or a result that cannot be pickled: taskwait, taskWaitMulti,
    task_async and taskCo raise TaskError without waiting for the timeout; the finish path
    logs the task id and the exception instead of calling back; the task worker carries on.
    The same in SWOOLE_BASE and SWOOLE_PROCESS."""
    async with (
        running(tmp_path, "--workers", "1", "--task-workers", "2", "--mode", mode) as server,
        client_pool() as pool,
    ):
        client = await connect(server, pool)
        pids = server.pids()
        mark = server.mark()

        answer = await call(client, "taskwait", data={"op": "raise", "n": 1}, timeout=SLOW)
        assert_task_error(answer, "failed in task worker", "RuntimeError: boom 1")
        assert "Traceback" in answer["traceback"] and "boom 1" in answer["traceback"], answer
        answer = await call(client, "taskwait", data={"op": "unpicklable"}, timeout=SLOW)
        assert_task_error(answer, "task result must be picklable")
        answer = await call(client, "taskwait", data={"op": "finish_unpicklable"}, timeout=SLOW)
        assert_task_error(answer, "TypeError: task result must be picklable")
        tasks = [square(2), {"op": "raise", "n": 3}]
        assert_task_error(await call(client, "multi", tasks=tasks, timeout=SLOW), "boom 3")
        answer = await call(client, "async", data={"op": "raise", "n": 4}, timeout=SLOW)
        assert_task_error(answer, "RuntimeError: boom 4")
        tasks = [square(5), {"op": "raise", "n": 6}]
        assert_task_error(await call(client, "co", tasks=tasks, timeout=SLOW), "boom 6")

        # task() with a finish callback, and with on("finish"): no call, a log line that
        # names the task and the exception
        task_id = (await call(client, "task", data={"op": "raise", "n": 8}))["task_id"]
        await server.expect(
            rf"LOG ERROR task {task_id} failed in task worker [12]: RuntimeError: boom 8; "
            r"no finish_callback call",
            EVENT_TIMEOUT,
            mark,
        )
        task_id = (await call(client, "task_nocb", data={"op": "raise", "n": 9}))["task_id"]
        await server.expect(
            rf"LOG ERROR task {task_id} failed in task worker [12]: RuntimeError: boom 9; "
            r'no on\("finish"\) call',
            EVENT_TIMEOUT,
            mark,
        )
        # (had either been called back, its reply would come before this one's)
        answer = await call(client, "taskwait", data=square(10), timeout=SLOW)
        assert answer["result"]["square"] == 100, answer

        # the task workers logged each failure with its traceback, and are still the same
        await server.expect(
            r"LOG ERROR task \d+ from worker 0 failed in task worker [12]", EVENT_TIMEOUT, mark
        )
        assert not server.matching(r"workerError .*", mark)
        assert server.pids() == pids


# -- 2. what the calls check and return --------------------------------------------------------


async def test_task_calls_check_and_return_like_swoole(tmp_path: Path) -> None:
    """Unpicklable data raises TypeError at the call (nothing is sent); a timeout returns
    False with SWOOLE_ERROR_TASK_TIMEOUT; dst_worker_id picks the task worker, an invalid one
    returns False; finish() returns True, a second one False; a task too large to queue
    returns False with SWOOLE_ERROR_TASK_DISPATCH_FAIL; task() in a task worker is False."""
    async with (
        running(tmp_path, "--workers", "1", "--task-workers", "2") as server,
        client_pool() as pool,
    ):
        client = await connect(server, pool)
        mark = server.mark()
        for method in ("task", "taskwait", "async"):
            answer = await call(client, method, data=square(1), **{"lambda": True})
            assert answer.get("raised") == "TypeError", answer
            assert "task data must be picklable" in answer["message"], answer
        for method in ("multi", "co"):
            answer = await call(client, method, tasks=[square(1), 2], **{"lambda": True})
            assert answer.get("raised") == "TypeError", answer
        answer = await call(client, "taskwait", data=square(3))
        assert answer["result"]["square"] == 9, answer
        started = server.matching(r"task (\d+) .*", mark)
        assert [m[1] for m in started] == [str(answer["result"]["id"])], "nothing else was sent"

        # timeout: False, and get_last_error() says so; the late result is dropped
        release = tmp_path / "release-1"
        answer = await call(client, "taskwait", data=hold(release), timeout=0.2)
        assert answer["result"] is False, answer
        assert answer["last_error"] == SWOOLE_ERROR_TASK_TIMEOUT, answer
        release.touch()
        await server.expect(r"LOG WARNING task\[\d+\] has expired", EVENT_TIMEOUT, mark)
        release = tmp_path / "release-2"
        answer = await call(client, "async", data=hold(release), timeout=0.2)
        assert answer["result"] is False, answer
        assert answer["last_error"] == SWOOLE_ERROR_TASK_TIMEOUT, answer
        release.touch()

        # dst_worker_id: that task worker (process id worker_num + dst); out of range: False
        for dst in (0, 1, 1, 0):
            answer = await call(client, "taskwait", data=square(4), dst=dst)
            assert answer["result"]["worker"] == 1 + dst, answer
        answer = await call(client, "taskwait", data=square(4), dst=2)
        assert answer["result"] is False, answer
        await server.expect(r"LOG WARNING worker_id must be less than task_worker_num\[2\]")
        assert (await call(client, "task", data=square(4), dst=5))["task_id"] is False

        # finish() returns True once the result is sent; a second one is refused
        answer = await call(client, "taskwait", data={"op": "finish_twice"})
        assert answer["result"] == {"finished": "first"}, answer
        await server.expect(r"finish_returned \d+ True False", EVENT_TIMEOUT, mark)

        # task ids: positive and increasing (False never looks like one)
        first = (await call(client, "task", data=square(5)))["task_id"]
        assert (await client.reply())["re"] == "finished"
        second = (await call(client, "task", data=square(6)))["task_id"]
        finished = await client.reply()
        assert finished["re"] == "finished" and finished["task_id"] == second, finished
        assert finished["result"]["square"] == 36, finished
        assert 0 < first < second, (first, second)

        # more than the IPC queue takes: False, SWOOLE_ERROR_TASK_DISPATCH_FAIL
        answer = await call(client, "task", big=65)
        assert answer["task_id"] is False, answer
        assert answer["last_error"] == SWOOLE_ERROR_TASK_DISPATCH_FAIL, answer

        # 1024 tasks or more: False (Swoole's SW_MAX_CONCURRENT_TASK)
        answer = await call(client, "multi", tasks=[1] * 1024)
        assert answer["result"] is False, answer
        await server.expect(r"LOG WARNING too many concurrent tasks", EVENT_TIMEOUT, mark)

        # task() in a task worker: False (Swoole: "Server->task() cannot use in the task-worker")
        answer = await call(client, "taskwait", data={"op": "nested"})
        assert answer["result"] == {"nested": False}, answer
        await server.expect(r"LOG WARNING Server->task\(\) cannot use in the task-worker")


async def test_without_task_workers_every_task_call_returns_false(tmp_path: Path) -> None:
    """task_worker_num = 0 (two workers): task, taskwait, taskWaitMulti, taskCo and
    task_async return False with a warning, as Swoole does."""
    async with (
        running(tmp_path, "--workers", "2", "--task-workers", "0") as server,
        client_pool() as pool,
    ):
        client = await connect(server, pool)
        mark = server.mark()
        assert (await call(client, "task", data=square(1)))["task_id"] is False
        for method in ("taskwait", "async"):
            assert (await call(client, method, data=square(1)))["result"] is False
        for method in ("multi", "co"):
            assert (await call(client, method, tasks=[square(1)]))["result"] is False
        await server.expect(
            r"LOG WARNING task\(\): task method can't be executed without task worker",
            EVENT_TIMEOUT,
            mark,
        )
        assert len(server.matching(r"LOG WARNING .*without task worker", mark)) == 5


# -- 3. task_enable_coroutine ------------------------------------------------------------------


async def test_task_enable_coroutine_gives_a_task_object(tmp_path: Path) -> None:
    """on('task') is async def (server, task): id, worker_id, flags, data, dispatch_time;
    Task.finish() answers, server.finish() is refused; tasks run side by side in one task
    worker; taskCo puts False where a task timed out, taskWaitMulti leaves it out."""
    async with (
        running(tmp_path, "--workers", "1", "--task-workers", "1", "--task-coroutine") as server,
        client_pool() as pool,
    ):
        client = await connect(server, pool)
        before = time.time()
        answer = await call(client, "taskwait", data=square(6))
        result = answer["result"]
        assert result["kind"] == "Task" and result["square"] == 36, answer
        assert result["src"] == 0 and result["id"] > 0, answer
        assert result["flags"] == SWOOLE_TASK_SERIALIZE, answer
        assert before - 5 < result["dispatch_time"] < time.time() + 5, answer

        # flags: how the task was sent (Swoole's SW_TASK_* in swoole_server.h)
        task_id = (await call(client, "task", data=square(2)))["task_id"]
        finished = await client.reply()
        assert finished["task_id"] == task_id and finished["result"]["id"] == task_id
        expected = SWOOLE_TASK_NONBLOCK | SWOOLE_TASK_CALLBACK | SWOOLE_TASK_SERIALIZE
        assert finished["result"]["flags"] == expected, finished
        answer = await call(client, "async", data=square(3))
        expected = SWOOLE_TASK_NONBLOCK | SWOOLE_TASK_COROUTINE | SWOOLE_TASK_SERIALIZE
        assert answer["result"]["flags"] == expected, answer
        answer = await call(client, "multi", tasks=[square(4)])
        assert answer["result"]["0"]["flags"] == SWOOLE_TASK_WAITALL | SWOOLE_TASK_SERIALIZE

        # Task.finish(): True, then False; what the coroutine returns after it is ignored
        mark = server.mark()
        answer = await call(client, "taskwait", data={"op": "task_finish"})
        assert answer["result"]["via"] == "Task.finish", answer
        await server.expect(r"finish_returned \d+ True False", EVENT_TIMEOUT, mark)
        answer = await call(client, "taskwait", data={"op": "server_finish"})
        assert "Task.finish()" in answer["result"]["refused"], answer
        answer = await call(client, "async", data={"op": "raise", "n": 7}, timeout=SLOW)
        assert_task_error(answer, "RuntimeError: boom 7")

        # a held task does not keep the (only) task worker from running the next ones
        release = tmp_path / "release-held"
        held = (await call(client, "task", data=hold(release)))["task_id"]
        await server.expect(rf"holding {held} \d+", EVENT_TIMEOUT, mark)
        answer = await call(client, "taskwait", data=square(8), timeout=SLOW)
        assert answer["result"]["square"] == 64, answer

        release_co = tmp_path / "release-co"
        tasks = [square(2), hold(release_co), square(4)]
        answer = await call(client, "co", tasks=tasks, timeout=1.5)
        assert answer["result"][1] is False, answer
        assert [answer["result"][i]["square"] for i in (0, 2)] == [4, 16], answer
        assert answer["last_error"] == SWOOLE_ERROR_TASK_TIMEOUT, answer
        release_multi = tmp_path / "release-multi"
        answer = await call(client, "multi", tasks=[square(3), hold(release_multi)], timeout=1.5)
        assert list(answer["result"]) == ["0"] and answer["result"]["0"]["square"] == 9, answer
        assert answer["last_error"] == SWOOLE_ERROR_TASK_TIMEOUT, answer

        for path in (release, release_co, release_multi):
            path.touch()
        finished = await client.reply()
        assert finished["re"] == "finished" and finished["task_id"] == held, finished
        assert finished["result"]["held"] is True, finished


async def test_task_object_without_coroutines(tmp_path: Path) -> None:
    """task_object (alias of task_use_object): on('task') gets a Task, a plain function;
    server.finish() still answers the task being run."""
    args = ("--workers", "1", "--task-workers", "1", "--task-object")
    async with running(tmp_path, *args) as server, client_pool() as pool:
        client = await connect(server, pool)
        mark = server.mark()
        answer = await call(client, "taskwait", data=square(5))
        assert answer["result"]["kind"] == "Task" and answer["result"]["square"] == 25, answer
        assert answer["result"]["flags"] == SWOOLE_TASK_SERIALIZE, answer
        answer = await call(client, "taskwait", data={"op": "finish_twice"})
        assert answer["result"] == {"finished": "first"}, answer
        await server.expect(r"finish_returned \d+ True False", EVENT_TIMEOUT, mark)


# -- 4. task_max_request -----------------------------------------------------------------------


async def test_task_max_request_recycles_the_task_worker(tmp_path: Path) -> None:
    """task_max_request=3: tasks 1-3 run in one process, 4-6 in its replacement, 7 in the
    next; each exits normally (workerStop, no workerError)."""
    args = ("--workers", "1", "--task-workers", "1", "--task-max-request", "3")
    async with running(tmp_path, *args) as server, client_pool() as pool:
        client = await connect(server, pool)
        mark = server.mark()
        pids = []
        for n in range(7):
            answer = await call(client, "taskwait", data=square(n), timeout=SLOW)
            assert answer["result"]["square"] == n * n, answer
            pids.append(answer["result"]["pid"])
        assert len(set(pids[:3])) == 1 and len(set(pids[3:6])) == 1, pids
        assert len({pids[0], pids[3], pids[6]}) == 3, pids
        for old in (pids[0], pids[3]):
            await server.expect(rf"workerStop 1 {old}", EVENT_TIMEOUT, mark)
        await server.expect(
            r"LOG INFO task worker 1 reached task_max_request=3: restarting", EVENT_TIMEOUT, mark
        )
        assert not server.matching(r"workerError .*", mark)


async def test_task_max_request_keeps_the_queued_tasks(tmp_path: Path) -> None:
    """task_max_request=1 with task_enable_coroutine: the task worker stops reading once
    its task has started; the tasks sent meanwhile wait in its inbox and are each run by a
    replacement (one task per process), none lost."""
    args = ("--workers", "1", "--task-workers", "1", "--task-max-request", "1")
    async with (
        running(tmp_path, *args, "--task-coroutine") as server,
        client_pool() as pool,
    ):
        client = await connect(server, pool)
        mark = server.mark()
        release = tmp_path / "release"
        held = (await call(client, "task", data=hold(release)))["task_id"]
        first_pid = int((await server.expect(rf"holding {held} (\d+)", EVENT_TIMEOUT, mark))[1])
        queued = [(await call(client, "task", data=square(n)))["task_id"] for n in range(1, 6)]
        assert all(isinstance(task_id, int) and task_id > 0 for task_id in queued), queued
        assert not server.matching(rf"task {queued[0]} .*", mark), "it was not left queued"
        release.touch()
        results: dict[int, dict[str, Any]] = {}
        for _ in range(6):
            finished = await client.reply(SLOW)
            assert finished["re"] == "finished", finished
            results[finished["task_id"]] = finished["result"]
        assert sorted(results) == sorted([held, *queued]), results
        assert results[held]["pid"] == first_pid
        pids = [results[task_id]["pid"] for task_id in queued]
        assert [results[task_id]["square"] for task_id in queued] == [1, 4, 9, 16, 25]
        assert len({first_pid, *pids}) == 6, f"one task per process: {first_pid}, {pids}"
        await server.expect(rf"workerStop 1 {first_pid}", EVENT_TIMEOUT, mark)
        assert not server.matching(r"workerError .*", mark)
