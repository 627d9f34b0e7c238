"""aiohttp.web on uvloop: a handler for ``/`` and ``add_static`` for ``/static/``."""

from __future__ import annotations

import os

import uvloop
from aiohttp import web
from http_common import BODY, CONTENT_TYPE, HOST, STATIC_PREFIX, parse_args


async def hello(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type=CONTENT_TYPE)


def main() -> None:
    args = parse_args("aiohttp HTTP server")
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_static(STATIC_PREFIX, os.path.join(args.root, "static"))
    uvloop.install()
    web.run_app(app, host=HOST, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
