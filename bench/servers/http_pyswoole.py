"""pyswoole HTTP server: ``on("request")`` for ``/`` and the static file handler
(``enable_static_handler``) for ``/static/``, as a Swoole user would write it."""

from __future__ import annotations

from typing import Any

from http_common import BODY, CONTENT_TYPE, HOST, STATIC_PREFIX, parse_args

from pyswoole import HttpServer


def main() -> None:
    args = parse_args("pyswoole HTTP server", workers=True)
    server = HttpServer(HOST, args.port)
    server.set(
        {
            "worker_num": args.workers,
            "enable_static_handler": True,
            "document_root": args.root,
            "static_handler_locations": [STATIC_PREFIX],
        }
    )

    @server.on("request")
    def on_request(request: Any, response: Any) -> None:
        response.header("Content-Type", CONTENT_TYPE)
        response.end(BODY)

    server.start()


if __name__ == "__main__":
    main()
