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
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import struct

from pyswoole import SWOOLE_PROCESS, Atomic, Lock, Table, WebSocketServer
from pyswoole.server import Frame


def emit(*parts: object) -> None:
    os.write(1, (" ".join(str(p) for p in parts) + "\n").encode())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--task-workers", type=int, default=1)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--process", action="store_true")
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

    @server.on("task")
    def on_task(server: WebSocketServer, task_id: int, src: int, data: object) -> object:
        return data

    raise SystemExit(0 if server.start() else 1)


if __name__ == "__main__":
    main()
