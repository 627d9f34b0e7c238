"""A WebSocket server with the ``metrics`` setting, for tests/integration/test_metrics.py.

    python tests/integration/programs/metrics_server.py --port 0 --mode base|process
        [--workers N] [--task-workers N]

``/metrics`` answers the Prometheus text; any other HTTP request gets ``ok``. WebSocket
compression is on (for clients that offer it); ``socket_buffer_size`` is 1 MiB. Standard
output: ``READY <port>``, ``workerStart <id> <pid> worker``, lifecycle lines (events.py).

Text messages are commands:

    whoami       {"worker", "pid", "fd"}
    e:<x>        the text back (not JSON); a binary message comes back as it is
    bye:<code>   the server closes the connection with ``code``
    task:<n>:<s> n tasks that sleep s seconds each; ``finish <task_id>`` is printed for each
    hold:<n>:<p> n tasks that each read one byte from the FIFO at path p (the test holds
                 them there until it writes), then end
    to:<fd>:<x>  push x to fd (maybe another worker's: over IPC)
    b:<x>        broadcast x to every WebSocket connection
    sub:<t>      subscribe to topic t; answers {"re": "sub"}
    pub:<t>:<x>  publish x to topic t
    flood:<n>[:<to>]
                 n pushes of 64 KiB in one callback, to this connection or to fd <to>;
                 prints ``flood <fd> <refused>`` (fd: the one pushed to)
    agree        {"stats": server.stats(), "text": metrics.render(server)}, both made in
                 the same callback (nothing runs between them in this process)
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from events import emit, emit_lifecycle, reply

from pyswoole import SWOOLE_BASE, SWOOLE_PROCESS, WebSocketServer
from pyswoole.metrics import render


def build(args: argparse.Namespace) -> WebSocketServer:
    mode = SWOOLE_PROCESS if args.mode == "process" else SWOOLE_BASE
    server = WebSocketServer(args.host, args.port, mode)
    server.set(
        worker_num=args.workers,
        task_worker_num=args.task_workers,
        max_wait_time=3,
        log_level=4,
        metrics="/metrics",
        websocket_compression=True,
        socket_buffer_size=1024 * 1024,
    )
    emit_lifecycle(server)

    @server.on("managerStart")
    def on_manager_start(server: WebSocketServer) -> None:
        emit("managerStart", os.getpid())

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "task" if server.taskworker else "worker")

    if args.task_workers:

        @server.on("task")
        def on_task(server: WebSocketServer, task_id: int, src: int, data: Any) -> Any:
            if isinstance(data, str):  # hold: wait for the test's byte (a blocking read)
                fifo = os.open(data, os.O_RDONLY)
                try:
                    os.read(fifo, 1)
                finally:
                    os.close(fifo)
                return data
            time.sleep(data)  # (a task worker may block: that is what it is for)
            return data

        @server.on("finish")
        def on_finish(server: WebSocketServer, task_id: int, data: Any) -> None:
            emit("finish", task_id)

    @server.on("request")
    def on_request(request: Any, response: Any) -> None:
        response.end("ok")

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Any) -> None:
        fd = frame.fd
        if isinstance(frame.data, bytes):
            server.push(fd, frame.data, frame.opcode)
            return
        text: str = frame.data
        command, _, arg = text.partition(":")
        if command == "e":
            server.push(fd, text)
        elif command == "whoami":
            reply(server, fd, command, worker=server.worker_id, pid=os.getpid(), fd=fd)
        elif command == "bye":
            server.disconnect(fd, int(arg), "bye")
        elif command == "flood":
            # pushes in one callback until the 1 MiB output buffer refuses some
            count, _, to = arg.partition(":")
            target = int(to) if to else fd
            refused = sum(not server.push(target, "f" * 65536) for _ in range(int(count)))
            emit("flood", target, refused)  # (no reply: it would be refused too)
        elif command == "task":
            count, _, seconds = arg.partition(":")
            for _ in range(int(count)):
                server.task(float(seconds))
        elif command == "hold":
            count, _, path = arg.partition(":")
            for _ in range(int(count)):
                server.task(path)
        elif command == "to":
            target, _, data = arg.partition(":")
            server.push(int(target), data)
        elif command == "b":
            server.broadcast(arg)
        elif command == "sub":
            reply(server, fd, command, ok=server.subscribe(fd, arg))
        elif command == "pub":
            topic, _, data = arg.partition(":")
            server.publish(topic, data)
        elif command == "agree":
            stats = server.stats()
            reply(server, fd, command, stats=stats, text=render(server))
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
    args = parser.parse_args(argv)
    ok = build(args).start()
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
