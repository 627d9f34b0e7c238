"""The Server methods of issue 12 (Swoole fidelity) over the wire, one process: ``stop``,
``pause``/``resume``, ``confirm`` with ``enable_delay_receive``, ``protect``/``heartbeat``,
the worker queries, ``sendwait``, ``stats()``'s keys and byte counts, the TypeError for a
non-int fd, and ``close(fd)`` calling ``on("close")`` before it returns.

Multi-process cases (``stop`` of another worker, cross-process ``pause``, shared stats) are
in ``test_server_methods_processes.py``. The server runs in a thread (``serve``); its
callbacks report through a thread-safe queue; a test that must act inside the server loop
sends it a command through :class:`Commands` (a 10 ms ``tick`` polls them).
"""

from __future__ import annotations

import asyncio
import os
import queue
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from pyswoole import (
    SWOOLE_ERROR_SESSION_NOT_EXIST,
    SWOOLE_WORKER_BUSY,
    SWOOLE_WORKER_EXIT,
    SWOOLE_WORKER_IDLE,
    Server,
    WebSocketServer,
)
from tests.conftest import RawClient, running, ws_url

TIMEOUT = 5.0

FD_METHODS: dict[str, Callable[[WebSocketServer, Any], Any]] = {
    "push": lambda s, fd: s.push(fd, "x"),
    "exist": lambda s, fd: s.exist(fd),
    "close": lambda s, fd: s.close(fd),
    "disconnect": lambda s, fd: s.disconnect(fd),
    "send": lambda s, fd: s.send(fd, b"x"),
    "get_client_info": lambda s, fd: s.get_client_info(fd),
    "bind": lambda s, fd: s.bind(fd, 7),
    "pause": lambda s, fd: s.pause(fd),
    "resume": lambda s, fd: s.resume(fd),
    "confirm": lambda s, fd: s.confirm(fd),
    "protect": lambda s, fd: s.protect(fd),
    "is_established": lambda s, fd: s.is_established(fd),
    "ping": lambda s, fd: s.ping(fd),
    "sendwait": lambda s, fd: s.sendwait(fd, b"x"),
}


class Events:
    """What the server's callbacks report, read by the test (thread-safe)."""

    def __init__(self) -> None:
        self.q: queue.Queue[tuple[str, Any]] = queue.Queue()

    def put(self, name: str, value: Any = None) -> None:
        self.q.put((name, value))

    def get(self, name: str, timeout: float = TIMEOUT) -> Any:
        """The next event called ``name``; other events before it are dropped."""
        while True:
            got, value = self.q.get(timeout=timeout)
            if got == name:
                return value

    async def aget(self, name: str, timeout: float = TIMEOUT) -> Any:
        return await asyncio.to_thread(self.get, name, timeout)


class Commands:
    """Run functions in the server's loop from the test: ``run(fn)`` returns ``fn(server)``.
    A ``tick`` started at workerStart polls the queue every 10 ms."""

    def __init__(self, server: Server) -> None:
        self.todo: queue.Queue[tuple[Callable[[Any], Any], queue.Queue[Any]]] = queue.Queue()

        @server.on("workerStart")
        def on_worker_start(server: Server, worker_id: int) -> None:
            server.tick(10, self._poll)

        self.server = server

    def _poll(self, timer_id: int) -> None:
        while True:
            try:
                fn, answer = self.todo.get_nowait()
            except queue.Empty:
                return
            try:
                answer.put(("ok", fn(self.server)))
            except Exception as exc:
                answer.put(("error", exc))

    def run(self, fn: Callable[[Any], Any]) -> Any:
        answer: queue.Queue[Any] = queue.Queue()
        self.todo.put((fn, answer))
        kind, value = answer.get(timeout=TIMEOUT)
        if kind == "error":
            raise value
        return value

    async def arun(self, fn: Callable[[Any], Any]) -> Any:
        return await asyncio.to_thread(self.run, fn)


def ws_server(**settings: Any) -> WebSocketServer:
    server = WebSocketServer("127.0.0.1", 0)
    if settings:
        server.set(settings)
    return server


# -- 6. an fd that is not an int ------------------------------------------------------------


