"""The WebSocketServer API over the wire: push, disconnect, ping, connection queries,
timers, Swoole's frame-delivery settings, callbacks (sync/async, cut to arity), shutdown."""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from pyswoole import (
    SWOOLE_ERROR_SESSION_NOT_EXIST,
    SWOOLE_ERROR_WEBSOCKET_UNCONNECTED,
    WEBSOCKET_OPCODE_BINARY,
    WEBSOCKET_OPCODE_CLOSE,
    WEBSOCKET_OPCODE_PING,
    WEBSOCKET_OPCODE_PONG,
    WEBSOCKET_OPCODE_TEXT,
    WEBSOCKET_STATUS_ACTIVE,
    CloseFrame,
    ConfigError,
    Frame,
    ServerStateError,
    WebSocketServer,
)
from tests.conftest import masked, ws_url

TIMEOUT = 5.0


def new_server(**settings: Any) -> WebSocketServer:
    server = WebSocketServer("127.0.0.1", 0)
    if settings:
        server.set(settings)
    return server


class Recorder:
    """Thread-safe event log written by server callbacks, read by the test."""

    def __init__(self) -> None:
        self.q: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.backlog: list[tuple[str, Any]] = []

    def put(self, name: str, value: Any = None) -> None:
        self.q.put((name, value))

    def get(self, name: str | None = None, timeout: float = TIMEOUT) -> Any:
        """The next event called ``name`` (others are kept for later ``get`` calls)."""
        for i, (got_name, value) in enumerate(self.backlog):
            if name is None or got_name == name:
                del self.backlog[i]
                return value
        while True:
            got_name, value = self.q.get(timeout=timeout)
            if name is None or got_name == name:
                return value
            self.backlog.append((got_name, value))

    async def aget(self, name: str | None = None, timeout: float = TIMEOUT) -> Any:
        """``get`` for async tests: waits in a thread so the client's loop keeps running."""
        return await asyncio.to_thread(self.get, name, timeout)


async def qget(q: queue.Queue[Any]) -> Any:
    return await asyncio.to_thread(q.get, True, TIMEOUT)


async def test_push_echo_and_fd_numbering(serve) -> None:
    server = new_server()
    rec = Recorder()

    @server.on("open")
    def on_open(server, request):
        rec.put("open", request.fd)

    @server.on("message")
    def on_message(server, frame):
        server.push(frame.fd, f"{frame.fd}:{frame.data}")

    serve(server)
    for expected_fd in (1, 2, 3):
        async with websockets.connect(ws_url(server)) as ws:
            await ws.send("x")
            assert await ws.recv() == f"{expected_fd}:x"
        assert await rec.aget("open") == expected_fd


async def test_push_to_unknown_closed_and_http_fds_returns_false(serve) -> None:
    server = new_server()
    results: queue.Queue[Any] = queue.Queue()

    @server.on("message")
    def on_message(server, frame):
        if frame.data == "probe-unknown":
            results.put((server.push(999, "x"), server.get_last_error()))
        elif frame.data.startswith("probe-fd:"):
            fd = int(frame.data.split(":")[1])
            results.put((server.push(fd, "x"), server.get_last_error(), server.exist(fd)))

    @server.on("request")
    def on_request(request, response):
        response.end("ok")

    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("probe-unknown")
        assert await qget(results) == (False, SWOOLE_ERROR_SESSION_NOT_EXIST)
        # fd 2: a WebSocket client that has gone away
        async with websockets.connect(ws_url(server)) as other:
            await other.send("probe-fd:2")  # while open: push succeeds
            assert await qget(results) == (True, SWOOLE_ERROR_SESSION_NOT_EXIST, True)
            assert await other.recv() == "x"
        await ws.send("probe-fd:2")
        assert await qget(results) == (False, SWOOLE_ERROR_SESSION_NOT_EXIST, False)
        # fd 3: a plain HTTP keep-alive connection is not a WebSocket
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"ok"), TIMEOUT)
        await ws.send("probe-fd:3")
        assert await qget(results) == (False, SWOOLE_ERROR_WEBSOCKET_UNCONNECTED, True)
        writer.close()


