"""aiohttp echo/fanout server (``web.WebSocketResponse``) on a uvloop event loop."""

from __future__ import annotations

import asyncio
from ssl import SSLContext

import uvloop
from aiohttp import WSMsgType, web
from common import HOST, MAX_MESSAGE, parse_args, server_ssl

clients: set[web.WebSocketResponse] = set()


async def send(ws: web.WebSocketResponse, kind: WSMsgType, data: str | bytes) -> None:
    if kind is WSMsgType.TEXT:
        await ws.send_str(data)  # type: ignore[arg-type]
    else:
        await ws.send_bytes(data)  # type: ignore[arg-type]


def make_handler(fanout: bool, compression: bool) -> web.Handler:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=compression, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        if fanout:
            clients.add(ws)
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                for peer in tuple(clients) if fanout else (ws,):  # a snapshot: awaits below
                    await send(peer, msg.type, msg.data)
        finally:
            clients.discard(ws)
        return ws

    return handler


async def answer_ok(request: web.Request) -> web.Response:
    """``GET /http`` (only with --http): plain HTTP on the same port, for bench/hostile.py."""
    return web.Response(text="ok")


async def run(
    port: int, fanout: bool, compression: bool, http: bool = False, tls: SSLContext | None = None
) -> None:
    app = web.Application()
    app.router.add_get("/", make_handler(fanout, compression))
    if http:
        app.router.add_get("/http", answer_ok)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, HOST, port, backlog=4096, ssl_context=tls).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    args = parse_args("aiohttp echo server", compression=True, http=True)
    uvloop.run(run(args.port, args.fanout, args.compression, args.http, server_ssl(args)))


if __name__ == "__main__":
    main()
