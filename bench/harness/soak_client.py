"""The soak test's load: thousands of WebSocket clients in one asyncio process.

Each client is an ``asyncio.Protocol`` over a raw socket with its own minimal RFC 6455
framing (masked frames out, a by-offset parser in) and, when asked, the client side of
permessage-deflate (RFC 7692) with zlib. Roles (``Spec.role``):

* ``echo``: sends messages at random intervals (text or binary, 10 B to 64 KiB, log-uniform;
  some fragmented, some with a ping between fragments) and checks that every echo comes back
  exact and in order;
* ``churn``: the same, but lives a few seconds, closes (cleanly, or with a TCP reset) and
  connects again, until the end;
* ``pub``: asks the server for broadcasts (``!pub SIZE``);
* ``slow``: a small SO_RCVBUF and it reads never (``stalled``) or one read every few seconds
  (``trickle``); half of them also send messages they never read the echoes of.

Every client but the slow ones checks the server's numbered broadcasts (``#SEQ:SIZE:PAD``):
from the number in its welcome (``!hi NEXT FD``) on, each one exactly once and in order; a
client closing cleanly first sends ``!bye`` and gets ``!ack LAST DROPPED_B DROPPED_E``, so the
tail up to LAST is checked too, less what the server reported it dropped for this client
(``push``/``broadcast`` refused: send buffer full). See ``bench/servers/soak_server.py``.

Every wait is bounded: connects, handshakes, acks and closes have timeouts, the clients'
loops end at the run's deadline, and the final phase has its own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hashlib
import random
import socket
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HEAD_LIMIT = 16384  # bytes: the 101 response head
CONNECT_TIMEOUT = 10.0  # seconds for connect + handshake
CLOSE_TIMEOUT = 5.0  # seconds for the server's close frame and FIN after ours
ACK_TIMEOUT = 15.0  # seconds for the answer to !bye while the run goes on
DRAIN_PING = 0.2  # seconds between a draining slow reader's pings
CONNECT_RETRIES = 3  # attempts per connection of a long-lived client
PAD = ("pyswoole soak broadcast 0123456789 abcdefghijklmnopqrstuvwxyz " * 1100)[:65536].encode()
# ^ must equal bench/servers/soak_server.py's PAD: a broadcast is b"#SEQ:SIZE:" + PAD[:SIZE]
TAIL = b"\x00\x00\xff\xff"  # RFC 7692 section 7.2.1: removed after compressing, added back
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
SAMPLE_LIMIT = 20  # problems kept verbatim for the report
ROLES = ("echo", "churn", "pub", "slow")


@dataclass
class Plan:
    """What the load does (``bench/soak.py`` fills it from its options)."""

    port: int
    connections: int
    duration: float  # seconds from the first connect to the start of the final phase
    ramp: float = 2000.0  # new connections per second at the start
    echo_interval: float = 8.0  # mean seconds between one client's messages
    broadcast_rate: float = 2.0  # broadcasts per second, all publishers together
    publishers: int = 4
    slow_share: float = 0.01
    churn_share: float = 0.1
    reset_share: float = 0.3  # of the churners' closes: TCP reset instead of a close handshake
    compressed_share: float = 0.0  # of the clients (not slow ones): offer permessage-deflate
    fragment_share: float = 0.2  # of the messages: sent in 2-4 fragments
    min_size: int = 10
    max_size: int = 65536
    broadcast_min: int = 16
    broadcast_max: int = 2048
    lifetime: tuple[float, float] = (2.0, 30.0)  # seconds a churner stays connected
    reconnect_delay: tuple[float, float] = (0.05, 1.0)
    trickle_every: float = 5.0  # seconds between a trickling slow reader's reads
    slow_rcvbuf: int = 4096  # SO_RCVBUF of the slow readers (the kernel doubles it)
    slow_send_rate: float = 131072.0  # bytes/s a sending slow reader sends (never reading)
    slow_send_cap: int = 1 << 20  # ... unless this much waits in its own send buffer
    end_timeout: float = 60.0  # seconds for the final phase (acks, drains, closes)
    sources: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    seed: int = 1


@dataclass
class Spec:
    """One client: its role and options (a churner keeps its Spec across connections)."""

    index: int
    role: str
    compressed: bool = False
    offer: str = ""
    stalled: bool = False  # slow: never reads (else trickles)
    sends: bool = True  # slow: also sends messages


@dataclass
class Totals:
    """Everything the clients counted. Problems go to ``problems`` (first few verbatim)."""

    connects: int = 0
    connect_failures: dict[str, int] = field(default_factory=dict)
    cycles: int = 0  # churners' connections closed (then opened again, unless it was the end)
    closes_bye: int = 0
    closes_plain: int = 0
    closes_reset: int = 0
    messages_sent: int = 0
    bytes_sent: int = 0
    fragmented_sent: int = 0
    compressed_sent: int = 0
    pings_sent: int = 0
    pongs_received: int = 0
    pub_requests: int = 0
    echoes_received: int = 0
    echoes_checked: int = 0  # echoes a reading client compared
    echo_missing: int = 0  # echoes a reading client never got (less the server's drops)
    echo_dropped_by_server: int = 0  # per the acks
    echo_lost_at_reset: int = 0  # in flight when a churner reset its connection
    echo_corrupt: int = 0
    broadcasts_received: int = 0  # every client, slow ones too
    broadcasts_expected: int = 0  # reading clients: the numbers they had to receive
    broadcasts_delivered: int = 0  # ... and received
    broadcast_missing: int = 0  # ... never received (less the server's drops)
    broadcast_dropped_by_server: int = 0  # ... per the acks
    broadcast_duplicate: int = 0  # a number again, or going back
    broadcast_corrupt: int = 0
    broadcasts_early: int = 0  # numbered before the welcome (other workers: in flight)
    acks: int = 0
    ack_timeouts: int = 0
    ack_overtaken: int = 0  # a broadcast numbered after an !ack's LAST arrived before it
    slow_sends_held: int = 0  # a sending slow reader held a message back (its buffer full)
    unexpected_closes: dict[str, int] = field(default_factory=dict)  # reading clients
    protocol_errors: int = 0
    client_exceptions: int = 0  # errors in the load generator itself (its loop's handler)
    slow: list[dict[str, Any]] = field(default_factory=list)  # each slow reader's fate
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < SAMPLE_LIMIT:
            self.problems.append(text)

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    @property
    def missing(self) -> int:
        return self.broadcast_missing + self.echo_missing

    @property
    def delivery_anomalies(self) -> int:
        """Problems with what reading clients received, besides the missing messages."""
        return (
            self.broadcast_duplicate
            + self.broadcast_corrupt
            + self.echo_corrupt
            + self.ack_timeouts
            + self.ack_overtaken
            + sum(self.unexpected_closes.values())
            + self.protocol_errors
            + self.client_exceptions
            + sum(self.connect_failures.values())
        )


# -- framing ------------------------------------------------------------------------------


def masked(payload: bytes) -> tuple[bytes, bytes]:
    """(mask key, payload XOR mask): one big-int XOR, fast enough for 64 KiB in Python."""
    key = random.getrandbits(32).to_bytes(4, "big")
    n = len(payload)
    if n == 0:
        return key, b""
    stream = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return key, (int.from_bytes(payload, "big") ^ stream).to_bytes(n, "big")


def client_frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    """One masked frame (clients must mask, RFC 6455 section 5.3)."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes((b0, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    key, body = masked(payload)
    return head + key + body


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


