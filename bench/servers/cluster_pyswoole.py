"""pyswoole node of ``bench/cluster_bench.py``: topics, optionally spanning nodes on Redis.

A client that connects to ``/t/<topic>`` is subscribed to ``<topic>`` when it opens; a
client on ``/pub/<topic>`` is a publisher: each message it sends is delivered to the
topic's subscribers, with ``--deliver publish`` (default) by ``server.publish(topic, data)``
(every worker and, with ``--redis``, every node on that Redis), with ``--deliver broadcast``
by ``server.broadcast(data, fds)`` to every other connection of this node (the fds are
listed again on each sync message, those starting with ``S``, which come before the
measured ones), with ``--deliver broadcast-all`` by ``server.broadcast(data)`` to every
connection, the publisher's own included (the cheapest path: no fd list). The last two
are the baselines of the publish-vs-broadcast comparison.

Runs with the project's own interpreter and ``src/`` on PYTHONPATH (see bench/README.md).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from common import HOST, MAX_MESSAGE

from pyswoole import WebSocketServer

DELIVERIES = ("publish", "broadcast", "broadcast-all")


def build(
    port: int, workers: int, redis: str, node: str, deliver: str = "publish"
) -> WebSocketServer:
    server = WebSocketServer(HOST, port)
    settings: dict[str, Any] = {"package_max_length": MAX_MESSAGE, "worker_num": workers}
    if redis:
        settings["cluster"] = {"backend": redis, "node_id": node, "channel_prefix": "bench"}
    server.set(settings)
    publishers: dict[int, str] = {}  # fd -> topic, this worker's publishers
    receivers: list[int] = []  # --deliver broadcast: every other connection of the node

    @server.on("start")
    def on_start(server: WebSocketServer) -> None:
        os.write(1, f"cluster_pyswoole node {node} on port {server.port}\n".encode())

    @server.on("open")
    def on_open(server: WebSocketServer, request: Any) -> None:
        path = str(request.server.get("path_info", "/"))
        if path.startswith("/t/"):
            server.subscribe(request.fd, path[3:])
        elif path.startswith("/pub/"):
            publishers[request.fd] = path[5:]

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Any) -> None:
        topic = publishers.get(frame.fd)
        if topic is None:
            return
        if deliver == "publish":
            server.publish(topic, frame.data, frame.opcode)
            return
        data = frame.data
        if deliver == "broadcast-all":
            server.broadcast(data, None, frame.opcode)
            return
        if data[:1] in ("S", b"S"):  # a sync message: list the receivers again
            receivers[:] = [fd for fd in server.connections if fd not in publishers]
        server.broadcast(data, receivers, frame.opcode)

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int) -> None:
        publishers.pop(fd, None)

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--redis", default="", help="redis://... : the cluster setting")
    parser.add_argument("--node", default=f"n{os.getpid()}")
    parser.add_argument("--deliver", choices=DELIVERIES, default="publish")
    args = parser.parse_args()
    build(args.port, args.workers, args.redis, args.node, args.deliver).start()


if __name__ == "__main__":
    main()
