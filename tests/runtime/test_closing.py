"""Closing a connection (runtime/connection.py): lingering, the close hold, held input.

* A close that may leave input unread -- a failed WebSocket, an HTTP error answer -- *lingers*:
  the answer is written, then the write side is shut down (``write_eof``); the connection
  is gone for the application at once (``closed``, unregistered, ``connection_lost`` called
  once); what the client still sends is dropped; the socket closes on the client's EOF,
  after ``LINGER_IDLE`` seconds of silence, or at ``LINGER_MAX`` whatever the client does.
  A clean close (the answer to the client's close frame, no unread input) does not linger.
* The close hold: when the client's close frame (or a protocol error) comes while replies to
  its messages are still being made -- an ``async def`` callback running, or
  ``Application.close_barrier`` pending -- the close frame waits for them (what they push
  goes out first), at most ``worker.reply_wait`` seconds.
* ``max_buffered_bytes``: ``conn._held``/``worker.buffered`` follow what the protocol core
  holds; past the budget the biggest holders are failed with 1013; closing releases it.

Connections run over ``FlowTransport`` (tests/runtime/fakes.py), with a fake clock for the
linger's timers; where the kernel matters (unread input, FIN vs RST) a real socket is used,
with the worker's real event loop (uvloop when installed). Tests run on the compiled read
path (``c``, when built) and the Python one (``py``); the file also runs with
``PYSWOOLE_NO_EXTENSIONS=1``, where the Connection is the pure-Python one.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from pyswoole import WebSocketServer
from pyswoole.constants import (
    WEBSOCKET_CLOSE_PROTOCOL_ERROR,
    WEBSOCKET_CLOSE_TRY_AGAIN_LATER,
    WEBSOCKET_STATUS_ACTIVE,
    WEBSOCKET_STATUS_CLOSING,
)
from pyswoole.runtime import closing as closing_module
from pyswoole.runtime import connection as connection_module
from pyswoole.runtime.connection import Connection
from tests.runtime.fakes import (
    FLAVORS,
    UPGRADE,
    FakeClock,
    FlowHarness,
    FlowTransport,
    client_frame,
    feed,
    server_frames,
    text,
)

CLOSE_1000 = client_frame(8, (1000).to_bytes(2, "big"))
BAD_FRAME = client_frame(1, b"unmasked", mask=None)  # fails the connection with 1002
LINGER_IDLE = closing_module.LINGER_IDLE
LINGER_MAX = closing_module.LINGER_MAX


@pytest.fixture
def h() -> Iterator[FlowHarness]:
    harness = FlowHarness()
    yield harness
    harness.close()


def echo(server: Any, frame: Any) -> None:
    server.push(frame.fd, frame.data)


def close_code(frame: tuple[int, bytes]) -> int:
    opcode, payload = frame
    assert opcode == 8
    return int.from_bytes(payload[:2], "big")


def lingering(h: FlowHarness, conn: Any, t: FlowTransport) -> None:
    """``conn`` lingers: write side shut, the socket open, over for the application."""
    assert t.eof and not t.closing
    assert conn.closed and conn.fd not in h.worker.connections
    assert h.closes == [conn.fd]


# -- lingering ------------------------------------------------------------------------------


@pytest.mark.parametrize("compiled", FLAVORS)
def test_a_protocol_failure_lingers(h: FlowHarness, compiled: bool) -> None:
    h.handler = echo
    conn, t = h.open(compiled)
    assert h.worker.websocket_count == 1
    feed(conn, text("ok") + BAD_FRAME + text("never"), compiled)
    assert [f.data for f in h.frames] == ["ok"]
    frames = server_frames(t.written)
    assert frames[0] == (1, b"ok")  # the reply to what arrived whole, then the close
    assert len(frames) == 2 and close_code(frames[1]) == WEBSOCKET_CLOSE_PROTOCOL_ERROR
    lingering(h, conn, t)
    assert conn.status == WEBSOCKET_STATUS_CLOSING and h.worker.websocket_count == 0
    assert h.server.push(conn.fd, "too late") is False
    writes = len(t.calls)
    feed(conn, text("late") + CLOSE_1000, compiled)  # dropped
    assert [f.data for f in h.frames] == ["ok"] and len(t.calls) == writes
    assert not conn.eof_received()  # the client's EOF: the transport closes
    conn.connection_lost(None)
    assert h.closes == [conn.fd] and conn._timer is None  # once; the linger timer is gone


@pytest.fixture
def clock(h: FlowHarness, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The connections' clock and timers (the worker's loop only serves call_later here)."""
    fake = FakeClock()
    monkeypatch.setattr(connection_module, "_monotonic", fake)  # (last_recv of reads)
    monkeypatch.setattr(closing_module, "_monotonic", fake)  # (the linger's clock)
    monkeypatch.setattr(h.worker, "loop", fake)
    return fake


