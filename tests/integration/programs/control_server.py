"""A multi-process WebSocket server for tests/integration/test_server_methods_processes.py:
the worker- and connection-control methods across processes (issue 12).

    python tests/integration/programs/control_server.py --port 0 --mode base|process
        [--workers N] [--task-workers N] [--heartbeat] [--delay]

``--heartbeat`` sets ``heartbeat_check_interval`` (and idle time) to 100 s: the periodic
check never runs during a test, ``heartbeat()`` works. ``--delay`` sets
``enable_delay_receive``; ``on("connect")`` then prints ``connect <fd> <worker_id>`` and
confirms the connection (in the worker: the master owns it in SWOOLE_PROCESS mode).

Standard output carries one event per line (events.py): ``READY <port>``, ``start
<get_worker_id()> <get_worker_pid()> <pid>`` (in the master or manager), ``managerStart
<pid>``, ``workerStart <id> <pid> worker|task``, ``workerStop``, ``workerError``, ``close``,
``managerStop``, ``shutdown``.

Text messages are commands; replies are JSON objects ``{"re": <command>, ...}``:

    whoami              {"worker", "pid", "fd"}
    e:<x>               the text back (not JSON)
    stop:<id>           server.stop(id) -> {"ok"}
    status:<id>         server.get_worker_status(id) -> {"status"}
    pid:<id>            server.get_worker_pid(id) -> {"pid"}
    pids                {"manager", "master", "worker_id"}
    pause:<fd>          server.pause(fd) -> {"ok"}; resume:<fd>, confirm:<fd>, protect:<fd>
    stats               {"stats": server.stats()}
    taskstats           {"stats": stats() in a task worker} (with --task-workers)
    hb:<close>:<idle>   heartbeat(close == "1") with heartbeat_idle_time=<idle> seconds in
                        the asking process -> {"fds"}
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from events import emit, emit_lifecycle, reply

from pyswoole import SWOOLE_BASE, SWOOLE_PROCESS, WebSocketServer


def build(args: argparse.Namespace) -> WebSocketServer:
    mode = SWOOLE_PROCESS if args.mode == "process" else SWOOLE_BASE
    server = WebSocketServer(args.host, args.port, mode)
    server.set(
        worker_num=args.workers,
        task_worker_num=args.task_workers,
        max_wait_time=3,
        log_level=4,
    )
    if args.heartbeat:
        server.set(heartbeat_check_interval=100, heartbeat_idle_time=100)
    if args.delay:
        server.set(enable_delay_receive=True)

        @server.on("connect")
        def on_connect(server: WebSocketServer, fd: int, reactor_id: int) -> None:
            emit("connect", fd, server.worker_id)
            server.confirm(fd)

    emit_lifecycle(server)

    @server.on("start")  # (replaces emit_lifecycle's: READY, then what the master knows)
    def on_start(server: WebSocketServer) -> None:
        emit("READY", server.port)
        emit("start", server.get_worker_id(), server.get_worker_pid(), os.getpid())

    @server.on("managerStart")
    def on_manager_start(server: WebSocketServer) -> None:
        emit("managerStart", os.getpid())

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "task" if server.taskworker else "worker")

    if args.task_workers:
        # a task "stats" answers the task worker's own stats()
        server.on("task", lambda server, task_id, src, data: server.stats())

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Any) -> None:
        text: str = frame.data
        command, _, arg = text.partition(":")
        fd = frame.fd
        if command == "e":
            server.push(fd, text)
        elif command == "whoami":
            reply(server, fd, command, worker=server.worker_id, pid=os.getpid(), fd=fd)
        elif command == "stop":
            reply(server, fd, command, ok=server.stop(int(arg)))
        elif command == "status":
            reply(server, fd, command, status=server.get_worker_status(int(arg)))
        elif command == "pid":
            reply(server, fd, command, pid=server.get_worker_pid(int(arg)))
        elif command == "pids":
            reply(
                server,
                fd,
                command,
                manager=server.get_manager_pid(),
                master=server.get_master_pid(),
                worker_id=server.get_worker_id(),
            )
        elif command in ("pause", "resume", "confirm", "protect"):
            reply(server, fd, command, ok=getattr(server, command)(int(arg)))
        elif command == "stats":
            reply(server, fd, command, stats=server.stats())
        elif command == "taskstats":
            reply(server, fd, command, stats=server.taskwait("stats", 5.0))
        elif command == "hb":
            close, _, idle = arg.partition(":")
            worker: Any = server._worker  # (the idle time of the asking process only)
            worker.heartbeat_idle_time = float(idle)
            reply(server, fd, command, fds=server.heartbeat(close == "1"))
        else:
            reply(server, fd, "error", text=text)

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=["base", "process"], default="base")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--task-workers", type=int, default=0)
    parser.add_argument("--heartbeat", action="store_true")
    parser.add_argument("--delay", action="store_true")
    args = parser.parse_args(argv)
    ok = build(args).start()
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
