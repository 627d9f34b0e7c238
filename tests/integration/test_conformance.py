"""Wire-level RFC 6455 conformance of ``examples/echo.py``, mirroring Autobahn|Testsuite.

The external checkers run Autobahn's fuzzingclient (sections 1-7 and 9) against
``examples/echo.py``; Autobahn cannot run here (Python 2 / Docker), so these tests replay its
case families over a real TCP connection to the real program, started as a subprocess (see
``conftest.py``). Test ids carry the Autobahn case number where one exists (``x`` where the
case is ours, e.g. an extra size or send mode).

Malformed input goes through a raw socket (``Client`` below); plain echoes of well-formed
messages also go through the ``websockets`` library. Every expectation is strict:

* an echo is the exact payload with the exact opcode (server fragmentation is allowed, as
  in Autobahn: fragments are reassembled) and the server's frames are unmasked, RSV = 0;
* "fail with CODE" means the next frame from the server is a close frame carrying exactly
  CODE, and then the server closes TCP (EOF) within the socket timeout, without the client
  answering the close first (RFC 6455 section 7.1.7: failing closes the TCP connection).

Send modes mirror Autobahn's: ``bulk`` (all frames in one write), ``frames`` (one write per
frame) and ``octets`` (one write per byte, TCP_NODELAY set, so each byte is its own segment).
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import websockets

from tests.conftest import RawClient, masked

TIMEOUT = 5.0  # every blocking read on the raw socket
BIG_TIMEOUT = 10.0  # reads in the 9.x (limits/performance) cases

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
OPNAMES = {
    CONT: "continuation",
    TEXT: "text",
    BINARY: "binary",
    CLOSE: "close",
    PING: "ping",
    PONG: "pong",
}
MASK = b"\x37\xfa\x21\x3d"
KiB = 1024
MiB = 1024 * KiB

HELLO = b"Hello, world!"
KOSME = "κόσμε".encode()
HELLO_UTF8 = "Hello-µ@ßöäüàá-UTF-8!!".encode()


# -- frames and payloads ---------------------------------------------------------------------


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0) -> bytes:
    """A masked client frame; ``rsv`` is Autobahn's 3-bit RSV value (1-7)."""
    return masked(opcode, payload, fin, rsv << 4)


def close(code: int | None = None, reason: bytes = b"") -> bytes:
    return frame(CLOSE, b"" if code is None else code.to_bytes(2, "big") + reason)


def fragmented(opcode: int, payload: bytes, size: int) -> bytes:
    """``payload`` as one message in fragments of ``size`` bytes (the last may be shorter).

    Fast for sizes that are a multiple of 4: the mask repeats every 4 bytes, so masking the
    whole payload once equals masking every fragment with the same key.
    """
    chunks = range(0, max(len(payload), 1), size)
    last = chunks[-1]
    if size % 4 or size > 125:
        return b"".join(
            frame(opcode if i == 0 else CONT, payload[i : i + size], fin=i == last) for i in chunks
        )
    body = masked(BINARY, payload)[-len(payload) :] if payload else b""  # masked payload only
    mid = bytes((CONT, 0x80 | size)) + MASK
    parts = []
    for i in chunks:
        piece = body[i : i + size]
        if i == last:
            parts.append(bytes((0x80 | (opcode if i == 0 else CONT), 0x80 | len(piece))) + MASK)
        elif i == 0:
            parts.append(bytes((opcode, 0x80 | size)) + MASK)
        else:
            parts.append(mid)
        parts.append(piece)
    return b"".join(parts)


def text_payload(n: int) -> bytes:
    """``n`` bytes of valid UTF-8 mixing 1- to 4-byte characters (any cut may split one)."""
    unit = "κόσμε-µ@ßöäüàá-€-😀-*".encode()
    reps, rest = divmod(n, len(unit))
    return unit * reps + b"*" * rest


def binary_payload(n: int) -> bytes:
    unit = bytes(range(256))
    reps, rest = divmod(n, 256)
    return unit * reps + unit[:rest]


def describe(opcode: int, payload: bytes) -> str:
    name = OPNAMES.get(opcode, f"opcode {opcode}")
    if opcode == CLOSE and len(payload) >= 2:
        return f"close frame, code {int.from_bytes(payload[:2], 'big')}, reason {payload[2:]!r}"
    shown = payload[:40] + (b"..." if len(payload) > 40 else b"")
    return f"{name} frame, {len(payload)} bytes {shown!r}"


def same(got: bytes, want: bytes) -> tuple[bool, str]:
    """Compare big payloads without pytest diffing megabytes."""
    if got == want:
        return True, ""
    pairs = enumerate(zip(got, want, strict=False))
    first = next((i for i, (a, b) in pairs if a != b), min(len(got), len(want)))
    return False, f"payload differs: got {len(got)} bytes, want {len(want)}, first diff at {first}"


# -- the raw client -------------------------------------------------------------------------


