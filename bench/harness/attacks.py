"""The client side of ``bench/hostile.py``: attackers, well-behaved latency clients and the
broadcast fleet. Each role runs in its own process, pinned by the orchestrator to the core
the server does not use, and needs nothing beyond the standard library (uvloop if present)::

    python bench/harness/attacks.py latency --port P [--clients 10] [--interval 0.01]
    python bench/harness/attacks.py flood|ping|http --port P
    python bench/harness/attacks.py fleet --port P --receivers 9800 --stuck 100 --rate 5
    python bench/harness/attacks.py sample --port P --receivers 100 --expect 50

Roles:

* ``latency``: 10 clients, each sends a 32-byte text message every 10 ms on a fixed
  schedule (open loop: a message is sent on time whether or not the previous echo came back,
  so a stalled server cannot hide its latency) and times each echo from its send.
* ``flood``: 1 MiB binary messages as fast as the kernel takes them; ``ping``: 125-byte
  pings; ``http``: ``GET /http`` requests pipelined. None of them ever reads during the
  attack. The socket gets a small SO_RCVBUF and a 1460-byte MSS before connect: over
  loopback's 64 KiB MSS the kernel would absorb megabytes per socket (the server's send
  buffer auto-tunes to 4 MiB), hiding what the server itself queues; with an Ethernet-sized
  MSS it absorbs ~70 KiB, as for a real remote client. Afterwards the attacker reads for a
  bounded time, to find a close frame, an EOF or a reset the server sent.
* ``fleet``: the broadcast attack's receivers (healthy ones read everything; ``--stuck``
  ones never read, small SO_RCVBUF and MSS as above) and one sender at ``--rate`` messages/s
  (the server broadcasts each to every connection); checks that each healthy receiver gets
  every message once, in order. The stuck receivers and the sender connect first and the
  sender fills the stuck ones (``--prefill`` bytes of broadcasts, 10 MiB: past the kernel's
  buffers and pyswoole's default 8 MiB ``socket_buffer_size``) before the healthy ones
  connect: at a rate 10,000 readers can take, a 10 s window alone would not get past the
  kernel's buffers of a stuck socket (about 1 MiB here, send-buffer auto-tuning).
* ``sample``: a few more healthy receivers in a light process of their own, timing each
  delivery from the send time carried in the message (CLOCK_MONOTONIC is system-wide).
  Kept apart from the fleet so that its timestamps do not include the fleet's own work of
  reading 10,000 sockets. The fleet and the sample connect in turns (``--batches``: each
  prints ``batch I`` and waits for ``next``), so the timed receivers are spread over the
  server's connections rather than first or last in its broadcast order. The fleet also
  stops after connecting the stuck receivers (``stuck``) and after the prefill
  (``prefilled``) until ``next``, for the orchestrator to sample the server's RSS.

Orchestration over the standard streams: the process connects (and warms up), prints
``ready``, then waits for ``go T0`` on stdin (T0 a ``time.monotonic()`` value); the attack or
measurement runs from T0 for ``--duration`` seconds, then ``--grace`` seconds more for late
answers. ``stop`` on stdin ends an attack early (the orchestrator's RSS cap); EOF on stdin
ends everything. The last stdout line is one JSON object with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import select
import socket
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

HOST = "127.0.0.1"
MiB = 1024 * 1024
LATE = 1.0  # seconds: an answer later than this counts as late
ATTACK_RCVBUF = 4096  # bytes: the attackers' and stuck receivers' SO_RCVBUF
ATTACK_MSS = 1460  # bytes: their TCP_MAXSEG (an Ethernet peer's MSS, not loopback's 64 KiB)
ATTACK_SNDBUF = 256 * 1024  # bytes: the attackers' SO_SNDBUF (bytes "accepted" ~ bytes read)
SENDER_LIMIT = 1 * MiB  # bytes the broadcast sender lets queue before it skips a message
PREFILL_MESSAGE = 256 * 1024  # bytes per broadcast of the prefill
PREFILL_TIMEOUT = 15.0  # seconds for the prefill
CONNECT_TIMEOUT = 20.0  # seconds for one connection and handshake
CONNECT_CONCURRENCY = 200  # handshakes in flight while the fleet connects
GO_TIMEOUT = 300.0  # seconds to wait for ``go`` after ``ready``
SLOW_MS = 20.0  # latency answers slower than this are listed in the report (when they came)
SLOW_KEPT = 500  # ... the first this many
MAGIC = b"HBC1"  # first bytes of a window broadcast (the prefill's are random)
MEASURED_SEQ = 10**9  # the measured messages' first number (the warm-up's start at 0)
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
DEFLATE_OFFER = (
    "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; "
    "server_no_context_takeover\r\n"
)
HTTP_REQUEST = b"GET /http HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA

Result = dict[str, Any]


# -- frames ---------------------------------------------------------------------------------


def xor_mask(payload: bytes, mask: bytes) -> bytes:
    """``payload`` XOR the repeated 4-byte ``mask`` (RFC 6455 section 5.3)."""
    n = len(payload)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def client_frame(opcode: int, payload: bytes, *, rsv1: bool = False, mask: bytes = b"") -> bytes:
    """One masked client frame with FIN set."""
    mask = mask or os.urandom(4)
    n = len(payload)
    b0 = 0x80 | opcode | (0x40 if rsv1 else 0)
    if n < 126:
        head = bytes((b0, 0x80 | n))
    elif n < 65536:
        head = bytes((b0, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, 0xFF)) + n.to_bytes(8, "big")
    return head + mask + xor_mask(payload, mask)


def deflate(payload: bytes) -> bytes:
    """One message compressed on its own (RFC 7692 section 7.2.1, tail removed)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def inflate(payload: bytes) -> bytes:
    """A message compressed without context takeover (RFC 7692 section 7.2.2)."""
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


