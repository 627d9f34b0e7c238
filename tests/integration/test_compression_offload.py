"""Big messages are compressed off the event loop without reordering anything after them."""

from __future__ import annotations

import asyncio
import os

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from pyswoole import WebSocketServer
from tests.conftest import ws_url

TIMEOUT = 10.0


@pytest.mark.parametrize("context_takeover", [False, True])
async def test_offloaded_compression_keeps_order_up_to_the_close(
    serve, context_takeover: bool
) -> None:
    server = WebSocketServer("127.0.0.1", 0)
    server.set(
        websocket_compression=True,
        websocket_compression_offload_size=1024,  # everything >= 1 KiB goes to a thread
        websocket_compression_context_takeover=context_takeover,
        package_max_length=8 * 1024 * 1024,
    )
    big = [os.urandom(300_000).hex() for _ in range(3)]  # compressible text, 600 KB each

    @server.on("message")
    def on_message(server, frame):
        server.push(frame.fd, big[0])
        server.push(frame.fd, "small-1")  # must wait behind the first big one
        server.push(frame.fd, big[1])
        server.push(frame.fd, b"\x00small-2", 2)
        server.push(frame.fd, big[2])
        server.disconnect(frame.fd, 4000, "done")  # the close frame comes last

    serve(server)
    async with websockets.connect(ws_url(server), max_size=None) as ws:
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        await ws.send("go")
        received = [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(5)]
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert received == [big[0], "small-1", big[1], b"\x00small-2", big[2]]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
