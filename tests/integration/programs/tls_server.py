"""A multi-process WebSocket server with a plain port and a TLS port, for
tests/integration/test_tls.py.

    python tests/integration/programs/tls_server.py --port 0 --cert C --key K
        [--mode base|process] [--workers N] [--as-nobody] [--client-ca CA]

The main port (``--port``) is plain ``ws://``; ``listen(..., SWOOLE_SOCK_TCP | SWOOLE_SSL)``
adds a ``wss://`` port with the server's ``ssl_*`` settings and permessage-deflate on.
Standard output: ``READY <port>``, ``TLS <tls_port>``, ``workerStart <id> <pid> worker``
and the lifecycle lines of events.py. Text messages: ``reload`` calls ``server.reload()``
and answers ``{"re": "reload"}``; ``whoami`` answers the worker and its uid; ``cert``
answers the worker, ``get_client_info(fd)['ssl_client_cert']`` and how many client
certificates that worker holds; anything else is echoed. ``--as-nobody``: the workers run
as nobody:nogroup (settings user/group). ``--client-ca``: mutual TLS (``ssl_verify_peer``,
clients' certificates signed by that CA).
"""

from __future__ import annotations

import argparse
import concurrent.futures.thread  # noqa: F401 - see below
import os

from events import emit, emit_lifecycle, reply

from pyswoole import SWOOLE_BASE, SWOOLE_PROCESS, SWOOLE_SOCK_TCP, SWOOLE_SSL, WebSocketServer
from pyswoole.server import Frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--mode", choices=("base", "process"), default="base")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--as-nobody", action="store_true")
    parser.add_argument("--client-ca", default="")
    args = parser.parse_args()
    mode = SWOOLE_PROCESS if args.mode == "process" else SWOOLE_BASE
    server = WebSocketServer("127.0.0.1", args.port, mode)
    server.set(
        worker_num=args.workers,
        ssl_cert_file=args.cert,
        ssl_key_file=args.key,
        websocket_compression=True,
        package_max_length=4 * 1024 * 1024,
        max_wait_time=2.0,
        log_level=4,
    )
    if args.as_nobody:
        # (the executor that compresses big messages imports concurrent.futures.thread on
        # first use; as nobody, an interpreter installed under /root cannot read it then)
        server.set(user="nobody", group="nogroup")
    if args.client_ca:
        server.set(ssl_verify_peer=True, ssl_client_cert_file=args.client_ca)
    tls = server.listen("127.0.0.1", 0, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    emit_lifecycle(server)

    @server.on("managerStart")
    def on_manager_start(server: WebSocketServer) -> None:
        emit("TLS", tls.port)

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "worker")

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        if frame.data == "reload":
            reply(server, frame.fd, "reload", ok=server.reload())
        elif frame.data == "whoami":
            reply(server, frame.fd, "whoami", worker=server.worker_id, uid=os.getuid())
        elif frame.data == "cert":
            info = server.get_client_info(frame.fd) or {}
            events = server._procs.events if server._procs is not None else None
            held = -1 if events is None else len(events.certs)  # (SWOOLE_PROCESS internals)
            reply(
                server,
                frame.fd,
                "cert",
                worker=server.worker_id,
                pem=info.get("ssl_client_cert"),
                held=held,
            )
        else:
            server.push(frame.fd, frame.data)

    server.start()


if __name__ == "__main__":
    main()
