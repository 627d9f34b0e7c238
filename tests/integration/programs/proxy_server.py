"""A server behind (pretend) proxies, for tests/integration/test_proxies.py: each HTTP request
and each WebSocket message is answered with the client's address as the server sees it.

    python tests/integration/programs/proxy_server.py --port 0 --mode process --workers 2 \
        --settings '{"trusted_proxies": ["127.0.0.1"]}'

Standard output: ``READY <port>`` and ``workerStart <id> <pid> worker``. A request's answer is
a JSON object: the request's ``remote_addr``/``remote_port``, the worker that ran it, and
``get_client_info`` of its fd (in SWOOLE_PROCESS mode the master owns the connection, so the
worker reads the shared table); a WebSocket message gets the same for its fd.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from events import emit, emit_lifecycle

from pyswoole import SWOOLE_BASE, SWOOLE_PROCESS, WebSocketServer
from pyswoole.server import Frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=["base", "process"], default="base")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--settings", default="{}")
    args = parser.parse_args()
    mode = SWOOLE_PROCESS if args.mode == "process" else SWOOLE_BASE
    server = WebSocketServer("127.0.0.1", args.port, mode)
    server.set({"worker_num": args.workers, **json.loads(args.settings)})
    emit_lifecycle(server)

    def seen(fd: int, **extra: Any) -> str:
        info = server.get_client_info(fd) or {}
        return json.dumps(
            {
                "worker": server.worker_id,
                "info": [info.get("remote_ip"), info.get("remote_port")],
                **extra,
            }
        )

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "worker")

    @server.on("request")
    def on_request(request: Any, response: Any) -> None:
        addr = [request.server["remote_addr"], request.server["remote_port"]]
        response.end(seen(request.fd, request=addr))

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        server.push(frame.fd, seen(frame.fd))

    server.start()


if __name__ == "__main__":
    main()
