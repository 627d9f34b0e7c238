"""The pieces of tasks that need no process: TaskError, the TASK/FINISH/TASK_ERROR bodies,
the picklability check, Swoole's task flags and the choice of task worker
(tests/integration/test_task_fidelity.py runs them for real)."""

from __future__ import annotations

import logging
import pickle
from types import SimpleNamespace
from typing import Any

import pytest

from pyswoole import (
    SWOOLE_TASK_NONBLOCK,
    SWOOLE_TASK_SERIALIZE,
    ServerStateError,
    SwooleError,
    TaskError,
    WebSocketServer,
)
from pyswoole.process import messages as msg
from pyswoole.process.status import ProcessStatus
from pyswoole.server.tasks import MAX_CONCURRENT_TASK, TaskDispatcher, _encode, _flags


def test_task_error_says_which_task_failed_where_and_pickles() -> None:
    error = TaskError(7, "RuntimeError: boom", 3, "Traceback ...")
    assert str(error) == "task 7 failed in task worker 3: RuntimeError: boom"
    assert isinstance(error, SwooleError) and isinstance(error, RuntimeError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.task_id, copy.message, copy.worker_id, copy.traceback) == (
        7,
        "RuntimeError: boom",
        3,
        "Traceback ...",
    )
    assert str(TaskError(1, "lost")) == "task 1 failed: lost"


def test_task_bodies_round_trip() -> None:
    body = msg.pack_task(12, 3, SWOOLE_TASK_NONBLOCK, 1700000000.25, b"payload")
    assert msg.unpack_task(body) == (12, 3, SWOOLE_TASK_NONBLOCK, 1700000000.25, b"payload")
    assert msg.unpack_task_reply(msg.pack_task_reply(2**40, b"\x80result")) == (
        2**40,
        b"\x80result",
    )
    assert len({msg.TASK, msg.FINISH, msg.TASK_ERROR, msg.PIPE}) == 4


def test_unpicklable_task_data_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="task data must be picklable"):
        _encode(lambda: 1)
    assert pickle.loads(_encode({"a": (1, 2)})) == {"a": (1, 2)}


def test_flags_mark_what_php_would_serialize() -> None:
    assert _flags("text", SWOOLE_TASK_NONBLOCK) == SWOOLE_TASK_NONBLOCK
    assert _flags(b"bytes", 0) == 0
    assert _flags({"a": 1}, SWOOLE_TASK_NONBLOCK) == SWOOLE_TASK_NONBLOCK | SWOOLE_TASK_SERIALIZE


def dispatcher(worker_num: int = 2, task_worker_num: int = 3, taskworker: bool = False) -> Any:
    procs = SimpleNamespace(
        worker_num=worker_num,
        task_worker_num=task_worker_num,
        status=ProcessStatus(worker_num + task_worker_num),
        server=SimpleNamespace(taskworker=taskworker),
        process_id=0,
    )
    return TaskDispatcher(procs)  # type: ignore[arg-type]


def test_destination_prefers_idle_task_workers_round_robin() -> None:
    tasks = dispatcher()
    assert [tasks.destination(-1) for _ in range(4)] == [2, 3, 4, 2]
    tasks.procs.status.set_busy(3, True)
    assert [tasks.destination(-1) for _ in range(3)] == [4, 2, 4]
    for process_id in (2, 3, 4):
        tasks.procs.status.set_busy(process_id, True)
    picked = [tasks.destination(-1) for _ in range(3)]
    assert sorted(picked) == [2, 3, 4], "all busy: plain round robin"
    assert tasks.destination(1) == 3, "dst_worker_id 1 is process worker_num + 1"


@pytest.mark.parametrize(
    ("kwargs", "dst", "warning"),
    [
        ({"task_worker_num": 0}, -1, "without task worker"),
        ({}, 3, "worker_id must be less than task_worker_num[3]"),
        ({"taskworker": True}, -1, "cannot use in the task-worker"),
    ],
)
def test_destination_refuses_as_swoole(
    kwargs: dict[str, Any], dst: int, warning: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pyswoole"):
        assert dispatcher(**kwargs).destination(dst) == -1
    assert warning in caplog.text


def test_too_many_concurrent_tasks_is_swooles_limit() -> None:
    assert MAX_CONCURRENT_TASK == 1024


def test_task_calls_before_start_are_state_errors() -> None:
    server = WebSocketServer("127.0.0.1", 0)
    server.set({"task_worker_num": 1})
    with pytest.raises(ServerStateError):
        server.task(1)
    with pytest.raises(ServerStateError):
        server.taskwait(1)
    with pytest.raises(ServerStateError):
        server.finish(1)
