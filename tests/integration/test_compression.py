"""permessage-deflate (RFC 7692) over the wire, with real clients.

The ``websockets`` library offers permessage-deflate by default
(``permessage-deflate; client_max_window_bits``, the same offer Chromium sends); raw
sockets with a client-side zlib compressor give exact control over RSV1, fragmentation and
the compressed bytes. Servers are either ``examples/echo.py --compression`` as a subprocess
or an in-thread ``WebSocketServer`` whose callbacks record what they see.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import random
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from pyswoole import (
    SWOOLE_WEBSOCKET_FLAG_COMPRESS,
    SWOOLE_WEBSOCKET_FLAG_FIN,
    WEBSOCKET_OPCODE_BINARY,
    WEBSOCKET_OPCODE_PING,
    Frame,
    WebSocketServer,
)
from tests.conftest import RawClient, masked, ws_url
from tests.integration.conftest import EchoProcess, echo_process, swoole_handshake

TIMEOUT = 5.0
MiB = 1 << 20
TAIL = b"\x00\x00\xff\xff"

#: the 101's answer to websockets' default offer and to Chromium's (both
#: ``permessage-deflate; client_max_window_bits``) with the default settings
EXPECTED = (
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
    "server_max_window_bits=12; client_max_window_bits=12"
)
CHROMIUM_OFFER = "permessage-deflate; client_max_window_bits"
WINDOW_8_OFFER = "permessage-deflate; server_max_window_bits=8"
UNACCEPTABLE_OFFER = "permessage-deflate; server_max_window_bits=16"
SIZES = (0, 1, 63, 64, 65, 1000, 65536, MiB)

# -- helpers ---------------------------------------------------------------------------------


def deflate(data: bytes, wbits: int = -12, level: int = 6) -> bytes:
    """One message compressed as a client does it (RFC 7692 section 7.2.1)."""
    c = zlib.compressobj(level, zlib.DEFLATED, wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def finished(data: bytes) -> bytes:
    """``data`` as a complete deflate stream ending with a BFINAL block."""
    c = zlib.compressobj(6, zlib.DEFLATED, -12)
    return c.compress(data) + c.flush(zlib.Z_FINISH)


def inflate(payload: bytes, wbits: int = -15) -> bytes:
    """One compressed message from the server, inflated (section 7.2.2)."""
    d = zlib.decompressobj(wbits)
    out = d.decompress(payload + TAIL)
    assert not d.unconsumed_tail
    return out


def text_of(size: int, seed: int = 0) -> str:
    """``size`` bytes of ASCII text, compressible but not trivially."""
    rng = random.Random(seed * 1_000_003 + size)
    words = ["alpha", "beta", "gamma", "delta", "pyswoole", "deflate", "window", "frame"]
    parts: list[str] = []
    n = 0
    while n < size:
        word = rng.choice(words) + " "
        parts.append(word)
        n += len(word)
    return "".join(parts)[:size]


def bytes_of(size: int, seed: int = 0) -> bytes:
    """``size`` random (incompressible) bytes."""
    return random.Random(seed * 1_000_003 + size).randbytes(size)


def parse_head(raw: bytes) -> tuple[int, list[tuple[str, str]]]:
    """Status code and headers (names lower-cased) of an HTTP response head."""
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        assert colon, f"malformed header line {line!r}"
        headers.append((name.strip().lower(), value.strip()))
    return status, headers


def extension_headers(headers: list[tuple[str, str]]) -> list[str]:
    return [v for k, v in headers if k == "sec-websocket-extensions"]


def connect(port: int, *offers: str) -> tuple[RawClient, int, list[tuple[str, str]]]:
    """A raw client after its handshake, offering ``offers`` (one header each)."""
    client = RawClient(port, TIMEOUT)
    extra = "".join(f"Sec-WebSocket-Extensions: {offer}\r\n" for offer in offers)
    status, headers = parse_head(client.handshake(extra=extra))
    return client, status, headers


def compressed_client(port: int, offer: str = CHROMIUM_OFFER) -> RawClient:
    """A raw client on which permessage-deflate was agreed (the default answer)."""
    client, status, headers = connect(port, offer)
    assert status == 101
    assert extension_headers(headers) == [EXPECTED]
    return client


def read_close(client: RawClient) -> int:
    """The close code of the next frame, which must be a close frame."""
    b0, opcode, payload = client.recv_frame()
    assert opcode == 0x8, f"expected a close frame, got opcode {opcode} {payload[:80]!r}"
    assert b0 == 0x88
    return int.from_bytes(payload[:2], "big")


def send_quietly(client: RawClient, data: bytes) -> None:
    """Send ``data``; the server may fail the connection before it has read all of it."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        client.send(data)


