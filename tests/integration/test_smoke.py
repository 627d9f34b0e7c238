"""The most basic round trip, with the websockets library as client."""

from __future__ import annotations

import websockets

from pyswoole import WebSocketServer
from tests.conftest import ws_url


async def test_echo_text_and_binary(serve) -> None:
    server = WebSocketServer("127.0.0.1", 0)

    @server.on("message")
    def on_message(server, frame):
        server.push(frame.fd, frame.data, frame.opcode)

    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\xff")
        assert await ws.recv() == b"\x00\xff"