async def test_disconnect_sends_code_and_reason(serve) -> None:
    server = new_server()

    @server.on("message")
    def on_message(server, frame):
        assert server.disconnect(frame.fd, 4001, "bye now")

    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("close me")
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "bye now")


def test_disconnect_rejects_invalid_code_before_start() -> None:
    server = new_server()
    with pytest.raises(ValueError):
        server.disconnect(1, 1005)
    assert server.disconnect(1, 1000) is False


async def test_close_event_gets_fd_and_closed_client_is_gone(serve) -> None:
    server = new_server()
    rec = Recorder()

    @server.on("message")
    def on_message(server, frame):
        pass

    @server.on("close")
    def on_close(server, fd, reactor_id):
        rec.put("close", (fd, reactor_id, server.exist(fd)))

    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("hi")
    assert await rec.aget("close") == (1, 0, False)


async def test_ping_from_server_and_pong_frame_delivery(serve) -> None:
    server = new_server(open_websocket_pong_frame=True)
    rec = Recorder()

    @server.on("message")
    def on_message(server, frame):
        if frame.opcode == WEBSOCKET_OPCODE_PONG:
            rec.put("pong", frame.data)
        else:
            assert server.ping(frame.fd, "are you there")

    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("ping me")
        # the websockets client answers the ping automatically
        assert await rec.aget("pong") == b"are you there"


def test_ping_and_close_frames_delivered_as_swoole_does(serve, raw_client) -> None:
    server = new_server(open_websocket_ping_frame=True, open_websocket_close_frame=True)
    rec = Recorder()

    @server.on("message")
    def on_message(server, frame):
        if isinstance(frame, CloseFrame):
            rec.put("close", (frame.opcode, frame.code, frame.reason))
        else:
            rec.put("frame", (frame.opcode, frame.data))

    serve(server)
    client = raw_client(server.port)
    assert client.handshake().startswith(b"HTTP/1.1 101")
    client.send(masked(WEBSOCKET_OPCODE_PING, b"p1"))
    assert rec.get("frame") == (WEBSOCKET_OPCODE_PING, b"p1")
    client.send(masked(WEBSOCKET_OPCODE_CLOSE, b"\x03\xe8done"))
    assert rec.get("close") == (WEBSOCKET_OPCODE_CLOSE, 1000, "done")
    # No automatic pong was sent (open_websocket_ping_frame): the first frame back is the
    # echo of the close.
    _, opcode, payload = client.recv_frame()
    assert opcode == WEBSOCKET_OPCODE_CLOSE and payload[:2] == b"\x03\xe8"
    assert client.is_closed_by_peer()


async def test_connections_client_info_list_and_stats(serve) -> None:
    server = new_server()
    answers: queue.Queue[Any] = queue.Queue()

    @server.on("message")
    def on_message(server, frame):
        info = server.get_client_info(frame.fd)
        answers.put(
            {
                "len": len(server.connections),
                "fds": sorted(server.connections),
                "list": server.get_client_list(0, 10),
                "list_after_1": server.get_client_list(1, 1),
                "established": server.is_established(frame.fd),
                "info": info,
                "stats": server.stats(),
                "missing": server.get_client_info(12345),
            }
        )

    serve(server)
    async with websockets.connect(ws_url(server)) as a, websockets.connect(ws_url(server)):
        await a.send("q")
        got = await qget(answers)
    assert got["len"] == 2
    assert got["fds"] == [1, 2]
    assert got["list"] == [1, 2]
    assert got["list_after_1"] == [2]
    assert got["established"] is True
    info = got["info"]
    assert info["remote_ip"] == "127.0.0.1"
    assert info["server_port"] == server.port
    assert info["websocket_status"] == WEBSOCKET_STATUS_ACTIVE
    assert got["missing"] is None
    stats = got["stats"]
    assert stats["connection_num"] == 2
    assert stats["accept_count"] == 2
    assert stats["websocket_num"] == 2