def failed(h: FlowHarness, compiled: bool) -> tuple[Any, FlowTransport, list[float]]:
    """A connection lingering after a bad frame; the times its transport was aborted."""
    conn, t = h.open(compiled)
    feed(conn, BAD_FRAME, compiled)
    lingering(h, conn, t)
    aborts: list[float] = []
    t.on_close = lambda: aborts.append(closing_module._monotonic())
    return conn, t, aborts


@pytest.mark.parametrize("compiled", FLAVORS)
def test_the_linger_ends_after_linger_idle_of_silence(
    h: FlowHarness, clock: FakeClock, compiled: bool
) -> None:
    start = clock.now
    conn, t, aborts = failed(h, compiled)
    clock.advance(LINGER_IDLE / 2)
    feed(conn, b"still sending", compiled)  # dropped, but not silence
    tick = 1 / 1024  # (binary fractions: the fake clock's sums are exact)
    clock.advance(LINGER_IDLE - tick)
    assert aborts == [] and not t.closing
    clock.advance(tick)
    assert aborts == [start + LINGER_IDLE * 1.5] and t.aborted
    conn.connection_lost(None)
    assert h.closes == [conn.fd] and clock.pending == []


@pytest.mark.parametrize("compiled", FLAVORS)
def test_the_linger_ends_at_linger_max_however_the_client_sends(
    h: FlowHarness, clock: FakeClock, compiled: bool
) -> None:
    start = clock.now
    conn, t, aborts = failed(h, compiled)
    for _ in range(4 * int(LINGER_MAX)):  # something every quarter of a second
        clock.advance(0.25)
        if aborts:
            break
        feed(conn, b"junk", compiled)
    assert aborts == [start + LINGER_MAX] and t.aborted
    assert len(t.writes) == 1  # only the close frame, ever


@pytest.mark.parametrize("compiled", FLAVORS)
def test_the_linger_ends_on_the_clients_eof(
    h: FlowHarness, clock: FakeClock, compiled: bool
) -> None:
    conn, t, aborts = failed(h, compiled)
    clock.advance(LINGER_IDLE / 2)
    assert not t.closing and not conn.eof_received()  # asyncio closes the transport after it
    conn.connection_lost(None)
    assert clock.pending == [] and conn._timer is None
    clock.advance(LINGER_MAX)
    assert aborts == [] and h.closes == [conn.fd]


@pytest.mark.parametrize("compiled", FLAVORS)
def test_a_clean_close_does_not_linger(h: FlowHarness, compiled: bool) -> None:
    h.handler = echo
    conn, t = h.open(compiled)
    feed(conn, text("bye") + CLOSE_1000, compiled)
    frames = server_frames(t.written)
    assert frames[0] == (1, b"bye") and close_code(frames[1]) == 1000 and len(frames) == 2
    assert t.closing and not t.eof and not t.aborted  # close(): FIN after the queued bytes
    assert not conn.closed and h.closes == []  # over when the transport says so
    conn.connection_lost(None)
    assert conn.closed and h.closes == [conn.fd]


@pytest.mark.parametrize("compiled", FLAVORS)
def test_the_clients_answer_to_a_disconnect_does_not_linger(h: FlowHarness, compiled: bool) -> None:
    conn, t = h.open(compiled)
    assert h.server.disconnect(conn.fd, 1001, "bye") is True
    assert conn.status == WEBSOCKET_STATUS_CLOSING and conn._timer is not None
    feed(conn, client_frame(8, (1001).to_bytes(2, "big")), compiled)
    assert [close_code(f) for f in server_frames(t.written)] == [1001]  # not answered twice
    assert t.closing and not t.eof