@dataclass
class Deflate:
    """The client's side of an agreed permessage-deflate (RFC 7692).

    The client compresses without context takeover (it offered ``client_no_context_takeover``,
    and the server must agree to it); it decompresses with one context per message when the
    server agreed to ``server_no_context_takeover``, else with one kept across messages.
    """

    client_bits: int = 15
    server_no_takeover: bool = False
    inflater: Any = None

    @classmethod
    def from_answer(cls, value: str) -> Deflate:
        """The agreement in the server's Sec-WebSocket-Extensions; ValueError if unusable."""
        name, *params = [part.strip() for part in value.split(";")]
        if name != "permessage-deflate":
            raise ValueError(f"unexpected extension {value!r}")
        found: dict[str, str] = {}
        for param in params:
            key, _, raw = param.partition("=")
            found[key.strip()] = raw.strip().strip('"')
        # Without client_no_context_takeover in the answer we could keep our context; we
        # never do, which is always correct for the side that compresses.
        deflate = cls(server_no_takeover="server_no_context_takeover" in found)
        if found.get("client_max_window_bits"):
            deflate.client_bits = int(found["client_max_window_bits"])
        if not 8 <= deflate.client_bits <= 15:
            raise ValueError(f"bad client_max_window_bits in {value!r}")
        return deflate

    def compress(self, payload: bytes) -> bytes:
        # zlib refuses an 8-bit raw window; 9 is what it uses for 8 anyway
        bits = max(9, self.client_bits)
        compressor = zlib.compressobj(1, zlib.DEFLATED, -bits, 8)
        data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if not data.endswith(TAIL):
            raise ValueError("deflate output does not end with 00 00 ff ff")
        return data[:-4]

    def decompress(self, payload: bytes, limit: int) -> bytes:
        if self.server_no_takeover or self.inflater is None:
            inflater = zlib.decompressobj(-15)
            if not self.server_no_takeover:
                self.inflater = inflater
        else:
            inflater = self.inflater
        data = inflater.decompress(payload + TAIL, limit + 1)
        if len(data) > limit or inflater.unconsumed_tail:
            raise ValueError("inflated message too big")
        return data


# -- message content ----------------------------------------------------------------------


def text_pool(rng: random.Random) -> str:
    """Text with 1-, 2-, 3- and 4-byte UTF-8 characters (fragments split some of them)."""
    words = ["soak", "pyswoole", "échoué", "naïve", "€uro", "Ωμέγα", "данные", "日本語"]
    words += ["🙂🚀", "ok"]
    return " ".join(rng.choice(words) for _ in range(40000))