async def test_every_fd_method_refuses_a_non_int_fd(serve) -> None:
    server = ws_server()
    events = Events()

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Any) -> None:
        refused: dict[str, list[str]] = {}
        for name, call in FD_METHODS.items():
            for bad in ("1", 1.0, None, True):
                try:
                    call(server, bad)
                except TypeError as exc:
                    refused.setdefault(name, []).append(str(exc))
        events.put("refused", refused)
        events.put("still_pushes", server.push(frame.fd, "after"))

    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("go")
        refused = await events.aget("refused")
        assert await events.aget("still_pushes") is True
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "after"
    assert sorted(refused) == sorted(FD_METHODS)
    for name, messages in refused.items():
        assert len(messages) == 4, (name, messages)  # "1", 1.0, None and True all refused
        assert all(message.startswith("fd must be an int") for message in messages), messages


# -- 7. close(fd) calls on("close") before it returns -----------------------------------------


async def test_close_calls_on_close_before_returning_and_reentry_fails(serve) -> None:
    server = ws_server()
    events = Events()
    log: list[Any] = []

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Any) -> None:
        log.append(("close returned", server.close(frame.fd)))
        log.append(("exist after", server.exist(frame.fd)))
        events.put("log", list(log))

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int) -> None:
        log.append(("on close", fd))
        log.append(("close again", server.close(fd)))
        log.append(("push", server.push(fd, "too late")))
        log.append(("error", server.get_last_error()))
        log.append(("exist", server.exist(fd)))

    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("close me")
        got = await events.aget("log")
        with pytest.raises(ConnectionClosed):
            while True:  # bounded by the server's close (the recv raises)
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) != "too late"
    assert got == [
        ("on close", 1),
        ("close again", False),
        ("push", False),
        ("error", SWOOLE_ERROR_SESSION_NOT_EXIST),
        ("exist", False),
        ("close returned", True),
        ("exist after", False),
    ]


def test_custom_handshake_rejection_calls_disconnect_at_once(serve) -> None:
    server = ws_server()
    events = Events()

    @server.on("handshake")
    def on_handshake(request: Any, response: Any) -> bool:
        events.put("handshake", request.fd)
        return False  # refused without an answer: the server closes the connection

    @server.on("disconnect")
    def on_disconnect(server: WebSocketServer, fd: int) -> None:
        events.put("disconnect", (fd, server.exist(fd), server.close(fd)))

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int) -> None:
        events.put("close", fd)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Any) -> None:
        pass

    serve(server)
    client = RawClient(server.port)
    try:
        client.send(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        fd = events.get("handshake")
        # the disconnect callback runs inside the close: the fd is already gone
        assert events.get("disconnect") == (fd, False, False)
        assert client.sock.recv(1) == b""  # then TCP closes
    finally:
        client.sock.close()
    with pytest.raises(queue.Empty):  # never both: on("close") is for WebSockets
        events.get("close", timeout=0.2)


# -- 2. pause / resume, protect / heartbeat -----------------------------------------------------


async def test_pause_stops_reading_until_resume(serve) -> None:
    server = ws_server()
    events = Events()
    commands = Commands(server)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Any) -> None:
        events.put("message", (frame.fd, frame.data))
        server.push(frame.fd, f"echo:{frame.data}")

    serve(server)
    async with websockets.connect(ws_url(server)) as a:
        await a.send("hello")
        assert await asyncio.wait_for(a.recv(), TIMEOUT) == "echo:hello"
        assert await commands.arun(lambda s: (s.pause(1), s.pause(99))) == (True, False)
        await a.send("while paused")
        # a few loop turns: the message is in the server's socket buffer, unread
        for _ in range(5):
            info = await commands.arun(lambda s: s.get_client_info(1))
            assert info is not None
        assert events.q.qsize() == 1  # only "hello" was ever delivered
        assert await commands.arun(lambda s: (s.resume(1), s.resume(99))) == (True, False)
        assert await asyncio.wait_for(a.recv(), TIMEOUT) == "echo:while paused"
    assert events.get("message") == (1, "hello")
    assert events.get("message") == (1, "while paused")