def parse_frames(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """Complete server frames at the front of ``data``: ([(first byte, payload)], end)."""
    frames = []
    pos = 0
    n = len(data)
    while n - pos >= 2:
        length = data[pos + 1] & 0x7F
        start = pos + 2
        if length == 126:
            if n - pos < 4:
                break
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            start = pos + 4
        elif length == 127:
            if n - pos < 10:
                break
            length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            start = pos + 10
        end = start + length
        if end > n:
            break
        frames.append((data[pos], data[start:end]))
        pos = end
    return frames, pos


class Scanner:
    """Counts server frames without keeping data payloads (a drain may read gigabytes);
    control frames are returned whole, so a close code can be found."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.remaining = 0
        self.keep: bytearray | None = None
        self.b0 = 0
        self.frames = 0

    def header_size(self) -> int:
        if len(self.head) < 2:
            return 2
        length = self.head[1] & 0x7F
        extra = 2 if length == 126 else 8 if length == 127 else 0
        return 2 + extra + (4 if self.head[1] & 0x80 else 0)

    def feed(self, data: bytes | memoryview) -> list[tuple[int, bytes]]:
        """Consume ``data``; the control frames it completed, as (first byte, payload)."""
        found: list[tuple[int, bytes]] = []
        view = memoryview(data)
        pos, n = 0, len(data)
        while pos < n:
            if self.remaining:
                take = min(self.remaining, n - pos)
                if self.keep is not None:
                    self.keep += view[pos : pos + take]
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self.done(found)
                continue
            take = min(self.header_size() - len(self.head), n - pos)
            self.head += view[pos : pos + take]
            pos += take
            need = self.header_size()
            if len(self.head) < need:
                continue
            length = self.head[1] & 0x7F
            if length >= 126:
                length = int.from_bytes(self.head[2 : 4 if length == 126 else 10], "big")
            self.b0 = self.head[0]
            self.head.clear()
            self.remaining = length
            self.keep = bytearray() if self.b0 & 0x0F >= OP_CLOSE else None
            if not length:
                self.done(found)
        return found

    def done(self, found: list[tuple[int, bytes]]) -> None:
        self.frames += 1
        if self.keep is not None:
            found.append((self.b0, bytes(self.keep)))
            self.keep = None


def close_code(payload: bytes) -> int:
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005


def handshake_request(port: int, deflate_offer: bool) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    extra = DEFLATE_OFFER if deflate_offer else ""
    return (
        f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


def summary(values: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles of ``values`` (milliseconds), and max and mean."""
    if not values:
        return {}
    ordered = sorted(values)
    n = len(ordered)

    def rank(p: float) -> float:
        return round(ordered[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))], 3)

    return {
        "n": n,
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "p999": rank(99.9),
        "max": round(ordered[-1], 3),
        "mean": round(sum(ordered) / n, 3),
    }


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# -- asyncio side: a minimal WebSocket client protocol ----------------------------------------


