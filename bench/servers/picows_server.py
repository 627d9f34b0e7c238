"""picows echo/fanout server (Cython frame layer, no permessage-deflate) on uvloop.

picows 1.x/2.x negotiates no extension: its API hands over raw frames (``rsv1`` included) but
never answers ``Sec-WebSocket-Extensions``, so the deflate scenarios show "n/a" for it.

picows hands over frames, not messages: each data frame is echoed with its own opcode and
FIN bit, which is a faithful echo since wsload never fragments. Pings are answered by
picows itself (``enable_auto_pong``); a close frame is answered and the connection dropped.
"""

from __future__ import annotations

from ssl import SSLContext

import uvloop
from common import HOST, MAX_MESSAGE, parse_args, server_ssl
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

DATA = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION)


class Echo(WSListener):  # type: ignore[misc]
    """One connection; ``clients`` is shared in fanout mode, None for plain echo."""

    def __init__(self, clients: set[WSTransport] | None) -> None:
        super().__init__()
        self.clients = clients

    def on_ws_connected(self, transport: WSTransport) -> None:
        if self.clients is not None:
            self.clients.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.clients is not None:
            self.clients.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type in DATA:
            payload = frame.get_payload_as_memoryview()
            for peer in (transport,) if self.clients is None else self.clients:
                peer.send(frame.msg_type, payload, frame.fin)
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


async def run(port: int, fanout: bool, tls: SSLContext | None) -> None:
    clients: set[WSTransport] | None = set() if fanout else None

    def factory(request: WSUpgradeRequest) -> Echo:
        return Echo(clients)

    server = await ws_create_server(
        factory, HOST, port, max_frame_size=MAX_MESSAGE, backlog=4096, ssl=tls
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    args = parse_args("picows echo server", compression=False)
    uvloop.run(run(args.port, args.fanout, server_ssl(args)))


if __name__ == "__main__":
    main()
