"""The TLS engines (``ssl_engine``, runtime/tls.py): aiofastnet's compiled transport and the
event loop's own, over the wire.

The rest of the TLS tests run with ``"auto"``: aiofastnet in the compiled pass of the suite,
the loop's SSL transport in the pure-Python pass (``PYSWOOLE_NO_EXTENSIONS=1``). The tests
here pin what ``"auto"`` chose, run the compiled build with ``"stdlib"`` too (the compiled
read path's shared buffer behind the loop's SSL transport: a 1 MiB echo, many small messages
in one send, mutual TLS), flow control on both engines, and the clear failure of
``"aiofastnet"`` where it cannot be used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import websockets

from pyswoole import (
    SWOOLE_BASE,
    SWOOLE_SOCK_TCP,
    SWOOLE_SSL,
    WEBSOCKET_OPCODE_BINARY,
    Frame,
    WebSocketServer,
)
from pyswoole.runtime.state import FASTPATH
from pyswoole.runtime.tls import aiofastnet_module
from tests.conftest import running
from tests.integration.conftest import ROOT
from tests.integration.serverproc import ServerProcess
from tests.integration.test_tls import (
    TIMEOUT,
    echo_server,
    tls_client,
    tls_settings,
    upgrade,
    ws_frame,
)
from tests.runtime.certs import Authority, Pair, needs_openssl, subject_cn

pytestmark = needs_openssl

MIB = 1024 * 1024
PROGRAM = ROOT / "tests" / "integration" / "programs" / "tls_fd_limit.py"
#: the compiled pass runs aiofastnet under "auto" (scripts/setup --test installs the extra)
COMPILED = FASTPATH and not os.environ.get("PYSWOOLE_NO_EXTENSIONS")
compiled_only = pytest.mark.skipif(
    not COMPILED, reason="pure Python: 'auto' is the stdlib engine already"
)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority(tmp_path_factory.mktemp("tls-engines"))


@pytest.fixture(scope="module")
def server_pair(ca: Authority) -> Pair:
    return ca.issue("server")


def engine_of(transport: Any) -> str:
    """Which engine made ``transport``: aiofastnet's classes live in its package."""
    return "aiofastnet" if type(transport).__module__.startswith("aiofastnet") else "stdlib"


