"""Blocking code is visible: a real server whose handler blocks its loop logs ONE warning
naming the event, the fd and where it blocked; with one process, ``worker_timeout`` says what
a manager would do; ``push`` and the other write APIs work from other threads (handed to the
loop, honest results).

The server runs in a thread of this process (the ``serve`` fixture), so its log records
reach a handler here; tests wait for the records (a threading.Event), never sleep.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from pyswoole import ServerStateError, WebSocketServer
from pyswoole.server import Frame
from pyswoole.server.threads import from_thread
from tests.conftest import ws_url
from tests.integration.conftest import ROOT
from tests.integration.serverproc import EVENT_TIMEOUT, Client, ServerProcess

TIMEOUT = 10.0
MULTI_SERVER = ROOT / "tests" / "integration" / "programs" / "multi_server.py"


class Records(logging.Handler):
    """The pyswoole log records, with a way to wait for one that matches."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._cond:
            self.records.append(record)
            self._cond.notify_all()

    def matching(self, level: int, text: str) -> list[str]:
        with self._cond:
            found = [r.getMessage() for r in self.records if r.levelno == level]
        return [m for m in found if text in m]

    def wait(self, level: int, text: str, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for record in self.records:
                    if record.levelno == level and text in record.getMessage():
                        return record.getMessage()
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no {logging.getLevelName(level)} record with {text!r}"
                self._cond.wait(remaining)


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("pyswoole")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def block_for(seconds: float) -> None:
    time.sleep(seconds)  # the blocking call the warning must point at


async def test_a_blocking_handler_logs_one_warning_with_event_fd_and_place(
    serve: Callable[[WebSocketServer], Any], records: Records
) -> None:
    server = WebSocketServer("127.0.0.1", 0)
    server.set(blocking_threshold=0.2, log_level=0)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        if frame.data == "block":
            block_for(0.8)
        server.push(frame.fd, f"done {frame.data}")

    serve(server)
    async with websockets.connect(ws_url(server)) as ws, websockets.connect(ws_url(server)) as ws2:
        await ws.send("quick")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "done quick"
        await ws2.send("block")
        assert await asyncio.wait_for(ws2.recv(), TIMEOUT) == "done block"
        await asyncio.to_thread(records.wait, logging.INFO, "answers again")
        warning = records.wait(logging.WARNING, "blocked the event loop")
        assert "on('message') fd 2" in warning  # the second client's fd
        assert "in block_for" in warning and "test_watchdog.py" in warning
        assert "time.sleep(seconds)" in warning  # the stack sample shows the line
        assert "in on_message" in warning
        assert len(records.matching(logging.WARNING, "in block_for")) == 1
        # short callbacks never warn
        for _ in range(5):
            await ws.send("quick")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "done quick"
    assert len(records.matching(logging.WARNING, "in block_for")) == 1


async def test_a_blocking_timer_and_blocking_threshold_zero(
    serve: Callable[[WebSocketServer], Any], records: Records
) -> None:
    server = WebSocketServer("127.0.0.1", 0)
    server.set(blocking_threshold=0.1, log_level=0)
    fired = threading.Event()

    def slow_timer() -> None:
        block_for(0.5)
        fired.set()

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        server.after(1, slow_timer)

    server.on("message", lambda server, frame: None)
    serve(server)
    assert await asyncio.to_thread(fired.wait, TIMEOUT)
    warning = await asyncio.to_thread(records.wait, logging.WARNING, "blocked the event loop")
    assert warning.startswith("worker 0: a timer callback, at ") and "in block_for" in warning


async def test_no_watchdog_when_disabled(
    serve: Callable[[WebSocketServer], Any], records: Records
) -> None:
    server = WebSocketServer("127.0.0.1", 0)
    server.set(blocking_threshold=0, worker_timeout=0, log_level=0)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        block_for(0.3)
        server.push(frame.fd, "done")

    serve(server)
    assert server._watchdog is None
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("x")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "done"
    assert not records.matching(logging.WARNING, "blocked the event loop")


@pytest.mark.parametrize("threshold", [0.1, 0])
async def test_worker_timeout_with_one_process_says_what_a_manager_would_do(
    serve: Callable[[WebSocketServer], Any], records: Records, threshold: float
) -> None:
    server = WebSocketServer("127.0.0.1", 0)
    server.set(blocking_threshold=threshold, worker_timeout=0.4, log_level=0)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        block_for(1.0)
        server.push(frame.fd, "survived")

    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("x")
        # no manager: the process is not killed, the callback finishes and replies
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "survived"
    error = await asyncio.to_thread(records.wait, logging.ERROR, "worker_timeout=0.4")
    assert "would now be killed and replaced" in error and "no manager" in error
    assert len(records.matching(logging.ERROR, "worker_timeout")) == 1
    # the blocking warning only with a threshold; the ERROR either way
    assert len(records.matching(logging.WARNING, "in block_for")) == (1 if threshold else 0)


async def test_worker_timeout_with_one_worker_and_a_manager_replaces_it(tmp_path: Path) -> None:
    """``worker_num=1`` with a task worker has a manager: a worker stuck in a callback misses
    its heartbeats and after ``worker_timeout`` the manager kills and replaces it (the
    no-manager ERROR is not logged); the replacement serves."""
    proc = ServerProcess(
        MULTI_SERVER, tmp_path, "--workers", "1", "--task-workers", "1", "--worker-timeout", "2"
    )
    try:
        proc.wait_ready(2)
        stuck_pid = proc.pids()[0]
        client = await Client.connect(proc.port)
        mark = proc.mark()
        await client.send("spin")
        await proc.expect(rf"workerError 0 {stuck_pid} 0 9", EVENT_TIMEOUT, mark)
        replacement = int(
            (await proc.expect(r"workerStart 0 (\d+) worker", EVENT_TIMEOUT, mark))[1]
        )
        assert replacement != stuck_pid
        assert await client.wait_closed() is not None  # its connections went with it
        fresh = await Client.connect(proc.port)
        try:
            await fresh.echo("served by the replacement")
        finally:
            await fresh.close()
        assert "no manager" not in proc.stderr()
    finally:
        await asyncio.to_thread(proc.stop)


async def test_push_and_the_write_apis_from_other_threads(
    serve: Callable[[WebSocketServer], Any],
) -> None:
    server = WebSocketServer("127.0.0.1", 0)
    opened: asyncio.Queue[int] = asyncio.Queue()
    test_loop = asyncio.get_running_loop()
    results: dict[str, Any] = {}
    threads_done = threading.Event()

    @server.on("open")
    def on_open(server: WebSocketServer, request: Any) -> None:
        test_loop.call_soon_threadsafe(opened.put_nowait, request.fd)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        if frame.data == "spawn":
            fd = frame.fd

            def worker_thread() -> None:  # a thread the application started
                results["push"] = server.push(fd, "from a thread of the application")
                results["unknown"] = server.push(fd + 1000, "nobody")
                threads_done.set()

            threading.Thread(target=worker_thread).start()

    assert server.push(1, "x") is False  # before start(): no such fd, as before
    serve(server)
    async with websockets.connect(ws_url(server)) as ws, websockets.connect(ws_url(server)) as ws2:
        fd = await asyncio.wait_for(opened.get(), TIMEOUT)
        fd2 = await asyncio.wait_for(opened.get(), TIMEOUT)
        # this test's thread is not the server's: each call is handed to its loop
        assert await asyncio.to_thread(server.push, fd, "pushed from the test thread") is True
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "pushed from the test thread"
        assert await asyncio.to_thread(server.push, 9999, "nobody") is False  # honest
        assert await asyncio.to_thread(server.broadcast, "to all") == 2
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "to all"
        assert await asyncio.wait_for(ws2.recv(), TIMEOUT) == "to all"
        await ws.send("spawn")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "from a thread of the application"
        assert await asyncio.to_thread(threads_done.wait, TIMEOUT)
        assert results == {"push": True, "unknown": False}
        assert await asyncio.to_thread(server.disconnect, fd2, 4000, "bye") is True
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws2.recv(), TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
        for call in (server.pause, server.resume, server.protect):
            assert await asyncio.to_thread(call, fd) is True
        assert await asyncio.to_thread(server.bind, fd, 42) is True
        assert server.get_client_info(fd)["uid"] == 42  # (a read: no hand-over needed)
        assert await asyncio.to_thread(server.heartbeat) is False  # no heartbeat interval
        assert await asyncio.to_thread(server.close, fd) is True


def test_a_call_from_another_thread_needs_a_running_loop() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ServerStateError, match="not running"):
            from_thread(loop, "push", lambda: True)
    finally:
        loop.close()
    with pytest.raises(ServerStateError):
        from_thread(None, "broadcast", lambda: 1)
