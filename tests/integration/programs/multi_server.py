"""A multi-process WebSocket server driven by its clients, for tests/integration/test_processes.py.

    python tests/integration/programs/multi_server.py --port 0 --workers 4 --task-workers 1
        [--max-request N] [--worker-timeout S] [--max-wait-time S]
        [--pid-file PATH] [--log-file PATH] [--log-level L]

Standard output carries one event per line (written with a single ``write`` so that lines of
different processes never interleave):

    READY <port>                                    the manager's on("start"), once bound
    workerStart <id> <pid> worker|task
    workerStop <id> <pid>
    workerError <id> <pid> <exit_code> <signal>     in the manager
    close <fd> <worker_id>                          on("close"), after the fd left the table
    task <task_id> <src_worker_id> <id> <pid>       a task worker runs a task
    managerStop / shutdown

Text messages are commands. Replies are JSON objects ``{"re": <command>, ...}``; messages
that are not JSON are broadcasts, pushes or echoes:

    whoami                  {"worker", "pid", "fd", "frozen": gc.get_freeze_count()}
    e:<anything>            the same text back (echo)
    count:<fd,fd,...>       {"n": len(server.connections), "exist": {fd: server.exist(fd)}}
    broadcast:<x>           server.broadcast(x) -> {"n": its return value}
    push:<fd,fd,...>:<x>    server.push(fd, x) for each fd -> {"ok": {fd: bool}}
    task:<n>                server.task(data, finish_callback=...) -> reply from the callback
    task_finish:<n>         server.task(data) -> reply from on("finish")
    taskwait:<n>[:<dst>]    server.taskwait(data, 5.0[, dst])
    taskwait_timer:<n>      the same from a server.after() timer
    multi:<n,n,...>         server.task_wait_multi([data, ...], 5.0)
    task_async:<n>          await server.task_async(data, 5.0), in an async def path
    pipe:<worker>:<x>       server.send_message(...) to <worker>; its on("pipeMessage")
                            pushes {"re": "pipe", ...} back to this client
    reload / reload_tasks   server.reload() / server.reload(True)
    spin                    an endless loop (a stuck worker)
    hold:<path>             a busy worker: prints ``held <worker_id>``, then blocks its loop
                            until <path> exists (at most HOLD_LIMIT s), so that new
                            connections can only be accepted by the other workers
    exit                    os._exit(1) (a crash)
    raise                   an exception in the message callback (logged)

A task's data is ``task_data(fd, n)``: a dict with nested lists, a tuple, a set and bytes. The
task returns ``{"n", "square", "echo": data, "worker", "pid"}``; replies carry ``roundtrip``:
whether ``echo`` came back equal to what was sent (pickled both ways).
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from typing import Any

from events import emit, emit_lifecycle, reply

from pyswoole import WebSocketServer
from pyswoole.server import Frame

TASK_TIMEOUT = 5.0
HOLD_LIMIT = 10.0


def task_data(fd: int, n: int) -> dict[str, Any]:
    return {
        "fd": fd,
        "n": n,
        "nested": [n, [n + 1, (n, "tuple")], {"set": {1, 2, 3}, "bytes": b"\x00\xff"}],
    }


def task_summary(fd: int, result: Any) -> dict[str, Any]:
    """What a client learns about a task result (JSON-friendly)."""
    if not isinstance(result, dict):
        return {"result": repr(result), "roundtrip": False}
    n = result.get("n")
    return {
        "n": n,
        "square": result.get("square"),
        "worker": result.get("worker"),
        "pid": result.get("pid"),
        "roundtrip": result.get("echo") == task_data(fd, n),  # type: ignore[arg-type]
    }


def build(args: argparse.Namespace) -> WebSocketServer:
    server = WebSocketServer(args.host, args.port)
    settings: dict[str, Any] = {
        "worker_num": args.workers,
        "task_worker_num": args.task_workers,
        "max_request": args.max_request,
        "max_wait_time": args.max_wait_time,
        "worker_timeout": args.worker_timeout,
        "log_level": args.log_level,
    }
    if args.pid_file:
        settings["pid_file"] = args.pid_file
    if args.log_file:
        settings["log_file"] = args.log_file
    server.set(settings)
    emit_lifecycle(server)

    # -- lifecycle events -------------------------------------------------------------------

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "task" if server.taskworker else "worker")

    # -- tasks and pipe messages ------------------------------------------------------------

    if args.task_workers:

        @server.on("task")
        def on_task(server: WebSocketServer, task_id: int, src: int, data: Any) -> Any:
            emit("task", task_id, src, server.worker_id, os.getpid())
            n = data["n"]
            return {
                "n": n,
                "square": n * n,
                "echo": data,
                "worker": server.worker_id,
                "pid": os.getpid(),
            }

        @server.on("finish")
        def on_finish(server: WebSocketServer, task_id: int, result: Any) -> None:
            fd = result["echo"]["fd"]
            reply(server, fd, "task_finish", task_id=task_id, **task_summary(fd, result))

    @server.on("pipeMessage")
    def on_pipe_message(server: WebSocketServer, src: int, message: Any) -> None:
        emit("pipeMessage", server.worker_id, src, message["x"])
        reply(server, message["fd"], "pipe", x=message["x"], by=server.worker_id, src=src)

    # -- commands -----------------------------------------------------------------------------

    async def task_async(server: WebSocketServer, fd: int, n: int) -> None:
        result = await server.task_async(task_data(fd, n), TASK_TIMEOUT)
        reply(server, fd, "task_async", **task_summary(fd, result))

    def taskwait_later(fd: int, n: int) -> None:
        result = server.taskwait(task_data(fd, n), TASK_TIMEOUT)
        reply(server, fd, "taskwait_timer", **task_summary(fd, result))

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> Any:
        fd = frame.fd
        text = frame.data if isinstance(frame.data, str) else frame.data.decode()
        command, _, rest = text.partition(":")
        if command == "e":
            server.push(fd, text)
        elif command == "whoami":
            frozen = gc.get_freeze_count()  # the heap inherited from the manager (gc.freeze)
            reply(
                server, fd, "whoami", worker=server.worker_id, pid=os.getpid(), fd=fd, frozen=frozen
            )
        elif command == "count":
            fds = [int(x) for x in rest.split(",") if x]
            exist = {str(x): server.exist(x) for x in fds}
            reply(server, fd, "count", n=len(server.connections), exist=exist)
        elif command == "broadcast":
            reply(server, fd, "broadcast", n=server.broadcast(rest))
        elif command == "push":
            targets, _, data = rest.partition(":")
            ok = {x: server.push(int(x), data) for x in targets.split(",") if x}
            reply(server, fd, "push", ok=ok, worker=server.worker_id)
        elif command == "task":
            n = int(rest)

            def finished(server: WebSocketServer, task_id: int, result: Any) -> None:
                reply(server, fd, "task", task_id=task_id, **task_summary(fd, result))

            task_id = server.task(task_data(fd, n), finish_callback=finished)
            if task_id is False:
                reply(server, fd, "task", error=task_id)
        elif command == "task_finish":
            if server.task(task_data(fd, int(rest))) is False:
                reply(server, fd, "task_finish", error=-1)
        elif command == "taskwait":
            n, _, dst = rest.partition(":")
            result = server.taskwait(task_data(fd, int(n)), TASK_TIMEOUT, int(dst or -1))
            reply(server, fd, "taskwait", **task_summary(fd, result))
        elif command == "taskwait_timer":
            server.after(1, taskwait_later, fd, int(rest))
        elif command == "multi":
            ns = [int(x) for x in rest.split(",")]
            results = server.task_wait_multi([task_data(fd, n) for n in ns], TASK_TIMEOUT)
            summaries = {str(i): task_summary(fd, r) for i, r in results.items()}
            reply(server, fd, "multi", results=summaries)
        elif command == "task_async":
            return task_async(server, fd, int(rest))  # a coroutine: the server runs it
        elif command == "pipe":
            worker, _, x = rest.partition(":")
            ok = server.send_message({"fd": fd, "x": x}, int(worker))
            if not ok:
                reply(server, fd, "pipe", error="send_message returned False")
        elif command == "reload":
            reply(server, fd, "reload", ok=server.reload())
        elif command == "reload_tasks":
            reply(server, fd, "reload_tasks", ok=server.reload(True))
        elif command == "spin":
            while True:
                pass
        elif command == "hold":
            emit("held", server.worker_id)
            deadline = time.monotonic() + HOLD_LIMIT
            while not os.path.exists(rest) and time.monotonic() < deadline:
                time.sleep(0.005)
        elif command == "exit":
            os._exit(1)
        elif command == "raise":
            raise RuntimeError(f"boom from the message handler (fd {fd})")
        else:
            reply(server, fd, "error", error=f"unknown command {command!r}")
        return None

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="worker_num")
    parser.add_argument("--task-workers", type=int, default=0, help="task_worker_num")
    parser.add_argument("--max-request", type=int, default=0)
    parser.add_argument("--max-wait-time", type=float, default=3.0)
    parser.add_argument("--worker-timeout", type=float, default=30.0)
    parser.add_argument("--pid-file", default="")
    parser.add_argument("--log-file", default="")
    parser.add_argument("--log-level", type=int, default=2)
    args = parser.parse_args(argv)
    ok = build(args).start()
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
