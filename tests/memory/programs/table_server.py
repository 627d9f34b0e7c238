"""A multi-process WebSocket server sharing a Table, an Atomic and a Lock, for
tests/memory/test_server_memory.py.

    python tests/memory/programs/table_server.py --port 0 [--workers 2] [--task-workers 1]
        [--count 10000] [--process]

The table, atomic and lock are made before ``start()``: every worker and task worker forks
with them. Each process, in on("workerStart"), adds ``--count`` to a table row (int and float
columns), to the Atomic and, under the Lock, to a plain shared counter, writes its own row,
then prints ``counted <worker_id> <pid>``. A client's ``get`` gets everything as JSON; its
``mark:<i>`` sets row ``c<i>`` (the serving worker's id and pid), adds 1 to row ``shared`` and
answers with both rows as read back. ``--process``: SWOOLE_PROCESS with round-robin dispatch,
so that connections spread evenly over the workers.

``--user`` adds a user process (``server.add_process``) whose callback is ``async def``: it
adds ``--count`` to the same row as the workers, then uses ``server.tick`` (row ``utick``
counts 3 ticks, then the timer is cleared) and ``Timer.after`` (row ``uafter``), prints
``counted <id> <pid>`` and waits for ever on its own loop.

``churn`` (a client command) makes the worker write rows ``k0``..``k39`` for ever, each row
consistent (``n == -worker``, ``f == worker / 4``, ``who == str(worker)`` reversed); it prints
``churning <worker_id> <pid>`` after 2,000 writes and goes on until it is killed. ``check``
answers every ``k`` row as read, then whether each can be written again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mmap
import os
import random
import struct

from pyswoole import SWOOLE_PROCESS, Atomic, Lock, Process, Table, Timer, WebSocketServer
from pyswoole.server import Frame

KEYS = [f"k{i}" for i in range(40)]


def consistent(a: int) -> dict[str, int | float | str]:
    """A row whose columns agree with each other (a torn row would not)."""
    return {"worker": a, "n": -a, "f": a / 4, "who": str(a)[::-1]}


def emit(*parts: object) -> None:
    os.write(1, (" ".join(str(p) for p in parts) + "\n").encode())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--task-workers", type=int, default=1)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--process", action="store_true")
    parser.add_argument("--user", action="store_true")
    args = parser.parse_args()

    table = Table(1024)
    table.column("worker", Table.TYPE_INT)
    table.column("n", Table.TYPE_INT)
    table.column("f", Table.TYPE_FLOAT)
    table.column("who", Table.TYPE_STRING, 16)
    table.create()
    hits = Atomic()
    lock = Lock()
    plain = mmap.mmap(-1, 8)  # a counter with no atomicity of its own: the Lock guards it
    cell = struct.Struct("<q")

    if args.process:
        server = WebSocketServer("127.0.0.1", args.port, SWOOLE_PROCESS)
        server.set({"dispatch_mode": 1})
    else:
        server = WebSocketServer("127.0.0.1", args.port)
    server.set({"worker_num": args.workers, "task_worker_num": args.task_workers})

    @server.on("start")
    def on_start(server: WebSocketServer) -> None:
        emit("READY", server.port)

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        for _ in range(args.count):
            table.incr("hits", "n")
            table.incr("hits", "f", 0.5)
            hits.add()
            with lock:
                cell.pack_into(plain, 0, cell.unpack_from(plain, 0)[0] + 1)
        kind = "task" if server.taskworker else "worker"
        table.set(f"w{worker_id}", {"n": os.getpid(), "who": kind})
        emit("counted", worker_id, os.getpid())

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        command, _, arg = str(frame.data).partition(":")
        if command == "mark":
            table.set(f"c{arg}", {"n": os.getpid(), "worker": server.worker_id, "who": "client"})
            table.incr("shared", "n")
            mine = table.get(f"c{arg}")
            server.push(frame.fd, json.dumps({"re": "mark", "row": mine, "pid": os.getpid()}))
        elif command == "churn":
            rng = random.Random(os.getpid())
            for i in range(10**9):  # until the test kills this worker with SIGKILL
                table.set(KEYS[i % len(KEYS)], consistent(rng.randrange(1, 10**9)))
                if i == 2000:
                    emit("churning", server.worker_id, os.getpid())
        elif command == "check":
            rows = {key: table.get(key) for key in KEYS}
            writable = all(table.set(key, consistent(7)) for key in KEYS)
            server.push(
                frame.fd,
                json.dumps({"re": "check", "rows": rows, "writable": writable, "pid": os.getpid()}),
            )
        elif frame.data == "get":
            server.push(
                frame.fd,
                json.dumps(
                    {
                        "re": "get",
                        "n": table.get("hits", "n"),
                        "f": table.get("hits", "f"),
                        "atomic": hits.get(),
                        "locked": cell.unpack_from(plain, 0)[0],
                        "rows": {str(k): r for k, r in table},
                        "count": table.count(),
                        "pid": os.getpid(),
                    }
                ),
            )

    if args.user:

        async def user_process(process: Process) -> None:
            for _ in range(args.count):
                table.incr("hits", "n")
                table.incr("hits", "f", 0.5)
                hits.add()
                with lock:
                    cell.pack_into(plain, 0, cell.unpack_from(plain, 0)[0] + 1)
            ticked = asyncio.Event()
            after = asyncio.Event()

            def on_tick(timer_id: int) -> None:
                if table.incr("utick", "n") == 3:
                    server.clear_timer(timer_id)
                    ticked.set()

            server.tick(5, on_tick)
            Timer.after(5, lambda: (table.set("uafter", {"who": "after"}), after.set()))
            await ticked.wait()
            await after.wait()
            table.set(f"w{process.id}", {"n": os.getpid(), "who": "user"})
            emit("counted", process.id, os.getpid())
            await asyncio.Event().wait()  # a user process lives as long as the server

        server.add_process(Process(user_process))

    @server.on("task")
    def on_task(server: WebSocketServer, task_id: int, src: int, data: object) -> object:
        return data

    raise SystemExit(0 if server.start() else 1)


if __name__ == "__main__":
    main()
