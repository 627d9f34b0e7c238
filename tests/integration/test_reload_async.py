"""``reload_async`` (Swoole: a stopping or reloading worker waits for its coroutines and
timers before it exits; ``false``: it exits without waiting). Here: with it (the default) a
stopping worker lets an ``async def`` callback finish -- its push reaches the client before
the 1001 close frame; without it the worker goes straight to the closing handshakes (a
push after the 1001 is refused) and cancels what still runs once its clients are gone.
(Reload in SWOOLE_BASE drains the same way: tests/integration/test_shutdown.py::
test_reload_in_base_mode_lets_a_response_in_flight_finish.)"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from pyswoole import Frame, WebSocketServer
from tests.conftest import running, ws_url

TIMEOUT = 10.0
#: how long the callback works after the stop began: long next to the closing handshake
WORK = 0.5


@pytest.mark.parametrize("reload_async", [True, False])
async def test_a_stop_waits_for_running_callbacks_only_with_reload_async(
    reload_async: bool,
) -> None:
    started: queue.Queue[int] = queue.Queue()
    outcome: queue.Queue[Any] = queue.Queue()
    server = WebSocketServer("127.0.0.1", 0)
    server.set(reload_async=reload_async, max_wait_time=5.0)

    @server.on("message")
    async def on_message(server: WebSocketServer, frame: Frame) -> None:
        started.put(frame.fd)
        try:
            await asyncio.sleep(WORK)  # the work in flight when the stop begins
        except asyncio.CancelledError:
            outcome.put("cancelled")
            raise
        outcome.put(server.push(frame.fd, "late"))

    received: list[str] = []
    with running(server):
        async with websockets.connect(ws_url(server)) as ws:
            await ws.send("work")
            await asyncio.to_thread(started.get, True, TIMEOUT)
            stopper = threading.Thread(target=server.shutdown)
            stopper.start()
            with pytest.raises(ConnectionClosed):
                while True:
                    received.append(str(await asyncio.wait_for(ws.recv(), TIMEOUT)))
            assert ws.close_code == 1001
            stopper.join(TIMEOUT)
    result = outcome.get(timeout=TIMEOUT)
    if reload_async:
        assert (result, received) == (True, ["late"])  # finished, sent before the 1001
    else:
        # not waited for: the 1001 went first, so its push is refused (or it was cancelled)
        assert result in ("cancelled", False) and received == [], result
