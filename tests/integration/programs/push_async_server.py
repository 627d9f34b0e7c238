"""A WebSocket server whose callback pushes with ``push_async`` (Swoole's ``send_yield``),
for tests/integration/test_process_flow.py and test_base_flow.py.

    python tests/integration/programs/push_async_server.py --port 0 [--mode process|base]
        [--workers N] [--buffer-size BYTES]

Standard output: ``READY <port>``, ``workerStart <id> <pid> worker``, and ``pushed <n>``
once a ``go`` callback's loop has returned (``n``: how many push_async returned True).

A text message ``go:<count>:<size>`` makes the callback ``await push_async`` count binary
messages of size bytes (each starting with its number, 4 bytes little endian) to the
sender, then ``push_async`` the text ``done <n>``.

``sync:<count>:<size>`` pushes such messages with plain ``push``, 1 ms apart, until one
is refused (at most count), prints ``refused <n> <error> <send_queued_bytes>
<buffer_full>`` (``n``: how many were taken; the error code and ``get_client_info`` at
that moment), then ``push_async`` the text ``done <n>``.

``burst:<count>:<big>:<size>`` pushes one binary message of big bytes, then at once (no
await between them) count of size bytes, prints ``burst <n>`` (how many push returned
True), pushes size bytes 1 ms apart until one is refused (at most 5000), prints
``then <error>``, then ``push_async`` the text ``done``. Anything else is echoed.

``other:<command>`` (SWOOLE_BASE, 2 workers): the worker that has the connection prints
``forward <fd> <its worker id>`` and hands the command to the other worker
(``send_message``), whose ``pipeMessage`` prints ``pipe <fd> <its worker id> <the fd's
worker_id in get_client_info>`` and runs it for that fd: every push crosses IPC.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from events import emit, emit_lifecycle

from pyswoole import SWOOLE_BASE, SWOOLE_PROCESS, WebSocketServer
from pyswoole.server import Frame

MODES = {"base": SWOOLE_BASE, "process": SWOOLE_PROCESS}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=MODES, default="process")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--buffer-size", type=int, default=256 * 1024)
    args = parser.parse_args()

    server = WebSocketServer("127.0.0.1", args.port, MODES[args.mode])
    server.set(worker_num=args.workers, socket_buffer_size=args.buffer_size, log_level=4)
    emit_lifecycle(server)

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "worker")

    @server.on("message")
    async def on_message(server: WebSocketServer, frame: Frame) -> None:
        data = frame.data
        if isinstance(data, str) and data.startswith("other:"):
            emit("forward", frame.fd, server.worker_id)
            server.send_message((frame.fd, data[6:]), 1 - server.worker_id)
        else:
            await run(server, frame.fd, data, frame.opcode)

    @server.on("pipeMessage")
    async def on_pipe(server: WebSocketServer, src: int, message: tuple[int, str]) -> None:
        fd, command = message
        info = server.get_client_info(fd) or {}
        emit("pipe", fd, server.worker_id, info.get("worker_id", -1))
        await run(server, fd, command, 1)

    server.start()


async def run(server: WebSocketServer, fd: int, data: str | bytes, opcode: int) -> None:
    """One command (the module doc) for connection ``fd``."""
    if isinstance(data, str) and data.startswith("go:"):
        _, count, size = data.split(":")
        ok = 0
        for seq in range(int(count)):
            body = seq.to_bytes(4, "little") * (int(size) // 4)
            ok += await server.push_async(fd, body, 2, timeout=30)
        emit("pushed", ok)
        await server.push_async(fd, f"done {ok}", timeout=30)
    elif isinstance(data, str) and data.startswith("sync:"):
        _, count, size = data.split(":")
        taken = 0
        for seq in range(int(count)):
            body = seq.to_bytes(4, "little") * (int(size) // 4)
            if not server.push(fd, body, 2):
                break
            taken += 1
            await asyncio.sleep(0.001)
        error = server.get_last_error()
        info = server.get_client_info(fd) or {}
        queued, full = info.get("send_queued_bytes", -1), int(info.get("buffer_full", -1))
        emit("refused", taken, error, queued, full)
        await server.push_async(fd, f"done {taken}", timeout=30)
    elif isinstance(data, str) and data.startswith("burst:"):
        _, count, big, size = data.split(":")
        oks = server.push(fd, b"\xbb" * int(big), 2)
        for _ in range(int(count)):
            oks += server.push(fd, b"\x55" * int(size), 2)
        emit("burst", oks)
        for _ in range(5000):
            await asyncio.sleep(0.001)
            if not server.push(fd, b"\x55" * int(size), 2):
                break
        emit("then", server.get_last_error())
        await server.push_async(fd, "done", timeout=30)
    else:
        server.push(fd, data, opcode)


if __name__ == "__main__":
    main()
