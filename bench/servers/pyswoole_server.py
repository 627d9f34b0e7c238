"""pyswoole echo/fanout server, written against the Swoole-style public API.

Runs with the project's own interpreter and ``src/`` on PYTHONPATH (see bench/README.md).
"""

from __future__ import annotations

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
) -> Any:
    """The server; ``tls`` = (certificate, key) files makes it a SWOOLE_SSL listener."""
    sock_type = SWOOLE_SOCK_TCP | (SWOOLE_SSL if tls else 0)
    server = WebSocketServer(HOST, port, SWOOLE_BASE, sock_type)
    settings: dict[str, Any] = {
        "package_max_length": MAX_MESSAGE,
        "websocket_compression": compression,
        "worker_num": workers,
    }
    if tls:
        settings.update(ssl_cert_file=tls[0], ssl_key_file=tls[1])
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

    return server


def main() -> None:
    args = parse_args("pyswoole echo server", compression=True, workers=True, http=True)
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    build(args.port, args.fanout, args.compression, args.workers, args.http, tls).start()


if __name__ == "__main__":
    main()
