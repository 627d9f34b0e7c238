"""TLS listeners (``sock_type | SWOOLE_SSL``) over the wire: ``wss://`` with the
``websockets`` client and raw ``ssl`` sockets, certificates made by the test (openssl).

One server serves ``ws://`` and ``wss://`` at once; permessage-deflate and 1 MiB messages
work over TLS; mutual TLS refuses a client without a certificate and shows the client's
certificate in ``get_client_info``; SNI picks a certificate per name; a handshake that never
completes is closed within ``handshake_timeout``; plain HTTP sent to a TLS port is closed
without a traceback in the log; ``worker_num`` > 1, SWOOLE_PROCESS and ``reload()`` with
renewed certificates run as subprocesses (tests/integration/programs/tls_server.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from pyswoole import (
    SWOOLE_BASE,
    SWOOLE_SOCK_TCP,
    SWOOLE_SOCK_TCP6,
    SWOOLE_SSL,
    WEBSOCKET_OPCODE_BINARY,
    ConfigError,
    Frame,
    HttpServer,
    WebSocketServer,
)
from tests.integration.conftest import ROOT
from tests.integration.serverproc import ServerProcess
from tests.runtime.certs import Authority, Pair, needs_openssl, subject_cn

pytestmark = needs_openssl

TIMEOUT = 10.0
MIB = 1024 * 1024
PROGRAM = ROOT / "tests" / "integration" / "programs" / "tls_server.py"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority(tmp_path_factory.mktemp("tls-ca"))


@pytest.fixture(scope="module")
def server_pair(ca: Authority) -> Pair:
    return ca.issue("server")


def tls_settings(pair: Pair, **more: Any) -> dict[str, Any]:
    return {"ssl_cert_file": str(pair.cert), "ssl_key_file": str(pair.key), **more}


def echo_server(*args: Any) -> WebSocketServer:
    server = WebSocketServer("127.0.0.1", 0, *args)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        server.push(frame.fd, frame.data, frame.opcode)

    return server


def tls_client(ca: Authority, port: int, *, host: str = "localhost", **kw: Any) -> ssl.SSLSocket:
    """A raw TLS client socket to 127.0.0.1:``port``, handshake done."""
    context = kw.pop("context", None) or ca.client_context()
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return context.wrap_socket(sock, server_hostname=host)


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """What the peer sends until it closes (bounded by ``timeout``)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    else:
        raise AssertionError(f"still open after {timeout} s")
    return data


# -- one process ------------------------------------------------------------------------------


