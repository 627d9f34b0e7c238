"""A WebSocket server with slow callbacks and buffer callbacks, for
tests/integration/test_process_flow.py (flow control and closing order across IPC).

    python tests/integration/programs/ipc_flow_server.py --port 0 [--workers 2]
        [--mode process|base] [--slow-ms MS] [--buffer-size BYTES] [--high-water BYTES]
        [--max-wait-time S]

Standard output carries one event per line (one ``write`` per line):

    READY <port>                        the master's (or manager's) on("start")
    managerStart <pid>
    workerStart <id> <pid> worker
    workerStop <id> <pid>
    open <fd> <worker_id> <pid>
    bufferFull <fd> <worker_id> <pid>
    bufferEmpty <fd> <worker_id> <pid>  then the text "drained" is pushed to fd
    close <fd> <worker_id>

Messages:

    flood:<count>:<size>    push <count> binary messages of <size> bytes to the sender, each
                            starting with its number (4 bytes, little endian)
    a:<ms>:<text>           an async callback: await <ms> ms, then push <text>
    s:<ms>:<text>           block the worker <ms> ms, then push <text>
    anything else           echoed with its opcode, after blocking --slow-ms ms (0: at once)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from events import emit, emit_lifecycle

from pyswoole import (
    SWOOLE_BASE,
    SWOOLE_PROCESS,
    WEBSOCKET_OPCODE_BINARY,
    WebSocketServer,
)
from pyswoole.server import Frame

MODES = {"base": SWOOLE_BASE, "process": SWOOLE_PROCESS}


def build(args: argparse.Namespace) -> WebSocketServer:
    server = WebSocketServer(args.host, args.port, MODES[args.mode])
    server.set(
        worker_num=args.workers,
        max_wait_time=args.max_wait_time,
        socket_buffer_size=args.buffer_size,
        package_max_length=16 * 1024 * 1024,
    )
    if args.high_water is not None:
        server.set(buffer_high_watermark=args.high_water)
    emit_lifecycle(server)
    slow = args.slow_ms / 1000

    @server.on("managerStart")
    def on_manager_start(server: WebSocketServer) -> None:
        emit("managerStart", os.getpid())

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "worker")

    @server.on("open")
    def on_open(server: WebSocketServer, request: Any) -> None:
        emit("open", request.fd, server.worker_id, os.getpid())

    @server.on("bufferFull")
    def on_buffer_full(server: WebSocketServer, fd: int) -> None:
        emit("bufferFull", fd, server.worker_id, os.getpid())

    @server.on("bufferEmpty")
    def on_buffer_empty(server: WebSocketServer, fd: int) -> None:
        emit("bufferEmpty", fd, server.worker_id, os.getpid())
        server.push(fd, "drained")

    async def later(server: WebSocketServer, fd: int, seconds: float, text: str) -> None:
        await asyncio.sleep(seconds)  # stands for awaiting a database
        server.push(fd, text)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> Any:
        fd, data = frame.fd, frame.data
        if isinstance(data, str):
            command, _, rest = data.partition(":")
            if command == "flood":
                count, size = (int(x) for x in rest.split(":"))
                for seq in range(count):
                    body = seq.to_bytes(4, "little") + b"\xfe" * (size - 4)
                    server.push(fd, body, WEBSOCKET_OPCODE_BINARY)
                return None
            if command in ("a", "s"):
                ms, _, text = rest.partition(":")
                if command == "a":
                    return later(server, fd, int(ms) / 1000, text)
                time.sleep(int(ms) / 1000)  # a slow callback (the server under test)
                server.push(fd, text)
                return None
        if slow:
            time.sleep(slow)  # a slow worker
        server.push(fd, data, frame.opcode)
        return None

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="worker_num")
    parser.add_argument("--mode", choices=sorted(MODES), default="process")
    parser.add_argument("--slow-ms", type=float, default=0.0, help="block per echoed message")
    parser.add_argument("--buffer-size", type=int, default=8 * 1024 * 1024)
    parser.add_argument("--high-water", type=int, default=None, help="buffer_high_watermark")
    parser.add_argument("--max-wait-time", type=float, default=3.0)
    args = parser.parse_args(argv)
    ok = build(args).start()
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