class Client(RawClient):
    """``RawClient`` with a linear-time receive buffer and WebSocket-level expectations."""

    def __init__(self, port: int, timeout: float = TIMEOUT) -> None:
        super().__init__(port, timeout)
        self.timeout = timeout
        self.buf = bytearray()  # type: ignore[assignment]
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        response = self.handshake()
        assert response.startswith(b"HTTP/1.1 101"), response
        assert not self.buf, f"data before any frame: {bytes(self.buf)!r}"

    def recv_exact(self, n: int) -> bytes:
        buf = self.buf
        while len(buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        data = bytes(buf[:n])
        del buf[:n]
        return data

    # sending

    def send_frames(self, frames: list[bytes], mode: str = "bulk") -> None:
        """Send in one write (``bulk``), one write per frame, or one write per byte."""
        if mode == "bulk":
            writes: list[bytes] = [b"".join(frames)]
        elif mode == "frames":
            writes = frames
        else:
            assert mode == "octets", mode
            data = b"".join(frames)
            writes = [data[i : i + 1] for i in range(len(data))]
        try:
            for data in writes:
                self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server failed the connection early; what it sent is checked by reads

    def send_chopped(self, data: bytes, size: int) -> None:
        for i in range(0, len(data), size):
            self.sock.sendall(data[i : i + size])

    # receiving

    def next_frame(self) -> tuple[bool, int, bytes]:
        """``(fin, opcode, payload)`` of the next server frame (unmasked, RSV = 0)."""
        try:
            b0, opcode, payload = self.recv_frame()
        except TimeoutError:
            raise AssertionError(f"no frame from the server within {self.timeout} s") from None
        except EOFError as exc:
            raise AssertionError(f"server closed TCP instead of sending a frame: {exc}") from None
        except ConnectionResetError:
            raise AssertionError("server reset the connection instead of sending a frame") from None
        assert not b0 & 0x70, f"server frame has RSV bits set: {b0:#04x}"
        return bool(b0 & 0x80), opcode, payload

    def expect_message(self, opcode: int, payload: bytes) -> None:
        """The next message is ``payload`` with ``opcode`` (fragments are reassembled)."""
        fin, got_op, data = self.next_frame()
        assert got_op == opcode, (
            f"expected a {OPNAMES[opcode]} message of {len(payload)} bytes, "
            f"got {describe(got_op, data)}"
        )
        parts = [data]
        while not fin:
            fin, got_op, data = self.next_frame()
            assert got_op == CONT, f"expected a continuation, got {describe(got_op, data)}"
            parts.append(data)
        ok, why = same(b"".join(parts), payload)
        assert ok, why

    def expect_pong(self, payload: bytes) -> None:
        fin, opcode, data = self.next_frame()
        assert opcode == PONG, f"expected a pong {payload!r}, got {describe(opcode, data)}"
        assert fin, "fragmented pong"
        assert data == payload

    def expect_close(self, code: int | None, what: str = "close") -> bytes:
        """The next frame is a close frame with ``code`` (``None``: empty); return its reason."""
        fin, opcode, data = self.next_frame()
        want = "an empty close frame" if code is None else f"a close frame with code {code}"
        assert opcode == CLOSE, f"{what}: expected {want}, got {describe(opcode, data)}"
        assert fin, "fragmented close frame"
        if code is None:
            assert data == b"", f"{what}: expected {want}, got {describe(opcode, data)}"
            return b""
        assert len(data) >= 2, f"{what}: expected {want}, got {describe(opcode, data)}"
        got = int.from_bytes(data[:2], "big")
        assert got == code, f"{what}: expected {want}, got {describe(opcode, data)}"
        reason = data[2:]
        reason.decode("utf-8")  # the server's reason must be UTF-8 too
        return reason

    def expect_eof(self) -> None:
        """The server closes TCP (EOF or reset) within the timeout, sending nothing more."""
        start = time.monotonic()
        closed = self.is_closed_by_peer()
        assert closed, f"server did not close TCP within {self.timeout} s"
        assert not self.buf, f"data after the close frame: {bytes(self.buf[:60])!r}"
        assert time.monotonic() - start < self.timeout

    def expect_failure(self, code: int) -> None:
        """_Fail the WebSocket Connection_: a close frame with ``code``, then TCP closed."""
        self.expect_close(code, what="connection failure")
        self.expect_eof()

    def closing_handshake(self, code: int = 1000) -> None:
        """Client-initiated clean close: the server echoes the code and closes TCP."""
        self.send(close(code))
        self.expect_close(code)
        self.expect_eof()


@pytest.fixture
def client(echo_server):
    clients: list[Client] = []

    def connect(timeout: float = TIMEOUT, port: int | None = None) -> Client:
        c = Client(echo_server.port if port is None else port, timeout)
        clients.append(c)
        return c

    yield connect
    for c in clients:
        c.close()


def run(client: Client, frames: list[bytes], mode: str, expect: list[tuple]) -> None:
    """Send ``frames`` in ``mode``, then check the server's answers in order.

    ``expect`` items: ``(TEXT|BINARY, payload)`` an echoed message, ``(PONG, payload)``,
    ``("fail", code)`` the connection is failed with ``code``, ``("close", code)`` a clean
    close reply with ``code`` then EOF, ``("done",)`` the connection is still healthy: a
    closing handshake completes.
    """
    client.send_frames(frames, mode)
    for item in expect:
        kind = item[0]
        if kind in (TEXT, BINARY):
            client.expect_message(kind, item[1])
        elif kind == PONG:
            client.expect_pong(item[1])
        elif kind == "fail":
            client.expect_failure(item[1])
        elif kind == "close":
            client.expect_close(item[1])
            client.expect_eof()
        else:
            assert kind == "done", item
            client.closing_handshake()


DONE = ("done",)


def fail(code: int) -> tuple[str, int]:
    return ("fail", code)


# -- 1. framing: text and binary echo ------------------------------------------------------

SIZES = [0, 125, 126, 127, 128, 65535, 65536]


def _framing_cases():
    for sub, opcode, kind, byte in ((1, TEXT, "text", b"*"), (2, BINARY, "binary", b"\xfe")):
        for i, n in enumerate(SIZES, start=1):
            yield pytest.param(opcode, byte * n, None, id=f"1.{sub}.{i}-{kind}-{n}")
            number = "8" if n == 65536 else "x"
            yield pytest.param(opcode, byte * n, 997, id=f"1.{sub}.{number}-{kind}-{n}-chop997")


@pytest.mark.parametrize(("opcode", "payload", "chop"), list(_framing_cases()))
def test_1_framing_echo(client, opcode, payload, chop) -> None:
    c = client()
    data = frame(opcode, payload)
    if chop:
        c.send_chopped(data, chop)
    else:
        c.send(data)
    c.expect_message(opcode, payload)
    c.closing_handshake()


@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"1.x-websockets-{n}")
async def test_1_framing_echo_websockets_client(echo_server, n) -> None:
    """The same sizes through a conforming client library (it validates the server side)."""
    async with websockets.connect(
        echo_server.url, max_size=None, compression=None, ping_interval=None, close_timeout=5
    ) as ws:
        await ws.send("*" * n)
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "*" * n
        await ws.send(b"\xfe" * n)
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == b"\xfe" * n
    assert ws.close_code == 1000