def test_auto_picks_aiofastnet_when_compiled_and_a_port_or_sni_can_pick_stdlib(
    serve: Any, ca: Authority, server_pair: Pair
) -> None:
    """``auto`` on the main port; a port of its own with ``"stdlib"``; a port with
    ``ssl_sni_certs`` (CPython's sni_callback crashes under aiofastnet's direct engine),
    where ``auto`` keeps the loop's transport and SNI works."""
    if COMPILED:  # a compiled build without the extra would test the stdlib engine twice
        assert aiofastnet_module() is not None, "aiofastnet missing: scripts/setup --test"
    expected = "aiofastnet" if aiofastnet_module() is not None else "stdlib"
    server = echo_server(SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(tls_settings(server_pair))
    stdlib = server.listen("127.0.0.1", 0, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    stdlib.set(tls_settings(server_pair, ssl_engine="stdlib", open_websocket_protocol=True))
    other = ca.issue("other", "other.test")
    sni = server.listen("127.0.0.1", 0, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    certs = {"other.test": {"ssl_cert_file": str(other.cert), "ssl_key_file": str(other.key)}}
    sni.set(tls_settings(server_pair, ssl_sni_certs=certs, open_websocket_protocol=True))
    engines: dict[int, str] = {}

    @server.on("open")
    def on_open(server: WebSocketServer, request: Any) -> None:
        conn = server._table[request.fd]
        engines[conn.server_port] = engine_of(conn.transport)
        # what keeps the compiled direct send (plain sockets only) off TLS transports
        assert conn.transport.get_extra_info("sslcontext") is not None
        server.push(request.fd, "opened")

    serve(server)
    for port, host in ((server.port, "localhost"), (stdlib.port, "localhost"), (sni.port, "")):
        with tls_client(ca, port, host=host or "other.test") as sock:
            if not host:
                subject = dict(x[0] for x in sock.getpeercert()["subject"])
                assert subject["commonName"] == "other.test"
            assert sock.selected_alpn_protocol() is None  # (no ALPN offered by this client)
            data = upgrade(sock)
            while len(data) < 8:
                chunk = sock.recv(64)
                assert chunk, "closed early"
                data += chunk
            assert data[2:8] == b"opened"
    assert engines == {server.port: expected, stdlib.port: "stdlib", sni.port: "stdlib"}


@compiled_only
async def test_the_stdlib_engine_echoes_1mib_and_many_small_messages_when_compiled(
    serve: Any, ca: Authority, server_pair: Pair
) -> None:
    """The compiled read path's shared buffer behind the loop's SSL transport
    (runtime/tls.py TlsConnection: a memoryview, so records read at an offset land)."""
    server = echo_server(SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(tls_settings(server_pair, ssl_engine="stdlib", package_max_length=4 * MIB))
    serve(server)
    big = bytes(range(256)) * 4096
    async with websockets.connect(
        f"wss://localhost:{server.port}/", ssl=ca.client_context(), max_size=None
    ) as ws:
        assert engine_of(server._table[1].transport) == "stdlib"
        for message in (big, "x" * MIB, "small"):
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message
    count, payload = 3000, b"m" * 64

    def flood() -> int:
        with tls_client(ca, server.port) as sock:
            received = len(upgrade(sock))
            sock.sendall(ws_frame(payload) * count)
            expected = count * (2 + len(payload))
            deadline = time.monotonic() + TIMEOUT
            while received < expected and time.monotonic() < deadline:
                chunk = sock.recv(1 << 20)
                assert chunk, "closed early"
                received += len(chunk)
            return received

    assert await asyncio.to_thread(flood) == count * (2 + len(payload))


@compiled_only
async def test_the_stdlib_engine_does_mutual_tls_when_compiled(
    serve: Any, ca: Authority, server_pair: Pair
) -> None:
    server = echo_server(SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(
        tls_settings(
            server_pair,
            ssl_engine="stdlib",
            ssl_verify_peer=True,
            ssl_client_cert_file=str(ca.cert),
        )
    )
    seen: list[dict[str, Any]] = []

    @server.on("open")
    def on_open(server: WebSocketServer, request: Any) -> None:
        seen.append(server.get_client_info(request.fd))

    serve(server)
    url = f"wss://localhost:{server.port}/"
    with pytest.raises((ssl.SSLError, OSError, EOFError, websockets.InvalidHandshake)):
        async with websockets.connect(url, ssl=ca.client_context(), open_timeout=TIMEOUT) as ws:
            await ws.send("no certificate")
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    client = ca.issue("bob", "bob", client=True)
    async with websockets.connect(url, ssl=ca.client_context(client)) as ws:
        await ws.send("with a certificate")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "with a certificate"
    assert [subject_cn(info["ssl_client_cert"]) for info in seen] == ["bob"]


@pytest.mark.parametrize("engine", ["auto", "stdlib"])
async def test_a_tls_client_that_sends_without_reading_is_paused_and_loses_nothing(
    serve: Any, ca: Authority, server_pair: Pair, engine: str
) -> None:
    """Flow control through the TLS transport: the echoes fill the server's buffer
    (``bufferFull``: it stops reading the client, whose sends then stall), and once the
    client reads, every echo arrives and the buffer drains (``bufferEmpty`` last)."""
    server = WebSocketServer("127.0.0.1", 0, SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(tls_settings(server_pair, ssl_engine=engine, socket_buffer_size=MIB))
    events: list[str] = []
    full, empty = threading.Event(), threading.Event()

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        server.push(frame.fd, frame.data, WEBSOCKET_OPCODE_BINARY)

    def on_buffer(name: str, event: threading.Event) -> Any:
        def callback(server: WebSocketServer, fd: int) -> None:
            events.append(name)
            event.set()

        return callback

    server.on("bufferFull", on_buffer("full", full))
    server.on("bufferEmpty", on_buffer("empty", empty))
    serve(server)
    count, payload = 512, os.urandom(64 * 1024)  # 32 MiB: more than the kernel buffers
    async with websockets.connect(
        f"wss://localhost:{server.port}/", ssl=ca.client_context(), max_size=None
    ) as ws:
        ws.transport.pause_reading()

        async def send_all() -> None:
            for _ in range(count):
                await ws.send(payload)

        sending = asyncio.create_task(send_all())
        assert await asyncio.to_thread(full.wait, TIMEOUT), "the server never filled up"
        assert not sending.done()
        ws.transport.resume_reading()
        for i in range(count):
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == payload, i
        await asyncio.wait_for(sending, TIMEOUT)
    assert await asyncio.to_thread(empty.wait, TIMEOUT)
    assert events[0] == "full" and events[-1] == "empty", events


class BioClient:
    """A TLS client over memory BIOs: what it writes between two :meth:`flush` calls
    leaves in one ``send`` (several TLS records in one TCP segment); ``sendall``/``recv``
    make it a socket for test_tls.upgrade."""

    def __init__(self, ca: Authority, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ca.client_context().wrap_bio(
            self.incoming, self.outgoing, server_hostname="localhost"
        )
        for _ in range(100):  # (a handshake is a few round trips)
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self._read_socket()
        self.flush()

    def _read_socket(self) -> None:
        data = self.sock.recv(65536)
        assert data, "the server closed the connection"
        self.incoming.write(data)

    def flush(self) -> None:
        pending = self.outgoing.read()
        if pending:
            self.sock.sendall(pending)

    def sendall(self, data: bytes) -> None:
        self.tls.write(data)
        self.flush()

    def recv(self, size: int) -> bytes:
        while True:
            try:
                return self.tls.read(size)
            except ssl.SSLWantReadError:
                self._read_socket()


def masked_binary(size: int) -> bytes:
    """A binary frame of ``size`` zero bytes as a client sends it (masked with a zero
    key; 126..65535 bytes)."""
    return b"\x82\xfe" + struct.pack("!H", size) + b"\0\0\0\0" + bytes(size)


def read_frames(client: BioClient, count: int) -> list[bytes]:
    """``count`` unmasked frames (payload < 126 bytes) from the server."""
    data, frames = b"", []
    while len(frames) < count:
        data += client.recv(65536)  # (the socket's timeout bounds each read)
        while len(data) >= 2 and len(data) >= 2 + data[1]:
            frames.append(data[2 : 2 + data[1]])
            data = data[2 + data[1] :]
    return frames


@pytest.mark.parametrize("engine", ["auto", "stdlib"])
def test_records_held_by_the_transport_are_read_after_a_resume(
    serve: Any, ca: Authority, server_pair: Pair, engine: str
) -> None:
    """Reading resumes with TLS records the transport read from the socket but did not
    decrypt yet, and the client sends nothing more: they must be delivered all the same.
    With aiofastnet 1.2 alone they waited for a read event that never came: the last echo
    of a flood stalled, ~1 run in 10 (runtime/tls.py DirectTlsConnection._resume_transport).

    Made exact: the connection is paused (server.pause) while the client sends 16 full
    records (256 KiB: the worker's read buffer) and a 17th; resumed, the transport reads
    all 17 into its incoming buffer (16 records + 1 KiB), fills the read buffer with the
    first 16, and the callback of "first" pauses again there; the 17th waits for the
    resume after it."""
    server = WebSocketServer("127.0.0.1", 0, SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    # (a fixed 4 MiB receive buffer: all 17 records wait in the kernel while paused)
    server.set(tls_settings(server_pair, ssl_engine=engine, kernel_socket_recv_buffer_size=4 * MIB))

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        data = frame.data
        if data == "hold":
            assert server.pause(frame.fd)
            server.push(frame.fd, f"held {frame.fd}")
            return
        if isinstance(data, str) and data.startswith("go:"):
            assert server.resume(int(data[3:]))
            return
        if data == "first":
            assert server.pause(frame.fd)
            server.after(1, server.resume, frame.fd)
        server.push(frame.fd, f"got {len(data)}")

    serve(server)
    record = 16 * 1024
    stream = ws_frame(b"first")
    sizes = []
    while len(stream) < 16 * record:
        left = 16 * record - len(stream) - 8  # (the payload that would fill it exactly)
        size = 60_000 if left >= 60_000 + 134 else left
        sizes.append(size)
        stream += masked_binary(size)
    assert len(stream) == 16 * record and min(sizes) >= 126
    client, other = BioClient(ca, server.port), BioClient(ca, server.port)
    try:
        assert upgrade(client) == b"" and upgrade(other) == b""
        client.sendall(ws_frame(b"hold"))
        [held] = read_frames(client, 1)
        fd = int(held.split()[1])
        for at in range(0, len(stream), record):  # one TLS record each...
            client.tls.write(stream[at : at + record])
        client.tls.write(ws_frame(b"last"))  # ... and a 17th
        client.flush()  # all in one send, then nothing more
        other.sendall(ws_frame(f"go:{fd}".encode()))
        got = read_frames(client, 2 + len(sizes))
        assert got == [b"got 5", *(f"got {n}".encode() for n in sizes), b"got 4"]
    finally:
        client.sock.close()
        other.sock.close()


def test_ssl_engine_aiofastnet_without_the_package_fails_clearly() -> None:
    """Where aiofastnet cannot be imported, ``set({"ssl_engine": "aiofastnet"})`` raises
    ConfigError saying how to get it (and the start of a listener asking for it too), while
    ``"auto"`` serves with the loop's SSL transport."""
    script = """
import sys
sys.modules["aiofastnet"] = None  # import aiofastnet -> ImportError
from pyswoole import ConfigError
from pyswoole.runtime.tls import TlsConfig, TLS_KEYS
from pyswoole.server.settings import Settings
try:
    Settings().update({"ssl_engine": "aiofastnet"})
except ConfigError as exc:
    print("set:", exc)
values = {key: Settings().get_value(key) for key in TLS_KEYS}
print("auto:", TlsConfig(values, alpn=True, name="x").engine)
values["ssl_engine"] = "aiofastnet"
try:
    TlsConfig(values, alpn=True, name="x").build()
except ConfigError as exc:
    print("start:", exc)
"""
    env = {k: v for k, v in os.environ.items() if k != "PYSWOOLE_NO_EXTENSIONS"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    hint = "'aiofastnet' is not installed (pip install 'pyswoole[tls]')"
    assert out[0].startswith("set: setting 'ssl_engine': ") and hint in out[0], out
    assert out[1] == "auto: stdlib", out
    assert out[2].startswith("start: setting 'ssl_engine': ") and hint in out[2], out


@pytest.mark.parametrize("engine", ["auto", "stdlib"])
def test_a_handshake_in_progress_does_not_hold_the_stop(server_pair: Pair, engine: str) -> None:
    """A client that sent its ClientHello and got the server's first flight, then nothing:
    the server stops at once (aiofastnet's wait_closed would wait for that transport)."""
    server = echo_server(SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(tls_settings(server_pair, ssl_engine=engine))
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        client.do_handshake()
    with contextlib.ExitStack() as stack:
        stack.enter_context(running(server))
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
            sock.sendall(outgoing.read())
            assert sock.recv(65536), "no ServerHello"  # the server is in the handshake
            started = time.monotonic()
            stack.close()  # the stop
            assert time.monotonic() - started < 0.8


@pytest.mark.parametrize("engine", ["auto", "stdlib"])
def test_clients_that_close_in_the_handshake_leave_no_traceback(
    serve: Any, ca: Authority, server_pair: Pair, engine: str, caplog: Any, capfd: Any
) -> None:
    """A TCP health check (connect, close), a reset, half a ClientHello, a client gone after
    the ServerHello: closed quietly on both engines (aiofastnet 1.2 reported an exception
    class to the loop's handler: runtime/tls.py filters it)."""
    caplog.set_level(logging.DEBUG)
    server = echo_server(SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(tls_settings(server_pair, ssl_engine=engine))
    serve(server)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        client.do_handshake()
    hello = outgoing.read()
    address = ("127.0.0.1", server.port)
    socket.create_connection(address, timeout=TIMEOUT).close()
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(hello[:40])
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(hello)
        assert sock.recv(65536)  # the ServerHello
    with tls_client(ca, server.port) as sock:  # and the port serves on (its EOFs were read)
        assert upgrade(sock) == b""
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "Logging error" not in err
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("engine", ["auto", "stdlib"])
def test_out_of_descriptors_the_listener_pauses_and_serves_again(
    tmp_path: Path, ca: Authority, server_pair: Pair, engine: str
) -> None:
    """accept() at EMFILE: aiofastnet 1.2 called ``remove_reader`` on the listening socket
    (an AttributeError: the loop spun, logging); here it pauses accepting for a second (no
    CPU spent until the retry), says so at most once a second, and serves again once
    descriptors are free."""
    server = ServerProcess(
        PROGRAM,
        tmp_path,
        "--cert",
        str(server_pair.cert),
        "--key",
        str(server_pair.key),
        "--engine",
        engine,
    )
    try:
        server.port = int(server.wait_line(r"READY (\d+)", TIMEOUT)[1])
        held = []
        for _ in range(60):  # past the 48 descriptors
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT))
        if engine != "stdlib" and aiofastnet_module() is not None:  # (uvloop's pauses quietly)
            server.wait_line("accept failed", TIMEOUT)
            spent = cpu_seconds(server.proc.pid)
            server.wait_line("accept failed", TIMEOUT, start=server.mark())  # the retry
            assert cpu_seconds(server.proc.pid) - spent < 0.5  # paused, not spinning
        for sock in held:
            sock.close()
        started = time.monotonic()
        with tls_client(ca, server.port) as sock:
            assert upgrade(sock) == b""
        assert time.monotonic() - started < 5.0
        assert len(server.matching("accept failed")) <= 3
        assert server.proc.poll() is None
    finally:
        server.stop()
    assert "remove_reader" not in server.stderr()