async def test_timers_tick_after_clear_and_defer(serve) -> None:
    server = new_server()
    rec = Recorder()

    @server.on("workerStart")
    def on_worker_start(server, worker_id):
        count = {"n": 0}

        def on_tick(timer_id, label):
            count["n"] += 1
            rec.put("tick", (label, count["n"]))
            if count["n"] == 3:
                rec.put("cleared", server.clear_timer(timer_id))

        server.tick(10, on_tick, "t")
        server.after(20, lambda who: rec.put("after", who), "a")
        cancelled = server.after(30, lambda: rec.put("never", None))
        rec.put("clear_after", server.clear_timer(cancelled))
        server.defer(lambda: rec.put("defer", worker_id))

    @server.on("message")
    def on_message(server, frame):
        pass

    serve(server)
    assert await rec.aget("clear_after") is True
    assert await rec.aget("defer") == 0
    assert await rec.aget("after") == "a"
    ticks = [await rec.aget("tick") for _ in range(3)]
    assert ticks == [("t", 1), ("t", 2), ("t", 3)]
    assert await rec.aget("cleared") is True


def test_timers_need_a_running_server() -> None:
    server = new_server()
    with pytest.raises(ServerStateError):
        server.tick(10, lambda timer_id: None)
    with pytest.raises(ConfigError):
        server.after(0, lambda: None)


async def test_async_callbacks_and_arity(serve) -> None:
    server = new_server()
    rec = Recorder()

    @server.on("Open")
    async def on_open(server, request):
        await asyncio.sleep(0)
        rec.put("open", request.fd)

    @server.on("message")
    async def on_message(server, frame):
        await asyncio.sleep(0)
        server.push(frame.fd, frame.data.upper())

    @server.on("close")
    def on_close(server):  # fewer arguments than Swoole passes
        rec.put("close", True)

    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("abc")
        assert await ws.recv() == "ABC"
    assert await rec.aget("open") == 1
    assert await rec.aget("close") is True


async def test_exception_in_callback_is_logged_and_connection_goes_on(serve, caplog) -> None:
    server = new_server()

    @server.on("message")
    def on_message(server, frame):
        if frame.data == "boom":
            raise RuntimeError("user bug")
        server.push(frame.fd, frame.data)

    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("boom")
        await ws.send("still here")
        assert await ws.recv() == "still here"
    assert any("user bug" in (r.exc_text or "") or r.exc_info for r in caplog.records)


async def test_broadcast_encodes_once_for_everyone(serve) -> None:
    server = new_server()
    counts: queue.Queue[int] = queue.Queue()

    @server.on("message")
    def on_message(server, frame):
        counts.put(server.broadcast(frame.data, opcode=WEBSOCKET_OPCODE_BINARY))

    serve(server)
    clients = [await websockets.connect(ws_url(server)) for _ in range(5)]
    try:
        await clients[0].send(b"all")
        assert await qget(counts) == 5
        for ws in clients:
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == b"all"
    finally:
        for ws in clients:
            await ws.close()


async def test_shutdown_sends_1001_to_every_client(serve) -> None:
    server = new_server()
    started = threading.Event()

    @server.on("message")
    def on_message(server, frame):
        started.set()

    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("hi")
        assert await asyncio.to_thread(started.wait, TIMEOUT)
        server.shutdown()
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001


async def test_heartbeat_closes_idle_clients_with_a_close_frame(serve) -> None:
    server = new_server(heartbeat_check_interval=0.05, heartbeat_idle_time=0.2)

    @server.on("message")
    def on_message(server, frame):
        pass

    serve(server)
    async with websockets.connect(ws_url(server), ping_interval=None) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001


async def test_max_conn_refuses_extra_connections(serve) -> None:
    server = new_server(max_conn=1)

    @server.on("message")
    def on_message(server, frame):
        server.push(frame.fd, frame.data)

    serve(server)
    async with websockets.connect(ws_url(server)) as first:
        with pytest.raises((ConnectionClosed, OSError, websockets.InvalidMessage, EOFError)):
            async with websockets.connect(ws_url(server), open_timeout=TIMEOUT):
                pass
        await first.send("still ok")
        assert await first.recv() == "still ok"


