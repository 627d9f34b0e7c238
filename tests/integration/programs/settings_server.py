"""A WebSocket server whose settings come from the command line, reporting what they did,
for tests/integration/test_settings_applied.py.

    python tests/integration/programs/settings_server.py --port 0 --settings '{"user": "nobody"}'

Standard output: ``READY <port>`` and ``workerStart <id> <pid> worker|task`` (programs/events.py).
The text message ``info`` is answered with a JSON object describing the worker process and
the client's server-side socket: uid, gid, CPU affinity, asyncio debug mode, TCP_NODELAY,
SO_KEEPALIVE and TCP_KEEPIDLE of the connection, TCP_DEFER_ACCEPT and TCP_FASTOPEN of the
listening socket (read through the server's internals: that is what the test checks).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket

from events import emit, emit_lifecycle, reply

from pyswoole import WebSocketServer
from pyswoole.server import Frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--settings", default="{}")
    args = parser.parse_args()
    server = WebSocketServer("127.0.0.1", args.port)
    server.set(json.loads(args.settings))
    emit_lifecycle(server)

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "task" if server.taskworker else "worker")

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        conn = server._table[frame.fd]
        sock = conn.transport.get_extra_info("socket")
        listener = server._listeners[0].sock
        tcp = socket.IPPROTO_TCP
        reply(
            server,
            frame.fd,
            "info",
            worker=server.worker_id,
            uid=os.getuid(),
            gid=os.getgid(),
            cpus=sorted(os.sched_getaffinity(0)),
            debug=asyncio.get_running_loop().get_debug(),
            nodelay=sock.getsockopt(tcp, socket.TCP_NODELAY),
            keepalive=sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            keepidle=sock.getsockopt(tcp, socket.TCP_KEEPIDLE),
            defer_accept=listener.getsockopt(tcp, socket.TCP_DEFER_ACCEPT) if listener else None,
            fastopen=listener.getsockopt(tcp, socket.TCP_FASTOPEN) if listener else None,
        )

    server.start()


if __name__ == "__main__":
    main()
