"""Swoole 6.2's WebSocket frame behaviour, over the wire (issue 12, the frame part).

* ``frame.flags`` as Swoole reports them: the header bits of the message's first frame plus
  FIN -- FIN|MASK (33) for a client message, whole or fragmented, and FIN|COMPRESS|RSV1|MASK
  (39) for a compressed one (``WebSocket::construct_frame`` adds COMPRESS to RSV1);
* ``finish=False`` pushes without FIN, a CONTINUATION push completes the message;
* ``push(fd, CloseFrame(...))`` sends that close frame and enters the closing handshake;
* ``package_max_length`` counts each frame with its header (``get_package_length``).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from pyswoole import (
    SWOOLE_ERROR_WEBSOCKET_PACK_FAILED,
    SWOOLE_ERROR_WEBSOCKET_UNCONNECTED,
    SWOOLE_WEBSOCKET_FLAG_FIN,
    WEBSOCKET_OPCODE_BINARY,
    WEBSOCKET_OPCODE_CLOSE,
    WEBSOCKET_OPCODE_CONTINUATION,
    WEBSOCKET_OPCODE_PING,
    WEBSOCKET_OPCODE_TEXT,
    CloseFrame,
    Frame,
    PackError,
    WebSocketServer,
)
from pyswoole.runtime import closing
from tests.conftest import RawClient, masked, ws_url
from tests.integration.conftest import ROOT
from tests.integration.serverproc import Client, ServerProcess, client_pool

TIMEOUT = 5.0
TEXT = WEBSOCKET_OPCODE_TEXT
CONT = WEBSOCKET_OPCODE_CONTINUATION
FIN_MASK = 33  # SWOOLE_WEBSOCKET_FLAG_FIN | SWOOLE_WEBSOCKET_FLAG_MASK
FIN_COMPRESS_RSV1_MASK = 39  # | SWOOLE_WEBSOCKET_FLAG_COMPRESS | SWOOLE_WEBSOCKET_FLAG_RSV1
DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
#: close_pusher's record of a push(fd, CloseFrame) that worked: sent, the next push failed
#: (the connection is closing), the fd still exists (no server-side disconnect)
CLOSE_PUSHED = ("push", (True, 0, False, SWOOLE_ERROR_WEBSOCKET_UNCONNECTED, True))


class Events:
    """What the server's callbacks saw, in order (thread-safe)."""

    def __init__(self) -> None:
        self.q: queue.Queue[tuple[str, Any]] = queue.Queue()

    def put(self, name: str, value: Any = None) -> None:
        self.q.put((name, value))

    def get(self, timeout: float = TIMEOUT) -> tuple[str, Any]:
        return self.q.get(timeout=timeout)

    async def aget(self) -> tuple[str, Any]:
        return await asyncio.to_thread(self.get)


Handler = Callable[[WebSocketServer, Frame], None]


def recording_server(
    events: Events, on_text: Handler | None = None, **settings: Any
) -> WebSocketServer:
    """A server that records every message (as its Swoole attributes) and close; text
    messages go to ``on_text`` instead, if given."""
    server = WebSocketServer("127.0.0.1", 0)
    server.set(settings)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        if on_text is not None and frame.opcode == TEXT:
            on_text(server, frame)
        elif isinstance(frame, CloseFrame):
            events.put("close-frame", (frame.code, frame.reason, frame.flags))
        else:
            events.put("message", (frame.opcode, frame.data, frame.flags, frame.finish))

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int, reactor_id: int) -> None:
        events.put("close", fd)

    return server


@pytest.fixture
def client(serve: Any, raw_client: Any) -> Iterator[Any]:
    """``client(server, extra_headers)``: serve it, connect a raw client past the 101."""

    def connect(server: WebSocketServer, extra: str = "") -> RawClient:
        serve(server)
        raw: RawClient = raw_client(server.port)
        head = raw.handshake(extra=extra)
        assert head.startswith(b"HTTP/1.1 101"), head
        return raw

    yield connect