def compression_server(**settings: Any) -> WebSocketServer:
    """An in-thread echo server with ``websocket_compression`` (unless overridden)."""
    server = WebSocketServer("127.0.0.1", 0)
    server.set({"websocket_compression": True, **settings})
    server.on("message", lambda server, frame: server.push(frame.fd, frame.data, frame.opcode))
    return server


def proc_status(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.fixture(scope="module")
def compressed_echo() -> Iterator[EchoProcess]:
    """``examples/echo.py --compression`` (16 MiB messages), one per module."""
    with echo_process("--compression") as server:
        yield server


# -- negotiation -----------------------------------------------------------------------------


async def test_websockets_default_offer_gets_exact_answer(compressed_echo) -> None:
    async with websockets.connect(compressed_echo.url, open_timeout=TIMEOUT) as ws:
        assert ws.request is not None and ws.response is not None
        assert ws.request.headers["Sec-WebSocket-Extensions"] == CHROMIUM_OFFER
        assert ws.response.status_code == 101
        assert ws.response.headers.get_all("Sec-WebSocket-Extensions") == [EXPECTED]
        assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]


def test_chromium_offer_gets_exact_answer(compressed_echo) -> None:
    client, status, headers = connect(compressed_echo.port, CHROMIUM_OFFER)
    with client:
        assert status == 101
        assert extension_headers(headers) == [EXPECTED]


async def test_no_extension_without_setting(serve) -> None:
    server = serve(compression_server(websocket_compression=False))
    client, status, headers = connect(server.port, CHROMIUM_OFFER)
    with client:
        assert status == 101
        assert extension_headers(headers) == []
        # and the server does not compress: a 1000-byte echo comes back plain
        message = text_of(1000).encode()
        client.send(masked(0x1, message))
        assert client.recv_frame() == (0x81, 0x1, message)
    async with websockets.connect(ws_url(server), open_timeout=TIMEOUT) as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert ws.protocol.extensions == []
        await ws.send(text_of(1000))
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == text_of(1000)


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=012",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; unknown_parameter",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "x-webkit-deflate-frame",
    ],
)
def test_unacceptable_offer_is_declined(serve, offer: str) -> None:
    server = serve(compression_server())
    client, status, headers = connect(server.port, offer)
    with client:
        assert status == 101
        assert extension_headers(headers) == []
        # compression is not in effect: a large echo is plain, RSV1 from the client is 1002
        message = text_of(1000).encode()
        client.send(masked(0x1, message))
        assert client.recv_frame() == (0x81, 0x1, message)
        client.send(masked(0x1, deflate(message), rsv=0x40))
        assert read_close(client) == 1002
        assert client.is_closed_by_peer()


@pytest.mark.parametrize(
    "header",
    [
        "permessage deflate",
        "permessage-deflate; =12",
        "permessage-deflate; client_max_window_bits=",
        'permessage-deflate; client_max_window_bits="12',
        'permessage-deflate; client_max_window_bits="1 2"',
        "permessage-deflate; client_max_window_bits=12 13",
        "permessage-deflate;; client_max_window_bits",
        "permessage-deflate/1",
    ],
)
def test_broken_extension_header_is_400(serve, header: str) -> None:
    server = serve(compression_server())
    client, status, headers = connect(server.port, header)
    with client:
        assert status == 400
        assert extension_headers(headers) == []
        assert client.is_closed_by_peer()


