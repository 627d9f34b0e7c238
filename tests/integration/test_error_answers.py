"""Error answers reach clients that are still sending (lingering close).

When the server answers an error (431, 413, a WebSocket close frame after a protocol error)
while the client is still sending, closing the socket with unread input would make the
kernel answer with RST, which can destroy the answer before the client reads it. The server
shuts its write side down after the answer and drops what the client still sends until the
client closes (bounded); these tests send *more* after the point of the error, then read.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time

import pytest

from tests.conftest import masked
from tests.integration.conftest import echo_process

KiB = 1024


def send_then_read(port: int, data: bytes, timeout: float = 20.0) -> bytes:
    """Send all of ``data`` (reading meanwhile, so neither side blocks), then read until the
    server closes; everything read. A reset is an error: the answer may have been lost."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    view = memoryview(data)
    got = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no EOF within {timeout} s; got {bytes(got[:80])!r}"
            readable, writable, _ = select.select([sock], [sock] if view else [], [], remaining)
            if writable:
                with contextlib.suppress(BlockingIOError):  # (a reset fails the test)
                    view = view[sock.send(view) :]
            if readable:
                chunk = sock.recv(1 << 16)  # (ConnectionResetError fails the test)
                if not chunk:
                    return bytes(got)
                got += chunk
    finally:
        sock.close()


def answers_of_many(port: int, data: bytes, clients: int, timeout: float = 30.0) -> list[bytes]:
    """``clients`` connections at once each send all of ``data`` (reading meanwhile) and read
    until the server closes; what each read. A reset fails the test (a lost answer)."""
    socks = []
    for _ in range(clients):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        socks.append([sock, memoryview(data), bytearray(), False])
    deadline = time.monotonic() + timeout
    try:
        while not all(done for *_, done in socks):
            assert time.monotonic() < deadline, "not every client got an answer and EOF"
            waiting = [s for s in socks if not s[3]]
            readers = [s[0] for s in waiting]
            writers = [s[0] for s in waiting if s[1]]
            readable, writable, _ = select.select(readers, writers, [], 1.0)
            by_sock = {s[0]: s for s in waiting}
            for sock in writable:
                entry = by_sock[sock]
                with contextlib.suppress(BlockingIOError):
                    entry[1] = entry[1][sock.send(entry[1]) :]
            for sock in readable:
                entry = by_sock[sock]
                chunk = sock.recv(1 << 16)  # a reset here means a lost answer
                if chunk:
                    entry[2] += chunk
                else:
                    entry[3] = True
        return [bytes(s[2]) for s in socks]
    finally:
        for sock, *_ in socks:
            sock.close()


def test_300_clients_sending_an_oversize_header_all_get_431() -> None:
    # 512 KiB of header fields (the limit is 64 KiB), still being sent after the 431.
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: " + b"a" * (512 * KiB) + b"\r\n\r\n"
    with echo_process() as echo:
        answers = answers_of_many(echo.port, head, 300)
    assert all(a.startswith(b"HTTP/1.1 431 ") for a in answers), {a[:40] for a in answers}


@pytest.mark.parametrize(
    ("field", "status"),
    [
        pytest.param(b"Sec-WebSocket-Version: 12\r\n", 426, id="426-version"),
        pytest.param(b"Sec-WebSocket-Version: 13\r\n", 400, id="400-no-key"),
    ],
)
def test_100_refused_handshakes_followed_by_frames_all_get_their_answer(
    field: bytes, status: int
) -> None:
    # the refused clients go on as if accepted: 256 KiB of frames follow the handshake
    handshake = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + (b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" if status == 426 else b"")
        + field
        + b"\r\n"
    )
    frames = masked(0x2, b"m" * (64 * KiB)) * 4
    with echo_process() as echo:
        answers = answers_of_many(echo.port, handshake + frames, 100)
    expected = b"HTTP/1.1 %d " % status
    assert all(a.startswith(expected) for a in answers), {a[:40] for a in answers}


def test_an_oversize_body_gets_413_while_the_client_still_sends() -> None:
    body = b"x" * (4 * 1024 * KiB)
    request = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    with echo_process("--max-length", str(64 * KiB)) as echo:
        answer = send_then_read(echo.port, request)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]


def test_a_malformed_request_gets_400_while_the_client_still_sends() -> None:
    # llhttp refuses the request line at once; 1 MiB more follows it
    request = b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n" + b"x" * (1024 * KiB)
    with echo_process() as echo:
        answer = send_then_read(echo.port, request)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        pytest.param(bytes((0x81, 0x05)) + b"hello", 1002, id="unmasked"),
        pytest.param(masked(0x1, b"\xff\xfe"), 1007, id="bad-utf8"),
        pytest.param(masked(0x2, b"x" * (128 * KiB)), 1009, id="too-big"),
    ],
)
def test_a_failed_websocket_gets_its_close_frame_while_the_client_still_sends(
    bad: bytes, code: int
) -> None:
    handshake = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    more = masked(0x2, b"m" * (64 * KiB)) * 16  # 1 MiB sent after the bad frame
    with echo_process("--max-length", str(64 * KiB)) as echo:
        answer = send_then_read(echo.port, handshake + masked(0x1, b"ok") + bad + more)
        head, _, frames = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert frames[:4] == b"\x81\x02ok"  # the message before the bad frame, echoed
        assert frames[4] == 0x88 and int.from_bytes(frames[6:8], "big") == code
