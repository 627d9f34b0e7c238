"""A Swoole WebSocket chat server translated line by line from PHP (docs/porting.md).

    python examples/porting_chat.py [--host 127.0.0.1] [--port 9502] [--history FILE]

Clients connect to ``ws://host:port/?name=ann`` and send JSON ``{"text": "..."}``. Everyone
gets ``join``/``say``/``leave`` events as JSON; a task worker appends each message to the
history file. SWOOLE_PROCESS with 2 workers and 1 task worker, as the PHP original.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from pyswoole import SWOOLE_LOG_WARNING, SWOOLE_PROCESS, WebSocketServer
from pyswoole.server import Frame, Request


def broadcast(server: WebSocketServer, msg: dict[str, Any], except_fd: int = 0) -> None:
    data = json.dumps(msg)
    for fd in server.connections:
        if fd != except_fd and server.is_established(fd):
            server.push(fd, data)


def build(host: str, port: int, history: str) -> WebSocketServer:
    server = WebSocketServer(host, port, SWOOLE_PROCESS)
    server.set(
        {
            "worker_num": 2,
            "task_worker_num": 1,
            "heartbeat_check_interval": 30,
            "heartbeat_idle_time": 65,
            "log_level": SWOOLE_LOG_WARNING,
            "daemonize": 0,
        }
    )

    @server.on("start")
    def on_start(server: WebSocketServer) -> None:
        print(f"chat server listening on ws://{host}:{server.port}/", flush=True)

    @server.on("open")
    def on_open(server: WebSocketServer, request: Request) -> None:
        name = (request.get or {}).get("name", f"guest{request.fd}")  # get is None without a query
        # the others first: a client that connects once it sees the welcome must not get this join
        broadcast(server, {"type": "join", "fd": request.fd, "name": name}, request.fd)
        server.push(request.fd, json.dumps({"type": "welcome", "fd": request.fd, "name": name}))

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        try:
            msg = json.loads(frame.data)
        except ValueError:
            msg = None
        if not isinstance(msg, dict) or not isinstance(msg.get("text"), str):
            server.push(frame.fd, json.dumps({"type": "error", "error": "bad message"}))
            return
        server.task({"fd": frame.fd, "text": msg["text"]})
        broadcast(server, {"type": "say", "from": frame.fd, "text": msg["text"]})

    @server.on("task")
    def on_task(server: WebSocketServer, task_id: int, src_worker_id: int, data: Any) -> int:
        with open(history, "a") as f:
            f.write(json.dumps(data) + "\n")
        return task_id

    @server.on("finish")
    def on_finish(server: WebSocketServer, task_id: int, data: Any) -> None:
        pass

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int) -> None:
        broadcast(server, {"type": "leave", "fd": fd}, fd)

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9502)
    parser.add_argument("--history", default=str(Path(tempfile.gettempdir()) / "chat.log"))
    args = parser.parse_args(argv)
    build(args.host, args.port, args.history).start()


if __name__ == "__main__":
    main()
