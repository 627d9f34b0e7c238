"""A WebSocket + HTTP server for the flow-control tests (tests/integration/test_flow_control.py).

    python tests/integration/programs/flow_server.py --port 0 [--workers N]
        [--set KEY=JSON ...] [--process]

Standard output, one event per line: ``READY <port>``, ``workerStart <id> <pid> worker``,
``open <fd>``, ``bufferFull <fd>``, ``bufferEmpty <fd>``, ``close <fd> <worker_id>``,
``shutdown`` (see programs/events.py).

HTTP: ``GET /big`` answers a 64 KiB body (a small request, a big answer: what a pipelining
client that never reads piles up); ``GET /slow?ms=N`` answers "slow" after N ms (an async
handler, in flight when the server is told to stop); anything else a short body.

Text messages are commands; the replies are JSON ``{"re": <command>, ...}``:

    fill:<fd,fd,...>:<n>:<size>     push n binary messages of size bytes to each fd
                                    -> {"ok": {fd: pushes accepted}, "error": last error}
    broadcast:<seq>:<size>          broadcast one text message "<seq>:" padded with "x" to
                                    size bytes, to everyone -> {"n": broadcast's result}
    info:<fd,fd,...>                {"info": {fd: {send_queued_bytes, buffer_full} or None}}
    pushasync:<n>:<size>            await push_async() n binary messages of size bytes to
                                    the sender -> {"ok": how many returned True}
    stats                           {"stats": server.stats()}
    tag:<name>                      remember this connection's fd under <name> (no reply)
    tags                            {"tags": {name: fd}}

Anything else is echoed (binary messages too, with their opcode).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from events import emit, emit_lifecycle, reply

from pyswoole import SWOOLE_BASE, SWOOLE_PROCESS, Request, Response, WebSocketServer
from pyswoole.server import Frame

BIG = b"b" * (64 * 1024)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    parser.add_argument("--process", action="store_true", help="SWOOLE_PROCESS mode")
    args = parser.parse_args()

    mode = SWOOLE_PROCESS if args.process else SWOOLE_BASE
    server = WebSocketServer("127.0.0.1", args.port, mode)
    settings: dict[str, Any] = {"worker_num": args.workers}
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = json.loads(value)
    server.set(settings)
    emit_lifecycle(server)
    tags: dict[str, int] = {}

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "worker")

    @server.on("open")
    def on_open(server: WebSocketServer, request: Request) -> None:
        emit("open", request.fd)

    @server.on("bufferFull")
    def on_buffer_full(server: WebSocketServer, fd: int) -> None:
        emit("bufferFull", fd)

    @server.on("bufferEmpty")
    def on_buffer_empty(server: WebSocketServer, fd: int) -> None:
        emit("bufferEmpty", fd)

    @server.on("request")
    def on_request(request: Request, response: Response) -> Any:
        path = request.server["request_uri"]
        if path == "/slow":
            emit("slow", request.fd)
            return slow_answer(response, int(request.get["ms"]))
        response.end(BIG if path == "/big" else b"ok")
        return None

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> Any:
        data = frame.data
        if not isinstance(data, str):
            server.push(frame.fd, data, frame.opcode)
            return None
        command, _, rest = data.partition(":")
        if command == "fill":
            fds, n, size = rest.split(":")
            payload = b"f" * int(size)
            ok = {}
            for fd in map(int, fds.split(",")):
                ok[fd] = sum(server.push(fd, payload, 2) for _ in range(int(n)))
            reply(server, frame.fd, command, ok=ok, error=server.get_last_error())
        elif command == "broadcast":
            seq, size = rest.split(":")
            text = f"{seq}:".ljust(int(size), "x")
            reply(server, frame.fd, command, n=server.broadcast(text))
        elif command == "info":
            info: dict[str, Any] = {}
            for fd in map(int, rest.split(",")):
                found = server.get_client_info(fd)
                info[fd] = found and {
                    "send_queued_bytes": found.get("send_queued_bytes"),
                    "buffer_full": found.get("buffer_full"),
                }
            reply(server, frame.fd, command, info=info)
        elif command == "pushasync":
            n, size = map(int, rest.split(":"))
            return push_async(server, frame.fd, n, size)
        elif command == "stats":
            reply(server, frame.fd, command, stats=server.stats())
        elif command == "tag":
            tags[rest] = frame.fd
        elif command == "tags":
            reply(server, frame.fd, command, tags=tags)
        else:
            server.push(frame.fd, data)
        return None

    server.start()


async def slow_answer(response: Response, ms: int) -> None:
    await asyncio.sleep(ms / 1000)
    response.end(b"slow")


async def push_async(server: WebSocketServer, fd: int, n: int, size: int) -> None:
    payload = b"a" * size
    ok = 0
    for _ in range(n):
        ok += await server.push_async(fd, payload, 2, timeout=30)
    # the answer waits for room too: the last pushes may have filled the buffer, and a
    # plain push() would then be refused (the test would wait for an answer never sent)
    await server.push_async(fd, json.dumps({"re": "pushasync", "ok": ok}), timeout=30)


if __name__ == "__main__":
    main()