async def test_listen_serves_the_same_callbacks_on_another_port(serve) -> None:
    server = new_server()
    extra = server.listen("127.0.0.1", 0)

    @server.on("message")
    def on_message(server, frame):
        server.push(frame.fd, f"port-ok:{frame.data}")

    serve(server)
    assert extra.port not in (0, server.port)
    async with websockets.connect(f"ws://127.0.0.1:{extra.port}/") as ws:
        await ws.send("x")
        assert await ws.recv() == "port-ok:x"


async def test_disconnect_event_for_connections_that_never_upgraded(serve) -> None:
    server = new_server()
    rec = Recorder()

    @server.on("message")
    def on_message(server, frame):
        pass

    @server.on("close")
    def on_close(server, fd):
        rec.put("close", fd)

    @server.on("disconnect")
    def on_disconnect(server, fd):
        rec.put("disconnect", fd)

    serve(server)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    response = await asyncio.wait_for(reader.read(), TIMEOUT)
    assert response.startswith(b"HTTP/1.1 400")
    writer.close()
    assert await rec.aget("disconnect") == 1
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("x")
    assert await rec.aget("close") == 2


async def test_push_a_frame_object_and_pack_unpack(serve) -> None:
    server = new_server()

    @server.on("message")
    def on_message(server, frame):
        server.push(frame.fd, Frame(data=b"\x01\x02", opcode=WEBSOCKET_OPCODE_BINARY))

    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("x")
        assert await ws.recv() == b"\x01\x02"
    packed = WebSocketServer.pack("hi")
    assert packed == b"\x81\x02hi"
    assert WebSocketServer.unpack(packed).data == "hi"


def test_on_and_set_validation() -> None:
    server = new_server()
    with pytest.raises(ConfigError, match="unknown event"):
        server.on("nonsense", lambda: None)
    with pytest.raises(ConfigError, match="not callable"):
        server.on("message", "not a function")  # type: ignore[call-overload]
    with pytest.raises(ConfigError, match="package_max_length"):
        server.set(package_max_length="big")
    with pytest.raises(ConfigError, match="no_such_key"):
        server.set({"no_such_key": 1})
    with pytest.raises(ConfigError, match="requires an on"):
        server.start()  # no message callback
    assert server.on("worker_start", lambda server, worker_id: None) is True
    assert server.get_callback("WorkerStart") is not None


async def test_bind_uid_shows_in_client_info(serve) -> None:
    server = new_server()
    answers: queue.Queue[Any] = queue.Queue()

    @server.on("message")
    def on_message(server, frame):
        first = server.bind(frame.fd, 4242)
        again = server.bind(frame.fd, 7)
        answers.put(
            (first, again, server.get_client_info(frame.fd).get("uid"), server.bind(999, 1))
        )

    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("bind me")
        assert await qget(answers) == (True, False, 4242, False)
    with pytest.raises(ConfigError):
        server.bind(1, 0)


async def test_big_pushes_go_out_whole_and_in_order(serve) -> None:
    # Payloads from 16 KiB on are sent as header + payload (one writev, no joined copy):
    # inside a message callback (corked, next to small pushes) and outside one (a timer).
    server = new_server()
    big = bytes(range(256)) * 256  # 64 KiB
    edge = b"\xab" * (16 * 1024)  # exactly the split size

    @server.on("message")
    def on_message(server, frame):
        if frame.data == "corked":
            server.push(frame.fd, "before")
            server.push(frame.fd, big, WEBSOCKET_OPCODE_BINARY)
            server.push(frame.fd, "between")
            server.push(frame.fd, edge, WEBSOCKET_OPCODE_BINARY)
            server.push(frame.fd, edge[:-1], WEBSOCKET_OPCODE_BINARY)
            server.push(frame.fd, "after")
        else:
            fd = frame.fd
            server.after(
                1,
                lambda: (
                    server.push(fd, big, WEBSOCKET_OPCODE_BINARY),
                    server.push(fd, b"tail" * 5000, WEBSOCKET_OPCODE_TEXT),
                ),
            )

    serve(server)
    async with websockets.connect(ws_url(server), max_size=None) as ws:
        await ws.send("corked")
        got = [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(6)]
        assert got == ["before", big, "between", edge, edge[:-1], "after"]
        await ws.send("timer")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == big
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "tail" * 5000