class Control:
    """``next``, ``go T0`` and ``stop`` from the orchestrator, read from stdin by the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.go: asyncio.Future[float] = loop.create_future()
        self.stop = asyncio.Event()
        self.nexts: asyncio.Queue[None] = asyncio.Queue()
        self.pending = b""
        self.loop = loop
        loop.add_reader(sys.stdin.fileno(), self.readable)

    def readable(self) -> None:
        try:
            data = os.read(sys.stdin.fileno(), 4096)
        except OSError:
            data = b""
        if not data:  # the orchestrator is gone: stop everything
            self.loop.remove_reader(sys.stdin.fileno())
            self.stop.set()
            if not self.go.done():
                self.go.set_exception(EOFError("stdin closed before go"))
            return
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            words = line.decode().split()
            if words[:1] == ["go"] and not self.go.done():
                self.go.set_result(float(words[1]))
            elif words[:1] == ["stop"]:
                self.stop.set()
            elif words[:1] == ["next"]:
                self.nexts.put_nowait(None)

    async def wait_go(self) -> float:
        return await asyncio.wait_for(self.go, GO_TIMEOUT)

    async def step(self, label: str) -> None:
        """Say ``label`` and wait for ``next`` (the orchestrator's or another process's turn)."""
        emit(label)
        await asyncio.wait_for(self.nexts.get(), GO_TIMEOUT)


async def sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


class WsClient(asyncio.Protocol):
    """Handshake, then server frames: pings answered, a close frame answered and recorded;
    data frames go to :meth:`message`. ``ended`` says how the connection ended, if it did."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.upgraded = False
        self.deflate = False
        self.head = b""
        self.buf = b""
        self.ended = ""  # "", "close <code>", "reset", "EOF"
        self.fragments: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4 :]
            self.head = b""
            if not head.startswith(b"HTTP/1.1 101"):
                self.fail(f"handshake refused: {head[:60]!r}")
                return
            self.upgraded = True
            self.deflate = b"permessage-deflate" in head.lower()
            if not self.opened.done():
                self.opened.set_result(True)
            self.after_upgrade()
            if not data:
                return
        self.frames(data)

    def frames(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
        found, end = parse_frames(data)
        self.buf = data[end:]
        for b0, payload in found:
            self.frame(b0, payload)

    def after_upgrade(self) -> None:
        """Hook: the handshake is done."""

    def frame(self, b0: int, payload: bytes) -> None:
        opcode = b0 & 0x0F
        if opcode < OP_CLOSE:
            if not b0 & 0x80:  # a fragment (picows echoes frames as they come)
                self.fragments.append(payload)
                return
            if self.fragments:
                payload = b"".join(self.fragments) + payload
                self.fragments.clear()
            if b0 & 0x40 or (opcode == 0 and self.deflate):
                payload = inflate(payload)
            self.message(payload)
        elif opcode == OP_PING:
            self.send(client_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            self.ended = self.ended or f"close {close_code(payload)}"
            self.send(client_frame(OP_CLOSE, payload[:2]))
            if self.transport is not None:
                self.transport.close()

    def message(self, payload: bytes) -> None:
        """Hook: one whole data message (inflated)."""

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def fail(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended:
            self.ended = "reset" if isinstance(exc, ConnectionResetError) else "EOF"
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during the handshake: {exc}"))

    @property
    def alive(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and not self.ended


def new_socket(source: str, rcvbuf: int = 0, mss: int = 0) -> socket.socket:
    """A non-blocking TCP socket bound to ``source`` (port chosen at connect time)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if source != HOST:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect
        if mss:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)  # advertised in SYN
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def connect(
    factory: Callable[[], WsClient], port: int, source: str = HOST, rcvbuf: int = 0, mss: int = 0
) -> WsClient:
    """Open one connection and finish its handshake (bounded by CONNECT_TIMEOUT)."""
    loop = asyncio.get_running_loop()
    sock = new_socket(source, rcvbuf, mss)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (HOST, port)), CONNECT_TIMEOUT)
        _, client = await loop.create_connection(factory, sock=sock)
    except BaseException:
        sock.close()
        raise
    try:
        await asyncio.wait_for(asyncio.shield(client.opened), CONNECT_TIMEOUT)
    except BaseException:
        if client.transport is not None:
            client.transport.abort()
        raise
    return client


def source_addresses(connections: int) -> list[str]:
    """127.0.0.x source addresses enough for ``connections`` (twice over, for sockets left
    in TIME_WAIT by the previous runs), from the kernel's ephemeral port range; at most 8."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        ports = high - low + 1
    except (OSError, ValueError):
        ports = 28000
    count = max(1, min(8, -(-2 * connections // max(1, ports))))
    return [f"127.0.0.{i + 1}" for i in range(count)]


def install_uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return f"uvloop {uvloop.__version__}"


# -- latency: the well-behaved clients ---------------------------------------------------------


class EchoClient(WsClient):
    """One latency client: 32-byte text messages numbered by ``seq``, echoes timed."""

    def __init__(self, request: bytes, stats: EchoStats) -> None:
        super().__init__(request)
        self.stats = stats
        self.mask = os.urandom(4)

    def send_seq(self, seq: int, size: int) -> None:
        payload = f"{seq:012d}".encode().ljust(size, b".")
        self.send(client_frame(OP_TEXT, payload, mask=self.mask))

    def message(self, payload: bytes) -> None:
        try:
            seq = int(payload[:12])
        except ValueError:
            self.stats.unexpected += 1
            return
        self.stats.answer(seq, time.monotonic())


class EchoStats:
    """Send and answer times of every scheduled message."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.answered: set[int] = set()
        self.latencies: list[float] = []  # ms
        self.lags: list[float] = []  # ms the send was behind its schedule (client health)
        self.late = 0
        self.slow: list[tuple[float, float]] = []  # (send time, ms) of answers over SLOW_MS
        self.unsent = 0  # scheduled on a connection the server had closed
        self.unexpected = 0

    def answer(self, seq: int, now: float) -> None:
        sent = self.sent.get(seq)
        if sent is None or seq in self.answered:
            self.unexpected += 1
            return
        self.answered.add(seq)
        latency = now - sent
        self.latencies.append(latency * 1000)
        if latency * 1000 > SLOW_MS and len(self.slow) < SLOW_KEPT:
            self.slow.append((sent, round(latency * 1000, 2)))
        if latency > LATE:
            self.late += 1

    @property
    def outstanding(self) -> int:
        return len(self.sent) - len(self.answered)


async def run_schedule(
    clients: list[EchoClient],
    stats: EchoStats,
    start: float,
    end: float,
    args: argparse.Namespace,
    first_seq: int = 0,
) -> None:
    """Client ``k % n`` sends message ``first_seq + k`` at ``start + k * interval / n``
    until ``end``."""
    step = args.interval / len(clients)
    k = 0
    while (due := start + k * step) < end:
        await sleep_until(due)
        client = clients[k % len(clients)]
        seq = first_seq + k
        if client.alive:
            now = time.monotonic()
            stats.sent[seq] = now
            stats.lags.append((now - due) * 1000)
            client.send_seq(seq, args.size)
        else:
            stats.unsent += 1
        k += 1


async def wait_answers(stats: EchoStats, until: float) -> None:
    while stats.outstanding and time.monotonic() < until:
        await asyncio.sleep(0.01)


async def latency_role(args: argparse.Namespace) -> Result:
    loop = asyncio.get_running_loop()
    control = Control(loop)
    warm = EchoStats()
    clients = []
    for _ in range(args.clients):
        request = handshake_request(args.port, args.deflate)
        clients.append(await connect(lambda r=request: EchoClient(r, warm), args.port))
    # Warm-up: 0.3 s on the real schedule (the server's code paths, zlib, the workers).
    now = time.monotonic()
    await run_schedule(clients, warm, now, now + 0.3, args)
    await wait_answers(warm, time.monotonic() + 5.0)
    stats = EchoStats()
    for client in clients:
        client.stats = stats
    emit("ready")
    start = await control.wait_go()
    end = start + args.duration
    await run_schedule(clients, stats, start, end, args, MEASURED_SEQ)
    await wait_answers(stats, end + args.grace)
    lost = stats.outstanding + stats.unsent
    return {
        "role": "latency",
        "clients": args.clients,
        "interval_s": args.interval,
        "deflate": [c.deflate for c in clients],
        "warmup_lost": warm.outstanding,
        "scheduled": len(stats.sent) + stats.unsent,
        "sent": len(stats.sent),
        "answered": len(stats.answered),
        "lost": lost,
        "late": stats.late,
        "unexpected": stats.unexpected,
        "latency_ms": summary(stats.latencies),
        "send_lag_ms": summary(stats.lags),
        "slow": [(round(sent - start, 3), ms) for sent, ms in stats.slow],
        "ended": [c.ended for c in clients if c.ended],
    }


# -- attackers on raw sockets --------------------------------------------------------------------


def attack_socket(port: int) -> socket.socket:
    """A blocking socket with a small receive buffer and MSS, connected to the server."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, ATTACK_RCVBUF)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, ATTACK_SNDBUF)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, ATTACK_MSS)
    sock.settimeout(CONNECT_TIMEOUT)
    sock.connect((HOST, port))
    return sock


def raw_handshake(sock: socket.socket, port: int, deflate_offer: bool) -> bool:
    """Upgrade ``sock``; True if permessage-deflate was accepted. Raises if refused."""
    sock.sendall(handshake_request(port, deflate_offer))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed during the handshake: {head[:60]!r}")
        head += chunk
    status = head.split(b"\r\n", 1)[0]
    if not status.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"handshake refused: {status!r}")
    return b"permessage-deflate" in head.lower()


def attack_unit(role: str, deflated: bool) -> bytes:
    """What the attacker sends over and over."""
    if role == "flood":
        payload = os.urandom(MiB)  # incompressible: compressed, it stays ~1 MiB
        if deflated:
            return client_frame(OP_BINARY, deflate(payload), rsv1=True)
        return client_frame(OP_BINARY, payload)
    if role == "ping":
        return b"".join(client_frame(OP_PING, bytes([i % 256]) * 125) for i in range(1000))
    return HTTP_REQUEST * 1000


def wait_go_sync() -> float:
    """Block until ``go T0`` arrives on stdin (bounded by GO_TIMEOUT)."""
    pending = b""
    deadline = time.monotonic() + GO_TIMEOUT
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sys.stdin.fileno()], [], [], remaining)
        if not readable:
            break
        data = os.read(sys.stdin.fileno(), 4096)
        if not data:
            raise EOFError("stdin closed before go")
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            words = line.decode().split()
            if words[:1] == ["go"]:
                return float(words[1])
    raise TimeoutError("no go")


def stop_requested() -> bool:
    """A ``stop`` line (or EOF) waiting on stdin."""
    readable, _, _ = select.select([sys.stdin.fileno()], [], [], 0)
    if not readable:
        return False
    data = os.read(sys.stdin.fileno(), 4096)
    return not data or b"stop" in data


def flood(sock: socket.socket, unit: bytes, start: float, end: float, until: float) -> Result:
    """Send ``unit`` over and over from ``start`` to ``until``, never reading. Counts the
    bytes the kernel accepted inside the measured window [start, end] and how the attack
    ended; samples the running total every 0.1 s."""
    sock.setblocking(False)
    view = memoryview(unit)
    pos = 0
    total = in_window = 0
    last_progress = start
    outcome = ""
    timeline: list[tuple[float, int]] = []
    stall = min(1.0, (end - start) / 2)  # seconds without progress at the end: stalled
    next_sample = next_check = start
    stopped_at = None
    while True:
        now = time.monotonic()
        if now >= until:
            break
        if now >= next_check:
            next_check = now + 0.05
            if stopped_at is None and stop_requested():
                stopped_at = now - start
            if now >= next_sample:
                timeline.append((round(now - start, 2), total))
                next_sample += 0.1
        if stopped_at is not None:
            time.sleep(min(0.05, until - now))
            continue
        try:
            n = sock.send(view[pos:])
        except BlockingIOError:
            select.select([], [sock], [], min(0.05, until - now))
            continue
        except (ConnectionResetError, BrokenPipeError) as exc:
            outcome = "reset" if isinstance(exc, ConnectionResetError) else "EPIPE"
            outcome += f" at {now - start:.2f} s"
            break
        total += n
        if now <= end:
            in_window += n
            last_progress = now
        pos += n
        if pos >= len(unit):
            pos = 0
    return {
        "accepted_bytes": in_window,
        "accepted_bytes_total": total,
        "last_progress_s": round(last_progress - start, 3),
        "stalled": outcome == "" and stopped_at is None and end - last_progress >= stall,
        "stopped_at_s": None if stopped_at is None else round(stopped_at, 2),
        "send_error": outcome,
        "timeline": timeline,
    }


def drain(sock: socket.socket, websocket: bool, seconds: float) -> Result:
    """Read what the server sent, for at most ``seconds`` (and 0.5 s of silence), to find
    how it ended the connection: a close frame's code, EOF, a reset, or still open."""
    sock.setblocking(False)
    scanner = Scanner()
    buf = bytearray(4 * MiB)
    got = 0
    ended = ""
    deadline = time.monotonic() + seconds
    quiet_since = time.monotonic()
    while not ended and (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], min(remaining, 0.1))
        if not readable:
            if time.monotonic() - quiet_since >= 0.5:
                break
            continue
        try:
            n = sock.recv_into(buf)
        except BlockingIOError:
            continue
        except ConnectionResetError:
            ended = "reset"
            break
        if not n:
            ended = "EOF"
            break
        quiet_since = time.monotonic()
        got += n
        if websocket:
            for b0, payload in scanner.feed(memoryview(buf)[:n]):
                if b0 & 0x0F == OP_CLOSE:
                    ended = f"close {close_code(payload)}"
    return {
        "drain_bytes": got,
        "drain_frames": scanner.frames,
        "ended": ended or "open",
    }


def attacker_role(args: argparse.Namespace) -> Result:
    with contextlib.suppress(OSError):
        os.nice(10)  # the latency clients on the same core come first
    sock = attack_socket(args.port)
    try:
        deflated = False
        if args.role != "http":
            deflated = raw_handshake(sock, args.port, args.deflate)
        unit = attack_unit(args.role, deflated)
        emit("ready")
        start = wait_go_sync()
        end = start + args.duration
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        result = {"role": args.role, "deflate": deflated, "unit_bytes": len(unit)}
        result.update(flood(sock, unit, start, end, end + args.grace))
        if not result["send_error"]:
            result.update(drain(sock, args.role != "http", args.drain))
        else:
            result["ended"] = result["send_error"].split()[0]
        return result
    finally:
        sock.close()


# -- the broadcast attack: fleet and sample ---------------------------------------------------


class Receiver(WsClient):
    """A broadcast receiver: counts messages, checks their order; ``stuck`` ones stop
    reading right after the handshake; ``timed`` ones record each delivery's latency."""

    def __init__(self, request: bytes, fleet: Fleet, stuck: bool, timed: bool) -> None:
        super().__init__(request)
        self.fleet = fleet
        self.stuck = stuck
        self.timed = timed
        self.count = 0  # the window's broadcasts
        self.messages = 0  # every message (the prefill's too)
        self.next_seq = 0
        self.anomalies = 0  # out of order, duplicated or unparsable
        self.scanner: Scanner | None = None

    def after_upgrade(self) -> None:
        if self.stuck and self.transport is not None:
            self.transport.pause_reading()
            self.scanner = Scanner()

    def frames(self, data: bytes) -> None:
        if self.scanner is None:
            super().frames(data)
            return
        for b0, payload in self.scanner.feed(data):  # a stuck receiver, drained at the end
            if b0 & 0x0F == OP_CLOSE:
                self.ended = self.ended or f"close {close_code(payload)}"

    def message(self, payload: bytes) -> None:
        now = time.monotonic_ns()
        self.messages += 1
        if payload[:4] != MAGIC:  # the prefill's (the sender's own copies)
            return
        seq = int.from_bytes(payload[4:12], "big")
        if seq != self.next_seq:
            self.anomalies += 1
        self.next_seq = seq + 1
        self.count += 1
        if self.timed:
            latency = (now - int.from_bytes(payload[12:20], "big")) / 1e6
            self.fleet.latencies.append(latency)
            if latency > LATE * 1000:
                self.fleet.late += 1


def share(total: int, parts: int, index: int) -> int:
    """Part ``index`` of ``total`` cut into ``parts`` near-equal parts."""
    return total * (index + 1) // parts - total * index // parts


class Fleet:
    """The broadcast attack's connections in one process, and what they saw."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.latencies: list[float] = []  # ms, timed receivers only
        self.late = 0
        self.healthy: list[Receiver] = []
        self.stuck: list[Receiver] = []
        self.sender: Receiver | None = None
        self.connect_errors: list[str] = []

    async def open(self, count: int, stuck: bool, timed: bool) -> list[Receiver]:
        args = self.args
        sources = source_addresses(count)
        semaphore = asyncio.Semaphore(CONNECT_CONCURRENCY)
        # with --deflate only the stuck receivers and the timed sample offer compression
        offer = args.deflate and (stuck or timed)

        async def one(i: int) -> Receiver | None:
            request = handshake_request(args.port, offer)
            async with semaphore:
                try:
                    client = await connect(
                        lambda: Receiver(request, self, stuck, timed),
                        args.port,
                        sources[i % len(sources)],
                        ATTACK_RCVBUF if stuck else 0,
                        ATTACK_MSS if stuck else 0,
                    )
                except (OSError, asyncio.TimeoutError) as exc:
                    if len(self.connect_errors) < 10:
                        self.connect_errors.append(f"{type(exc).__name__}: {exc}")
                    return None
            assert isinstance(client, Receiver)
            return client

        opened = await asyncio.gather(*(one(i) for i in range(count)))
        return [c for c in opened if c is not None]

    def tally(self, expected: int) -> Result:
        healthy = self.healthy
        complete = sum(1 for r in healthy if r.count == expected and not r.anomalies)
        return {
            "healthy": len(healthy),
            "healthy_complete": complete,
            "missing": sum(max(0, expected - r.count) for r in healthy),
            "extra": sum(max(0, r.count - expected) for r in healthy),
            "out_of_order": sum(r.anomalies for r in healthy),
            "healthy_ended": sum(1 for r in healthy if r.ended),
            "latency_ms": summary(self.latencies),
            "late": self.late,
            "connect_errors": self.connect_errors,
        }


def broadcast_payload(seq: int, padding: bytes) -> bytes:
    """MAGIC, the message's number, its send time (CLOCK_MONOTONIC ns), then padding."""
    return MAGIC + seq.to_bytes(8, "big") + time.monotonic_ns().to_bytes(8, "big") + padding


async def send_broadcasts(
    sender: Receiver, control: Control, start: float, end: float, args: argparse.Namespace
) -> tuple[int, int]:
    """The sender: message ``k`` at ``start + k / rate`` until ``end`` (or ``stop``); a message
    is skipped when more than SENDER_LIMIT bytes wait in the sender's own buffer (the
    server stopped reading it). Returns (sent, skipped)."""
    padding = os.urandom(max(0, args.size - 20))  # incompressible
    mask = os.urandom(4)
    sent = skipped = k = 0
    transport = sender.transport
    assert transport is not None
    while (due := start + k / args.rate) < end and not control.stop.is_set():
        await sleep_until(due)
        k += 1
        if transport.is_closing() or transport.get_write_buffer_size() > SENDER_LIMIT:
            skipped += 1
            continue
        payload = broadcast_payload(sent, padding)
        transport.write(client_frame(OP_BINARY, payload, mask=mask))
        sent += 1
    return sent, skipped


async def prefill(sender: Receiver, args: argparse.Namespace) -> Result:
    """Before the healthy receivers connect: ``args.prefill`` bytes of broadcasts (256 KiB
    messages) to the stuck receivers, past what their kernel buffers absorb, so that they
    are full when the window starts, as after a long stall. Done when the sender got its own
    copy of the last one (bounded by PREFILL_TIMEOUT: a server may never broadcast it)."""
    transport = sender.transport
    assert transport is not None
    count = math.ceil(args.prefill / PREFILL_MESSAGE)
    frame = client_frame(OP_BINARY, os.urandom(PREFILL_MESSAGE))
    began = time.monotonic()
    deadline = began + PREFILL_TIMEOUT
    base = sender.messages
    written = 0
    while written < count and time.monotonic() < deadline:
        if transport.is_closing():
            break
        if transport.get_write_buffer_size() > SENDER_LIMIT:
            await asyncio.sleep(0.005)
            continue
        transport.write(frame)
        written += 1
    while sender.messages - base < written and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    return {
        "prefill_messages": count,
        "prefill_written": written,
        "prefill_copies": sender.messages - base,  # the sender's own copies: broadcast by then
        "prefill_s": round(time.monotonic() - began, 2),
    }


async def wait_complete(receivers: list[Receiver], expected: int, until: float) -> None:
    while time.monotonic() < until:
        if all(r.count >= expected or not r.alive for r in receivers):
            return
        await asyncio.sleep(0.05)


async def drain_stuck(stuck: list[Receiver], seconds: float) -> Result:
    """Read the stuck receivers for ``seconds``: did the server close them (and how)?"""
    for receiver in stuck:
        if receiver.transport is not None and not receiver.transport.is_closing():
            receiver.transport.resume_reading()
    await asyncio.sleep(seconds)
    ended: dict[str, int] = {}
    for receiver in stuck:
        key = receiver.ended or "open"
        ended[key] = ended.get(key, 0) + 1
    return {"stuck": len(stuck), "stuck_ended": ended}


async def fleet_role(args: argparse.Namespace) -> Result:
    loop = asyncio.get_running_loop()
    control = Control(loop)
    fleet = Fleet(args)
    began = time.monotonic()
    # The stuck receivers and the sender first, and the prefill while nobody else listens:
    # the broadcasts that fill the stuck receivers need not go to 10,000 readers.
    fleet.stuck = await fleet.open(args.stuck, stuck=True, timed=False)
    senders = await fleet.open(1, stuck=False, timed=False)
    if not senders or len(fleet.stuck) < args.stuck:
        raise ConnectionError(f"stuck receivers or sender: {fleet.connect_errors}")
    fleet.sender = senders[0]
    await control.step("stuck")  # the orchestrator samples the server's RSS here ...
    filled = await prefill(fleet.sender, args)
    await control.step("prefilled")  # ... and here
    # Then the healthy receivers in batches, taking turns with the sample process, so that
    # the timed receivers are spread over the server's connections (a server that broadcasts
    # in connection order must not serve the sample first).
    for index in range(args.batches):
        healthy = share(args.receivers, args.batches, index)
        fleet.healthy += await fleet.open(healthy, stuck=False, timed=False)
        await control.step(f"batch {index}")
    ramp = time.monotonic() - began
    emit("ready")
    start = await control.wait_go()
    end = start + args.duration
    sent, skipped = await send_broadcasts(fleet.sender, control, start, end, args)
    await wait_complete(fleet.healthy, sent, end + args.grace)
    result: Result = {
        "role": "fleet",
        "ramp_s": round(ramp, 2),
        "rate": args.rate,
        "size": args.size,
        "sent": sent,
        "skipped": skipped,
        "stopped": control.stop.is_set(),
        "sender_copies": fleet.sender.count,
        "sender_ended": fleet.sender.ended,
        **filled,
    }
    result.update(fleet.tally(sent))
    result.update(await drain_stuck(fleet.stuck, args.drain))
    return result


async def sample_role(args: argparse.Namespace) -> Result:
    loop = asyncio.get_running_loop()
    control = Control(loop)
    fleet = Fleet(args)
    for index in range(args.batches):
        await asyncio.wait_for(control.nexts.get(), GO_TIMEOUT)  # after the fleet's batch
        count = share(args.receivers, args.batches, index)
        fleet.healthy += await fleet.open(count, stuck=False, timed=True)
        emit(f"batch {index}")
    if len(fleet.healthy) < args.receivers:
        raise ConnectionError(f"sample receivers: {fleet.connect_errors}")
    emit("ready")
    start = await control.wait_go()
    end = start + args.duration
    await sleep_until(end)
    await wait_complete(fleet.healthy, args.expect, end + args.grace)
    result: Result = {"role": "sample", "expected": args.expect}
    result.update(fleet.tally(args.expect))
    # per receiver, for the orchestrator to judge against what the sender really sent
    result["receiver_counts"] = [r.count for r in fleet.healthy]
    result["receiver_anomalies"] = [r.anomalies for r in fleet.healthy]
    return result


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=["latency", "flood", "ping", "http", "fleet", "sample"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument(
        "--grace", type=float, default=1.0, help="seconds after the window for late answers"
    )
    parser.add_argument(
        "--drain", type=float, default=2.0, help="seconds to read after the attack (closes)"
    )
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--clients", type=int, default=10, help="latency: clients")
    parser.add_argument("--interval", type=float, default=0.01, help="latency: s per client")
    parser.add_argument("--size", type=int, default=32, help="message bytes (fleet: >= 20)")
    parser.add_argument("--receivers", type=int, default=9800, help="fleet/sample: healthy")
    parser.add_argument("--stuck", type=int, default=100, help="fleet: receivers never reading")
    parser.add_argument(
        "--prefill", type=int, default=10 * MiB, help="fleet: bytes broadcast to fill the stuck"
    )
    parser.add_argument("--rate", type=float, default=5.0, help="fleet: broadcasts per second")
    parser.add_argument("--expect", type=int, default=0, help="sample: messages the sender sends")
    parser.add_argument(
        "--batches", type=int, default=10, help="fleet/sample: connect in turns, in batches"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    loop_name = install_uvloop()
    started = time.monotonic()
    try:
        if args.role in ("flood", "ping", "http"):
            result = attacker_role(args)
        else:
            role = {"latency": latency_role, "fleet": fleet_role, "sample": sample_role}
            result = asyncio.run(role[args.role](args))
    except Exception as exc:  # reported to the orchestrator as the run's error
        emit(json.dumps({"role": args.role, "error": f"{type(exc).__name__}: {exc}"}))
        return 1
    result["loop"] = loop_name
    result["wall_s"] = round(time.monotonic() - started, 2)
    emit(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
