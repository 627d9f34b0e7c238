"""A WebSocket server with task workers, for tests/integration/test_task_fidelity.py.

    python tests/integration/programs/task_server.py --port 0 --workers 1 --task-workers 2
        [--task-max-request N] [--task-coroutine] [--task-object] [--max-wait-time S]
        [--mode base|process]

Standard output carries one event per line (one ``write`` each, see events.py):

    READY <port> / workerStart <id> <pid> worker|task / workerStop <id> <pid> / workerError ...
    task <task_id> <src_worker_id> <id> <pid>      on("task") starts a task
    holding <task_id> <pid>                        a ``hold`` task waits for its file
    finish_returned <task_id> <first> <second>     what two finish() calls returned
    LOG <LEVEL> <first line of the message>        every record of the "pyswoole" logger

Text messages are commands ``<method>:<json>``; the JSON object has ``data`` (the task
data), or ``tasks`` (a list of them), and optionally ``timeout``, ``dst``. ``"lambda": true``
makes the data ``lambda: 1`` (not picklable), ``"big": N`` makes it N MiB of bytes.

    whoami    {"worker", "pid", "fd"}
    task      server.task(data, dst, finish_callback) -> {"task_id"}; then the callback
              pushes {"re": "finished", "task_id", "result"}
    task_nocb server.task(data, dst) -> {"task_id"}; then on("finish") pushes
              {"re": "on_finish", ...}
    taskwait  server.taskwait(data, timeout, dst) -> {"result"}
    multi     server.taskWaitMulti(tasks, timeout) -> {"result": {index: result}}
    co        await server.taskCo(tasks, timeout) -> {"result": [...]}
    async     await server.task_async(data, timeout, dst) -> {"result"}

Every reply also has ``last_error`` (server.get_last_error() after the call) and
``elapsed`` (seconds the call took); a call that raised has ``raised`` (the exception's class
name) and ``message`` instead of ``result`` (and ``task_id`` for a TaskError).

Task data ops (``data["op"]``): ``square`` (returns ``{"n", "square", "worker", "pid",
"id", "src", "flags", "dispatch_time", "kind"}``), ``raise``, ``unpicklable`` (returns a
lambda), ``finish_unpicklable`` (finish(lambda)), ``finish_twice``, ``server_finish`` (in
coroutine mode: whether server.finish() is refused), ``nested`` (server.task() in the task
worker), ``hold`` (waits until ``data["path"]``
exists, at most HOLD_LIMIT s; ``async`` in coroutine mode).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from typing import Any

from events import emit, emit_lifecycle, reply

from pyswoole import SWOOLE_BASE, SWOOLE_PROCESS, ServerStateError, WebSocketServer
from pyswoole.exceptions import TaskError
from pyswoole.server import Frame

HOLD_LIMIT = 10.0


class EmitHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        first = record.getMessage().splitlines()[0] if record.getMessage() else ""
        emit("LOG", record.levelname, first)


def run_op(server: WebSocketServer, meta: dict[str, Any], finish: Any, data: Any) -> Any:
    """What a task does, in both callback styles (``meta``: what on("task") was told)."""
    op = data.get("op") if isinstance(data, dict) else "square"
    if op == "raise":
        raise RuntimeError(f"boom {data.get('n', 0)}")
    if op == "unpicklable":
        return lambda: 1
    if op == "finish_unpicklable":
        finish(lambda: 1)
        return None
    if op == "finish_twice":
        first = finish({"finished": "first"})
        second = finish({"finished": "second"})
        emit("finish_returned", meta["id"], first, second)
        return None
    if op == "nested":
        return {"nested": server.task({"op": "square"})}
    if op == "server_finish":
        try:
            server.finish("x")
        except ServerStateError as exc:
            return {"refused": str(exc)}
        return {"refused": ""}
    if op == "hold":
        emit("holding", meta["id"], os.getpid())
        deadline = time.monotonic() + HOLD_LIMIT
        while not os.path.exists(data["path"]) and time.monotonic() < deadline:
            time.sleep(0.005)
        return {"held": True, "pid": os.getpid(), "id": meta["id"]}
    n = data.get("n", 0) if isinstance(data, dict) else len(data)
    return {
        "n": n,
        "square": n * n,
        "worker": server.worker_id,
        "pid": os.getpid(),
        **meta,
    }


def build(args: argparse.Namespace) -> WebSocketServer:
    mode = SWOOLE_PROCESS if args.mode == "process" else SWOOLE_BASE
    server = WebSocketServer(args.host, args.port, mode)
    server.set(
        {
            "worker_num": args.workers,
            "task_worker_num": args.task_workers,
            "task_max_request": args.task_max_request,
            "task_enable_coroutine": args.task_coroutine,
            "task_object": args.task_object,
            "max_wait_time": args.max_wait_time,
            "log_level": 2,
        }
    )
    logging.getLogger("pyswoole").addHandler(EmitHandler())
    emit_lifecycle(server)

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "task" if server.taskworker else "worker")

    if args.task_workers and args.task_coroutine:

        @server.on("task")
        async def on_task_object(server: WebSocketServer, task: Any) -> Any:
            emit("task", task.id, task.worker_id, server.worker_id, os.getpid())
            meta = {
                "id": task.id,
                "src": task.worker_id,
                "flags": task.flags,
                "dispatch_time": task.dispatch_time,
                "kind": type(task).__name__,
            }
            data = task.data
            if isinstance(data, dict) and data.get("op") == "hold":
                emit("holding", task.id, os.getpid())
                deadline = time.monotonic() + HOLD_LIMIT
                while not os.path.exists(data["path"]) and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
                return {"held": True, "pid": os.getpid(), "id": task.id}
            if isinstance(data, dict) and data.get("op") == "task_finish":
                sent = task.finish({"via": "Task.finish", "pid": os.getpid()})
                emit("finish_returned", task.id, sent, task.finish("again"))
                return {"ignored": True}  # finish() already answered
            await asyncio.sleep(0)  # a real coroutine: the result comes after an await
            return run_op(server, meta, task.finish, data)

    elif args.task_workers and args.task_object:

        @server.on("task")
        def on_task_object_sync(server: WebSocketServer, task: Any) -> Any:
            emit("task", task.id, task.worker_id, server.worker_id, os.getpid())
            meta = {"id": task.id, "src": task.worker_id, "flags": task.flags}
            return run_op(server, {**meta, "kind": type(task).__name__}, server.finish, task.data)

    elif args.task_workers:

        @server.on("task")
        def on_task(server: WebSocketServer, task_id: int, src: int, data: Any) -> Any:
            emit("task", task_id, src, server.worker_id, os.getpid())
            meta = {"id": task_id, "src": src, "kind": "classic"}
            return run_op(server, meta, server.finish, data)

        @server.on("finish")
        def on_finish(server: WebSocketServer, task_id: int, result: Any) -> None:
            reply(server, result["fd"], "on_finish", task_id=task_id, result=result)

    # -- commands -----------------------------------------------------------------------------

    def make_data(fd: int, spec: dict[str, Any], data: Any) -> Any:
        if spec.get("lambda"):
            return lambda: 1
        if spec.get("big"):
            return b"x" * (spec["big"] * 1024 * 1024)
        if isinstance(data, dict):
            return {"fd": fd, **data}
        return data

    def answer(fd: int, method: str, start: float, **fields: Any) -> None:
        reply(
            server,
            fd,
            method,
            last_error=server.get_last_error(),
            elapsed=time.monotonic() - start,
            **fields,
        )

    def raised(exc: Exception) -> dict[str, Any]:
        fields: dict[str, Any] = {"raised": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, TaskError):
            fields.update(task_id=exc.task_id, traceback=exc.traceback)
        return fields

    async def awaited(fd: int, method: str, spec: dict[str, Any]) -> None:
        start = time.monotonic()
        timeout = spec.get("timeout", 5.0)
        try:
            if method == "co":
                tasks = [make_data(fd, spec, t) for t in spec["tasks"]]
                result: Any = await server.taskCo(tasks, timeout)
            else:
                data = make_data(fd, spec, spec.get("data"))
                result = await server.task_async(data, timeout, spec.get("dst", -1))
        except (TaskError, TypeError) as exc:
            answer(fd, method, start, **raised(exc))
            return
        answer(fd, method, start, result=result)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> Any:
        fd = frame.fd
        text = frame.data if isinstance(frame.data, str) else frame.data.decode()
        method, _, rest = text.partition(":")
        spec: dict[str, Any] = json.loads(rest) if rest else {}
        start = time.monotonic()
        timeout = spec.get("timeout", 5.0)
        dst = spec.get("dst", -1)
        if method == "whoami":
            reply(server, fd, "whoami", worker=server.worker_id, pid=os.getpid(), fd=fd)
            return None
        if method in ("co", "async"):
            return awaited(fd, method, spec)
        try:
            if method in ("task", "task_nocb"):

                def finished(server: WebSocketServer, task_id: int, result: Any) -> None:
                    reply(server, fd, "finished", task_id=task_id, result=result)

                data = make_data(fd, spec, spec.get("data"))
                callback = finished if method == "task" else None
                answer(fd, method, start, task_id=server.task(data, dst, callback))
            elif method == "taskwait":
                data = make_data(fd, spec, spec.get("data"))
                answer(fd, method, start, result=server.taskwait(data, timeout, dst))
            elif method == "multi":
                tasks = [make_data(fd, spec, t) for t in spec["tasks"]]
                answer(fd, method, start, result=server.taskWaitMulti(tasks, timeout))
            else:
                reply(server, fd, "error", error=f"unknown method {method!r}")
        except (TaskError, TypeError) as exc:
            answer(fd, method, start, **raised(exc))
        return None

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="worker_num")
    parser.add_argument("--task-workers", type=int, default=1, help="task_worker_num")
    parser.add_argument("--task-max-request", type=int, default=0)
    parser.add_argument("--task-coroutine", action="store_true")
    parser.add_argument("--task-object", action="store_true", help="task_object (alias)")
    parser.add_argument("--max-wait-time", type=float, default=3.0)
    parser.add_argument("--mode", choices=("base", "process"), default="base")
    args = parser.parse_args(argv)
    ok = build(args).start()
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
