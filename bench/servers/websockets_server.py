"""websockets (new asyncio implementation) echo/fanout server on a uvloop event loop."""

from __future__ import annotations

from ssl import SSLContext

import uvloop
from common import HOST, MAX_MESSAGE, parse_args, server_ssl
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

clients: set[ServerConnection] = set()


async def echo(ws: ServerConnection) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:  # wsload closing with echoes in flight: not worth a traceback
        pass


async def fanout(ws: ServerConnection) -> None:
    clients.add(ws)
    try:
        async for message in ws:
            broadcast(clients, message)
    finally:
        clients.discard(ws)


async def run(port: int, use_fanout: bool, compression: bool, tls: SSLContext | None) -> None:
    async with serve(
        fanout if use_fanout else echo,
        HOST,
        port,
        compression="deflate" if compression else None,
        max_size=MAX_MESSAGE,
        backlog=4096,
        ssl=tls,
    ) as server:
        await server.serve_forever()


def main() -> None:
    args = parse_args("websockets echo server", compression=True)
    uvloop.run(run(args.port, args.fanout, args.compression, server_ssl(args)))


if __name__ == "__main__":
    main()
