"""The RFC 6455 conformance cases of test_conformance.py, replayed over TLS (``wss://``).

The raw-socket cases of tests/integration/test_conformance.py are imported here and run
against an echo server whose port is ``SWOOLE_SOCK_TCP | SWOOLE_SSL``: this module's
``client`` fixture (it overrides the conftest one for the imported tests) wraps each raw
connection in TLS before the WebSocket handshake. The same bytes, split by TLS records
instead of TCP segments, must get the same answers. ``echo_mode`` is fixed to one process
(the process modes are covered over TLS by test_tls.py).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pyswoole import SWOOLE_BASE, SWOOLE_SOCK_TCP, SWOOLE_SSL, Frame, WebSocketServer
from tests.conftest import RawClient, running
from tests.integration import test_conformance as conformance
from tests.integration.test_conformance import (  # noqa: F401 - collected here, over TLS
    test_1_framing_echo,
    test_2_ping_pong,
    test_2_x_replies_in_arrival_order,
    test_3_reserved_bits,
    test_4_reserved_opcodes,
    test_5_19_pongs_arrive_before_the_message_completes,
    test_5_fragmentation,
    test_6_2_3_every_split_point_of_multibyte_text,
    test_6_4_fail_fast_on_fragments,
    test_6_4_fail_fast_within_a_frame,
    test_6_invalid_utf8_fails_1007,
    test_6_utf8_across_fragments,
    test_6_valid_utf8_echoed,
    test_7_1_6_big_message_then_close_then_ping,
    test_7_7_valid_close_code_echoed,
    test_7_9_invalid_close_code_fails_1002,
    test_7_close_handling,
    test_7_x_server_closes_tcp_first_after_close_reply,
    test_9_4mib_in_64_byte_fragments,
    test_9_7_thousand_round_trips,
    test_9_big_message_64k_fragments,
    test_9_big_message_one_frame,
    test_9_message_too_big_fails_1009,
    test_9_x_over_default_limit_fails_at_the_header,
)
from tests.runtime.certs import Authority, needs_openssl

pytestmark = needs_openssl


class TlsClient(conformance.Client):
    """test_conformance's raw client, its socket wrapped in TLS before the handshake."""

    context: ssl.SSLContext

    def __init__(self, port: int, timeout: float = conformance.TIMEOUT) -> None:
        RawClient.__init__(self, port, timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.context.wrap_socket(self.sock, server_hostname="localhost")
        self.timeout = timeout
        self.buf = bytearray()  # type: ignore[assignment]
        response = self.handshake()
        assert response.startswith(b"HTTP/1.1 101"), response
        assert not self.buf, f"data before any frame: {bytes(self.buf)!r}"

    def send_frames(self, frames: list[bytes], mode: str = "bulk") -> None:
        """As over TCP, where a write after the server failed the connection meets EPIPE or
        a reset (ignored there): over TLS it meets the server's close_notify or EOF."""
        with contextlib.suppress(ssl.SSLEOFError, ssl.SSLZeroReturnError):
            super().send_frames(frames, mode)  # (what the server sent is checked by reads)


def tls_echo(ca: Authority, max_length: int) -> WebSocketServer:
    """examples/echo.py's server on a TLS port."""
    pair = ca.issue("conformance", "localhost")
    server = WebSocketServer("127.0.0.1", 0, SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(
        ssl_cert_file=str(pair.cert), ssl_key_file=str(pair.key), package_max_length=max_length
    )

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        server.push(frame.fd, frame.data, frame.opcode)

    return server


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authority]:
    authority = Authority(tmp_path_factory.mktemp("tls-conformance"))
    TlsClient.context = authority.client_context()
    yield authority


@pytest.fixture(scope="module")
def echo_server(ca: Authority) -> Iterator[WebSocketServer]:
    with running(tls_echo(ca, 16 * 1024 * 1024 + 14)) as server:  # as examples/echo.py
        yield server


@pytest.fixture(scope="module")
def small_echo_server(ca: Authority) -> Iterator[WebSocketServer]:
    with running(tls_echo(ca, 1024)) as server:
        yield server


@pytest.fixture
def echo_mode() -> str:
    return "base"


@pytest.fixture
def client(echo_server: WebSocketServer) -> Iterator[Callable[..., TlsClient]]:
    clients: list[TlsClient] = []

    def connect(timeout: float = conformance.TIMEOUT, port: int | None = None) -> TlsClient:
        c = TlsClient(echo_server.port if port is None else port, timeout)
        clients.append(c)
        return c

    yield connect
    for c in clients:
        c.close()


@pytest.fixture
def small_client(small_echo_server: WebSocketServer, client: Any) -> Callable[[], TlsClient]:
    return lambda: client(port=small_echo_server.port)