class SocketTransport(FlowTransport):
    """A FlowTransport whose get_extra_info('socket') is a real socket: the kernel then says
    whether input is unread (FIONREAD), and the compiled path may send to it directly."""

    def __init__(self, protocol: Any, sock: socket.socket) -> None:
        super().__init__(protocol)
        self.sock = sock

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self.sock
        return super().get_extra_info(name, default)


@pytest.fixture
def socket_conn(h: FlowHarness) -> Iterator[Any]:
    """``socket_conn(compiled)``: an established connection over a SocketTransport, and the
    client's end of the socketpair."""
    sockets: list[socket.socket] = []

    def make(compiled: bool) -> tuple[Any, SocketTransport, socket.socket]:
        ours, peer = socket.socketpair()
        sockets.extend((ours, peer))
        ours.setblocking(False)
        peer.setblocking(False)
        conn = Connection(h.worker, h.server, 9001)
        t = SocketTransport(conn, ours)
        conn.connection_made(t)
        feed(conn, UPGRADE, compiled)
        assert conn.status == WEBSOCKET_STATUS_ACTIVE
        # the 101 left at the poll's end: straight to the socket (compiled) or via t
        assert (t.written + received(peer)).startswith(b"HTTP/1.1 101 ")
        t.clear()
        t.drain()
        return conn, t, peer

    yield make
    for sock in sockets:
        sock.close()


