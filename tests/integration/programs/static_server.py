"""An HTTP + WebSocket server with the static file handler, for
tests/integration/test_static_files.py (its multi-process and big-file cases).

    python tests/integration/programs/static_server.py --port 0 --root DIR \
        [--mode base|process] [--workers N]

Standard output: ``READY <port>`` and ``workerStart <id> <pid> worker``.  ``on("request")``
answers ``dynamic <path> <pid>`` (so a test sees which requests were not static and which
process answered them); a WebSocket message is echoed.
"""

from __future__ import annotations

import argparse
import os

from events import emit, emit_lifecycle

from pyswoole import SWOOLE_BASE, SWOOLE_PROCESS, WebSocketServer
from pyswoole.server import Frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--root", required=True)
    parser.add_argument("--mode", choices=("base", "process"), default="base")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    mode = SWOOLE_PROCESS if args.mode == "process" else SWOOLE_BASE
    server = WebSocketServer("127.0.0.1", args.port, mode)
    server.set(
        {
            "worker_num": args.workers,
            "enable_static_handler": True,
            "document_root": args.root,
            "http_index_files": ["index.html"],
        }
    )
    emit_lifecycle(server)

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "worker")

    @server.on("request")
    def on_request(request: object, response: object) -> None:
        path = request.server["request_uri"]  # type: ignore[attr-defined]
        response.end(f"dynamic {path} {os.getpid()}")  # type: ignore[attr-defined]

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        server.push(frame.fd, frame.data, frame.opcode)

    server.start()


if __name__ == "__main__":
    main()