async def test_protect_exempts_from_heartbeat_which_lists_and_closes_idle_fds(serve) -> None:
    # the periodic check runs every 60 s (never during the test); idle after 0.1 s
    server = ws_server(heartbeat_check_interval=60, heartbeat_idle_time=60)
    events = Events()
    commands = Commands(server)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Any) -> None:
        pass

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int) -> None:
        events.put("close", fd)

    serve(server)
    async with (
        websockets.connect(ws_url(server)) as a,
        websockets.connect(ws_url(server)) as b,
        websockets.connect(ws_url(server)) as c,
    ):
        await commands.arun(lambda s: setattr(s._worker, "heartbeat_idle_time", 0.1))
        assert await commands.arun(lambda s: (s.protect(1), s.protect(99))) == (True, False)
        assert await commands.arun(lambda s: (s.protect(3), s.protect(3, False))) == (True, True)
        wait = asyncio.Event()
        loop = asyncio.get_running_loop()
        # let 0.2 s pass on the server's clock (a server timer, not a sleep here)
        await commands.arun(lambda s: s.after(200, loop.call_soon_threadsafe, wait.set))
        await asyncio.wait_for(wait.wait(), TIMEOUT)
        assert await commands.arun(lambda s: s.heartbeat()) == [2, 3]  # listed, not closed
        assert await commands.arun(lambda s: s.exist(2)) is True
        assert await commands.arun(lambda s: s.heartbeat(True)) == [2, 3]
        for ws in (b, c):  # idle WebSockets get the periodic check's close frame
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert ws.close_code == 1001
        await a.send("still here")
        assert await commands.arun(lambda s: s.exist(1)) is True
    assert {events.get("close"), events.get("close")} == {2, 3}


def test_heartbeat_is_false_without_a_check_interval(serve) -> None:
    server = ws_server()
    commands = Commands(server)
    server.on("message", lambda server, frame: None)
    serve(server)
    assert commands.run(lambda s: s.heartbeat(True)) is False


# -- 3. enable_delay_receive + confirm ----------------------------------------------------------


