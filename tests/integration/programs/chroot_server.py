"""A WebSocket server whose workers ``chroot`` (the setting), for
tests/integration/test_chroot.py.

    python tests/integration/programs/chroot_server.py --port 0 --root /srv/jail --workers 2

Standard output: ``READY <port>`` and ``workerStart <id> <pid> worker`` (programs/events.py).
The text message ``ls`` is answered with the worker's view of ``/`` and its working
directory, as JSON.
"""

from __future__ import annotations

import argparse
import os

from events import emit, emit_lifecycle, reply

from pyswoole import WebSocketServer
from pyswoole.server import Frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--root", required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    server = WebSocketServer("127.0.0.1", args.port)
    server.set(chroot=args.root, worker_num=args.workers, log_level=4)
    emit_lifecycle(server)

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "worker")

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        reply(server, frame.fd, "ls", root=sorted(os.listdir("/")), cwd=os.getcwd())

    server.start()


if __name__ == "__main__":
    main()
