"""A WebSocket server with user processes, for tests/integration/test_user_processes.py.

    python tests/integration/programs/user_process_server.py --port 0 --workers 2
        [--mode base|process] [--interval-ms 100] [--crasher] [--task-workers N] [--relay]

User processes (``server.add_process``):

* the pusher (a plain callback that sets a ``Timer.tick`` and returns: its loop runs the
  timer): every ``--interval-ms`` it pushes ``tick <pid> <n>`` to every connection
  (``server.connections``, ``server.exist``, ``server.push`` over IPC to the owner); a
  ``server.after`` timer sends ``hello`` to worker 0 with ``send_message``;
* with ``--relay``, Swoole's ``addProcess`` example: a process that blocks in
  ``process.read()`` and broadcasts ``relay <data>`` for each message the workers
  ``process.write()`` (command ``relay:<data>``);
* with ``--crasher``, an ``async def`` process that prints ``crasherStart <id> <pid>`` and
  raises (the manager restarts it).

Standard output, one event per line: ``READY <port>``, ``workerStart <id> <pid> worker``,
``userStart <id> <pid> <worker_id>``, ``pipeMessage <worker_id> <src> <message>``, the
``taskTimer <task_worker_id> <data>`` (a ``Timer.after`` set by ``on("task")`` in a task
worker), the lifecycle lines of events.py. Client commands: ``whoami`` -> ``{"re",
"worker", "pid"}``, ``reload`` -> ``server.reload()``, ``task:<x>`` -> ``server.task(x)``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from events import emit, emit_lifecycle

from pyswoole import SWOOLE_BASE, SWOOLE_PROCESS, Process, Timer, WebSocketServer
from pyswoole.server import Frame


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", choices=("base", "process"), default="base")
    parser.add_argument("--interval-ms", type=int, default=100)
    parser.add_argument("--crasher", action="store_true")
    parser.add_argument("--relay", action="store_true")
    parser.add_argument("--task-workers", type=int, default=0)
    args = parser.parse_args()

    mode = SWOOLE_PROCESS if args.mode == "process" else SWOOLE_BASE
    server = WebSocketServer("127.0.0.1", args.port, mode)
    server.set(
        worker_num=args.workers, task_worker_num=args.task_workers, log_level=4, max_wait_time=2
    )
    emit_lifecycle(server)

    def pusher(process: Process) -> None:
        emit("userStart", process.id, os.getpid(), server.get_worker_id())
        count = 0
        server.after(1, server.send_message, "hello", 0)  # server timers work here too

        def tick(timer_id: int) -> None:
            nonlocal count
            count += 1
            for fd in list(server.connections):
                if server.exist(fd):
                    server.push(fd, f"tick {os.getpid()} {count}")

        Timer.tick(args.interval_ms, tick)

    server.add_process(Process(pusher))

    relay: Process | None = None
    if args.relay:

        def relay_loop(process: Process) -> None:
            emit("relayStart", process.id, os.getpid())
            while True:
                data = process.read()
                if not isinstance(data, bytes) or not data:
                    return
                server.broadcast(f"relay {data.decode()}")

        relay = Process(relay_loop)
        server.add_process(relay)

    if args.crasher:

        async def crasher(process: Process) -> None:
            emit("crasherStart", process.id, os.getpid())
            await asyncio.sleep(0)
            raise RuntimeError("the crasher crashes")

        server.add_process(Process(crasher))

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "worker")

    @server.on("task")
    def on_task(server: WebSocketServer, task_id: int, src: int, data: Any) -> Any:
        Timer.after(5, emit, "taskTimer", server.worker_id, data)  # on the task worker's loop
        return data

    @server.on("pipeMessage")
    def on_pipe_message(server: WebSocketServer, src: int, message: Any) -> None:
        emit("pipeMessage", server.worker_id, src, message)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        if frame.data == "whoami":
            server.push(
                frame.fd,
                json.dumps(
                    {
                        "re": "whoami",
                        "worker": server.worker_id,
                        "pid": os.getpid(),
                        "user_worker_num": server.stats()["user_worker_num"],
                    }
                ),
            )
        elif frame.data == "reload":
            server.reload()
        elif frame.data.startswith("relay:") and relay is not None:
            relay.write(frame.data[6:])
        elif frame.data.startswith("task:"):
            server.task(frame.data[5:])

    server.start()


if __name__ == "__main__":
    main()