@pytest.mark.parametrize(
    "offers",
    [
        (f"{UNACCEPTABLE_OFFER}, {CHROMIUM_OFFER}",),
        (UNACCEPTABLE_OFFER, CHROMIUM_OFFER),
        (f"x-webkit-deflate-frame, {WINDOW_8_OFFER}; foo, {CHROMIUM_OFFER}",),
    ],
)
def test_first_unacceptable_offer_then_second_accepted(serve, offers: tuple[str, ...]) -> None:
    server = serve(compression_server())
    client, status, headers = connect(server.port, *offers)
    with client:
        assert status == 101
        assert extension_headers(headers) == [EXPECTED]
        message = text_of(1000).encode()
        client.send(masked(0x1, message))
        b0, opcode, payload = client.recv_frame()
        assert (b0, opcode) == (0xC1, 0x1)
        assert inflate(payload, -12) == message


def test_8_bit_server_window_is_agreed_and_long_messages_go_uncompressed(serve) -> None:
    """zlib has no raw 8-bit compressor: the server agrees anyway (section 6 lets it send
    any message uncompressed) and compresses only messages an 8-bit window can read."""
    server = serve(compression_server())
    client, status, headers = connect(server.port, WINDOW_8_OFFER)
    with client:
        assert status == 101
        assert extension_headers(headers) == [
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=8"
        ]
        short = text_of(200).encode()
        client.send(masked(0x1, short))
        b0, opcode, payload = client.recv_frame()
        assert (b0, opcode) == (0xC1, 0x1)  # compressed (RSV1)
        assert inflate(payload, -8) == short
        long = text_of(1000).encode()
        client.send(masked(0x1, long))
        b0, opcode, payload = client.recv_frame()
        assert (b0, opcode) == (0x81, 0x1)  # sent uncompressed
        assert payload == long


def test_smaller_server_window_offer_is_honoured(serve) -> None:
    server = serve(compression_server())
    client, status, headers = connect(server.port, "permessage-deflate; server_max_window_bits=10")
    with client:
        assert status == 101
        assert extension_headers(headers) == [
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10"
        ]
        # a 2 KiB random block repeated: a window over 10 bits would reach back to it
        block = bytes_of(2048, 7)
        message = block * 8
        client.send(masked(0x2, message))
        b0, opcode, payload = client.recv_frame()
        assert (b0, opcode) == (0xC2, 0x2)
        assert inflate(payload, -10) == message


# -- round trips -----------------------------------------------------------------------------


async def test_websockets_round_trips_all_sizes(compressed_echo) -> None:
    async with websockets.connect(
        compressed_echo.url, open_timeout=TIMEOUT, max_size=4 * MiB
    ) as ws:
        assert ws.response is not None
        assert ws.response.headers["Sec-WebSocket-Extensions"] == EXPECTED
        for size in SIZES:
            text = text_of(size)
            assert len(text.encode()) == size
            await ws.send(text)
            got = await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert isinstance(got, str) and got == text, f"text of {size} bytes"
            data = bytes_of(size)
            await ws.send(data)
            got = await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert isinstance(got, bytes) and got == data, f"binary of {size} bytes"
        # multi-byte UTF-8, compressed by the client and by the server
        text = "żółw 🐢 " * 500
        await ws.send(text)
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == text


@pytest.mark.parametrize("opcode", [0x1, 0x2])
def test_raw_client_sees_rsv1_from_min_size(compressed_echo, opcode: int) -> None:
    with compressed_client(compressed_echo.port) as client:
        for size in SIZES:
            message = text_of(size).encode() if opcode == 1 else bytes_of(size)
            client.send(masked(opcode, message))
            b0, got_opcode, payload = client.recv_frame()
            assert got_opcode == opcode, f"size {size}"
            if size >= 64:
                assert b0 == 0xC0 | opcode, f"size {size}: expected RSV1, got {b0:#x}"
                assert inflate(payload) == message, f"size {size}"
            else:
                assert b0 == 0x80 | opcode, f"size {size}: expected no RSV1, got {b0:#x}"
                assert payload == message


def test_server_compresses_with_agreed_window(compressed_echo) -> None:
    """server_max_window_bits=12: no back-reference reaches past 4 KiB."""
    with compressed_client(compressed_echo.port) as client:
        message = bytes_of(8192, 3) * 8  # repeats 8 KiB back: only a >12-bit window sees it
        client.send(masked(0x2, message))
        b0, opcode, payload = client.recv_frame()
        assert (b0, opcode) == (0xC2, 0x2)
        assert inflate(payload, -12) == message


