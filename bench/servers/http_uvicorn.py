"""uvicorn (httptools parser, uvloop) with a trivial ASGI app for ``/``; ``/static/`` through
Starlette's ``StaticFiles`` (what a FastAPI/Starlette user mounts: uvicorn serves no files)."""

from __future__ import annotations

import os
from typing import Any

import uvicorn
from http_common import BODY, CONTENT_TYPE, HOST, STATIC_PREFIX, parse_args
from starlette.staticfiles import StaticFiles

HEADERS = [(b"content-type", CONTENT_TYPE.encode()), (b"content-length", b"%d" % len(BODY))]


def make_app(root: str) -> Any:
    static = StaticFiles(directory=os.path.join(root, "static"))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith(STATIC_PREFIX + "/"):
            scope = {**scope, "path": path[len(STATIC_PREFIX) :], "root_path": STATIC_PREFIX}
            await static(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})

    return app


def main() -> None:
    args = parse_args("uvicorn HTTP server")
    uvicorn.run(
        make_app(args.root),
        host=HOST,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
