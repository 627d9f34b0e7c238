"""pyswoole echo/fanout server, written against the Swoole-style public API.

Runs with the project's own interpreter and ``src/`` on PYTHONPATH (see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from common import HOST, MAX_MESSAGE, parse_args

from pyswoole import SWOOLE_BASE, SWOOLE_SOCK_TCP, SWOOLE_SSL, WebSocketServer


def build(
    port: int,
    fanout: bool,
    compression: bool,
    workers: int = 1,
    http: bool = False,
    tls: tuple[str, str] | None = None,
    scale: argparse.Namespace | None = None,
) -> Any:
    """The server; ``tls`` = (certificate, key) files makes it a SWOOLE_SSL listener;
    ``scale`` (``--max-conn``, ``--backlog``, ``--stats``) is for the cross-process F100k."""
    sock_type = SWOOLE_SOCK_TCP | (SWOOLE_SSL if tls else 0)
    server = WebSocketServer(HOST, port, SWOOLE_BASE, sock_type)
    settings: dict[str, Any] = {
        "package_max_length": MAX_MESSAGE,
        "websocket_compression": compression,
        "worker_num": workers,
    }
    if tls:
        settings.update(ssl_cert_file=tls[0], ssl_key_file=tls[1])
    if scale is not None and scale.max_conn:
        settings["max_conn"] = scale.max_conn  # default: ulimit -n, also the shared table's size
    if scale is not None and scale.backlog:
        settings["backlog"] = scale.backlog
    server.set(settings)

    @server.on("message")
    def on_message(server: Any, frame: Any) -> None:
        if fanout:
            server.broadcast(frame.data, opcode=frame.opcode)  # encodes once for all fds
        else:
            server.push(frame.fd, frame.data, frame.opcode)

    if http:  # only with --http (bench/hostile.py): plain HTTP on the same port

        @server.on("request")
        def on_request(request: Any, response: Any) -> None:
            response.end(b"ok")

    if scale is not None and scale.stats:

        @server.on("request")
        def on_stats(request: Any, response: Any) -> None:
            response.header("Content-Type", "application/json")
            response.end(json.dumps(stats(server)))

    return server


def stats(server: Any) -> dict[str, Any]:
    """``--stats``: any HTTP request gets ``len(server.connections)`` and how long one
    iteration over ``server.connections`` (every worker's, from the shared table) takes."""
    started = time.perf_counter()
    count = len(server.connections)
    len_s = time.perf_counter() - started
    started = time.perf_counter()
    iterated = sum(1 for _ in server.connections)
    iter_s = time.perf_counter() - started
    return {
        "worker_id": server.worker_id,
        "pid": os.getpid(),
        "connections": count,
        "len_s": len_s,
        "iterated": iterated,
        "iter_s": iter_s,
    }


def scale_args() -> argparse.Namespace:
    """Take this server's own options out of ``sys.argv`` (common.parse_args takes the rest)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--max-conn", type=int, default=0, help="max_conn (all workers)")
    parser.add_argument("--backlog", type=int, default=0, help="listen() backlog")
    parser.add_argument("--stats", action="store_true", help="HTTP: connections as JSON")
    own, rest = parser.parse_known_args(sys.argv[1:])
    sys.argv[1:] = rest
    return own


def main() -> None:
    scale = scale_args()
    args = parse_args("pyswoole echo server", compression=True, workers=True, http=True)
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    server = build(args.port, args.fanout, args.compression, args.workers, args.http, tls, scale)
    server.start()


if __name__ == "__main__":
    main()