# -- receiving compressed messages -----------------------------------------------------------


class FlagRecorder:
    """An in-thread compression echo server that records (data, opcode, flags) per message."""

    def __init__(self, **settings: Any) -> None:
        self.frames: queue.Queue[tuple[Any, int, int]] = queue.Queue()
        self.server = WebSocketServer("127.0.0.1", 0)
        self.server.set({"websocket_compression": True, **settings})
        self.server.on("message", self.on_message)

    def on_message(self, server: WebSocketServer, frame: Frame) -> None:
        self.frames.put((frame.data, frame.opcode, frame.flags))
        server.push(frame.fd, frame.data, frame.opcode)

    def get(self) -> tuple[Any, int, int]:
        return self.frames.get(timeout=TIMEOUT)


def test_compressed_fragmented_message_is_inflated(serve) -> None:
    rec = FlagRecorder()
    serve(rec.server)
    message = text_of(5000, 1)
    compressed = deflate(message.encode())
    third = len(compressed) // 3
    parts = [compressed[:third], compressed[third : 2 * third], compressed[2 * third :]]
    with compressed_client(rec.server.port) as client:
        client.send(
            masked(0x1, parts[0], fin=False, rsv=0x40)
            + masked(0x0, parts[1], fin=False)
            + masked(0x0, parts[2])
        )
        data, opcode, flags = rec.get()
        assert data == message
        assert opcode == 0x1
        assert flags & SWOOLE_WEBSOCKET_FLAG_COMPRESS
        assert flags & SWOOLE_WEBSOCKET_FLAG_FIN
        b0, got_opcode, payload = client.recv_frame()
        assert (b0, got_opcode) == (0xC1, 0x1)
        assert inflate(payload).decode() == message
        # an uncompressed message on the same connection has no COMPRESS flag
        client.send(masked(0x2, b"plain"))
        assert rec.get() == (b"plain", WEBSOCKET_OPCODE_BINARY, 33)  # FIN|MASK, no COMPRESS
        assert client.recv_frame() == (0x82, 0x2, b"plain")
        # a small compressed binary message with a ping between its fragments
        blob = bytes_of(40, 2)
        compressed = deflate(blob)
        client.send(
            masked(0x2, compressed[:5], fin=False, rsv=0x40)
            + masked(0x9, b"between")
            + masked(0x0, compressed[5:])
        )
        assert client.recv_frame() == (0x8A, 0xA, b"between")
        data, opcode, flags = rec.get()
        assert (data, opcode) == (blob, WEBSOCKET_OPCODE_BINARY)
        assert flags & SWOOLE_WEBSOCKET_FLAG_COMPRESS
        assert client.recv_frame() == (0x82, 0x2, blob)  # 40 bytes: echoed uncompressed


def test_compressed_empty_message(serve) -> None:
    rec = FlagRecorder()
    serve(rec.server)
    with compressed_client(rec.server.port) as client:
        client.send(masked(0x1, deflate(b""), rsv=0x40))
        data, opcode, flags = rec.get()
        assert (data, opcode) == ("", 0x1)
        assert flags & SWOOLE_WEBSOCKET_FLAG_COMPRESS
        assert client.recv_frame() == (0x81, 0x1, b"")


def test_rsv1_on_continuation_is_1002(serve) -> None:
    server = serve(compression_server())
    compressed = deflate(text_of(1000).encode())
    with compressed_client(server.port) as client:
        client.send(
            masked(0x1, compressed[:10], fin=False, rsv=0x40)
            + masked(0x0, compressed[10:], rsv=0x40)
        )
        assert read_close(client) == 1002
        assert client.is_closed_by_peer()


@pytest.mark.parametrize("compression", [True, False])
def test_rsv1_without_negotiation_is_1002(serve, compression: bool) -> None:
    server = serve(compression_server(websocket_compression=compression))
    # offered only when the server would not agree anyway: either way nothing was agreed
    offers = () if compression else (CHROMIUM_OFFER,)
    client, status, headers = connect(server.port, *offers)
    with client:
        assert status == 101
        assert extension_headers(headers) == []
        client.send(masked(0x1, deflate(text_of(1000).encode()), rsv=0x40))
        assert read_close(client) == 1002
        assert client.is_closed_by_peer()


