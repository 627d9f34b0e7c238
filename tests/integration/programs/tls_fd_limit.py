"""A one-process wss echo server with few descriptors (RLIMIT_NOFILE 48), for
tests/integration/test_tls_engines.py.

    python tests/integration/programs/tls_fd_limit.py --port 0 --cert C --key K --engine E

Standard output: ``READY <port>``, then ``accept failed`` for each report the event loop
logs of an accept() refused for want of descriptors (EMFILE).
"""

from __future__ import annotations

import argparse
import logging
import resource

from events import emit, emit_lifecycle

from pyswoole import SWOOLE_BASE, SWOOLE_SOCK_TCP, SWOOLE_SSL, WebSocketServer
from pyswoole.server import Frame


class AcceptFailures(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if "out of system resource" in record.getMessage():
            emit("accept failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--engine", default="auto")
    args = parser.parse_args()
    logging.getLogger("asyncio").addHandler(AcceptFailures())
    resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))  # (start() raises soft to hard)
    server = WebSocketServer("127.0.0.1", args.port, SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(
        ssl_cert_file=args.cert,
        ssl_key_file=args.key,
        ssl_engine=args.engine,
        max_conn=1000,
        handshake_timeout=30.0,
        log_level=4,
    )
    emit_lifecycle(server)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        server.push(frame.fd, frame.data)

    server.start()


if __name__ == "__main__":
    main()