# -- 2. pings and pongs ---------------------------------------------------------------------

PINGS = [f"payload-{i}".encode() for i in range(10)]


@pytest.mark.parametrize(
    ("frames", "mode", "expect"),
    [
        pytest.param([frame(PING)], "bulk", [(PONG, b""), DONE], id="2.1-empty"),
        pytest.param(
            [frame(PING, b"Hello, world!")],
            "bulk",
            [(PONG, b"Hello, world!"), DONE],
            id="2.2-text-payload",
        ),
        pytest.param(
            [frame(PING, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")],
            "bulk",
            [(PONG, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"), DONE],
            id="2.3-binary-payload",
        ),
        pytest.param(
            [frame(PING, b"\xfe" * 125)], "bulk", [(PONG, b"\xfe" * 125), DONE], id="2.4-125-bytes"
        ),
        pytest.param([frame(PING, b"\xfe" * 126)], "bulk", [fail(1002)], id="2.5-126-bytes"),
        pytest.param(
            [frame(PING, b"\xfe" * 125)],
            "octets",
            [(PONG, b"\xfe" * 125), DONE],
            id="2.6-125-bytes-octets",
        ),
        pytest.param([frame(PONG)], "bulk", [DONE], id="2.7-unsolicited-pong-empty"),
        pytest.param(
            [frame(PONG, b"unsolicited pong payload")],
            "bulk",
            [DONE],
            id="2.8-unsolicited-pong-payload",
        ),
        pytest.param(
            [frame(PONG, b"unsolicited pong payload"), frame(PING, b"ping payload")],
            "bulk",
            [(PONG, b"ping payload"), DONE],
            id="2.9-unsolicited-pong-then-ping",
        ),
        pytest.param(
            [frame(PING, p) for p in PINGS],
            "bulk",
            [*((PONG, p) for p in PINGS), DONE],
            id="2.10-ten-pings",
        ),
        pytest.param(
            [frame(PING, p) for p in PINGS],
            "frames",
            [*((PONG, p) for p in PINGS), DONE],
            id="2.11-ten-pings-chopped",
        ),
    ],
)
def test_2_ping_pong(client, frames, mode, expect) -> None:
    run(client(), frames, mode, expect)


def test_2_x_replies_in_arrival_order(client, echo_mode) -> None:
    """Ping, text, ping in one write: pong, echo, pong -- where one process answers all
    three. In SWOOLE_PROCESS mode the master answers pings itself, at once, while the echo
    makes a round trip through a worker (RFC 6455 5.5.2 asks for a pong "as soon as
    practical", not behind data messages): there the pongs keep their order and the echo
    comes too, before the closing handshake."""
    c = client()
    c.send_frames([frame(PING, b"first"), frame(TEXT, HELLO), frame(PING, b"last")])
    got = []
    for _ in range(3):
        fin, opcode, data = c.next_frame()
        assert fin, describe(opcode, data)
        got.append((opcode, data))
    in_order = [(PONG, b"first"), (TEXT, HELLO), (PONG, b"last")]
    if echo_mode.startswith("process"):
        assert [g for g in got if g[0] == PONG] == [(PONG, b"first"), (PONG, b"last")], got
        assert sorted(got) == sorted(in_order), got
    else:
        assert got == in_order
    c.closing_handshake()


# -- 3. reserved bits -----------------------------------------------------------------------


def _rsv_cases():
    # Autobahn's seven cases
    yield pytest.param([frame(TEXT, HELLO, rsv=1)], "bulk", [fail(1002)], id="3.1-text-rsv1")
    after_valid = [(TEXT, HELLO), fail(1002)]
    yield pytest.param(
        [frame(TEXT, HELLO), frame(TEXT, HELLO, rsv=2), frame(PING, HELLO)],
        "frames",
        after_valid,
        id="3.2-text-rsv2-after-valid",
    )
    yield pytest.param(
        [frame(TEXT, HELLO), frame(TEXT, HELLO, rsv=3), frame(PING, HELLO)],
        "bulk",
        after_valid,
        id="3.3-text-rsv3-after-valid-one-chop",
    )
    yield pytest.param(
        [frame(TEXT, HELLO), frame(TEXT, HELLO, rsv=4), frame(PING, HELLO)],
        "octets",
        after_valid,
        id="3.4-text-rsv4-after-valid-octets",
    )
    yield pytest.param(
        [frame(BINARY, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv=5)],
        "bulk",
        [fail(1002)],
        id="3.5-binary-rsv5",
    )
    yield pytest.param([frame(PING, HELLO, rsv=6)], "bulk", [fail(1002)], id="3.6-ping-rsv6")
    yield pytest.param(
        [masked(CLOSE, b"\x03\xe8", True, 0x70)], "bulk", [fail(1002)], id="3.7-close-rsv7"
    )
    # every RSV bit on every kind of frame, after a valid message that must be echoed first
    bad_frames = {
        "text": lambda rsv: frame(TEXT, HELLO, rsv=rsv),
        "binary": lambda rsv: frame(BINARY, b"\x00\xff", rsv=rsv),
        "continuation": lambda rsv: frame(CONT, HELLO, rsv=rsv),
        "ping": lambda rsv: frame(PING, HELLO, rsv=rsv),
        "pong": lambda rsv: frame(PONG, HELLO, rsv=rsv),
        "close": lambda rsv: masked(CLOSE, b"\x03\xe8", True, rsv << 4),
    }
    for name, make in bad_frames.items():
        for rsv in (1, 2, 4):
            prefix = [frame(TEXT, b"first", fin=False)] if name == "continuation" else []
            yield pytest.param(
                [frame(BINARY, b"valid"), *prefix, make(rsv), frame(PING, HELLO)],
                "bulk",
                [(BINARY, b"valid"), fail(1002)],
                id=f"3.x-{name}-rsv{rsv}-after-valid",
            )


@pytest.mark.parametrize(("frames", "mode", "expect"), list(_rsv_cases()))
def test_3_reserved_bits(client, frames, mode, expect) -> None:
    run(client(), frames, mode, expect)


# -- 4. reserved opcodes --------------------------------------------------------------------


def _opcode_cases():
    for group, opcodes in ((1, (3, 4, 5, 6, 7)), (2, (11, 12, 13, 14, 15))):
        for i, op in enumerate(opcodes, start=1):
            case = f"4.{group}.{i}-opcode-{op}"
            if i == 1:
                yield pytest.param([frame(op)], [fail(1002)], id=case)
            elif i == 2:
                yield pytest.param([frame(op, b"reserved opcode payload")], [fail(1002)], id=case)
            else:
                payload = b"" if i == 3 else b"reserved opcode payload"
                yield pytest.param(
                    [frame(TEXT, HELLO), frame(op, payload), frame(PING, HELLO)],
                    [(TEXT, HELLO), fail(1002)],
                    id=f"{case}-after-valid",
                )


@pytest.mark.parametrize(("frames", "expect"), list(_opcode_cases()))
def test_4_reserved_opcodes(client, frames, expect) -> None:
    run(client(), frames, "frames", expect)


# -- 5. fragmentation -----------------------------------------------------------------------

F1, F2 = b"fragment1", b"fragment2"


def _fragmentation_cases():
    modes = (("", "bulk"), ("-chopped", "frames"), ("-octets", "octets"))
    yield pytest.param(
        [frame(PING, F1, fin=False), frame(CONT, F2)],
        "bulk",
        [fail(1002)],
        id="5.1-fragmented-ping",
    )
    yield pytest.param(
        [frame(PONG, F1, fin=False), frame(CONT, F2)],
        "bulk",
        [fail(1002)],
        id="5.2-fragmented-pong",
    )
    for n, (suffix, mode) in enumerate(modes):
        yield pytest.param(
            [frame(TEXT, F1, fin=False), frame(CONT, F2)],
            mode,
            [(TEXT, F1 + F2), DONE],
            id=f"5.{3 + n}-text-2-fragments{suffix}",
        )
        yield pytest.param(
            [frame(BINARY, F1, fin=False), frame(CONT, F2)],
            mode,
            [(BINARY, F1 + F2), DONE],
            id=f"5.x-binary-2-fragments{suffix}",
        )
        yield pytest.param(
            [frame(TEXT, F1, fin=False), frame(PING, b"ping payload"), frame(CONT, F2)],
            mode,
            [(PONG, b"ping payload"), (TEXT, F1 + F2), DONE],
            id=f"5.{6 + n}-ping-between-fragments{suffix}",
        )
        yield pytest.param(
            [
                frame(BINARY, F1, fin=False),
                frame(PING, b"p1"),
                frame(CONT, F2, fin=False),
                frame(PONG, b"unsolicited"),
                frame(PING, b"p2"),
                frame(CONT, b"fragment3"),
            ],
            mode,
            [(PONG, b"p1"), (PONG, b"p2"), (BINARY, F1 + F2 + b"fragment3"), DONE],
            id=f"5.x-binary-pings-and-pong-between-fragments{suffix}",
        )
        yield pytest.param(
            [frame(CONT, b"non-continuation payload"), frame(TEXT, HELLO)],
            mode,
            [fail(1002)],
            id=f"5.{9 + n}-continuation-fin-without-start{suffix}",
        )
        yield pytest.param(
            [frame(CONT, b"non-continuation payload", fin=False), frame(TEXT, HELLO)],
            mode,
            [fail(1002)],
            id=f"5.{12 + n}-continuation-nofin-without-start{suffix}",
        )
    yield pytest.param(
        [
            frame(TEXT, F1, fin=False),
            frame(CONT, F2),
            frame(CONT, b"fragment3", fin=False),
            frame(TEXT, b"fragment4"),
        ],
        "bulk",
        [(TEXT, F1 + F2), fail(1002)],
        id="5.15-continuation-after-complete-message",
    )
    for case, first_fin in ((16, False), (17, True)):
        frames = []
        for _ in range(2):
            frames += [
                frame(CONT, F1, fin=first_fin),
                frame(TEXT, F2, fin=False),
                frame(CONT, b"fragment3"),
            ]
        yield pytest.param(
            frames,
            "bulk",
            [fail(1002)],
            id=f"5.{case}-continuation-fin{int(first_fin)}-first-twice",
        )
    yield pytest.param(
        [frame(TEXT, F1, fin=False), frame(TEXT, F2)],
        "bulk",
        [fail(1002)],
        id="5.18-text-within-text",
    )
    yield pytest.param(
        [frame(BINARY, F1, fin=False), frame(TEXT, F2, fin=False), frame(CONT, b"x")],
        "bulk",
        [fail(1002)],
        id="5.x-text-within-binary",
    )
    pings = [
        frame(TEXT, F1, fin=False),
        frame(CONT, F2, fin=False),
        frame(PING, b"pongme 1!"),
        frame(CONT, b"fragment3", fin=False),
        frame(CONT, b"fragment4", fin=False),
        frame(PING, b"pongme 2!"),
        frame(CONT, b"fragment5"),
    ]
    expect = [
        (PONG, b"pongme 1!"),
        (PONG, b"pongme 2!"),
        (TEXT, b"fragment1fragment2fragment3fragment4fragment5"),
        DONE,
    ]
    yield pytest.param(pings, "frames", expect, id="5.19-five-fragments-two-pings")
    yield pytest.param(pings, "octets", expect, id="5.20-five-fragments-two-pings-octets")


@pytest.mark.parametrize(("frames", "mode", "expect"), list(_fragmentation_cases()))
def test_5_fragmentation(client, frames, mode, expect) -> None:
    run(client(), frames, mode, expect)


def test_5_19_pongs_arrive_before_the_message_completes(client) -> None:
    """A ping between fragments is answered at once, not when the message ends."""
    c = client()
    c.send_frames([frame(TEXT, F1, fin=False), frame(PING, b"pongme 1!")])
    c.expect_pong(b"pongme 1!")
    c.send_frames([frame(CONT, F2, fin=False), frame(PING, b"pongme 2!")])
    c.expect_pong(b"pongme 2!")
    c.send(frame(CONT, b"fragment3"))
    c.expect_message(TEXT, F1 + F2 + b"fragment3")
    c.closing_handshake()


# -- 6. UTF-8 handling ----------------------------------------------------------------------

VALID_UTF8 = {
    "6.2.1-hello": HELLO_UTF8,
    "6.5.1-kosme": KOSME,
    "6.7.1-first-1-byte": b"\x00",
    "6.7.2-first-2-byte": b"\xc2\x80",
    "6.7.3-first-3-byte": b"\xe0\xa0\x80",
    "6.7.4-first-4-byte": b"\xf0\x90\x80\x80",
    "6.9.1-last-1-byte": b"\x7f",
    "6.9.2-last-2-byte": b"\xdf\xbf",
    "6.9.3-last-3-byte": b"\xef\xbf\xbf",
    "6.9.4-last-4-byte": b"\xf4\x8f\xbf\xbf",
    "6.11.1-before-surrogates": b"\xed\x9f\xbf",
    "6.11.2-after-surrogates": b"\xee\x80\x80",
    "6.11.3-replacement-char": b"\xef\xbf\xbd",
    "6.11.4-last-code-point": b"\xf4\x8f\xbf\xbf",
    "6.22.1-noncharacter-fffe": b"\xef\xbf\xbe",
    "6.22.x-noncharacter-1fffe": b"\xf0\x9f\xbf\xbe",
    "6.22.x-noncharacter-10ffff": b"\xf4\x8f\xbf\xbf",
    "6.22.x-noncharacter-fdd0": b"\xef\xb7\x90",
    "6.x-emoji": "😀 grinning".encode(),
    "6.x-euro": "price: 10 €".encode(),
}

INVALID_UTF8 = {
    "6.3.1-kosme-surrogate-edited": KOSME + b"\xed\xa0\x80" + b"edited",
    "6.8.1-5-byte-sequence": b"\xf8\x88\x80\x80\x80",
    "6.8.2-6-byte-sequence": b"\xfc\x84\x80\x80\x80\x80",
    "6.10.1-f7bfbfbf": b"\xf7\xbf\xbf\xbf",
    "6.11.5-above-10ffff": b"\xf4\x90\x80\x80",
    "6.12.1-continuation-80": b"\x80",
    "6.12.2-continuation-bf": b"\xbf",
    "6.12.3-continuations-80bf": b"\x80\xbf",
    "6.12.4-continuations-80bf80": b"\x80\xbf\x80",
    "6.13.1-lonely-c0": b"\xc0\x20",
    "6.13.2-lonely-e0": b"\xe0\x20",
    "6.13.3-lonely-f0": b"\xf0\x20",
    "6.13.4-lonely-f8": b"\xf8\x20",
    "6.13.5-lonely-fc": b"\xfc\x20",
    "6.14.1-truncated-2-byte": b"\xc2",
    "6.14.2-truncated-3-byte-1": b"\xe0\xa0",
    "6.14.3-truncated-3-byte-2": b"\xe2\x82",
    "6.14.4-truncated-4-byte-1": b"\xf0\x90",
    "6.14.5-truncated-4-byte-2": b"\xf0\x90\x80",
    "6.14.6-kosme-truncated": KOSME + b"\xce",
    "6.14.7-truncated-overlong-c0": b"\xc0",
    "6.15.1-concatenated-truncated": b"\xc0\xe0\x80\xf0\x80\x80\xdf\xef\xbf\xf7\xbf\xbf",
    "6.16.1-byte-fe": b"\xfe",
    "6.16.2-byte-ff": b"\xff",
    "6.16.3-bytes-fefeffff": b"\xfe\xfe\xff\xff",
    "6.17.1-overlong-slash-2": b"\xc0\xaf",
    "6.17.2-overlong-slash-3": b"\xe0\x80\xaf",
    "6.17.3-overlong-slash-4": b"\xf0\x80\x80\xaf",
    "6.18.1-max-overlong-2": b"\xc1\xbf",
    "6.18.2-max-overlong-3": b"\xe0\x9f\xbf",
    "6.18.3-max-overlong-4": b"\xf0\x8f\xbf\xbf",
    "6.19.1-overlong-nul-2": b"\xc0\x80",
    "6.19.2-overlong-nul-3": b"\xe0\x80\x80",
    "6.19.3-overlong-nul-4": b"\xf0\x80\x80\x80",
    "6.20.1-surrogate-d800": b"\xed\xa0\x80",
    "6.20.2-surrogate-db7f": b"\xed\xad\xbf",
    "6.20.3-surrogate-db80": b"\xed\xae\x80",
    "6.20.4-surrogate-dbff": b"\xed\xaf\xbf",
    "6.20.5-surrogate-dc00": b"\xed\xb0\x80",
    "6.20.6-surrogate-df80": b"\xed\xbe\x80",
    "6.20.7-surrogate-dfff": b"\xed\xbf\xbf",
    "6.21.1-surrogate-pair": b"\xed\xa0\x80\xed\xb0\x80",
    "6.21.2-surrogate-pair-max": b"\xed\xaf\xbf\xed\xbf\xbf",
}


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# the tables themselves, against Python's strict (RFC 3629) decoder
assert all(_is_utf8(v) for v in VALID_UTF8.values())
assert not any(_is_utf8(v) for v in INVALID_UTF8.values())


def octet_fragments(payload: bytes) -> list[bytes]:
    """One text message, one payload byte per frame (Autobahn's "fragmented octet-wise")."""
    n = len(payload)
    return [frame(TEXT if i == 0 else CONT, payload[i : i + 1], fin=i == n - 1) for i in range(n)]


@pytest.mark.parametrize("payload", VALID_UTF8.values(), ids=VALID_UTF8.keys())
@pytest.mark.parametrize("split", ["one-frame", "octet-fragments"])
def test_6_valid_utf8_echoed(client, payload, split) -> None:
    frames = [frame(TEXT, payload)] if split == "one-frame" else octet_fragments(payload)
    run(client(), frames, "bulk", [(TEXT, payload), DONE])


@pytest.mark.parametrize("payload", INVALID_UTF8.values(), ids=INVALID_UTF8.keys())
@pytest.mark.parametrize("split", ["one-frame", "octet-fragments"])
def test_6_invalid_utf8_fails_1007(client, payload, split) -> None:
    frames = [frame(TEXT, payload)] if split == "one-frame" else octet_fragments(payload)
    run(client(), frames, "bulk", [fail(1007)])


@pytest.mark.parametrize(
    ("frames", "expect"),
    [
        pytest.param([frame(TEXT)], [(TEXT, b""), DONE], id="6.1.1-empty-text"),
        pytest.param(
            [frame(TEXT, fin=False), frame(CONT, fin=False), frame(CONT)],
            [(TEXT, b""), DONE],
            id="6.1.2-three-empty-fragments",
        ),
        pytest.param(
            [frame(TEXT, fin=False), frame(CONT, b"middle frame payload", fin=False), frame(CONT)],
            [(TEXT, b"middle frame payload"), DONE],
            id="6.1.3-empty-first-and-last-fragment",
        ),
        pytest.param(
            [frame(TEXT, HELLO_UTF8[:7], fin=False), frame(CONT, HELLO_UTF8[7:])],
            [(TEXT, HELLO_UTF8), DONE],
            id="6.2.2-fragmented-on-code-points",
        ),
        pytest.param(
            [
                frame(TEXT, b"x\xf0\x9f", fin=False),
                frame(CONT, b"\x98", fin=False),
                frame(CONT, b"\x80y"),
            ],
            [(TEXT, "x😀y".encode()), DONE],
            id="6.x-4-byte-char-across-3-fragments",
        ),
        pytest.param(
            [frame(TEXT, F1, fin=False), frame(CONT, b"\xed\xa0\x80", fin=False), frame(CONT, F2)],
            [fail(1007)],
            id="6.x-surrogate-in-middle-fragment",
        ),
        pytest.param(
            [frame(TEXT, F1, fin=False), frame(CONT, b"ok\xc0\xaf", fin=False), frame(CONT, F2)],
            [fail(1007)],
            id="6.x-overlong-in-middle-fragment",
        ),
        pytest.param(
            [frame(TEXT, KOSME, fin=False), frame(CONT, b"\xce")],
            [fail(1007)],
            id="6.x-truncated-in-last-fragment",
        ),
        pytest.param(
            [frame(TEXT, KOSME + b"\xce", fin=False), frame(CONT)],
            [fail(1007)],
            id="6.x-truncated-before-empty-last-fragment",
        ),
        pytest.param(
            [frame(TEXT, KOSME + b"\xed", fin=False), frame(CONT, b"\xa0\x80")],
            [fail(1007)],
            id="6.x-surrogate-split-across-fragments",
        ),
        pytest.param(
            [frame(BINARY, b"\xff\xfe\xed\xa0\x80")],
            [(BINARY, b"\xff\xfe\xed\xa0\x80"), DONE],
            id="6.x-binary-is-not-utf8",
        ),
    ],
)
def test_6_utf8_across_fragments(client, frames, expect) -> None:
    run(client(), frames, "bulk", expect)


def test_6_2_3_every_split_point_of_multibyte_text(client) -> None:
    """A message cut into two fragments at every byte offset is still valid UTF-8."""
    c = client()
    payload = "κόσμε€😀".encode()
    for cut in range(len(payload) + 1):
        c.send_frames([frame(TEXT, payload[:cut], fin=False), frame(CONT, payload[cut:])])
        c.expect_message(TEXT, payload)
    c.closing_handshake()


@pytest.mark.parametrize(
    ("first", "bad", "rest"),
    [
        pytest.param(KOSME, b"\xf4\x90\x80\x80", b"edited", id="6.4.1-bad-code-point-fragment"),
        pytest.param(KOSME + b"\xf4", b"\x90\x80\x80", b"edited", id="6.4.2-bad-code-point-split"),
        pytest.param(F1, b"\xed\xa0\x80", b"edited", id="6.4.x-surrogate-fragment"),
        pytest.param(F1, b"\xc0\x80", b"edited", id="6.4.x-overlong-fragment"),
        pytest.param(F1, b"\xff", b"edited", id="6.4.x-impossible-byte-fragment"),
    ],
)
def test_6_4_fail_fast_on_fragments(client, first, bad, rest) -> None:
    """The 1007 close follows the fragment holding the bad byte, before the message ends."""
    c = client()
    c.send(frame(TEXT, first, fin=False))
    c.send(frame(CONT, bad, fin=False))
    c.expect_close(1007, what="fail-fast: before the rest of the message was sent")
    c.send_frames([frame(CONT, rest)])
    c.expect_eof()


@pytest.mark.parametrize(
    ("first", "bad", "rest"),
    [
        pytest.param(KOSME, b"\xf4\x90\x80\x80", b"edited", id="6.4.3-bad-code-point-chop"),
        pytest.param(KOSME + b"\xf4", b"\x90\x80\x80", b"edited", id="6.4.4-bad-split-chop"),
    ],
)
def test_6_4_fail_fast_within_a_frame(client, first, bad, rest) -> None:
    """One text frame sent in three chops: Autobahn's strict verdict wants the close after
    the chop with the bad bytes (failing only at the frame's end is graded NON-STRICT)."""
    c = client()
    whole = frame(TEXT, first + bad + rest)
    head = len(whole) - len(first + bad + rest)
    c.send(whole[: head + len(first)])
    c.send(whole[head + len(first) : head + len(first) + len(bad)])
    c.expect_close(1007, what="fail-fast within a frame: before the frame's last chop was sent")
    c.send_frames([whole[head + len(first) + len(bad) :]])
    c.expect_eof()


# -- 7. close handling ----------------------------------------------------------------------

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize(
    ("frames", "expect"),
    [
        pytest.param(
            [frame(TEXT, b"Hello World!"), close(1000)],
            [(TEXT, b"Hello World!"), ("close", 1000)],
            id="7.1.1-echo-then-close",
        ),
        pytest.param([close(1000), close(1000)], [("close", 1000)], id="7.1.2-close-twice"),
        pytest.param(
            [close(1000), frame(PING, b"ping")], [("close", 1000)], id="7.1.3-ping-after-close"
        ),
        pytest.param(
            [close(1000), frame(TEXT, b"after close")],
            [("close", 1000)],
            id="7.1.4-text-after-close-not-echoed",
        ),
        pytest.param(
            [frame(TEXT, F1, fin=False), close(1000), frame(CONT, F2)],
            [("close", 1000)],
            id="7.1.5-fragment-close-continuation",
        ),
        pytest.param([close()], [("close", None)], id="7.3.1-empty-close"),
        pytest.param([frame(CLOSE, b"\x03")], [fail(1002)], id="7.3.2-one-byte-close"),
        pytest.param([close(1000)], [("close", 1000)], id="7.3.3-close-1000"),
        pytest.param(
            [close(1000, b"Hello World!")], [("close", 1000)], id="7.3.4-close-1000-reason"
        ),
        pytest.param(
            [close(1000, b"*" * 123)], [("close", 1000)], id="7.3.5-close-123-byte-reason"
        ),
        pytest.param([close(1000, b"*" * 124)], [fail(1002)], id="7.3.6-close-124-byte-reason"),
        pytest.param(
            [close(1000, KOSME + b"\xed\xa0\x80edited")],
            [fail(1007)],
            id="7.5.1-close-reason-invalid-utf8",
        ),
        pytest.param(
            [close(1000, b"\xf4\x90\x80\x80")], [fail(1007)], id="7.5.x-close-reason-above-10ffff"
        ),
        pytest.param(
            [close(1000, "κόσμε".encode())], [("close", 1000)], id="7.5.x-close-reason-valid-utf8"
        ),
    ],
)
def test_7_close_handling(client, frames, expect) -> None:
    run(client(), frames, "bulk", expect)


def test_7_1_6_big_message_then_close_then_ping(client) -> None:
    """The echo of a message sent before the close may come back; the ping gets no pong."""
    c = client()
    payload = b"BAsd7&jh23" * 26214
    c.send_frames([frame(TEXT, payload), close(1000), frame(PING, b"ping")])
    fin, opcode, data = c.next_frame()
    if opcode == TEXT:
        assert fin
        ok, why = same(data, payload)
        assert ok, why
        fin, opcode, data = c.next_frame()
    assert opcode == CLOSE, f"expected the close reply, got {describe(opcode, data)}"
    assert data[:2] == b"\x03\xe8", describe(opcode, data)
    c.expect_eof()


@pytest.mark.parametrize("code", VALID_CODES, ids=lambda c: f"7.7.x-code-{c}")
def test_7_7_valid_close_code_echoed(client, code) -> None:
    run(client(), [close(code)], "bulk", [("close", code)])


@pytest.mark.parametrize("code", INVALID_CODES, ids=lambda c: f"7.9.x-code-{c}")
def test_7_9_invalid_close_code_fails_1002(client, code) -> None:
    run(client(), [close(code)], "bulk", [fail(1002)])


def test_7_x_server_closes_tcp_first_after_close_reply(client) -> None:
    """After replying to the client's close the server closes TCP without waiting for us."""
    c = client()
    c.send(close(1000))
    c.expect_close(1000)
    start = time.monotonic()
    c.expect_eof()
    assert time.monotonic() - start < 2.0, "server waited before closing TCP"


# -- 9. limits and performance --------------------------------------------------------------

BIG_SIZES = [64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 16 * MiB]
BIG_IDS = ["64KiB", "256KiB", "1MiB", "4MiB", "16MiB"]


def _payload(opcode: int, n: int) -> bytes:
    return text_payload(n) if opcode == TEXT else binary_payload(n)


def _big_cases(fragment: int | None):
    for sub, opcode, kind in ((1, TEXT, "text"), (2, BINARY, "binary")):
        if fragment:
            sub += 2
        for i, (n, name) in enumerate(zip(BIG_SIZES, BIG_IDS, strict=True), start=1):
            number = f"9.{sub}.{i}" if not fragment else f"9.{sub}.x"
            yield pytest.param(opcode, n, id=f"{number}-{kind}-{name}")


@pytest.mark.parametrize(("opcode", "n"), list(_big_cases(None)))
def test_9_big_message_one_frame(client, opcode, n) -> None:
    c = client(BIG_TIMEOUT)
    payload = _payload(opcode, n)
    c.send(frame(opcode, payload))
    c.expect_message(opcode, payload)
    c.closing_handshake()


@pytest.mark.parametrize(("opcode", "n"), list(_big_cases(64 * KiB)))
def test_9_big_message_64k_fragments(client, opcode, n) -> None:
    c = client(BIG_TIMEOUT)
    payload = _payload(opcode, n)
    c.send(fragmented(opcode, payload, 64 * KiB))
    c.expect_message(opcode, payload)
    c.closing_handshake()


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["9.1.x-text", "9.2.x-binary"])
async def test_9_big_messages_websockets_client(echo_server, opcode) -> None:
    """1 MiB and 16 MiB round trips through a conforming client library."""
    async with websockets.connect(
        echo_server.url, max_size=None, compression=None, ping_interval=None, close_timeout=5
    ) as ws:
        for n in (1 * MiB, 16 * MiB):
            data = _payload(opcode, n)
            message = data.decode() if opcode == TEXT else data
            await ws.send(message)
            got = await asyncio.wait_for(ws.recv(), BIG_TIMEOUT)
            ok = got == message
            assert ok, f"{n}-byte message differs"
    assert ws.close_code == 1000


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["9.3.1-text", "9.4.1-binary"])
def test_9_4mib_in_64_byte_fragments(client, opcode) -> None:
    """65536 frames of 64 bytes make one message."""
    c = client(BIG_TIMEOUT)
    payload = _payload(opcode, 4 * MiB)
    c.send(fragmented(opcode, payload, 64))
    c.expect_message(opcode, payload)
    c.closing_handshake()


@pytest.mark.timeout(300)
def test_9_x_16mib_in_16_byte_fragments(client) -> None:
    """1,048,576 frames of 16 bytes make one 16 MiB text message (exactly the limit)."""
    c = client(60.0)
    payload = text_payload(16 * MiB)
    data = fragmented(TEXT, payload, 16)
    start = time.monotonic()
    c.send(data)
    c.expect_message(TEXT, payload)
    elapsed = time.monotonic() - start
    c.closing_handshake()
    print(f"16 MiB in 1M frames: {elapsed:.2f} s")


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
@pytest.mark.parametrize("n", [0, 16, 64, 256, 1024, 4096], ids=lambda n: f"9.7.x-{n}B")
def test_9_7_thousand_round_trips(client, opcode, n) -> None:
    """Autobahn 9.7/9.8: 1000 messages, each echoed before the next is sent."""
    c = client()
    payload = _payload(opcode, n)
    data = frame(opcode, payload)
    for _ in range(1000):
        c.send(data)
        c.expect_message(opcode, payload)
    c.closing_handshake()


# message too big: a second server with --max-length 1024


@pytest.fixture
def small_client(small_echo_server, client):
    return lambda: client(port=small_echo_server.port)


@pytest.mark.parametrize(
    ("frames", "expect"),
    [
        # the limit counts each frame with its header (Swoole's package_max_length):
        # 1016 payload bytes + 4 header + 4 mask = 1024
        pytest.param(
            [frame(TEXT, b"*" * 1016)], [(TEXT, b"*" * 1016), DONE], id="9.x-text-1016-at-limit"
        ),
        pytest.param(
            [frame(BINARY, b"\xfe" * 1016)],
            [(BINARY, b"\xfe" * 1016), DONE],
            id="9.x-binary-1016-at-limit",
        ),
        pytest.param([frame(TEXT, b"*" * 1017)], [fail(1009)], id="9.x-text-1017"),
        pytest.param([frame(BINARY, b"\xfe" * 1024)], [fail(1009)], id="9.x-binary-1024"),
        pytest.param(
            [frame(TEXT, b"*" * 512, fin=False), frame(CONT, b"*" * 512)],
            [(TEXT, b"*" * 1024), DONE],
            id="9.x-fragmented-1024-at-limit",
        ),
        pytest.param([frame(TEXT, b"*" * 1025)], [fail(1009)], id="9.x-text-1025"),
        pytest.param([frame(BINARY, b"\xfe" * 1025)], [fail(1009)], id="9.x-binary-1025"),
        pytest.param(
            [frame(TEXT, b"*" * 512, fin=False), frame(CONT, b"*" * 513)],
            [fail(1009)],
            id="9.x-fragmented-1025",
        ),
        pytest.param(
            [
                frame(BINARY, b"\xfe" * 100, fin=False),
                frame(PING, b"p"),
                *(frame(CONT, b"\xfe" * 100, fin=False) for _ in range(9)),
                frame(CONT, b"\xfe" * 100),
            ],
            [(PONG, b"p"), fail(1009)],
            id="9.x-eleven-100-byte-fragments",
        ),
        pytest.param(
            [frame(TEXT, b"ok"), frame(BINARY, b"\xfe" * 4096)],
            [(TEXT, b"ok"), fail(1009)],
            id="9.x-too-big-after-valid",
        ),
        pytest.param(
            [frame(PING, b"\xfe" * 125)],
            [(PONG, b"\xfe" * 125), DONE],
            id="9.x-control-frames-unaffected",
        ),
    ],
)
def test_9_message_too_big_fails_1009(small_client, frames, expect) -> None:
    run(small_client(), frames, "bulk", expect)


def test_9_x_over_default_limit_fails_at_the_header(client) -> None:
    """A frame announcing 16 MiB + 1 is refused from its header, without its payload."""
    c = client()
    header = frame(BINARY, b"\x00" * (16 * MiB + 1))[:14]
    c.send(header + b"\x00" * 1024)
    c.expect_failure(1009)