@pytest.mark.parametrize(
    ("opcode", "payload"),
    [
        (0x2, b"\xff\xff\xff\xff"),  # BTYPE 11: reserved block type
        (0x1, b"\x00\x05\x00\x00\x00hello"),  # a stored block whose LEN/NLEN disagree
        (0x1, deflate(b"\xff\xfe text")),  # valid deflate, invalid UTF-8
        (0x2, finished(b"complete") + b"junk"),  # data after the final (BFINAL) block
    ],
)
def test_invalid_compressed_data_is_1007(serve, opcode: int, payload: bytes) -> None:
    server = serve(compression_server())
    with compressed_client(server.port) as client:
        client.send(masked(opcode, payload, rsv=0x40))
        assert read_close(client) == 1007
        assert client.is_closed_by_peer()


# -- push, ping ------------------------------------------------------------------------------


def test_push_flag_compress_and_control_frames(serve) -> None:
    pushed: queue.Queue[list[bool]] = queue.Queue()
    server = WebSocketServer("127.0.0.1", 0)
    server.set(websocket_compression=True)
    fin_compress = SWOOLE_WEBSOCKET_FLAG_FIN | SWOOLE_WEBSOCKET_FLAG_COMPRESS

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        fd = frame.fd
        pushed.put(
            [
                server.push(fd, "0123456789", flags=fin_compress),
                server.push(fd, "0123456789"),
                server.push(fd, b"x" * 100, WEBSOCKET_OPCODE_BINARY),
                server.ping(fd, "p" * 100),
                server.push(fd, "q" * 100, WEBSOCKET_OPCODE_PING, fin_compress),
            ]
        )

    serve(server)
    with compressed_client(server.port) as client:
        client.send(masked(0x1, b"go"))
        assert pushed.get(timeout=TIMEOUT) == [True] * 5
        b0, opcode, payload = client.recv_frame()
        assert (b0, opcode) == (0xC1, 0x1), "push(FLAG_COMPRESS) of 10 bytes is compressed"
        assert inflate(payload, -12) == b"0123456789"
        assert client.recv_frame() == (0x81, 0x1, b"0123456789")
        b0, opcode, payload = client.recv_frame()
        assert (b0, opcode) == (0xC2, 0x2)
        assert inflate(payload, -12) == b"x" * 100
        assert client.recv_frame() == (0x89, 0x9, b"p" * 100)
        assert client.recv_frame() == (0x89, 0x9, b"q" * 100)
        # the automatic pong to a 100-byte ping is not compressed either
        client.send(masked(0x9, b"r" * 100))
        assert client.recv_frame() == (0x8A, 0xA, b"r" * 100)
    # without negotiation FLAG_COMPRESS sends a plain frame (RSV1 would be a protocol error)
    client, status, headers = connect(server.port)
    with client:
        assert status == 101 and extension_headers(headers) == []
        client.send(masked(0x1, b"go"))
        assert pushed.get(timeout=TIMEOUT) == [True] * 5
        assert client.recv_frame() == (0x81, 0x1, b"0123456789")
        assert client.recv_frame() == (0x81, 0x1, b"0123456789")
        assert client.recv_frame() == (0x82, 0x2, b"x" * 100)
        assert client.recv_frame() == (0x89, 0x9, b"p" * 100)
        assert client.recv_frame() == (0x89, 0x9, b"q" * 100)


# -- broadcast -------------------------------------------------------------------------------