async def test_one_server_serves_ws_and_wss_with_compression_and_1mib_messages(
    serve: Any, ca: Authority, server_pair: Pair
) -> None:
    server = echo_server()
    server.set(tls_settings(server_pair, websocket_compression=True, package_max_length=4 * MIB))
    tls = server.listen("127.0.0.1", 0, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    serve(server)
    assert tls.type == SWOOLE_SOCK_TCP | SWOOLE_SSL
    big = "x" * MIB
    async with websockets.connect(
        f"wss://localhost:{tls.port}/", ssl=ca.client_context(), max_size=None
    ) as ws:
        assert "permessage-deflate" in str(ws.response.headers.get("Sec-WebSocket-Extensions"))
        sslobj = ws.transport.get_extra_info("ssl_object")
        assert sslobj.selected_alpn_protocol() is None  # (websockets offers no ALPN)
        for message in (big, bytes(range(256)) * 4096, "hello"):
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:  # plain, same server
        await ws.send("plain")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "plain"


def ws_frame(payload: bytes) -> bytes:
    """A masked text frame (payload < 126 bytes)."""
    mask = b"\x01\x02\x03\x04"
    return (
        bytes([0x81, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )


def upgrade(sock: socket.socket) -> bytes:
    """The WebSocket handshake on ``sock``; returns the bytes read after the 101's head."""
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "closed before the 101"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 ")
    return head.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_many_small_messages_spanning_tls_records_all_arrive(
    serve: Any, ca: Authority, server_pair: Pair, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3000 frames in one send: one socket read holds several TLS records, read into the
    compiled path's shared buffer (asyncio's SSL transport copies a bytearray's slice), and
    the echoes are joined into few records (runtime/tls.py TlsConnection)."""
    monkeypatch.setenv("PYSWOOLE_LOOP", loop)
    server = echo_server(SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(tls_settings(server_pair))
    serve(server)
    count, payload = 3000, b"m" * 64
    with tls_client(ca, server.port) as sock:
        received = len(upgrade(sock))
        sock.sendall(ws_frame(payload) * count)
        expected = count * (2 + len(payload))
        deadline = time.monotonic() + TIMEOUT
        reads = 0
        while received < expected and time.monotonic() < deadline:
            chunk = sock.recv(1 << 20)  # (one TLS record at most)
            assert chunk, "closed early"
            received += len(chunk)
            reads += 1
    assert received == expected
    # the echoes of one read leave as one write: a few 16 KiB records, not one per message
    assert reads <= count // 20


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_tls_connections_have_tcp_nodelay_on_both_loops(
    serve: Any, ca: Authority, server_pair: Pair, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncio sets TCP_NODELAY only on sockets made with IPPROTO_TCP (the listener's):
    without it the close_notify after a close frame waited for a delayed ACK."""
    monkeypatch.setenv("PYSWOOLE_LOOP", loop)
    server = echo_server(SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(tls_settings(server_pair))
    nodelay: list[int] = []

    @server.on("open")
    def on_open(server: WebSocketServer, request: Any) -> None:
        sock = server._table[request.fd].transport.get_extra_info("socket")
        nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        server.push(request.fd, "opened")

    serve(server)
    with tls_client(ca, server.port) as sock:
        data = upgrade(sock)
        while len(data) < 8:  # the pushed frame: 2 + 6 bytes
            chunk = sock.recv(64)
            assert chunk, "closed early"
            data += chunk
        assert data[2:] == b"opened"
    assert nodelay == [1]


def test_a_big_push_leaves_with_its_header_in_one_record(
    serve: Any, ca: Authority, server_pair: Pair
) -> None:
    """A push of 64 KiB from a timer (no read's batch around it): its 10 header bytes are
    not a TLS record of their own (plain TCP sends them with one writev)."""
    server = echo_server(SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(tls_settings(server_pair))
    payload = bytes(range(256)) * 256

    @server.on("open")
    def on_open(server: WebSocketServer, request: Any) -> None:
        fd = request.fd
        server.after(20, lambda: server.push(fd, payload, WEBSOCKET_OPCODE_BINARY))

    serve(server)
    with tls_client(ca, server.port) as sock:
        data = upgrade(sock)
        first = data or sock.recv(1 << 20)  # one TLS record at most
        assert len(first) > 10, f"a record of {len(first)} bytes"
        data = first
        header = b"\x82\x7f" + len(payload).to_bytes(8, "big")  # RFC 6455 5.2: 64-bit length
        while len(data) < len(header) + len(payload):
            chunk = sock.recv(1 << 20)
            assert chunk, "closed early"
            data += chunk
    assert data == header + payload


def test_the_main_port_can_be_tls_and_alpn_offers_http11(
    serve: Any, ca: Authority, server_pair: Pair
) -> None:
    server = echo_server(SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(tls_settings(server_pair))
    serve(server)
    context = ca.client_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with tls_client(ca, server.port, context=context) as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"  # RFC 7301: never h2 here
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, "closed before the 101"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # RFC 6455 section 1.3's example


def test_https_request_on_an_http_server(serve: Any, ca: Authority, server_pair: Pair) -> None:
    server = HttpServer("127.0.0.1", 0, SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(tls_settings(server_pair))

    @server.on("request")
    def on_request(request: Any, response: Any) -> None:
        response.end(f"hello {request.server['request_uri']}")

    serve(server)
    with tls_client(ca, server.port) as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = read_until_closed(sock, TIMEOUT)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"hello /x")


def test_a_static_file_over_https(
    serve: Any, ca: Authority, server_pair: Pair, tmp_path: Path
) -> None:
    """The static handler streams a file (bigger than one TLS record) through the SSL
    transport: every byte arrives."""
    body = bytes(range(256)) * 1200  # 300 KiB
    (tmp_path / "big.bin").write_bytes(body)
    server = HttpServer("127.0.0.1", 0, SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(tls_settings(server_pair, enable_static_handler=True, document_root=str(tmp_path)))

    @server.on("request")
    def on_request(request: Any, response: Any) -> None:
        response.status(404)
        response.end()

    serve(server)
    with tls_client(ca, server.port) as sock:
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = read_until_closed(sock, TIMEOUT)
    head, _, got = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert got == body


async def test_mutual_tls_refuses_a_client_without_a_certificate(
    serve: Any, ca: Authority, server_pair: Pair
) -> None:
    server = echo_server(SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(tls_settings(server_pair, ssl_verify_peer=True, ssl_client_cert_file=str(ca.cert)))
    seen: list[Any] = []

    @server.on("open")
    def on_open(server: WebSocketServer, request: Any) -> None:
        seen.append(server.get_client_info(request.fd))

    serve(server)
    url = f"wss://localhost:{server.port}/"
    with pytest.raises((ConnectionClosed, InvalidHandshake, ssl.SSLError, OSError, EOFError)):
        async with websockets.connect(url, ssl=ca.client_context(), open_timeout=TIMEOUT) as ws:
            await ws.send("no certificate")
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert not seen  # never reached on("open")
    # a certificate from another CA is refused as well
    other = Authority(ca.dir / "other", "other-ca")
    stranger = other.issue("stranger", "stranger", client=True)
    context = ca.client_context()
    context.load_cert_chain(str(stranger.cert), str(stranger.key))
    with pytest.raises((ConnectionClosed, InvalidHandshake, ssl.SSLError, OSError, EOFError)):
        async with websockets.connect(url, ssl=context, open_timeout=TIMEOUT) as ws:
            await ws.send("wrong CA")
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert not seen
    client = ca.issue("alice", "alice", client=True)
    async with websockets.connect(url, ssl=ca.client_context(client)) as ws:
        await ws.send("with a certificate")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "with a certificate"
    assert len(seen) == 1
    assert subject_cn(seen[0]["ssl_client_cert"]) == "alice"  # Swoole's getClientInfo key


def test_sni_picks_the_certificate_of_the_name(
    serve: Any, ca: Authority, server_pair: Pair
) -> None:
    other = ca.issue("other", "other.test")
    server = echo_server(SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(
        tls_settings(
            server_pair,
            ssl_sni_certs={
                "Other.Test": {"ssl_cert_file": str(other.cert), "ssl_key_file": str(other.key)}
            },
        )
    )
    serve(server)
    with tls_client(ca, server.port, host="other.test") as sock:
        assert dict(x[0] for x in sock.getpeercert()["subject"])["commonName"] == "other.test"
    with tls_client(ca, server.port, host="localhost") as sock:
        assert dict(x[0] for x in sock.getpeercert()["subject"])["commonName"] == "localhost"


def test_ssl_protocols_bounds_the_versions(serve: Any, ca: Authority, server_pair: Pair) -> None:
    from pyswoole import SWOOLE_SSL_TLSv1_3

    server = echo_server(SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(tls_settings(server_pair, ssl_protocols=SWOOLE_SSL_TLSv1_3))
    serve(server)
    with tls_client(ca, server.port) as sock:
        assert sock.version() == "TLSv1.3"
    old = ca.client_context()
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        tls_client(ca, server.port, context=old).close()


def test_a_port_with_its_own_tls_settings(serve: Any, ca: Authority, server_pair: Pair) -> None:
    server = echo_server()
    port = server.listen("127.0.0.1", 0, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    port.set(tls_settings(server_pair, open_websocket_protocol=True))
    serve(server)

    async def roundtrip() -> str:
        url = f"wss://localhost:{port.port}/"
        async with websockets.connect(url, ssl=ca.client_context()) as ws:
            await ws.send("port")
            return str(await asyncio.wait_for(ws.recv(), TIMEOUT))

    assert asyncio.run(roundtrip()) == "port"


@pytest.fixture
def quiet_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


def assert_no_traceback(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]):
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


def test_a_handshake_that_never_completes_is_closed_within_handshake_timeout(
    serve: Any, ca: Authority, server_pair: Pair, quiet_log: Any, capfd: Any
) -> None:
    server = echo_server(SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(tls_settings(server_pair, handshake_timeout=0.5))
    serve(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        started = time.monotonic()
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start
        assert read_until_closed(sock, 5.0) == b""
        assert time.monotonic() - started < 3.0
    assert server.stats()["connection_num"] == 0
    assert_no_traceback(quiet_log, capfd)


def test_plain_http_to_a_tls_port_is_closed_without_a_traceback(
    serve: Any, ca: Authority, server_pair: Pair, quiet_log: Any, capfd: Any
) -> None:
    server = echo_server()
    server.set(tls_settings(server_pair))
    tls = server.listen("127.0.0.1", 0, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    serve(server)
    with socket.create_connection(("127.0.0.1", tls.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = read_until_closed(sock, 5.0)
    assert not answer.startswith(b"HTTP/")  # a TLS alert at most, never an HTTP answer
    with tls_client(ca, tls.port) as sock:  # the port still serves TLS
        assert sock.version() is not None
    assert_no_traceback(quiet_log, capfd)


def test_a_missing_certificate_fails_start_naming_the_key_and_the_path(
    serve: Any, server_pair: Pair, tmp_path: Path
) -> None:
    missing = str(tmp_path / "gone.pem")
    server = echo_server()
    server.set(ssl_cert_file=missing, ssl_key_file=str(server_pair.key))
    port = server.listen("127.0.0.1", 0, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    with pytest.raises(ConfigError, match=rf"'ssl_cert_file': file '{missing}' not found"):
        server.start()
    assert port.sock is None and server.get_socket() is None  # nothing left bound
    main_tls = echo_server(SWOOLE_BASE, SWOOLE_SOCK_TCP6 | SWOOLE_SSL)  # TCP6 | SSL accepted
    main_tls.set(ssl_cert_file=str(server_pair.cert), ssl_key_file=missing)
    with pytest.raises(ConfigError, match=rf"'ssl_key_file': file '{missing}' not found"):
        main_tls.start()
    plain = echo_server()  # the ssl_* keys have no effect on a plain port (as Swoole)
    plain.set(ssl_cert_file=missing)
    serve(plain)
    assert plain.port != 0 and plain.ports[0].type == SWOOLE_SOCK_TCP


# -- processes --------------------------------------------------------------------------------


async def wss_whoami(ca: Authority, port: int) -> tuple[dict[str, Any], str]:
    """The worker answering a new wss connection and the CN of the certificate it served."""
    import json

    async with websockets.connect(
        f"wss://localhost:{port}/", ssl=ca.client_context(), max_size=None
    ) as ws:
        cert = ws.transport.get_extra_info("ssl_object").getpeercert()
        cn = dict(x[0] for x in cert["subject"])["commonName"]
        await ws.send("x" * MIB)
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "x" * MIB
        await ws.send("whoami")
        who = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return who, cn


@pytest.mark.parametrize(
    "mode",
    [
        "base",
        "process",
        pytest.param(
            "base-as-nobody",
            marks=pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root"),
        ),
    ],
)
async def test_workers_serve_wss_and_reload_serves_renewed_certificates(
    mode: str, ca: Authority, tmp_path: Path
) -> None:
    """``base-as-nobody``: the workers run as nobody and cannot read the key (mode 600,
    root's): they serve the contexts the manager built and renewed."""
    first = ca.issue(f"first-{mode}", "localhost", "127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    key.chmod(0o600)
    args = ["--mode", mode.split("-")[0]] + (["--as-nobody"] if "nobody" in mode else [])
    if "nobody" in mode:
        tmp_path.chmod(0o777)  # the program's stderr file stays writable after the drop
    proc = ServerProcess(PROGRAM, tmp_path, "--cert", str(cert), "--key", str(key), *args)
    try:
        proc.wait_ready(2)
        tls_port = int(proc.wait_line(r"TLS (\d+)", TIMEOUT)[1])
        workers = set()
        for _ in range(6):  # bounded
            who, cn = await wss_whoami(ca, tls_port)
            assert cn == "localhost"
            workers.add(who["worker"])
            assert (who["uid"] != 0) == ("nobody" in mode)
        # SWOOLE_PROCESS dispatches fd % worker_num: both workers get TLS connections' events
        # (the master does TLS); SWOOLE_BASE: whichever worker the kernel wakes accepts
        assert workers == {0, 1} if mode == "process" else workers <= {0, 1}
        async with websockets.connect(f"ws://127.0.0.1:{proc.port}/") as ws:  # plain port too
            await ws.send("plain")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "plain"
        # renew: a certificate for another name in the same files, then reload()
        renewed = ca.issue(f"renewed-{mode}", "renewed.localhost", "localhost", "127.0.0.1")
        shutil.copy(renewed.cert, cert)
        shutil.copy(renewed.key, key)
        assert key.stat().st_mode & 0o777 == 0o600
        mark = proc.mark()
        if "nobody" in mode:  # (a worker running as nobody may not signal its root manager)
            os.kill(proc.proc.pid, signal.SIGUSR1)  # SWOOLE_BASE: the program is the manager
        else:
            async with websockets.connect(f"ws://127.0.0.1:{proc.port}/") as ws:
                await ws.send("reload")
                assert "reload" in await asyncio.wait_for(ws.recv(), TIMEOUT)
        await proc.expect("afterReload", TIMEOUT, mark)
        who, cn = await wss_whoami(ca, tls_port)
        assert cn == "renewed.localhost"
        assert "Traceback" not in proc.stderr()
    finally:
        proc.stop()


async def ask(ws: Any, command: str) -> dict[str, Any]:
    import json

    await ws.send(command)
    answer: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return answer


async def test_client_certificates_reach_swoole_process_workers(
    ca: Authority, server_pair: Pair, tmp_path: Path
) -> None:
    """SWOOLE_PROCESS with 2 workers: the master holds the TLS connections, yet each
    worker's ``get_client_info(fd)['ssl_client_cert']`` is the certificate of that fd's
    client (sent with the connect), after ``reload()`` replaced the workers too; a closed
    connection's certificate is forgotten by its worker."""
    import contextlib

    proc = ServerProcess(
        PROGRAM,
        tmp_path,
        *("--cert", str(server_pair.cert), "--key", str(server_pair.key)),
        *("--mode", "process", "--workers", "2", "--client-ca", str(ca.cert)),
    )
    try:
        proc.wait_ready(2)
        tls_port = int(proc.wait_line(r"TLS (\d+)", TIMEOUT)[1])
        url = f"wss://localhost:{tls_port}/"
        pairs = {name: ca.issue(f"process-{name}", name, client=True) for name in "abc"}
        async with contextlib.AsyncExitStack() as stack:
            clients = {
                name: await stack.enter_async_context(
                    websockets.connect(url, ssl=ca.client_context(pair))
                )
                for name, pair in pairs.items()
            }
            answers = {name: await ask(ws, "cert") for name, ws in clients.items()}
            assert {answer["worker"] for answer in answers.values()} == {0, 1}  # fd % 2
            assert {name: subject_cn(a["pem"]) for name, a in answers.items()} == {
                name: name for name in pairs
            }
            assert sorted(a["held"] for a in answers.values()) == [1, 2, 2]
            mark = proc.mark()
            assert (await ask(clients["a"], "reload"))["ok"] is True
            await proc.expect("afterReload", TIMEOUT, mark)
            for name, ws in clients.items():  # the same connections, new workers
                for _ in range(50):  # bounded: the new worker asked the master at its start
                    answer = await ask(ws, "cert")
                    if answer["pem"] is not None:
                        break
                assert subject_cn(answer["pem"]) == name
        async with websockets.connect(url, ssl=ca.client_context(pairs["a"])) as ws:
            for _ in range(50):  # bounded: the closes above reach the workers in order
                answer = await ask(ws, "cert")
                if answer["held"] == 1:
                    break
            assert answer["held"] == 1 and subject_cn(answer["pem"]) == "a"
        assert "Traceback" not in proc.stderr()
    finally:
        proc.stop()
