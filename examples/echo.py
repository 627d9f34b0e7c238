"""Echo server: every message comes back with its opcode (text as text, binary as binary).

    python examples/echo.py [--host 127.0.0.1] [--port 9501] [--max-length BYTES]
                            [--compression] [--workers N] [--mode base|process]

``--mode base`` (the default) is SWOOLE_BASE: with ``--workers N`` > 1, N worker processes
share the port and each runs the echo for its own connections. ``--mode process`` is
SWOOLE_PROCESS: with ``--workers N`` > 1, a master process owns every connection and forwards
each message to worker ``fd % N``, whose echo goes back to the master over IPC. With one
worker (the default) SWOOLE_BASE serves in this one process; SWOOLE_PROCESS still runs a
master and one worker.

Prints one line when it listens (with the real port, useful with ``--port 0``) and nothing
per message. Ctrl-C (SIGINT) or SIGTERM stops it gracefully: clients get close code 1001.
"""

from __future__ import annotations

import argparse

from pyswoole import SWOOLE_BASE, SWOOLE_PROCESS, WebSocketServer
from pyswoole.server import Frame

MODES = {"base": SWOOLE_BASE, "process": SWOOLE_PROCESS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument(
        "--max-length",
        type=int,
        # package_max_length counts each frame with its header (as Swoole): 16 MiB of
        # payload in one frame (Autobahn's largest, cases 9.x.6) plus 14 header bytes
        default=16 * 1024 * 1024 + 14,
        help="package_max_length: largest frame in bytes, header included, and largest "
        "message (default 16 MiB + 14)",
    )
    parser.add_argument(
        "--compression", action="store_true", help="websocket_compression: offer permessage-deflate"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker_num")
    parser.add_argument(
        "--mode",
        choices=sorted(MODES),
        default="base",
        help="base: SWOOLE_BASE (default); process: SWOOLE_PROCESS (a master owns the sockets)",
    )
    args = parser.parse_args(argv)

    server = WebSocketServer(args.host, args.port, MODES[args.mode])
    server.set(
        package_max_length=args.max_length,
        websocket_compression=args.compression,
        worker_num=args.workers,
    )

    @server.on("start")
    def on_start(server: WebSocketServer) -> None:
        print(f"echo server listening on ws://{args.host}:{server.port}/", flush=True)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        server.push(frame.fd, frame.data, frame.opcode)

    server.start()


if __name__ == "__main__":
    main()
