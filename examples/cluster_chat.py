"""Chat rooms across machines: the same program started on several nodes, one Redis.

    python examples/cluster_chat.py --port 9501 --redis redis://127.0.0.1:6379/0 --node n1
    python examples/cluster_chat.py --port 9502 --redis redis://127.0.0.1:6379/0 --node n2
    python examples/cluster_chat.py --port 9503 --redis redis://127.0.0.1:6379/0 --node n3
        [--host 127.0.0.1] [--workers 2] [--mode base|process]

(``pip install 'pyswoole[redis]'``.) A load balancer may send each client to any node: a
message to a room reaches the room's members wherever they are connected, and a direct
message reaches every connection of a user on every node. The app only calls the topic API
(``subscribe``, ``publish``, ``bind``, ``push_user``, ``online_count``); the ``cluster``
setting is what spans the nodes.

Clients connect to ``/?name=ann&uid=7&room=lobby`` (``uid``: a positive int, optional) and
speak JSON. They send ``{"type": "say", "text": ...}`` (to their room), ``{"type": "join",
"room": ...}`` (change room), ``{"type": "to", "uid": 7, "text": ...}`` (a direct message) and
``{"type": "who"}``; they receive ``{"type": "message", "room", "name", "node", "text"}``,
``{"type": "direct", "from", "node", "text"}``, ``{"type": "joined", "room", "node"}``,
``{"type": "online", "count"}`` and ``{"type": "error", "error"}``.

The first output line names the node and its address (useful with ``--port 0``). Ctrl-C or
SIGTERM stops it gracefully.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from pyswoole import SWOOLE_BASE, SWOOLE_PROCESS, WebSocketServer
from pyswoole.server import Frame, Request

MODES = {"base": SWOOLE_BASE, "process": SWOOLE_PROCESS}
MAX_TEXT = 4096


def build(
    host: str, port: int, redis: str, node: str, workers: int = 2, mode: str = "base"
) -> WebSocketServer:
    server = WebSocketServer(host, port, MODES[mode])
    cluster = {"backend": redis, "channel_prefix": "cluster_chat"}
    if node:
        cluster["node_id"] = node  # unique per node (a node skips its own node's messages)
    server.set({"worker_num": workers, "cluster": cluster})
    node = node or f"pid{os.getpid()}"  # (for the messages)
    # fd -> (name, room): the worker that runs a connection's callbacks keeps its state
    # (SWOOLE_BASE: the worker that owns it; SWOOLE_PROCESS: the one it is dispatched to)
    people: dict[int, tuple[str, str]] = {}

    def send(fd: int, **message: Any) -> None:
        server.push(fd, json.dumps(message))

    @server.on("start")
    def on_start(server: WebSocketServer) -> None:
        line = f"cluster_chat node {node} on ws://{host}:{server.port} (pid {os.getpid()})\n"
        os.write(1, line.encode())

    @server.on("open")
    def on_open(server: WebSocketServer, request: Request) -> None:
        query = request.get or {}
        name = str(query.get("name") or f"guest{request.fd}")[:32]
        room = str(query.get("room") or "lobby")[:64]
        uid = str(query.get("uid") or "")
        people[request.fd] = (name, room)
        server.subscribe(request.fd, room)
        if uid.isdigit() and int(uid) > 0:
            server.bind(request.fd, int(uid))
        send(request.fd, type="joined", room=room, node=node)

    @server.on("message")
    async def on_message(server: WebSocketServer, frame: Frame) -> None:
        fd = frame.fd
        try:
            message = json.loads(frame.data)
            kind = message["type"]
        except (ValueError, KeyError, TypeError):
            send(fd, type="error", error="send JSON with a 'type'")
            return
        name, room = people.get(fd, (f"guest{fd}", "lobby"))
        text = str(message.get("text", ""))[:MAX_TEXT]
        if kind == "say":
            out = {"type": "message", "room": room, "name": name, "node": node, "text": text}
            server.publish(room, json.dumps(out))
        elif kind == "join":
            new_room = str(message.get("room") or "lobby")[:64]
            server.unsubscribe(fd, room)
            server.subscribe(fd, new_room)
            people[fd] = (name, new_room)
            send(fd, type="joined", room=new_room, node=node)
        elif kind == "to":
            uid = message.get("uid")
            if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
                send(fd, type="error", error="'uid' must be a positive int")
                return
            out = {"type": "direct", "from": name, "node": node, "text": text}
            server.push_user(uid, json.dumps(out))
        elif kind == "who":
            send(fd, type="online", count=await server.online_count())
        else:
            send(fd, type="error", error=f"unknown type {kind!r}")

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int) -> None:
        people.pop(fd, None)  # (the server already took fd out of its topics)

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--node", default="", help="node id (default: host:pid:random)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", choices=sorted(MODES), default="base")
    args = parser.parse_args()
    build(args.host, args.port, args.redis, args.node, args.workers, args.mode).start()


if __name__ == "__main__":
    main()