async def test_broadcast_mixed_compression(serve) -> None:
    big = text_of(3000, 5)
    small = "hi all"
    blob = bytes_of(500, 5) * 4
    counts: queue.Queue[list[int]] = queue.Queue()
    server = WebSocketServer("127.0.0.1", 0)
    server.set(websocket_compression=True)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        counts.put(
            [
                server.broadcast(big),
                server.broadcast(small),
                server.broadcast(blob, opcode=WEBSOCKET_OPCODE_BINARY),
            ]
        )

    serve(server)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                websockets.connect(ws_url(server), open_timeout=TIMEOUT, max_size=MiB)
            )
            for _ in range(20)
        ]
        for ws in clients:
            assert ws.response is not None
            assert ws.response.headers["Sec-WebSocket-Extensions"] == EXPECTED
        plain = []
        for _ in range(5):
            client, status, headers = await asyncio.to_thread(connect, server.port)
            stack.callback(client.close)
            assert status == 101 and extension_headers(headers) == []
            plain.append(client)
        # a different server window: these need their own compressed variant
        narrow = []
        for _ in range(2):
            client, status, headers = await asyncio.to_thread(
                connect, server.port, "permessage-deflate; server_max_window_bits=9"
            )
            stack.callback(client.close)
            assert status == 101
            assert extension_headers(headers) == [
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                "server_max_window_bits=9"
            ]
            narrow.append(client)

        await clients[0].send("broadcast please")
        assert await asyncio.to_thread(counts.get, True, TIMEOUT) == [27, 27, 27]

        async def receive(ws: Any) -> list[Any]:
            return [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(3)]

        got = await asyncio.gather(*(receive(ws) for ws in clients))
        assert got == [[big, small, blob]] * 20

        def read_raw(client: RawClient) -> list[tuple[int, int, bytes]]:
            return [client.recv_frame() for _ in range(3)]

        for client in plain:
            assert await asyncio.to_thread(read_raw, client) == [
                (0x81, 0x1, big.encode()),
                (0x81, 0x1, small.encode()),
                (0x82, 0x2, blob),
            ]
        for client in narrow:
            frames = await asyncio.to_thread(read_raw, client)
            assert [(b0, op) for b0, op, _ in frames] == [(0xC1, 0x1), (0x81, 0x1), (0xC2, 0x2)]
            assert inflate(frames[0][2], -9) == big.encode()
            assert frames[1][2] == small.encode()
            assert inflate(frames[2][2], -9) == blob


# -- custom on("handshake") ------------------------------------------------------------------


async def test_custom_handshake_gets_extension_automatically(serve) -> None:
    server = compression_server()
    server.on("handshake", lambda request, response: swoole_handshake(request, response))
    serve(server)
    async with websockets.connect(ws_url(server), open_timeout=TIMEOUT, max_size=MiB) as ws:
        assert ws.response is not None
        assert ws.response.headers.get_all("Sec-WebSocket-Extensions") == [EXPECTED]
        assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
        for message in (text_of(1000), bytes_of(100_000), "tiny", text_of(70_000, 9)):
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message
    with compressed_client(server.port) as client:
        message = text_of(1000).encode()
        client.send(masked(0x1, deflate(message), rsv=0x40))
        b0, opcode, payload = client.recv_frame()
        assert (b0, opcode) == (0xC1, 0x1)
        assert inflate(payload, -12) == message


async def test_custom_handshake_own_extension_header(serve) -> None:
    own = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    server = compression_server()
    server.on("handshake", lambda request, response: swoole_handshake(request, response, own))
    serve(server)
    async with websockets.connect(ws_url(server), open_timeout=TIMEOUT, max_size=MiB) as ws:
        assert ws.response is not None
        assert ws.response.headers.get_all("Sec-WebSocket-Extensions") == [own]
        for message in (text_of(1000), bytes_of(100_000), "tiny", bytes_of(4096, 1) * 16):
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message
    client, status, headers = connect(server.port, CHROMIUM_OFFER)
    with client:
        assert status == 101
        assert extension_headers(headers) == [own]
        # no client_max_window_bits in the answer: the client may use a 15-bit window
        message = bytes_of(16384, 4) * 4
        client.send(masked(0x2, deflate(message, wbits=-15), rsv=0x40))
        b0, opcode, payload = client.recv_frame()
        assert (b0, opcode) == (0xC2, 0x2)
        assert inflate(payload) == message


# -- decompression bombs ---------------------------------------------------------------------

BOMB_SIZE = 100 * MiB


