"""Hostile and slow clients for the flow-control tests, on raw sockets.

A *flooder* sends as fast as the kernel takes it and never reads; what it measures is how
far the server let it go: :func:`flood` stops when the server has not taken a byte for
``stall`` seconds (it stopped reading), when ``budget`` bytes are sent, or at ``deadline``.
Meanwhile it samples the server's RSS (all its processes) so a test can bound the peak.
Afterwards :meth:`RawWebSocket.drain` reads back what the server answered, so a test can
check that pausing lost nothing.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.conftest import masked

MiB = 1024 * 1024
#: permessage-deflate as the flooder offers it (every message compressed on its own)
DEFLATE_OFFER = (
    "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; "
    "server_no_context_takeover\r\n"
)


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (a multi-process server)."""
    total = 0
    stack = [pid]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    stack.extend(int(c) for c in (task / "children").read_text().split())
    return total


def deflate(payload: bytes) -> bytes:
    """One message compressed on its own (RFC 7692 section 7.2.1, tail removed)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def inflate(payload: bytes) -> bytes:
    d = zlib.decompressobj(-15)
    return d.decompress(payload + b"\x00\x00\xff\xff")


class RawWebSocket:
    """A client on a raw socket with a tiny receive buffer (so it cannot absorb much)."""

    def __init__(self, port: int, *, rcvbuf: int = 4096, extra: str = "") -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect
        sock.settimeout(10.0)
        sock.connect(("127.0.0.1", port))
        sock.sendall(
            (
                "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, f"closed during the handshake: {head!r}"
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        self.response_head = head.decode("latin-1")
        self.sock = sock

    def close(self) -> None:
        self.sock.close()

    def frames(self, buf: bytearray) -> Iterator[tuple[int, bytes]]:
        """Take the complete server frames off the front of ``buf``: (first byte, payload)."""
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            if n - start < length:
                break
            yield buf[pos], bytes(buf[start : start + length])
            pos = start + length
        del buf[:pos]

    def drain(
        self,
        rest: bytes,
        expected: int,
        check: Callable[[int, bytes], None],
        timeout: float = 30.0,
    ) -> int:
        """Send ``rest`` (what a flood left unsent of its last unit) while reading the
        server's frames, until ``expected`` frames came (each passed to ``check``);
        returns how many came. Raises on timeout or EOF before that. (Frames a read
        brought beyond ``expected`` are passed to ``check`` too and counted.)"""
        sock = self.sock
        sock.setblocking(False)
        buf = bytearray(self.buf)
        self.buf = b""
        got = 0
        view = memoryview(rest)
        deadline = time.monotonic() + timeout
        while got < expected:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{got} of {expected} frames within {timeout} s"
            writers = [sock] if view else []
            readable, writable, _ = select.select([sock], writers, [], min(remaining, 1.0))
            if writable:
                with contextlib.suppress(BlockingIOError):
                    view = view[sock.send(view) :]
            if readable:
                chunk = sock.recv(1 << 20)
                assert chunk, f"EOF after {got} of {expected} frames"
                buf += chunk
                for b0, payload in self.frames(buf):
                    check(b0, payload)
                    got += 1
        self.buf = bytes(buf)  # what came after the expected frames, for the next call
        return got


def flood(
    sock: socket.socket,
    unit: bytes,
    *,
    budget: int,
    stall: float = 1.0,
    deadline: float = 20.0,
    sample: Callable[[], None] | None = None,
) -> tuple[int, bytes]:
    """Send ``unit`` over and over without reading. Returns the whole units sent and what
    remains unsent of the unit in progress (empty if none)."""
    sock.setblocking(False)
    units = 0
    view = memoryview(b"")
    sent = 0
    start = last = next_sample = time.monotonic()
    while sent < budget:
        now = time.monotonic()
        if now - last >= stall or now - start >= deadline:
            break
        if sample is not None and now >= next_sample:
            sample()
            next_sample = now + 0.05
        if not view:
            view = memoryview(unit)
        try:
            n = sock.send(view)
        except BlockingIOError:
            select.select([], [sock], [], 0.05)
            continue
        sent += n
        last = now
        view = view[n:]
        if not view:
            units += 1
    if sample is not None:
        sample()
    return units, bytes(view)


class Peak:
    """The highest RSS of a process tree seen by :meth:`sample`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.value = tree_rss(pid)

    def sample(self) -> None:
        self.value = max(self.value, tree_rss(self.pid))


def client_frame(opcode: int, payload: bytes, compressed: bool = False) -> bytes:
    if compressed:
        return masked(opcode, deflate(payload), rsv=0x40)
    return masked(opcode, payload)


HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Fleet:
    """Many raw WebSocket clients at once, on non-blocking sockets (one selector)."""

    def __init__(self) -> None:
        self.socks: list[socket.socket] = []
        self.received: dict[socket.socket, bytearray] = {}

    def connect(
        self, port: int, count: int, *, rcvbuf: int = 0, timeout: float = 60.0
    ) -> list[socket.socket]:
        """Open ``count`` connections and finish their handshakes; returns them."""
        import selectors

        selector = selectors.DefaultSelector()
        pending: dict[socket.socket, bytearray] = {}
        opened: list[socket.socket] = []
        deadline = time.monotonic() + timeout
        started = 0
        while started < count or pending:
            assert time.monotonic() < deadline, f"{len(opened)} of {count} handshakes"
            while started < count and len(pending) < 500:  # (the listen backlog)
                sock = socket.socket()
                if rcvbuf:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    sock.connect(("127.0.0.1", port))
                pending[sock] = bytearray()
                selector.register(sock, selectors.EVENT_WRITE)
                started += 1
            for key, events in selector.select(1.0):
                sock = key.fileobj  # type: ignore[assignment]
                if events & selectors.EVENT_WRITE:
                    sock.sendall(HANDSHAKE)  # (small: the kernel takes it whole)
                    selector.modify(sock, selectors.EVENT_READ)
                    continue
                chunk = sock.recv(4096)
                assert chunk, "closed during the handshake"
                head = pending[sock]
                head += chunk
                if b"\r\n\r\n" in head:
                    assert head.startswith(b"HTTP/1.1 101"), bytes(head[:100])
                    rest = head[head.index(b"\r\n\r\n") + 4 :]
                    selector.unregister(sock)
                    del pending[sock]
                    opened.append(sock)
                    self.received[sock] = bytearray(rest)
        selector.close()
        self.socks.extend(opened)
        return opened

    def read_until(self, socks: list[socket.socket], size: int, timeout: float = 60.0) -> None:
        """Read from ``socks`` until each has received ``size`` bytes in all."""
        import selectors

        selector = selectors.DefaultSelector()
        waiting = 0
        for sock in socks:
            if len(self.received[sock]) < size:
                selector.register(sock, selectors.EVENT_READ)
                waiting += 1
        deadline = time.monotonic() + timeout
        while waiting:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{waiting} clients still short of {size} bytes"
            for key, _ in selector.select(min(remaining, 1.0)):
                sock = key.fileobj  # type: ignore[assignment]
                chunk = sock.recv(1 << 16)
                assert chunk, "a reader was disconnected"
                buf = self.received[sock]
                buf += chunk
                assert len(buf) <= size, f"more than expected: {len(buf)} > {size}"
                if len(buf) == size:
                    selector.unregister(sock)
                    waiting -= 1
        selector.close()

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.socks.clear()