def received(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except BlockingIOError:
        pass
    return data


@pytest.mark.parametrize("compiled", FLAVORS)
def test_a_close_reply_with_unread_input_lingers(socket_conn: Any, compiled: bool) -> None:
    conn, t, peer = socket_conn(compiled)
    conn2, t2, peer2 = socket_conn(compiled)
    peer.sendall(b"more, not read yet")  # closing now would make the kernel send RST
    feed(conn, CLOSE_1000, compiled)
    assert t.eof and not t.closing and conn.closed  # lingers
    assert server_frames(t.written + received(peer)) == [(8, (1000).to_bytes(2, "big"))]
    feed(conn2, CLOSE_1000, compiled)  # nothing unread: closes at once
    assert t2.closing and not t2.eof
    assert server_frames(t2.written + received(peer2)) == [(8, (1000).to_bytes(2, "big"))]
    if compiled:  # sent straight to the socket, to leave with the FIN
        assert t2.writes == []


HTTP_ERRORS = {
    "400": (400, b"GARBAGE\r\n\r\n"),
    "431": (431, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 2_000 + b"\r\n\r\n"),
    "413": (413, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"),
    "408": (408, b"GET / HTTP/1.1\r\nHost: x\r\n"),  # and then nothing in time
}


@pytest.mark.parametrize(("status", "data"), HTTP_ERRORS.values(), ids=HTTP_ERRORS.keys())
def test_http_error_answers_linger(status: int, data: bytes) -> None:
    h = FlowHarness(http_max_header_size=1_024)
    try:
        conn, t = h.connect()
        conn.data_received(data)
        if status == 408:
            assert t.writes == []
            conn.request_timeout()
        assert t.written.startswith(b"HTTP/1.1 %d " % status)
        lingering(h, conn, t)
        conn.data_received(b"GET / HTTP/1.1\r\n\r\n")  # dropped
        assert len(t.writes) == 1
    finally:
        h.close()


def test_an_error_after_a_pipelined_request_is_answered_after_it_and_lingers(
    h: FlowHarness,
) -> None:
    responses: list[Any] = []
    h.server.on("request", lambda request, response: responses.append(response))
    conn, t = h.connect()
    conn.data_received(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.data_received(b"GARBAGE\r\n\r\n")  # while /1 is being answered
    assert t.writes == [] and not conn.closed
    responses[0].end("first")
    assert t.writes[0].startswith(b"HTTP/1.1 200 ") and t.writes[0].endswith(b"first")
    assert t.writes[1].startswith(b"HTTP/1.1 400 ")
    lingering(h, conn, t)


def test_a_response_with_connection_close_does_not_linger(h: FlowHarness) -> None:
    h.server.on("request", lambda request, response: response.end("bye"))
    conn, t = h.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert t.written.startswith(b"HTTP/1.1 200 ") and t.written.endswith(b"bye")
    assert t.closing and not t.eof


# -- the close hold ---------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["close", "error"])
@pytest.mark.parametrize("compiled", FLAVORS)
def test_the_close_waits_for_an_async_callback(h: FlowHarness, compiled: bool, ending: str) -> None:
    conn, t = h.open(compiled)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Event()
        closed = asyncio.Event()
        t.on_close = t.on_eof = closed.set

        async def reply(server: Any, frame: Any) -> None:
            await gate.wait()
            assert server.push(frame.fd, "reply to " + frame.data) is True

        h.handler = reply
        feed(conn, text("hi") + (CLOSE_1000 if ending == "close" else BAD_FRAME), compiled)
        assert t.writes == [] and conn._close_hold == 1 and not conn.closed and not t.eof
        feed(conn, text("ignored"), compiled)  # reading goes on meanwhile; nothing new
        assert [f.data for f in h.frames] == ["hi"] and t.writes == []
        loop.call_soon(gate.set)
        await closed.wait()  # closed, or lingering after the error

    h.run(scenario())
    frames = server_frames(t.written)
    assert frames[0] == (1, b"reply to hi") and len(frames) == 2
    if ending == "close":
        assert close_code(frames[1]) == 1000 and t.closing and not t.eof
    else:
        assert close_code(frames[1]) == WEBSOCKET_CLOSE_PROTOCOL_ERROR
        lingering(h, conn, t)


class BarrierServer(WebSocketServer):
    """close_barrier returns ``barrier`` (SWOOLE_PROCESS: the worker's answers in flight)."""

    barrier: asyncio.Future[Any] | None = None
    asked: int = 0

    def close_barrier(self, conn: Connection) -> asyncio.Future[Any] | None:
        self.asked += 1
        return self.barrier


@pytest.mark.parametrize("compiled", FLAVORS)
def test_the_close_waits_for_the_close_barrier(compiled: bool) -> None:
    h = FlowHarness(BarrierServer)
    server: Any = h.server
    h.worker.close_barriers = True  # the app holds closes (as the SWOOLE_PROCESS master)
    try:
        conn, t = h.open(compiled)

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            server.barrier = loop.create_future()
            closed = asyncio.Event()
            t.on_close = closed.set
            feed(conn, CLOSE_1000, compiled)
            assert server.asked == 1 and t.writes == [] and not t.closing

            def answer() -> None:  # the worker's answer arrives, then the barrier is passed
                assert server.push(conn.fd, "late answer") is True
                server.barrier.set_result(None)

            loop.call_soon(answer)
            await closed.wait()

        h.run(scenario())
        frames = server_frames(t.written)
        assert frames == [(1, b"late answer"), (8, (1000).to_bytes(2, "big"))]
        assert server.asked == 1
    finally:
        h.close()


@pytest.mark.parametrize("compiled", FLAVORS)
def test_an_app_that_holds_no_closes_is_not_asked(compiled: bool) -> None:
    h = FlowHarness(BarrierServer)  # worker.close_barriers stays False
    server: Any = h.server
    try:
        conn, t = h.open(compiled)
        feed(conn, CLOSE_1000, compiled)
        assert server.asked == 0
        assert server_frames(t.written) == [(8, (1000).to_bytes(2, "big"))] and t.closing
    finally:
        h.close()


@pytest.mark.parametrize("compiled", FLAVORS)
def test_the_close_waits_at_most_reply_wait(
    h: FlowHarness, compiled: bool, caplog: pytest.LogCaptureFixture
) -> None:
    h.worker.reply_wait = 0.03
    conn, t = h.open(compiled)

    async def scenario() -> float:
        closed = asyncio.Event()
        t.on_close = closed.set
        never = asyncio.Event()

        async def stuck(server: Any, frame: Any) -> None:
            await never.wait()

        h.handler = stuck
        start = h.loop.time()
        feed(conn, text("hi") + CLOSE_1000, compiled)
        await closed.wait()
        return h.loop.time() - start

    with caplog.at_level(logging.WARNING, logger="pyswoole"):
        waited = h.run(scenario())
    assert waited >= 0.025
    assert server_frames(t.written) == [(8, (1000).to_bytes(2, "big"))]
    assert any("closing without waiting longer" in r.getMessage() for r in caplog.records)


# -- max_buffered_bytes -------------------------------------------------------------------------

BIG_FRAME = client_frame(2, b"p" * 20_000)  # 20,008 bytes: held until it is whole


@pytest.mark.parametrize("compiled", FLAVORS)
def test_held_input_is_accounted_and_released(compiled: bool) -> None:
    h = FlowHarness(max_buffered_bytes=100_000)
    try:
        a, _ = h.open(compiled)
        b, _ = h.open(compiled)
        feed(a, BIG_FRAME[:5_000], compiled)
        assert a._held == a.ws.buffered_bytes == 5_000 and h.worker.buffered == 5_000
        feed(b, text("frag", fin=False), compiled)  # a message in progress counts too
        assert b._held == b.ws.buffered_bytes == 4 and h.worker.buffered == 5_004
        feed(a, BIG_FRAME[5_000:12_000], compiled)
        assert a._held == 12_000 and h.worker.buffered == 12_004
        feed(a, BIG_FRAME[12_000:], compiled)  # whole: delivered, nothing held
        assert a._held == 0 and h.worker.buffered == 4
        assert [f.data for f in h.frames] == [b"p" * 20_000]
        b.connection_lost(None)  # closing releases what it held
        assert b._held == 0 and h.worker.buffered == 0
    finally:
        h.close()


@pytest.mark.parametrize("last", [1_000, 9_000], ids=["another-is-biggest", "itself-biggest"])
@pytest.mark.parametrize("compiled", FLAVORS)
def test_past_the_budget_the_biggest_holder_fails_with_1013(
    compiled: bool, last: int, caplog: pytest.LogCaptureFixture
) -> None:
    h = FlowHarness(max_buffered_bytes=10_000)
    try:
        (a, ta), (b, tb), (c, tc) = h.open(compiled), h.open(compiled), h.open(compiled)
        feed(a, BIG_FRAME[:6_000], compiled)
        feed(b, BIG_FRAME[:3_500], compiled)
        assert h.worker.buffered == 9_500 and ta.writes == tb.writes == []
        with caplog.at_level(logging.WARNING, logger="pyswoole"):
            feed(c, BIG_FRAME[:last], compiled)  # past 10,000 with it
        assert any("max_buffered_bytes=10000" in r.getMessage() for r in caplog.records)
        victim, vt = (a, ta) if last < 6_000 else (c, tc)  # the biggest holder
        frames = server_frames(vt.written)
        assert [close_code(f) for f in frames] == [WEBSOCKET_CLOSE_TRY_AGAIN_LATER]
        assert frames[0][1][2:] == b"server busy"
        assert vt.eof and not vt.closing and victim.closed  # lingers
        assert h.closes == [victim.fd] and victim._held == 0
        survivors = [conn for conn in (a, b, c) if conn is not victim]
        assert [conn.status for conn in survivors] == [WEBSOCKET_STATUS_ACTIVE] * 2
        assert h.worker.buffered == sum(conn._held for conn in survivors) <= 10_000
        # the survivors go on
        for conn in survivors:
            feed(conn, BIG_FRAME[conn._held :], compiled)
        assert len(h.frames) == 2 and h.worker.buffered == 0
    finally:
        h.close()


# -- a real socket ------------------------------------------------------------------------------


class Tracked(Connection):
    """Sets ``lost`` when the transport is gone."""

    __slots__ = ("lost",)
    lost: asyncio.Event

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.lost.set()


async def served(h: FlowHarness) -> tuple[Tracked, Any, socket.socket]:
    """A WebSocket connection over real TCP on the worker's loop: ours, its transport, and
    the client's socket (non-blocking, past the handshake)."""
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        ours, _ = listener.accept()
    ours.setblocking(False)
    client.setblocking(False)
    conn = Tracked(h.worker, h.server, 9001)
    conn.lost = asyncio.Event()
    transport, _ = await loop.connect_accepted_socket(lambda: conn, ours)
    await loop.sock_sendall(client, UPGRADE)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = await loop.sock_recv(client, 1)
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 ") and conn.status == WEBSOCKET_STATUS_ACTIVE
    return conn, transport, client


async def read_to_eof(client: socket.socket) -> bytes:
    """Everything until the server's FIN (a reset raises ConnectionResetError)."""
    loop = asyncio.get_running_loop()
    data = b""
    while chunk := await loop.sock_recv(client, 65536):
        data += chunk
    return data


def test_a_real_socket_lingers_until_the_clients_eof(h: FlowHarness) -> None:
    h.handler = echo
    sockets: list[socket.socket] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        conn, transport, client = await served(h)
        sockets.append(client)
        junk = b"j" * 200_000  # the client goes on sending after its bad frame
        await loop.sock_sendall(client, text("ok") + BAD_FRAME + junk)
        data = await read_to_eof(client)  # the answers, then FIN: no reset
        frames = server_frames(data)
        assert frames[0] == (1, b"ok") and len(frames) == 2
        assert close_code(frames[1]) == WEBSOCKET_CLOSE_PROTOCOL_ERROR
        assert conn.closed and h.closes == [conn.fd] and not conn.lost.is_set()
        assert not transport.is_closing()  # lingering: still reading, to drop what comes
        await loop.sock_sendall(client, junk)
        client.shutdown(socket.SHUT_WR)
        await conn.lost.wait()  # the client's EOF ended the linger
        assert transport.is_closing()

    try:
        h.run(scenario())
    finally:
        for sock in sockets:
            sock.close()
    assert len(h.closes) == 1 and [f.data for f in h.frames] == ["ok"]


def test_a_real_socket_linger_ends_at_linger_max(
    h: FlowHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(closing_module, "LINGER_IDLE", 0.05)
    monkeypatch.setattr(closing_module, "LINGER_MAX", 0.15)
    sockets: list[socket.socket] = []

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        conn, _transport, client = await served(h)
        sockets.append(client)
        await loop.sock_sendall(client, BAD_FRAME)
        start = loop.time()
        for _ in range(1_000):  # never silent for LINGER_IDLE: something every 10 ms
            if conn.lost.is_set():
                break
            try:
                await loop.sock_sendall(client, b"still here")
            except OSError:  # (reset by the abort)
                break
            await asyncio.sleep(0.01)  # the client's pace, not a synchronization
        await conn.lost.wait()
        return loop.time() - start

    try:
        elapsed = h.run(scenario())
    finally:
        for sock in sockets:
            sock.close()
    assert 0.14 <= elapsed < 2.0


@pytest.mark.parametrize("compiled", FLAVORS)
def test_with_max_wait_time_0_the_close_does_not_wait(compiled: bool) -> None:
    # 0 means "no waiting" (as for the graceful stop), not "no limit": the close frame
    # goes out at once even while an async callback never ends.
    h = FlowHarness(max_wait_time=0)
    try:
        never = asyncio.Event()

        async def stuck(server: Any, frame: Any) -> None:
            await never.wait()

        h.handler = stuck
        conn, t = h.open(compiled)
        feed(conn, text("hi") + CLOSE_1000, compiled)
        assert server_frames(t.written) == [(8, (1000).to_bytes(2, "big"))]
        assert conn._close_hold == 2 and t.closing
        h.run(asyncio.sleep(0))  # (let the callback's task start before the loop closes)
    finally:
        h.close()


@pytest.mark.parametrize("compiled", FLAVORS)
def test_a_linger_that_starts_while_reading_is_paused_reads_again(
    h: FlowHarness, compiled: bool
) -> None:
    # A full connection is not read; failed then (Worker.shed_load, a 408...), it must
    # read again, or the client's EOF is never seen and the linger ends in an abort: the
    # RST the linger is there to avoid.
    conn, t = h.open(compiled)
    conn.write(b"w" * (h.worker.high_water + 1))
    assert conn.is_full and t.reading_calls[-1] == "pause"
    conn.fail_websocket(1013, "server busy")
    lingering(h, conn, t)
    assert t.reading_calls[-1] == "resume" and not conn._read_block