class Content:
    """Payloads for the echo messages: slices of pre-built pools, prefixed with a number."""

    def __init__(self, rng: random.Random, min_size: int, max_size: int) -> None:
        self.rng = rng
        self.min_size = min_size
        self.max_size = max_size
        self.text = text_pool(rng)
        self.bytes_per_char = len(self.text.encode()) / len(self.text)
        half = max_size + 1024
        pattern = (b"pyswoole soak binary pattern " * (half // 29 + 1))[:half]
        self.binary = rng.randbytes(half) + pattern  # incompressible, then compressible

    def size(self) -> int:
        """Log-uniform between min_size and max_size bytes."""
        ratio = self.max_size / self.min_size
        return min(self.max_size, int(self.min_size * ratio ** self.rng.random()))

    def make(self, number: int) -> tuple[int, bytes]:
        """(opcode, payload) of echo message ``number`` (text never starts with ``!``/``#``)."""
        size = self.size()
        if self.rng.random() < 0.5:
            chars = max(1, int(size / self.bytes_per_char))
            start = self.rng.randrange(0, len(self.text) - chars)
            return 1, f"e{number}:".encode() + self.text[start : start + chars].encode()
        start = self.rng.randrange(0, len(self.binary) - size)
        return 2, b"\x00" + number.to_bytes(4, "big") + self.binary[start : start + size]


# -- one connection -----------------------------------------------------------------------


class Conn(asyncio.Protocol):
    """One WebSocket connection: handshake, frame parser, checks, sends."""

    def __init__(self, client: Client, spec: Spec, key: bytes) -> None:
        self.client = client
        self.totals = client.totals
        self.spec = spec
        self.key = key
        self.verify = spec.role != "slow"  # counted towards the delivery verdict
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.open = False
        loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.acked: asyncio.Future[tuple[int, int, int]] = loop.create_future()
        self.closing = False  # we sent a close frame or reset
        self.server_close: int | None = None  # close code the server sent (-1: none in it)
        self.buf = bytearray()
        self.fragments: list[bytes] = []
        self.fragment_opcode = 0
        self.fragment_rsv1 = False
        self.deflate: Deflate | None = None
        self.fd = -1
        self.welcome: int | None = None  # number of the first broadcast to expect
        self.next_seq: int | None = None  # next number expected (from the welcome on)
        self.last_seq = -1  # highest number seen
        self.gaps = 0  # numbers skipped so far
        self.delivered = 0  # numbers received from the welcome on
        self.echo_queue: deque[bytes] = deque()  # payloads sent, echoes pending
        self.echo_gaps = 0  # echoes skipped (the server may have dropped them)
        self.pings: deque[bytes] = deque()
        self.numbers = 0  # messages sent on this connection
        self.bytes_read = 0
        self.pause_after_read = False  # slow trickle: one read, then pause again
        self.acked_delivered = 0  # broadcasts received from the welcome up to the !ack

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport has Transport's methods but is not its subclass
        self.transport = cast(asyncio.Transport, transport)
        request = (
            f"GET /soak?role={self.spec.role}&id={self.spec.index} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.client.plan.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
        )
        if self.spec.offer:
            request += f"Sec-WebSocket-Extensions: {self.spec.offer}\r\n"
        self.transport.write((request + "\r\n").encode())

    def data_received(self, data: bytes) -> None:
        self.bytes_read += len(data)
        if not self.open:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > HEAD_LIMIT:
                    self.fail_handshake("response head too long")
                return
            head, data = self.head[:end], self.head[end + 4 :]
            self.head = b""
            if not self.accept(head):
                return
        if data:
            self.buf += data
            self.parse()
        if self.pause_after_read and self.transport is not None:
            self.pause_after_read = False
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"lost during handshake: {exc}"))
        if not self.closing and self.verify and self.welcome is not None:
            code = "no close frame" if self.server_close is None else f"{self.server_close}"
            self.totals.count(self.totals.unexpected_closes, code)
            self.totals.echo_missing += len(self.echo_queue)
            self.totals.problem(
                f"client {self.spec.index} ({self.spec.role}, fd {self.fd}): server closed "
                f"({code}) with {len(self.echo_queue)} echoes pending"
            )
            self.echo_queue.clear()
        if not self.lost.done():
            self.lost.set_result(None)

    # -- handshake --

    def accept(self, head: bytes) -> bool:
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            return self.fail_handshake(f"status {lines[0][:60]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        expected = base64.b64encode(hashlib.sha1(self.key + GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            return self.fail_handshake("bad Sec-WebSocket-Accept")
        answer = headers.get("sec-websocket-extensions", "")
        if answer:
            if not self.spec.offer:
                return self.fail_handshake(f"extension not offered: {answer!r}")
            try:
                self.deflate = Deflate.from_answer(answer)
            except ValueError as exc:
                return self.fail_handshake(str(exc))
        elif self.spec.offer:
            return self.fail_handshake("permessage-deflate offered, not agreed")
        self.open = True
        self.handshake.set_result(None)
        return True

    def fail_handshake(self, reason: str) -> bool:
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"handshake: {reason}"))
        if self.transport is not None:
            self.transport.abort()
        return False

    # -- receiving --

    def parse(self) -> None:
        buf = self.buf
        n = len(buf)
        off = 0
        while n - off >= 2:
            b0 = buf[off]
            b1 = buf[off + 1]
            length = b1 & 0x7F
            start = off + 2
            if length == 126:
                if n - off < 4:
                    break
                length = (buf[off + 2] << 8) | buf[off + 3]
                start = off + 4
            elif length == 127:
                if n - off < 10:
                    break
                length = int.from_bytes(buf[off + 2 : off + 10], "big")
                start = off + 10
            end = start + length
            if end > n:
                break
            payload = bytes(buf[start:end])
            off = end
            if b1 & 0x80 or b0 & 0x30:
                self.protocol_error(f"masked or RSV2/3 frame from the server: {b0:#x} {b1:#x}")
                break
            self.frame(b0, payload)
            if self.transport is None or self.transport.is_closing():
                break
        del buf[:off]

    def frame(self, b0: int, payload: bytes) -> None:
        opcode = b0 & 0x0F
        fin = bool(b0 & 0x80)
        rsv1 = bool(b0 & 0x40)
        if opcode >= 8:
            self.control(opcode, payload)
            return
        if opcode == 0:
            if not self.fragments:
                self.protocol_error("continuation without a message")
                return
            self.fragments.append(payload)
        else:
            if self.fragments:
                self.protocol_error("new message inside a fragmented one")
                return
            self.fragment_opcode = opcode
            self.fragment_rsv1 = rsv1
            self.fragments = [payload]
        if not fin:
            return
        data = self.fragments[0] if len(self.fragments) == 1 else b"".join(self.fragments)
        opcode, rsv1 = self.fragment_opcode, self.fragment_rsv1
        self.fragments = []
        if rsv1:
            if self.deflate is None:
                self.protocol_error("RSV1 without permessage-deflate")
                return
            try:
                data = self.deflate.decompress(data, self.client.plan.max_size + 65536)
            except (zlib.error, ValueError) as exc:
                self.protocol_error(f"inflate: {exc}")
                return
        self.message(opcode, data)

    def control(self, opcode: int, payload: bytes) -> None:
        if opcode == 8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else -1
            self.server_close = code
            if not self.closing:  # the server started it: answer (RFC 6455 section 5.5.1)
                self.send_raw(client_frame(8, payload[:2]))
        elif opcode == 9:
            self.send_raw(client_frame(10, payload))
        elif opcode == 10:
            if self.pings and self.pings[0] == payload:
                self.pings.popleft()
                self.totals.pongs_received += 1
            elif self.verify:
                self.protocol_error("pong that answers no ping")
        else:
            self.protocol_error(f"unknown opcode {opcode}")

    def message(self, opcode: int, data: bytes) -> None:
        head = data[:1]
        if opcode == 1 and head == b"#":
            self.broadcast(data)
        elif opcode == 1 and head == b"!":
            self.command(data)
        else:
            self.echo(opcode, data)

    def broadcast(self, data: bytes) -> None:
        totals = self.totals
        totals.broadcasts_received += 1
        try:
            seq_text, size_text, _ = data[1:24].split(b":", 2)
            seq, size = int(seq_text), int(size_text)
        except ValueError:
            if self.verify:
                totals.broadcast_corrupt += 1
                totals.problem(f"client {self.spec.index}: bad broadcast {data[:40]!r}")
            return
        if seq <= self.last_seq:
            if self.verify:
                totals.broadcast_duplicate += 1
                totals.problem(f"client {self.spec.index}: broadcast {seq} after {self.last_seq}")
            return
        self.last_seq = seq
        expected = self.next_seq
        if expected is None or seq < expected:  # before the welcome, or in flight at it
            totals.broadcasts_early += 1
            return
        if seq > expected:
            self.gaps += seq - expected
        self.next_seq = seq + 1
        self.delivered += 1
        if self.verify and data[len(seq_text) + len(size_text) + 3 :] != PAD[:size]:
            totals.broadcast_corrupt += 1
            totals.problem(f"client {self.spec.index}: broadcast {seq} content differs")

    def command(self, data: bytes) -> None:
        parts = data.split()
        try:
            if parts[0] == b"!hi" and self.welcome is None:
                self.welcome = self.next_seq = int(parts[1])
                self.fd = int(parts[2])
                return
            if parts[0] == b"!ack" and not self.acked.done():
                ack = (int(parts[1]), int(parts[2]), int(parts[3]))
                # checked now: what follows it in this read must not count before it
                self.acked_delivered = self.delivered
                self.check_ack(*ack)
                self.acked.set_result(ack)
                return
        except (IndexError, ValueError):
            pass
        self.protocol_error(f"unexpected command {data[:40]!r}")

    def echo(self, opcode: int, data: bytes) -> None:
        totals = self.totals
        totals.echoes_received += 1
        if not self.verify:
            return
        queue = self.echo_queue
        if queue and queue[0] == data:
            queue.popleft()
            totals.echoes_checked += 1
            return
        # not the oldest one: the server may have dropped some (push() returned False)
        for skipped, sent in enumerate(queue):
            if sent == data:
                for _ in range(skipped + 1):
                    queue.popleft()
                self.echo_gaps += skipped
                totals.echoes_checked += 1
                return
        totals.echo_corrupt += 1
        totals.problem(
            f"client {self.spec.index} (fd {self.fd}): echo matches nothing sent "
            f"(opcode {opcode}, {len(data)} B, {len(queue)} pending)"
        )

    def protocol_error(self, text: str) -> None:
        self.totals.protocol_errors += 1
        self.totals.problem(f"client {self.spec.index} (fd {self.fd}): {text}")

    # -- sending --

    def send_raw(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def send_text(self, text: str) -> None:
        self.send_raw(client_frame(1, text.encode()))

    def send_message(self, content: Content, rng: random.Random, cut: bool = False) -> int:
        """Send the next echo message: maybe compressed, maybe fragmented (with a ping in
        between, sometimes). ``cut``: send only its first fragment (then the caller resets).
        Returns the payload's size."""
        self.numbers += 1
        opcode, payload = content.make(self.numbers)
        totals = self.totals
        totals.messages_sent += 1
        totals.bytes_sent += len(payload)
        if self.verify:
            self.echo_queue.append(payload)
        wire = payload
        rsv1 = False
        if self.deflate is not None and len(payload) >= 32:
            wire = self.deflate.compress(payload)
            rsv1 = True
            totals.compressed_sent += 1
        if cut or (len(wire) >= 4 and rng.random() < self.client.plan.fragment_share):
            totals.fragmented_sent += 1
            count = rng.randint(2, 4)
            cuts = sorted(rng.sample(range(1, len(wire)), min(count - 1, len(wire) - 1)))
            pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
            frames = [client_frame(opcode, pieces[0], False, rsv1)]
            for index, piece in enumerate(pieces[1:], 1):
                if index == 1 and rng.random() < 0.2:
                    ping = b"p%d" % self.numbers
                    self.pings.append(ping)
                    totals.pings_sent += 1
                    frames.append(client_frame(9, ping))
                frames.append(client_frame(0, piece, index == len(pieces) - 1))
            self.send_raw(frames[0] if cut else b"".join(frames))
            return len(payload)
        self.send_raw(client_frame(opcode, wire, True, rsv1))
        return len(payload)

    # -- ending --

    def check_ack(self, last: int, dropped_b: int, dropped_e: int) -> None:
        """The tail check after ``!ack``: every broadcast up to ``last`` and every echo."""
        totals = self.totals
        totals.acks += 1
        if not self.verify:
            return
        expected = self.next_seq
        if self.last_seq > last:
            totals.ack_overtaken += 1
            totals.problem(
                f"client {self.spec.index} (fd {self.fd}): broadcast {self.last_seq} arrived "
                f"before !ack {last}"
            )
        gaps = self.gaps + (0 if expected is None else max(0, last + 1 - expected))
        first = self.welcome if self.welcome is not None else last + 1
        totals.broadcasts_expected += max(0, last + 1 - first) - dropped_b
        totals.broadcasts_delivered += self.delivered
        totals.broadcast_dropped_by_server += dropped_b
        totals.echo_dropped_by_server += dropped_e
        missing_b = gaps - dropped_b
        missing_e = self.echo_gaps + len(self.echo_queue) - dropped_e
        totals.broadcast_missing += max(0, missing_b)
        totals.echo_missing += max(0, missing_e)
        if missing_b or missing_e:
            totals.problem(
                f"client {self.spec.index} ({self.spec.role}, fd {self.fd}): at !ack {last} "
                f"{missing_b} broadcasts and {missing_e} echoes missing (welcome {self.welcome}, "
                f"next {expected}, server dropped {dropped_b}/{dropped_e})"
            )
        self.echo_queue.clear()
        self.gaps = self.echo_gaps = self.delivered = 0

    def count_unacked(self, pending_missing: bool = False) -> None:
        """A connection ending without ``!ack``: count what can be checked without the tail
        (``pending_missing``: the echoes still pending count as missing too)."""
        if not self.verify or self.welcome is None:
            return
        totals = self.totals
        pending = len(self.echo_queue) if pending_missing else 0
        totals.broadcasts_expected += self.delivered + self.gaps
        totals.broadcasts_delivered += self.delivered
        totals.broadcast_missing += self.gaps
        totals.echo_missing += self.echo_gaps + pending
        if self.gaps or self.echo_gaps or pending:
            totals.problem(
                f"client {self.spec.index} ({self.spec.role}, fd {self.fd}): {self.gaps} "
                f"broadcasts skipped, {self.echo_gaps} echoes skipped, {pending} never came"
            )
        self.gaps = self.echo_gaps = self.delivered = 0
        if pending_missing:
            self.echo_queue.clear()

    async def bye(self, timeout: float) -> bool:
        """``!bye`` and wait for ``!ack`` (bounded); True if it came and was checked."""
        self.send_text("!bye")
        await asyncio.wait((self.acked, self.lost), timeout=timeout, return_when="FIRST_COMPLETED")
        if self.acked.done():
            return True  # checked on arrival (check_ack)
        if self.verify and not self.lost.done():  # (a lost one is counted in connection_lost)
            self.totals.ack_timeouts += 1
            self.totals.problem(f"client {self.spec.index} (fd {self.fd}): no !ack")
        return False

    async def close(self, code: int = 1000) -> int | None:
        """Close handshake (bounded): our close frame, the server's, then its FIN.
        Returns the code the server answered with (None: none came)."""
        self.closing = True
        if self.transport is None:
            return None
        if self.server_close is None:
            self.send_raw(client_frame(8, close_payload(code, b"soak")))
        try:
            await asyncio.wait_for(asyncio.shield(self.lost), CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            self.transport.abort()
        return self.server_close

    def reset(self) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0), as a crashing client would."""
        self.closing = True
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.totals.echo_lost_at_reset += len(self.echo_queue)
        self.echo_queue.clear()
        transport.abort()


# -- the clients --------------------------------------------------------------------------


class Client:
    """All the clients of one run, on the running loop."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.totals = Totals()
        self.rng = random.Random(plan.seed)
        self.content = Content(self.rng, plan.min_size, plan.max_size)
        self.specs = self.make_specs()
        self.live: set[Conn] = set()
        self.started = 0.0
        self.deadline = 0.0
        self.lag_max = 0.0
        self.lags: list[tuple[float, float]] = []  # (seconds into the run, loop lag)
        self.gc_pauses: list[tuple[int, float]] = []  # (generation, seconds) of each collection
        self._gc_started = 0.0

    def make_specs(self) -> list[Spec]:
        plan = self.plan
        n = plan.connections
        slow = round(n * plan.slow_share) if plan.slow_share > 0 else 0
        publishers = min(plan.publishers, max(0, n - slow))
        churn = min(round(n * plan.churn_share), n - slow - publishers)
        specs = [Spec(index, "echo") for index in range(n)]
        # spread the roles over the index range (so every source address and every part of
        # the ramp gets some of each), deterministically
        order = list(range(n))
        self.rng.shuffle(order)
        cursor = 0
        for role, count in (("slow", slow), ("pub", publishers), ("churn", churn)):
            for index in order[cursor : cursor + count]:
                specs[index].role = role
            cursor += count
        slow_seen = 0
        for spec in specs:
            if spec.role == "slow":
                spec.stalled = slow_seen % 2 == 0
                spec.sends = slow_seen % 4 < 2
                slow_seen += 1
            elif self.rng.random() < plan.compressed_share:
                spec.compressed = True
                spec.offer = (
                    "permessage-deflate; client_no_context_takeover"
                    if self.rng.random() < 0.5
                    else "permessage-deflate; client_no_context_takeover; "
                    "server_no_context_takeover; client_max_window_bits"
                )
        return specs

    async def run(self, on_phase: Callable[[str], None] | None = None) -> Totals:
        """Ramp up, hold for the duration, then the final phase; every step bounded."""
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self.loop_exception)
        gc.callbacks.append(self.gc_timer)
        plan = self.plan
        self.started = loop.time()
        self.deadline = self.started + plan.duration
        monitor = asyncio.ensure_future(self.watch_lag())
        freezer = asyncio.ensure_future(self.freeze_after_ramp())
        tasks = [asyncio.ensure_future(self.client(spec)) for spec in self.specs]
        if on_phase is not None:
            on_phase("load")
        # the clients end by themselves: at the deadline plus the final phase at most
        limit = plan.duration + plan.end_timeout + CONNECT_TIMEOUT + CLOSE_TIMEOUT + 5
        ending = asyncio.ensure_future(self.announce_end(on_phase))
        done, pending = await asyncio.wait(tasks, timeout=limit)
        for task in pending:
            task.cancel()
        if pending:
            self.totals.problem(f"{len(pending)} clients still busy after {limit:.0f} s")
            await asyncio.wait(pending, timeout=5)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                self.totals.problem(f"client task failed: {task.exception()!r}")
        for conn in list(self.live):
            if conn.transport is not None:
                conn.transport.abort()
        monitor.cancel()
        freezer.cancel()
        ending.cancel()
        gc.unfreeze()
        gc.callbacks.remove(self.gc_timer)
        return self.totals

    def gc_timer(self, phase: str, info: dict[str, Any]) -> None:
        """Time each collection of the cyclic garbage collector (a cause of loop lag)."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append((int(info["generation"]), time.perf_counter() - self._gc_started))

    async def freeze_after_ramp(self) -> None:
        """Once every client has connected, move what exists to the collector's permanent
        generation: collections over 10,000 connections' objects took up to 0.3 s."""
        await asyncio.sleep(self.plan.connections / self.plan.ramp + 2)
        gc.collect()
        gc.freeze()

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """An exception in a callback of the load generator: counted, never silent."""
        self.totals.client_exceptions += 1
        error = context.get("exception")
        self.totals.problem(f"load generator: {context.get('message')}: {error!r}")

    async def announce_end(self, on_phase: Callable[[str], None] | None) -> None:
        await asyncio.sleep(max(0.0, self.deadline - asyncio.get_running_loop().time()))
        if on_phase is not None:
            on_phase("end")

    async def watch_lag(self) -> None:
        """How late the loop wakes up (the client's own saturation), every 100 ms."""
        loop = asyncio.get_running_loop()
        end = self.deadline + self.plan.end_timeout + 30
        for _ in range(int((end - loop.time()) / 0.1) + 1):
            if loop.time() >= end:
                break
            before = loop.time()
            await asyncio.sleep(0.1)
            lag = loop.time() - before - 0.1
            self.lags.append((before - self.started, lag))
            self.lag_max = max(self.lag_max, lag)

    def left(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()

    async def connect(self, spec: Spec) -> Conn:
        """A connected, upgraded connection (ConnectionError/OSError/TimeoutError if not)."""
        loop = asyncio.get_running_loop()
        plan = self.plan
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if spec.role == "slow":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, plan.slow_rcvbuf)
            if len(plan.sources) > 1:
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((plan.sources[spec.index % len(plan.sources)], 0))
            await asyncio.wait_for(
                loop.sock_connect(sock, ("127.0.0.1", plan.port)), CONNECT_TIMEOUT
            )
        except BaseException:
            sock.close()
            raise
        key = base64.b64encode(self.rng.randbytes(16))
        try:
            _, conn = await loop.create_connection(lambda: Conn(self, spec, key), sock=sock)
        except BaseException:
            sock.close()
            raise
        try:
            await asyncio.wait_for(asyncio.shield(conn.handshake), CONNECT_TIMEOUT)
        except BaseException:
            if conn.transport is not None:
                conn.transport.abort()
            raise
        self.totals.connects += 1
        return conn

    async def client(self, spec: Spec) -> None:
        """One client's whole life: staggered start, then its role until the deadline."""
        plan = self.plan
        await asyncio.sleep(spec.index / plan.ramp)
        failures = 0
        # connections at most: one per minimum lifetime (plus the failed attempts)
        attempts = int(plan.duration / max(0.1, plan.lifetime[0])) + 2 * CONNECT_RETRIES
        for _ in range(attempts):
            if self.left() <= 0 or failures >= CONNECT_RETRIES:
                break
            try:
                conn = await self.connect(spec)
            except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
                failures += 1
                reason = type(exc).__name__ if not str(exc) else str(exc)[:80]
                self.totals.count(self.totals.connect_failures, reason)
                await asyncio.sleep(min(max(0.0, self.left()), 0.5 * failures))
                continue
            failures = 0
            self.live.add(conn)
            try:
                if spec.role == "slow":
                    await self.slow(conn)
                    return
                again = await self.session(conn)
            finally:
                self.live.discard(conn)
            if not again:
                return
            delay = self.rng.uniform(*plan.reconnect_delay)
            await asyncio.sleep(min(delay, max(0.0, self.left())))

    async def session(self, conn: Conn) -> bool:
        """Send until this connection's end (a churner's lifetime or the deadline), then
        close. True: a churner that should connect again."""
        plan = self.plan
        spec = conn.spec
        loop = asyncio.get_running_loop()
        churn = spec.role == "churn"
        end = self.deadline
        if churn:
            end = min(end, loop.time() + self.rng.uniform(*plan.lifetime))
        if spec.role == "pub":
            interval = plan.publishers / plan.broadcast_rate if plan.broadcast_rate > 0 else 0
        else:
            interval = plan.echo_interval
        # sends at most: 20 times the expected number (an exponential delay can be tiny)
        cap = int(max(0.0, end - loop.time()) / interval * 20) + 100 if interval > 0 else 0
        for _ in range(cap):
            if conn.lost.done():
                break
            delay = self.rng.expovariate(1 / interval)
            if loop.time() + delay >= end:
                break
            await asyncio.sleep(delay)
            if conn.lost.done():
                break
            if spec.role == "pub":
                size = int(
                    plan.broadcast_min
                    * (plan.broadcast_max / plan.broadcast_min) ** self.rng.random()
                )
                conn.send_text(f"!pub {size}")
                self.totals.pub_requests += 1
            else:
                conn.send_message(self.content, self.rng)
        await asyncio.sleep(max(0.0, end - loop.time()))
        if conn.lost.done():  # the server closed it (counted in connection_lost)
            conn.count_unacked()
            return churn and self.left() > 0
        final = not churn or self.left() <= 0
        await self.finish(conn, final)
        if churn and not final:
            self.totals.cycles += 1
        return churn and self.left() > 0

    def pick_close(self) -> str:
        """How a churner leaves mid-run: ``reset`` (TCP RST), ``bye`` (``!bye``, ``!ack``,
        close handshake: the tail is checked) or ``plain`` (close handshake only)."""
        if self.rng.random() < self.plan.reset_share:
            return "reset"
        return "bye" if self.rng.random() < 0.7 else "plain"

    async def finish(self, conn: Conn, final: bool) -> None:
        """End a connection: at the deadline always with ``bye``; a churner mid-run as
        ``pick_close`` says."""
        how = "bye" if final else self.pick_close()
        totals = self.totals
        if how == "reset":
            totals.closes_reset += 1
            if self.rng.random() < 0.5:  # half of the resets cut a message in the middle
                conn.send_message(self.content, self.rng, cut=True)
            conn.count_unacked()
            conn.reset()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.lost), CLOSE_TIMEOUT)
            return
        acked = False
        if how == "bye":
            totals.closes_bye += 1
            acked = await conn.bye(self.plan.end_timeout if final else ACK_TIMEOUT)
        else:
            totals.closes_plain += 1
        code = 1000 if final else self.rng.choice((1000, 1001, 4000))
        answered = await conn.close(code)
        if answered is None and conn.verify:
            totals.problem(f"client {conn.spec.index} (fd {conn.fd}): no close reply")
        elif answered is not None and answered != code:
            conn.protocol_error(f"close {code} answered with {answered}")
        if not acked:  # every echo sent before our close frame came back before the server's
            conn.count_unacked(pending_missing=True)

    async def drain(self, conn: Conn, deadline: float) -> bool:
        """A slow reader reads again and asks for ``!ack``; True if it came by ``deadline``.

        It pings every 0.2 s meanwhile: after minutes of a zero window, its kernel may not
        tell the server's that the window opened (the server's then probes with a backoff
        that reaches minutes), but each segment it sends carries the new window."""
        loop = asyncio.get_running_loop()
        conn.send_text("!bye")
        for _ in range(int((deadline - loop.time()) / DRAIN_PING) + 1):
            if conn.acked.done() or conn.lost.done() or loop.time() >= deadline:
                break
            conn.send_raw(client_frame(9, b"drain"))
            await asyncio.wait(
                (conn.acked, conn.lost), timeout=DRAIN_PING, return_when="FIRST_COMPLETED"
            )
        return conn.acked.done()

    async def slow(self, conn: Conn) -> None:
        """A slow reader: reads nothing more (stalled) or one read every few seconds, maybe
        sends anyway; at the deadline drains, asks for !ack and closes; its fate is kept."""
        plan = self.plan
        spec = conn.spec
        loop = asyncio.get_running_loop()
        assert conn.transport is not None
        conn.transport.pause_reading()
        started = loop.time()
        next_read = loop.time() + plan.trickle_every
        next_send = loop.time() + self.rng.uniform(0, 2)
        # wake-ups at most: 1,000 per second until the deadline
        for _ in range(int(max(0.0, self.deadline - loop.time()) * 1000) + 10):
            if conn.lost.done() or loop.time() >= self.deadline:
                break
            now = loop.time()
            wake = min(self.deadline, next_send if spec.sends else self.deadline)
            if not spec.stalled:
                wake = min(wake, next_read)
            await asyncio.sleep(max(0.0, wake - now))
            now = loop.time()
            if conn.lost.done():
                break
            if spec.sends and now >= next_send:
                # sends at slow_send_rate, as long as its own send buffer is not full
                if conn.transport.get_write_buffer_size() < plan.slow_send_cap:
                    size = conn.send_message(self.content, self.rng)
                else:
                    self.totals.slow_sends_held += 1
                    size = 16384
                next_send = now + self.rng.expovariate(plan.slow_send_rate / max(size, 1))
            if not spec.stalled and now >= next_read:
                conn.pause_after_read = True
                conn.transport.resume_reading()
                next_read = now + plan.trickle_every
        fate: dict[str, Any] = {
            "client": spec.index,
            "fd": conn.fd,
            "kind": "stalled" if spec.stalled else "trickle",
            "sends": spec.sends,
            "read_before_end": conn.bytes_read,
        }
        if conn.lost.done():
            fate["outcome"] = (
                f"closed by the server (code {conn.server_close})"
                if conn.server_close is not None
                else "closed by the server (no close frame)"
            )
            fate["closed_after_s"] = round(loop.time() - started, 1)
            self.totals.slow.append(fate)
            return
        drain_started = loop.time()
        conn.pause_after_read = False
        conn.transport.resume_reading()
        acked = await self.drain(conn, drain_started + plan.end_timeout)
        fate["drain_s"] = round(loop.time() - drain_started, 2)
        fate["read_total"] = conn.bytes_read
        fate["broadcasts_received"] = conn.acked_delivered if acked else conn.delivered
        if acked:
            last, dropped_b, dropped_e = conn.acked.result()
            fate["outcome"] = "open at the end (drained, !ack received)"
            first = conn.welcome if conn.welcome is not None else last + 1
            fate["broadcasts_sent_while_open"] = max(0, last + 1 - first)
            fate["server_dropped"] = {"broadcasts": dropped_b, "echoes": dropped_e}
            await conn.close(1000)
        elif conn.lost.done():
            fate["outcome"] = f"closed by the server while draining (code {conn.server_close})"
        else:
            fate["outcome"] = "drain timed out (reset)"
            conn.reset()
        self.totals.slow.append(fate)


def source_addresses(connections: int) -> list[str]:
    """127.0.0.x source addresses enough for ``connections`` (twice over, for sockets in
    TIME_WAIT), from the kernel's ephemeral port range; at most 16."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        ports = high - low + 1
    except (OSError, ValueError):
        ports = 28000
    count = max(1, min(16, -(-2 * connections // max(1, ports))))
    return [f"127.0.0.{i + 1}" for i in range(count)]