@functools.lru_cache(maxsize=1)
def bomb() -> bytes:
    """~100 KiB of deflate data (window 12, as agreed) inflating to 100 MiB of ``a``."""
    c = zlib.compressobj(9, zlib.DEFLATED, -12)
    chunk = b"a" * MiB
    out = b"".join(c.compress(chunk) for _ in range(BOMB_SIZE // MiB))
    out += c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def bomb_frames(fragments: int) -> bytes:
    data = bomb()
    step = -(-len(data) // fragments)
    parts = [data[i : i + step] for i in range(0, len(data), step)]
    assert len(parts) == fragments
    frames = []
    for i, part in enumerate(parts):
        first, last = i == 0, i == len(parts) - 1
        frames.append(masked(0x1 if first else 0x0, part, fin=last, rsv=0x40 if first else 0))
    return b"".join(frames)


@pytest.mark.parametrize("fragments", [1, 10])
async def test_decompression_bomb_is_1009_without_memory_growth(fragments: int) -> None:
    data = bomb()
    assert 80 * 1024 < len(data) < 120 * 1024
    frames = bomb_frames(fragments)
    with echo_process("--compression", "--max-length", str(MiB)) as echo:
        pid = echo.proc.pid
        # warm up: a compressed round trip, so zlib and the code paths are in memory
        with compressed_client(echo.port) as client:
            message = text_of(100_000).encode()
            client.send(masked(0x1, deflate(message), rsv=0x40))
            b0, opcode, payload = client.recv_frame()
            assert (b0, opcode) == (0xC1, 0x1) and inflate(payload) == message
        rss_before = proc_status(pid, "VmRSS")
        hwm_before = proc_status(pid, "VmHWM")

        def attack() -> int:
            with compressed_client(echo.port) as client:
                send_quietly(client, frames)
                code = read_close(client)
                assert client.is_closed_by_peer()
                return code

        assert await asyncio.to_thread(attack) == 1009
        rss_after = proc_status(pid, "VmRSS")
        hwm_after = proc_status(pid, "VmHWM")
        assert rss_after - rss_before < 16 * MiB, (rss_before, rss_after)
        assert hwm_after - hwm_before < 16 * MiB, (hwm_before, hwm_after)
        assert echo.proc.poll() is None
        # the server goes on serving
        async with websockets.connect(echo.url, open_timeout=TIMEOUT, max_size=2 * MiB) as ws:
            assert ws.response is not None
            assert ws.response.headers["Sec-WebSocket-Extensions"] == EXPECTED
            for message in (text_of(1000), "a" * MiB):
                await ws.send(message)
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message


# -- context takeover ------------------------------------------------------------------------


async def test_context_takeover_round_trips(serve) -> None:
    server = serve(compression_server(websocket_compression_context_takeover=True))
    answer = (
        "permessage-deflate; client_no_context_takeover; "
        "server_max_window_bits=12; client_max_window_bits=12"
    )
    async with websockets.connect(ws_url(server), open_timeout=TIMEOUT) as ws:
        assert ws.response is not None
        assert ws.response.headers.get_all("Sec-WebSocket-Extensions") == [answer]
        for i in range(50):
            message = f'{{"id": {i}, "user": "alice", "text": "{text_of(150 + i, i)}"}}'
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message
    # over a raw client: the server's stream spans messages, so a repeated message is
    # a back-reference the second time, and only a decompressor that keeps its context
    # can read it
    client, status, headers = connect(server.port, CHROMIUM_OFFER)
    with client:
        assert status == 101
        assert extension_headers(headers) == [answer]
        message = bytes_of(1000, 8)
        d = zlib.decompressobj(-12)
        sizes = []
        for _ in range(3):
            client.send(masked(0x2, message))
            b0, opcode, payload = client.recv_frame()
            assert (b0, opcode) == (0xC2, 0x2)
            assert d.decompress(payload + TAIL) == message
            sizes.append(len(payload))
        assert sizes[0] > 1000 and sizes[1] < 100 and sizes[2] < 100, sizes


def test_no_context_takeover_repeats_identical_bytes(serve) -> None:
    server = serve(compression_server())
    with compressed_client(server.port) as client:
        message = bytes_of(1000, 8)
        payloads = []
        for _ in range(3):
            client.send(masked(0x2, message))
            b0, opcode, payload = client.recv_frame()
            assert (b0, opcode) == (0xC2, 0x2)
            assert inflate(payload, -12) == message
            payloads.append(payload)
        assert payloads[0] == payloads[1] == payloads[2]