def compress(data: bytes) -> bytes:
    """One message compressed as a client does it (RFC 7692 section 7.2.1)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


# -- 1. frame.flags as Swoole reports them ------------------------------------------------


def test_message_flags_are_the_header_bits_plus_fin(client: Any) -> None:
    events = Events()
    raw = client(recording_server(events, open_websocket_ping_frame=True))
    raw.send(masked(TEXT, b"whole"))
    assert events.get() == ("message", (TEXT, "whole", FIN_MASK, True))
    raw.send(masked(WEBSOCKET_OPCODE_BINARY, b"\x00\x01"))
    assert events.get() == ("message", (WEBSOCKET_OPCODE_BINARY, b"\x00\x01", FIN_MASK, True))
    # fragmented: the first frame's flags (MASK, no FIN) plus FIN (Swoole's dispatch_frame)
    raw.send(masked(TEXT, b"fr", fin=False) + masked(CONT, b"ag", fin=False) + masked(CONT, b"s"))
    assert events.get() == ("message", (TEXT, "frags", FIN_MASK, True))
    raw.send(masked(WEBSOCKET_OPCODE_PING, b"p"))  # a control frame: its header bits too
    assert events.get() == ("message", (WEBSOCKET_OPCODE_PING, b"p", FIN_MASK, True))


def test_client_close_frame_flags(client: Any) -> None:
    events = Events()
    raw = client(recording_server(events, open_websocket_close_frame=True))
    raw.send(masked(WEBSOCKET_OPCODE_CLOSE, (1000).to_bytes(2, "big") + b"done"))
    assert events.get() == ("close-frame", (1000, "done", FIN_MASK))
    assert events.get() == ("close", 1)


def test_compressed_message_flags_are_39(client: Any) -> None:
    events = Events()
    raw = client(recording_server(events, websocket_compression=True), DEFLATE_OFFER)
    raw.send(masked(TEXT, compress(b"squeezed " * 20), rsv=0x40))
    assert events.get() == ("message", (TEXT, "squeezed " * 20, FIN_COMPRESS_RSV1_MASK, True))
    # fragmented and compressed: RSV1 on the first frame only (RFC 7692 section 6.1)
    body = compress(b"in pieces " * 30)
    third = len(body) // 3
    raw.send(
        masked(TEXT, body[:third], fin=False, rsv=0x40)
        + masked(CONT, body[third : 2 * third], fin=False)
        + masked(CONT, body[2 * third :])
    )
    assert events.get() == ("message", (TEXT, "in pieces " * 30, FIN_COMPRESS_RSV1_MASK, True))
    raw.send(masked(TEXT, b"plain"))  # uncompressed on the same connection
    assert events.get() == ("message", (TEXT, "plain", FIN_MASK, True))


# -- 2. finish=False pushes without FIN --------------------------------------------------------


def fragment_pusher(events: Events) -> WebSocketServer:
    """On "frame": the message pushed as two Frame objects; on "flags": as push() calls with
    flags; each result recorded."""
    server = WebSocketServer("127.0.0.1", 0)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        fd = frame.fd
        if frame.data == "frame":
            first = Frame(data="Hel", opcode=TEXT, finish=False)  # flags default: FIN
            events.put("packed", server.pack(first))
            last = Frame(data="lo", opcode=CONT, finish=True)
            events.put("pushed", (server.push(fd, first), server.push(fd, last)))
        elif frame.data == "flags":
            first_ok = server.push(fd, "Hel", TEXT, 0)
            events.put("pushed", (first_ok, server.push(fd, "lo", CONT, SWOOLE_WEBSOCKET_FLAG_FIN)))

    return server


@pytest.mark.parametrize("how", ["frame", "flags"])
def test_fragments_go_out_without_fin_on_the_wire(client: Any, how: str) -> None:
    events = Events()
    raw = client(fragment_pusher(events))
    raw.send(masked(TEXT, how.encode()))
    if how == "frame":
        # pack() and push() agree: 0x01, not 0x81
        assert events.get() == ("packed", b"\x01\x03Hel")
    assert events.get() == ("pushed", (True, True))
    assert raw.recv_frame() == (0x01, TEXT, b"Hel")
    assert raw.recv_frame() == (0x80, CONT, b"lo")


@pytest.mark.parametrize("how", ["frame", "flags"])
async def test_a_websockets_client_receives_one_whole_message(serve: Any, how: str) -> None:
    events = Events()
    server = serve(fragment_pusher(events))
    async with websockets.connect(ws_url(server)) as ws:  # offers permessage-deflate too
        for _ in range(2):
            await ws.send(how)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "Hello"
    got = [await events.aget() for _ in range(4 if how == "frame" else 2)]
    assert [value for name, value in got if name == "pushed"] == [(True, True)] * 2


def test_pack_and_unpack_are_swooles_static_methods() -> None:
    """``Swoole\\WebSocket\\Server::pack($data, $opcode, $flags)`` and ``unpack($data)``."""
    assert WebSocketServer.pack("Hel", TEXT, 0) == b"\x01\x03Hel"
    assert WebSocketServer.pack("lo", CONT) == b"\x80\x02lo"
    frame = WebSocketServer.unpack(b"\x01\x03Hel")
    assert (frame.opcode, frame.data, frame.flags, frame.finish) == (TEXT, b"Hel", 0, False)
    assert WebSocketServer.pack(Frame(data="x", finish=False)) == b"\x01\x01x"
    # COMPRESS: deflated on its own with RSV1; unpack inflates it and reports COMPRESS
    wire = WebSocketServer.pack("z" * 100, TEXT, SWOOLE_WEBSOCKET_FLAG_FIN | 2)
    assert wire[0] == 0xC1 and len(wire) < 100
    back = WebSocketServer.unpack(wire)
    assert (back.data, back.flags) == ("z" * 100, 7)  # FIN|COMPRESS|RSV1


# -- 3. push(fd, CloseFrame) -------------------------------------------------------------------


def close_pusher(events: Events, **settings: Any) -> WebSocketServer:
    """On a text message: push(fd, CloseFrame(4001, "bye")) (or with the reason sent, if it
    starts with "reason:"), then try one more push; record the results and the state."""

    def on_text(server: WebSocketServer, frame: Frame) -> None:
        assert isinstance(frame.data, str)
        reason = frame.data.removeprefix("reason:") if frame.data.startswith("reason:") else "bye"
        ok = server.push(frame.fd, CloseFrame(4001, reason))
        error = server.get_last_error() if not ok else 0
        after = server.push(frame.fd, "after")
        after_error = server.get_last_error() if not after else 0
        events.put("push", (ok, error, after, after_error, server.exist(frame.fd)))

    return recording_server(events, on_text, **settings)


def test_push_close_frame_enters_the_closing_handshake(client: Any, raw_client: Any) -> None:
    events = Events()
    server = close_pusher(events, open_websocket_close_frame=True)
    raw = client(server)
    raw.send(masked(TEXT, b"close please"))
    # sent, the connection still exists (no server-side disconnect), no more pushes
    assert events.get() == CLOSE_PUSHED
    # that close frame and nothing else
    assert raw.recv_frame() == (0x88, WEBSOCKET_OPCODE_CLOSE, (4001).to_bytes(2, "big") + b"bye")
    # the client answers: the server still reads (the answer reaches on("message")), then
    # closes TCP normally, and on("close") fires once
    raw.send(masked(WEBSOCKET_OPCODE_CLOSE, (4001).to_bytes(2, "big")))
    assert events.get() == ("close-frame", (4001, "", FIN_MASK))
    assert events.get() == ("close", 1)
    assert raw.is_closed_by_peer()
    assert raw.buf == b""  # no echo of the answer: our close frame was the only one
    # on("close") fired once: the next event is the next client's, not another close of fd 1
    other: RawClient = raw_client(server.port)
    assert other.handshake().startswith(b"HTTP/1.1 101")
    other.send(masked(TEXT, b"close please"))
    assert events.get() == CLOSE_PUSHED


async def test_push_close_frame_to_a_websockets_client(serve: Any) -> None:
    events = Events()
    server = serve(close_pusher(events))
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("close please")
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "bye")
    assert info.value.rcvd_then_sent is True  # the server's close came first
    assert await events.aget() == (
        "push",
        (True, 0, False, SWOOLE_ERROR_WEBSOCKET_UNCONNECTED, True),
    )
    assert await events.aget() == ("close", 1)


def test_push_close_frame_without_an_answer_times_out(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(closing, "CLOSE_TIMEOUT", 0.3)
    events = Events()
    raw = client(close_pusher(events))
    raw.send(masked(TEXT, b"close please"))
    assert events.get()[0] == "push"
    assert raw.recv_frame()[1] == WEBSOCKET_OPCODE_CLOSE
    # the client never answers: the close timeout ends the connection
    assert events.get() == ("close", 1)
    assert raw.is_closed_by_peer()


def test_push_close_frame_with_an_oversize_reason_is_refused(client: Any) -> None:
    """Swoole: "the max length of close reason is 123", push() false with
    SW_ERROR_WEBSOCKET_PACK_FAILED; nothing is sent and the connection stays open."""
    events = Events()
    raw = client(close_pusher(events))
    raw.send(masked(TEXT, b"reason:" + b"r" * 124))
    assert events.get() == ("push", (False, SWOOLE_ERROR_WEBSOCKET_PACK_FAILED, True, 0, True))
    assert raw.recv_frame() == (0x81, TEXT, b"after")  # not a truncated close frame
    with pytest.raises(PackError):
        WebSocketServer.pack(CloseFrame(1000, "r" * 124))


async def test_push_with_opcode_close_sends_data_as_the_reason(serve: Any) -> None:
    """As Swoole: push($fd, "done", OPCODE_CLOSE) packs a close frame, code 1000."""
    server = WebSocketServer("127.0.0.1", 0)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        server.push(frame.fd, "done", WEBSOCKET_OPCODE_CLOSE)

    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("x")
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (1000, "done")


# -- 4. package_max_length counts the frame with its header ------------------------------------


@pytest.mark.parametrize(
    ("payload", "delivered"),
    [
        (1016, True),  # 1016 + 4 (16-bit length) + 4 (mask) = 1024
        (1017, False),
        (1024, False),  # a payload of exactly package_max_length is over
    ],
)
def test_package_max_length_counts_the_header(client: Any, payload: int, delivered: bool) -> None:
    events = Events()
    raw = client(recording_server(events, package_max_length=1024))
    raw.send(masked(WEBSOCKET_OPCODE_BINARY, b"\xfe" * payload))
    if delivered:
        opcode, data, flags, _ = events.get()[1]
        assert (opcode, len(data), flags) == (WEBSOCKET_OPCODE_BINARY, payload, FIN_MASK)
        raw.send(masked(WEBSOCKET_OPCODE_BINARY, b"\xfe" * (payload + 1)))
    b0, _, body = raw.recv_frame()
    assert (b0, int.from_bytes(body[:2], "big")) == (0x88, 1009)
    assert events.get() == ("close", 1)


def test_package_max_length_bounds_a_reassembled_message_by_its_payloads(client: Any) -> None:
    events = Events()
    raw = client(recording_server(events, package_max_length=1024))
    raw.send(masked(TEXT, b"a" * 512, fin=False) + masked(CONT, b"b" * 512))  # 1024: fits
    assert events.get() == ("message", (TEXT, "a" * 512 + "b" * 512, FIN_MASK, True))
    raw.send(masked(TEXT, b"a" * 512, fin=False) + masked(CONT, b"b" * 513))
    b0, _, body = raw.recv_frame()
    assert (b0, int.from_bytes(body[:2], "big")) == (0x88, 1009)
    assert events.get() == ("close", 1)


# -- across processes (SWOOLE_PROCESS: the master parses frames, a worker's push travels) -------

PROGRAM = ROOT / "tests" / "integration" / "programs" / "frames_server.py"


@contextlib.asynccontextmanager
async def frames_server(tmp_path: Path, mode: str) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(PROGRAM, tmp_path, "--workers", "2", "--mode", mode)
    try:
        await asyncio.to_thread(server.wait_ready, 2)
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@pytest.mark.parametrize("mode", ["process", "base"])
async def test_frames_across_processes(tmp_path: Path, mode: str) -> None:
    """In a worker: the flags the master (or the worker itself) parsed, a fragmented push
    and a CloseFrame push, which travel to the process owning the connection."""
    async with frames_server(tmp_path, mode) as server, client_pool() as pool:
        client = await Client.connect(server.port)
        pool.append(client)
        answer = await client.request("flags")
        assert (answer["flags"], answer["finish"], answer["opcode"]) == (FIN_MASK, True, TEXT)
        assert (await client.request("frag"))["ok"] == [True, True]
        assert await client.message() == "Hello"  # one whole message for the websockets client
        mark = server.mark()
        assert (await client.request("close:bye"))["sending"] is True
        assert await client.wait_closed() == 4001
        assert client.ws.close_reason == "bye"
        fd = (await server.expect(r"pushed-close (\d+) True 0", start=mark))[1]
        await server.expect(rf"close {fd} \d+", start=mark)  # on("close") once the client answered
        assert len(server.matching(rf"close {fd} \d+", start=mark)) == 1


async def test_close_frame_with_an_oversize_reason_across_processes(tmp_path: Path) -> None:
    async with frames_server(tmp_path, "process") as server, client_pool() as pool:
        client = await Client.connect(server.port)
        pool.append(client)
        mark = server.mark()
        await client.request("close:" + "r" * 124)
        await server.expect(
            rf"pushed-close \d+ False {SWOOLE_ERROR_WEBSOCKET_PACK_FAILED}", start=mark
        )
        assert (await client.request("flags"))["flags"] == FIN_MASK  # still open