def test_delay_receive_reads_nothing_until_confirm(serve) -> None:
    server = ws_server(enable_delay_receive=True)
    events = Events()
    commands = Commands(server)

    @server.on("connect")
    def on_connect(server: WebSocketServer, fd: int) -> None:
        events.put("connect", fd)

    @server.on("open")
    def on_open(server: WebSocketServer, request: Any) -> None:
        events.put("open", request.fd)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Any) -> None:
        pass

    serve(server)
    client = RawClient(server.port)
    try:
        fd = events.get("connect")
        client.send(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        for _ in range(5):  # loop turns with the request in the socket: not read
            assert commands.run(lambda s: s.get_client_info(fd).get("websocket_status", 1)) == 1
        assert events.q.empty()
        assert commands.run(lambda s: (s.confirm(fd), s.confirm(fd + 100))) == (True, False)
        assert events.get("open") == fd
        assert client.recv_until(b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
    finally:
        client.sock.close()


async def test_confirm_in_on_connect_serves_normally(serve) -> None:
    server = ws_server(enable_delay_receive=True)
    server.on("connect", lambda server, fd: server.confirm(fd))
    server.on("message", lambda server, frame: server.push(frame.fd, frame.data))
    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "hi"


# -- 4. worker queries, get_callback, sendwait --------------------------------------------------


async def test_worker_queries_in_one_process(serve) -> None:
    server = ws_server()
    events = Events()

    def on_message(server: WebSocketServer, frame: Any) -> None:
        events.put(
            "answers",
            {
                "worker_id": server.get_worker_id(),
                "pid": server.get_worker_pid(),
                "pid0": server.get_worker_pid(0),
                "pid1": server.get_worker_pid(1),
                "manager": server.get_manager_pid(),
                "master": server.get_master_pid(),
                "status": server.get_worker_status(),
                "status0": server.getWorkerStatus(0),
                "status1": server.get_worker_status(1),
                "callback": server.get_callback("Message") is on_message,
                "no_callback": server.get_callback("close"),
                "stop_other": server.stop(1),
            },
        )

    server.on("message", on_message)
    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("?")
        got = await events.aget("answers")
    assert got == {
        "worker_id": 0,
        "pid": os.getpid(),
        "pid0": os.getpid(),
        "pid1": False,
        "manager": 0,  # one process: no manager, as in Swoole
        "master": os.getpid(),
        "status": SWOOLE_WORKER_BUSY,  # it is running this callback
        "status0": SWOOLE_WORKER_BUSY,
        "status1": False,
        "callback": True,
        "no_callback": None,
        "stop_other": False,
    }
    assert SWOOLE_WORKER_IDLE == 2 and SWOOLE_WORKER_EXIT == 3  # Swoole's values


def test_sendwait_writes_raw_bytes() -> None:
    server = Server("127.0.0.1", 0)
    server.on("receive", lambda server, fd, reactor_id, data: server.sendwait(fd, b"got:" + data))
    with running(server):
        client = RawClient(server.port)
        try:
            client.send(b"abc")
            assert client.recv_exact(7) == b"got:abc"
        finally:
            client.sock.close()


def test_stop_in_one_process_stops_the_server() -> None:
    server = ws_server()
    events = Events()

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Any) -> None:
        events.put("stop", (server.stop(), server.get_worker_status()))

    @server.on("workerStop")
    def on_worker_stop(server: WebSocketServer, worker_id: int) -> None:
        events.put("workerStop", worker_id)

    done = threading.Event()

    def target() -> None:
        try:
            server.start()
        finally:
            done.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert server.ready.wait(TIMEOUT)

    async def client() -> int | None:
        async with websockets.connect(ws_url(server)) as ws:
            await ws.send("stop")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            return ws.close_code

    try:
        code = asyncio.run(client())
        assert events.get("stop") == (True, SWOOLE_WORKER_EXIT)
        assert events.get("workerStop") == 0
        assert done.wait(TIMEOUT), "start() did not return after stop()"
        assert code == 1001  # the graceful stop: going away
    finally:
        server.shutdown()
        thread.join(TIMEOUT)


# -- 5. stats() ---------------------------------------------------------------------------------

SWOOLE_KEYS = [
    "start_time",
    "connection_num",
    "abort_count",
    "accept_count",
    "close_count",
    "worker_num",
    "task_worker_num",
    "user_worker_num",
    "idle_worker_num",
    "dispatch_count",
    "request_count",
    "response_count",
    "total_recv_bytes",
    "total_send_bytes",
    "pipe_packet_msg_id",
    "session_round",
    "min_fd",
    "max_fd",
    "worker_request_count",
    "worker_response_count",
    "worker_dispatch_count",
]


async def test_stats_has_swooles_keys_and_counts_wire_bytes(serve) -> None:
    server = ws_server()
    events = Events()

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Any) -> None:
        events.put("stats", server.stats())
        server.push(frame.fd, "r" * 300)  # a 304-byte frame (16-bit length)

    serve(server)
    async with (
        websockets.connect(ws_url(server), compression=None) as a,
        websockets.connect(ws_url(server), compression=None),
    ):
        await a.send("one")
        first = await events.aget("stats")
        assert await asyncio.wait_for(a.recv(), TIMEOUT) == "r" * 300
        await a.send("x" * 1000)  # a 1008-byte frame: 2 + 2 (length) + 4 (mask) + 1000
        second = await events.aget("stats")
    assert list(first)[: len(SWOOLE_KEYS)] == SWOOLE_KEYS
    assert "tasking_num" not in first  # only with task workers, as in Swoole
    assert {"coroutine_num", "coroutine_peek_num", "worker_concurrency"} <= set(first)
    assert first["connection_num"] == 2 and first["accept_count"] == 2
    assert first["worker_num"] == 1 and first["task_worker_num"] == 0
    assert first["min_fd"] == 1 and first["max_fd"] == 2 and first["session_round"] == 2
    assert first["idle_worker_num"] == 0  # the only worker is busy answering
    assert second["request_count"] - first["request_count"] == 1
    # exactly the second message's frame was read between the two calls ...
    assert second["total_recv_bytes"] - first["total_recv_bytes"] == 1008
    # ... and exactly the reply to the first was written
    assert second["total_send_bytes"] - first["total_send_bytes"] == 304
    assert second["response_count"] - first["response_count"] == 1
    # the handshakes (2 requests, 2 x 101) were counted too
    assert first["total_recv_bytes"] > 2 * 100 and first["total_send_bytes"] > 2 * 100


def test_stats_counts_http_bytes_on_the_wire(serve) -> None:
    server = ws_server()
    commands = Commands(server)
    server.on("message", lambda server, frame: None)
    server.on("request", lambda request, response: response.end("hello"))
    serve(server)
    before = commands.run(lambda s: s.stats())
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        data = b""
        while not data.endswith(b"hello"):
            chunk = sock.recv(4096)
            assert chunk
            data += chunk
    after = commands.run(lambda s: s.stats())
    assert after["total_recv_bytes"] - before["total_recv_bytes"] == len(request)
    assert after["total_send_bytes"] - before["total_send_bytes"] == len(data)
