"""Flow control over the wire: whatever a client does, the server's memory stays bounded.

Each test attacks a real server subprocess with a raw-socket client that does not read
(``tests/integration/hostile.py``) and asserts, as pass/fail properties:

* the server stopped reading the attacker (the flood stalled far below its budget),
* its RSS (all its processes) grew by less than 64 MiB over its idle size,
* other clients are still served meanwhile,
* nothing was lost: once the attacker reads, every message the server accepted is answered.

Speed (other clients' latency under attack) is measured in ``bench/``, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import socket
import time
from pathlib import Path

import pytest
import websockets

from tests.conftest import masked
from tests.integration.conftest import echo_process
from tests.integration.hostile import (
    DEFLATE_OFFER,
    Fleet,
    MiB,
    Peak,
    RawWebSocket,
    client_frame,
    flood,
    inflate,
    tree_rss,
)
from tests.integration.hostile import deflate as deflate_bytes
from tests.integration.serverproc import ServerProcess

PROGRAM = Path(__file__).parent / "programs" / "flow_server.py"
#: the issue's bound: RSS above the idle size while attacked
RSS_BOUND = 64 * MiB


async def echo_round_trips(port: int, count: int) -> None:
    """A well-behaved client gets every echo (bounded wait)."""
    async with websockets.connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws:
        for i in range(count):
            await ws.send(f"hello {i}")
            assert await asyncio.wait_for(ws.recv(), 10) == f"hello {i}"


def incompressible(n: int) -> bytes:
    """Bytes deflate cannot shrink (so the echoes are as big as the messages)."""
    return os.urandom(n)


# -- echo servers (examples/echo.py) -------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "compressed"),
    [
        pytest.param((), False, id="one-process"),
        pytest.param(("--workers", "2"), False, id="2-workers"),
        # the master owns the connection: its echoes come back over IPC
        pytest.param(("--mode", "process", "--workers", "2"), False, id="process-2-workers"),
        pytest.param(("--compression",), True, id="compressed"),
    ],
)
def test_a_client_that_sends_without_reading_is_paused_and_loses_nothing(
    args: tuple[str, ...], compressed: bool
) -> None:
    payload = incompressible(MiB)
    unit = client_frame(2, payload, compressed)
    with echo_process(*args) as echo:
        asyncio.run(echo_round_trips(echo.port, 2))  # warm: code paths, zlib, the workers
        idle = tree_rss(echo.proc.pid)
        peak = Peak(echo.proc.pid)
        attacker = RawWebSocket(echo.port, extra=DEFLATE_OFFER if compressed else "")
        try:
            if compressed:
                assert "permessage-deflate" in attacker.response_head
            units, rest = flood(attacker.sock, unit, budget=1024 * MiB, sample=peak.sample)
            sent = units * len(unit) + len(unit) - len(rest)
            assert sent < 256 * MiB, f"the server kept reading: {sent} bytes"
            assert peak.value - idle < RSS_BOUND, (idle, peak.value, sent)
            asyncio.run(echo_round_trips(echo.port, 10))  # others are served meanwhile

            bad: list[int] = []  # (collected: drain's own AssertionError is the timeout)

            def check(b0: int, body: bytes) -> None:
                if compressed and b0 & 0x40:
                    body = inflate(body)
                if b0 & 0x0F != 2 or (compressed and not b0 & 0x40) or body != payload:
                    bad.append(b0)

            expected = units + (1 if rest != unit else 0)
            # (SWOOLE_PROCESS: the echoes of the messages in flight to the worker when the
            # master stopped reading arrive past socket_buffer_size; the master takes them,
            # up to MasterApp.overflow_cap, and marks the fd overflowing)
            try:
                got = attacker.drain(rest if rest != unit else b"", expected, check, 30.0)
            except AssertionError as lost:
                raise AssertionError(f"{lost}; server stderr: {echo.stderr()[-2000:]}") from None
            assert got == expected and bad == [], (got, expected, bad[:5])
        finally:
            attacker.close()
        assert echo.proc.poll() is None
        assert "output buffer overflow" not in echo.stderr(), echo.stderr()[-2000:]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((), id="one-process"),
        # the master answers the pings of the connections it owns
        pytest.param(("--mode", "process", "--workers", "2"), id="process-2-workers"),
    ],
)
def test_a_ping_flood_without_reading_is_paused_and_every_ping_is_answered(
    args: tuple[str, ...],
) -> None:
    unit = b"".join(client_frame(9, i.to_bytes(2, "big") * 62) for i in range(1000))
    with echo_process(*args) as echo:
        asyncio.run(echo_round_trips(echo.port, 2))
        idle = tree_rss(echo.proc.pid)
        peak = Peak(echo.proc.pid)
        attacker = RawWebSocket(echo.port)
        try:
            units, rest = flood(attacker.sock, unit, budget=2048 * MiB, sample=peak.sample)
            assert units * len(unit) < 512 * MiB, "the server kept reading"
            assert peak.value - idle < RSS_BOUND, (idle, peak.value)
            asyncio.run(echo_round_trips(echo.port, 10))
            # Send whole frames only: finish the unit in progress, then count the pongs.
            pongs = iter(range(1 << 40))

            def check(b0: int, body: bytes) -> None:
                assert b0 == 0x8A  # FIN | pong
                assert body == (next(pongs) % 1000).to_bytes(2, "big") * 62

            expected = (units + (1 if rest != unit else 0)) * 1000
            assert attacker.drain(rest if rest != unit else b"", expected, check) == expected
        finally:
            attacker.close()


# -- flow_server.py: HTTP, broadcasts, buffer events, push_async ------------------------------


def start(tmp_path: Path, *args: str) -> ServerProcess:
    server = ServerProcess(PROGRAM, tmp_path, *args)
    server.wait_ready(1)
    return server


def main_pid(server: ServerProcess) -> int:
    return server.proc.pid


def test_a_pipelining_http_client_that_never_reads_is_paused(tmp_path: Path) -> None:
    request = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
    unit = request * 1000
    server = start(tmp_path)
    try:
        idle = tree_rss(main_pid(server))
        peak = Peak(main_pid(server))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
        sock.connect(("127.0.0.1", server.port))
        try:
            units, _ = flood(sock, unit, budget=512 * MiB, sample=peak.sample)
            # Each 29-byte request asks for 64 KiB: unpaused, the server would queue
            # gigabytes of answers for the few megabytes of requests the kernel holds.
            assert units * len(unit) < 256 * MiB
            assert peak.value - idle < RSS_BOUND, (idle, peak.value)
            asyncio.run(echo_round_trips(server.port, 5))
            # The answers are intact and in order.
            sock.setblocking(True)
            sock.settimeout(10)
            data = b""
            while data.count(b"HTTP/1.1 200") < 3 or len(data) < 3 * 65 * 1024:
                chunk = sock.recv(1 << 20)
                assert chunk
                data += chunk
            assert data.startswith(b"HTTP/1.1 200 OK\r\n")
            head, _, body = data.partition(b"\r\n\r\n")
            assert b"Content-Length: 65536" in head and body.startswith(b"b" * 65536)
        finally:
            sock.close()
    finally:
        server.stop()


async def command(ws: object, text: str) -> tuple[dict[str, object], list[int]]:
    """Send a command; its JSON reply, and the sizes of the binary messages before it
    (other text messages are skipped)."""
    await ws.send(text)  # type: ignore[attr-defined]
    name = text.partition(":")[0]
    binary: list[int] = []
    deadline = time.monotonic() + 20
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no reply to {name}"
        message = await asyncio.wait_for(ws.recv(), remaining)  # type: ignore[attr-defined]
        if isinstance(message, bytes):
            binary.append(len(message))
            continue
        if not message.startswith("{"):
            continue  # a broadcast
        decoded = json.loads(message)
        if decoded.get("re") == name:
            return decoded, binary


def test_push_refuses_at_the_limit_and_push_async_waits_for_room(tmp_path: Path) -> None:
    server = start(tmp_path, "--set", f"socket_buffer_size={256 * 1024}")
    target = RawWebSocket(server.port)  # reads nothing until told to
    try:
        target.sock.sendall(client_frame(1, b"tag:target"))

        async def fill() -> int:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                fd = (await command(ws, "tags"))[0]["tags"]["target"]  # type: ignore[index]
                # push(): 64 x 64 KiB from one callback cannot all fit in 256 KiB
                filled, _ = await command(ws, f"fill:{fd}:64:65536")
                assert filled["error"] == 1009  # SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
                return filled["ok"][str(fd)]  # type: ignore[index,no-any-return]

        accepted = asyncio.run(fill())
        assert 0 < accepted < 64
        server.wait_line(r"bufferFull \d+", 10)

        def binary(b0: int, body: bytes) -> None:
            assert (b0, body) == (0x82, b"f" * 65536)

        assert target.drain(b"", accepted, binary) == accepted  # the accepted ones, intact
        server.wait_line(r"bufferEmpty \d+", 10)
        # push_async(): waits while the buffer is full, so all 64 arrive
        got: list[bytes] = []

        def collect(b0: int, body: bytes) -> None:
            got.append(body)

        target.drain(client_frame(1, b"pushasync:64:65536"), 65, collect)
        assert got[:64] == [b"a" * 65536] * 64
        assert json.loads(got[64]) == {"re": "pushasync", "ok": 64}
    finally:
        target.close()
        server.stop()


def test_a_broadcast_to_10000_clients_of_which_100_never_read(tmp_path: Path) -> None:
    """The readers get every broadcast, in order; the non-readers' buffers stay at the
    limit (pushes to them are refused: SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW); the server's
    RSS grows by less than 64 MiB. (A small socket_buffer_size, as a server holding this
    many clients would set: the non-readers may hold that much each.)"""
    limit = 128 * 1024
    server = start(tmp_path, "--set", f"socket_buffer_size={limit}")
    fleet = Fleet()
    try:
        readers = fleet.connect(server.port, 9900)
        stuck = fleet.connect(server.port, 100, rcvbuf=4096)
        for i, sock in enumerate(stuck):
            sock.sendall(client_frame(1, f"tag:{i}".encode()))
        pid = main_pid(server)

        async def run() -> None:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                tags: dict[str, int] = {}
                for _ in range(100):  # the tags arrive on 100 other connections
                    tags = (await command(ws, "tags"))[0]["tags"]  # type: ignore[assignment]
                    if len(tags) == 100:
                        break
                assert len(tags) == 100
                fds = ",".join(str(fd) for fd in tags.values())
                idle = tree_rss(pid)
                peak = Peak(pid)
                # Fill the non-readers: each takes pushes until its kernel buffers are full and
                # `limit` bytes are queued.
                filled, _ = await command(ws, f"fill:{fds}:64:65536")
                assert all(0 < n < 64 for n in filled["ok"].values()), filled  # type: ignore[union-attr]
                for seq in range(1, 11):
                    done, _ = await command(ws, f"broadcast:{seq}:1024")
                    # the readers and this client; full non-readers are skipped
                    assert 9901 <= done["n"] <= 10001, done  # type: ignore[operator]
                    await asyncio.to_thread(fleet.read_until, readers, seq * 1028)
                    peak.sample()
                assert peak.value - idle < RSS_BOUND, (idle, peak.value)
                info, _ = await command(ws, f"info:{fds}")
                for fd, found in info["info"].items():  # type: ignore[union-attr]
                    assert found["buffer_full"], (fd, found)
                    assert found["send_queued_bytes"] < limit + 65536 + 10 * 1028, (fd, found)

        asyncio.run(run())
        expected = b"".join(
            b"\x81\x7e\x04\x00" + f"{seq}:".ljust(1024, "x").encode() for seq in range(1, 11)
        )
        assert all(fleet.received[sock] == expected for sock in readers)
    finally:
        fleet.close()
        server.stop()


def test_a_client_full_for_buffer_full_timeout_is_closed(tmp_path: Path) -> None:
    server = start(
        tmp_path, "--set", f"socket_buffer_size={64 * 1024}", "--set", "buffer_full_timeout=0.5"
    )
    stuck = RawWebSocket(server.port)
    try:
        stuck.sock.sendall(client_frame(1, b"tag:stuck"))

        async def run() -> int:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                fd: int = (await command(ws, "tags"))[0]["tags"]["stuck"]  # type: ignore[index]
                mark = server.mark()
                await command(ws, f"fill:{fd}:64:65536")  # past what the kernel absorbs
                await server.expect(rf"bufferFull {fd}", start=mark)
                # closed (1013, after the close handshake's timeout: it reads nothing)
                await server.expect(rf"close {fd} \d+", timeout=10, start=mark)
                # the others go on
                assert (await command(ws, "tags"))[0]["tags"]["stuck"] == fd  # type: ignore[index]
                return fd

        fd = asyncio.run(run())
        assert "closing" in server.stderr() and f"fd {fd}" in server.stderr()
    finally:
        stuck.close()
        server.stop()


# -- what clients make the server hold: unfinished messages --------------------------------


def test_unfinished_compressed_messages_cost_their_compressed_size() -> None:
    """40 clients each send the first fragment of a compressed message that inflates to
    15 MiB and stop there (within package_max_length each): the server holds the
    compressed bytes (~15 KiB each), not 600 MiB of inflated data."""
    data = deflate_bytes(b"a" * (15 * MiB))
    first = masked(0x2, data, fin=False, rsv=0x40)
    with echo_process("--compression") as echo:
        asyncio.run(echo_round_trips(echo.port, 2))
        idle = tree_rss(echo.proc.pid)
        clients = [RawWebSocket(echo.port, extra=DEFLATE_OFFER) for _ in range(40)]
        try:
            for client in clients:
                client.sock.sendall(first)
            asyncio.run(echo_round_trips(echo.port, 5))  # (all 40 first fragments were read)
            assert tree_rss(echo.proc.pid) - idle < RSS_BOUND
            # each message completes and comes back whole
            client = clients[0]
            client.sock.sendall(masked(0x0, b"", fin=True))

            def check(b0: int, body: bytes) -> None:
                assert b0 == 0xC2 and inflate(body) == b"a" * (15 * MiB)

            assert client.drain(b"", 1, check) == 1
        finally:
            for client in clients:
                client.close()


def test_past_max_buffered_bytes_the_biggest_holders_get_1013(tmp_path: Path) -> None:
    budget = 4 * MiB
    server = start(
        tmp_path,
        "--set",
        f"max_buffered_bytes={budget}",
        "--set",
        f"package_max_length={16 * MiB}",
    )
    # 8 clients each hold an unfinished 1 MiB fragment, one more 2 MiB: 10 MiB in all,
    # over the 4 MiB budget. The biggest holders are failed until the rest fits.
    holders = [RawWebSocket(server.port, rcvbuf=0) for _ in range(9)]
    sizes = [MiB] * 8 + [2 * MiB]
    try:
        for client, size in zip(holders, sizes, strict=True):
            # a ping behind the fragment: its pong says the server has read this client
            client.sock.sendall(masked(0x2, b"h" * size, fin=False) + masked(0x9, b"p"))
        frames: dict[RawWebSocket, list[tuple[int, bytes]]] = {c: [] for c in holders}
        for client in holders:
            client.drain(b"", 1, lambda b0, body, c=client: frames[c].append((b0, body)))
        # Shedding happens as data arrives: once every client was read, every close frame
        # was written too; collect them (one select for all).
        socks = {c.sock: c for c in holders}
        readable, _, _ = select.select(list(socks), [], [], 1.0)
        for sock in readable:
            client = socks[sock]
            buf = bytearray(client.buf)
            client.buf = b""
            with contextlib.suppress(BlockingIOError):
                buf += sock.recv(1 << 16)  # a close frame, or EOF after one read earlier
            frames[client].extend(client.frames(buf))
        closed = {c for c in holders if any(b0 == 0x88 for b0, _ in frames[c])}
        for client in closed:
            [body] = [body for b0, body in frames[client] if b0 == 0x88]
            assert int.from_bytes(body[:2], "big") == 1013
        assert holders[-1] in closed  # the biggest holder
        assert 1 < len(closed) < len(holders)  # until the rest fits, not everybody
        kept = sum(size for c, size in zip(holders, sizes, strict=True) if c not in closed)
        assert kept <= budget
        asyncio.run(echo_round_trips(server.port, 3))
    finally:
        for client in holders:
            client.close()
        server.stop()
