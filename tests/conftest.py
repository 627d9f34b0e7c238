"""Shared fixtures: a real pyswoole server on 127.0.0.1, port 0, in a background thread.

The server runs its own event loop in its own thread, exactly as ``start()`` runs it in a
program (minus signal handlers, which only the main thread may install). Tests talk to it
with real clients: the ``websockets`` library and raw sockets.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pyswoole import Server
from tests import hypothesis_profiles  # noqa: F401 - registers and loads the profile
from tests.integration.redis_topologies import (
    RedisClusterNodes,
    RedisSentinelGroup,
    redis_cluster,
    redis_sentinel,
)

START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """Start ``server`` in a thread, wait until it serves, shut it down afterwards."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.start()
        except BaseException as exc:  # surfaced in the test below
            errors.append(exc)

    thread = threading.Thread(target=target, name="pyswoole-test-server", daemon=True)
    thread.start()
    deadline_ok = server.ready.wait(START_TIMEOUT)
    if errors:
        raise errors[0]
    assert deadline_ok, "server did not start in time"
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(STOP_TIMEOUT)
        assert not thread.is_alive(), "server did not stop in time"
        if errors:
            raise errors[0]


@pytest.fixture
def serve() -> Iterator[Callable[[Server], Server]]:
    """``serve(server)`` starts it for the rest of the test (stopped at teardown)."""
    stack = contextlib.ExitStack()

    def start(server: Server) -> Server:
        return stack.enter_context(running(server))

    with stack:
        yield start


def ws_url(server: Server, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


class RawClient:
    """A blocking raw-socket client for malformed input: every read is bounded in time."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_until(self, marker: bytes, limit: int = 1 << 20) -> bytes:
        """Read until ``marker`` appears; return everything up to and including it."""
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed before {marker!r}; got {self.buf!r}")
            self.buf += chunk
            if len(self.buf) > limit:
                raise AssertionError("too much data")
        head, _, rest = self.buf.partition(marker)
        self.buf = rest
        return head + marker

    def recv_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed after {len(self.buf)} of {n} bytes")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def recv_all(self) -> bytes:
        """Everything until the server closes the connection."""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                data, self.buf = self.buf, b""
                return data
            self.buf += chunk

    def recv_frame(self) -> tuple[int, int, bytes]:
        """One unmasked server frame: ``(first byte, opcode, payload)``."""
        head = self.recv_exact(2)
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(self.recv_exact(2), "big")
        elif length == 127:
            length = int.from_bytes(self.recv_exact(8), "big")
        assert not head[1] & 0x80, "server frames must not be masked"
        return head[0], head[0] & 0x0F, self.recv_exact(length)

    def handshake(self, path: str = "/", extra: str = "") -> bytes:
        self.send(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
            ).encode()
        )
        return self.recv_until(b"\r\n\r\n")

    def is_closed_by_peer(self) -> bool:
        """True if the server closed TCP (reads EOF) within the socket timeout."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@pytest.fixture
def raw_client() -> Iterator[Callable[[int], RawClient]]:
    clients: list[RawClient] = []

    def connect(port: int, timeout: float = 5.0) -> RawClient:
        client = RawClient(port, timeout)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def masked(
    opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bytes = b"\x37\xfa\x21\x3d"
) -> bytes:
    """A client frame (masked, as RFC 6455 section 5.3 requires)."""
    from pyswoole.protocol.frames import encode_frame

    return encode_frame(opcode, payload, fin, rsv, mask)


# Real Redis topologies (tests/integration/redis_topologies.py), for tests/cluster and the
# integration tests of cluster deployments.
@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterNodes]:
    with redis_cluster() as nodes:  # (module scope: Redis takes 2 s to form a cluster)
        yield nodes


@pytest.fixture
def sentinel() -> Iterator[RedisSentinelGroup]:
    with redis_sentinel() as group:
        yield group
