"""The soak test's server (``bench/soak.py``), written against pyswoole's public API only.

    python bench/servers/soak_server.py --port PORT [--workers N] [--compression]

What it does for the soak clients (``bench/harness/soak_client.py``), by message:

* any text message not starting with ``!`` and every binary message: echoed with
  ``push(fd, data, opcode)``; a False return (the client's send buffer is over
  ``socket_buffer_size``) is counted, per fd too;
* ``!pub SIZE``: a broadcast to every WebSocket client, numbered by the server:
  ``#SEQ:SIZE:`` followed by SIZE bytes of ``PAD``, sent with ``server.broadcast``;
* ``!bye``: answered with ``!ack LAST DROPPED_BROADCASTS DROPPED_ECHOES``: LAST is the number
  of the last broadcast sent before it (the client must have received every one from its
  welcome on, up to LAST, minus the ones dropped for it), so a client closing cleanly can
  check the tail of its stream.

``on("open")`` pushes ``!hi NEXT FD``: the number of the next broadcast. Broadcasts are
numbered and sent by one process (worker 0), so every client sees them in order; with
``--workers N`` the other workers forward ``!pub`` and ``!bye`` to it (``send_message``),
its broadcasts reach them over IPC and its ``!ack`` for their clients follows the same path,
so it arrives after every broadcast it counts.

A broadcast that ``broadcast()`` does not queue for a client (its buffer is full) is found by
looking at the send queue of the clients it could have skipped (``get_client_info``), and
counted per fd; that works for worker 0's own clients only (the other workers skip theirs
out of sight of any callback). Counters live in shared memory, one row per worker, and are
served as JSON on ``GET /stats`` (``on("request")``, same port) and printed at worker stop.
``GET /trim`` (after the run) returns freed memory to the system, so that the RSS left is
memory in use.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import sys
from multiprocessing.sharedctypes import RawArray, RawValue
from typing import Any

from common import HOST

from pyswoole import WebSocketServer
from pyswoole.server import Frame

#: compressible filler for broadcasts (the text after ``#SEQ:SIZE:``)
PAD = ("pyswoole soak broadcast 0123456789 abcdefghijklmnopqrstuvwxyz " * 1100)[:65536]
MAX_BROADCAST = 65536
MAX_MESSAGE = 1024 * 1024  # bytes: the clients send at most 64 KiB
SOCKET_BUFFER = 8 * 1024 * 1024  # pyswoole's default socket_buffer_size

#: counters: one row per worker, each written only by its worker
COUNTERS = (
    "opens",
    "closes",
    "messages",  # every message received
    "echo_pushed",  # push() returned True
    "echo_push_failed",  # push() returned False
    "pub_requests",  # !pub received (forwarded ones count where they were received)
    "broadcasts",  # broadcasts numbered and sent (worker 0)
    "broadcast_queued",  # sum of broadcast()'s return values (worker 0)
    "broadcast_local_targets",  # worker 0's own open clients at each broadcast
    "broadcast_dropped",  # deliveries found skipped (full buffer), worker 0's clients
    "byes",  # !bye received
    "acks",  # !ack pushed (worker 0)
    "ack_failed",  # !ack push returned False
    "bad_commands",
)
GAUGES = (
    "open_now",  # open WebSocket clients of this worker
    "slow_open",  # ... of them slow readers
    "slow_queued_bytes",  # bytes waiting in the slow readers' send buffers (every second)
    "queued_bytes",  # bytes waiting in every client's send buffer (every 10 s)
)
FIELDS = COUNTERS + GAUGES
INDEX = {name: i for i, name in enumerate(FIELDS)}
HUB = 0  # the worker that numbers and sends the broadcasts
TOTAL_EVERY = 10  # seconds between sums of every client's send queue


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="pyswoole soak-test server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1, help="worker_num")
    parser.add_argument("--compression", action="store_true", help="websocket_compression")
    parser.add_argument(
        "--socket-buffer-size",
        type=int,
        default=SOCKET_BUFFER,
        help="socket_buffer_size: bytes queued per client before push() returns False "
        "(default 8 MiB, pyswoole's default)",
    )
    return parser.parse_args(argv)


class Soak:
    """The server's state in one worker (shared memory: the counters and the broadcast number)."""

    def __init__(self, server: WebSocketServer, workers: int, limit: int) -> None:
        self.server = server
        self.workers = workers
        self.limit = limit  # socket_buffer_size
        self.rows: Any = RawArray("q", workers * len(FIELDS))  # created before the fork
        self.next_seq: Any = RawValue("q", 0)
        self.base = 0  # this worker's row offset, set at workerStart
        self.open: set[int] = set()  # this worker's open WebSocket clients
        self.slow: set[int] = set()  # ... of them slow readers (role=slow in the URL)
        self.suspects: set[int] = set()  # clients once found with a full send buffer
        self.dropped_broadcasts: dict[int, int] = {}  # fd -> broadcasts skipped for it
        self.dropped_echoes: dict[int, int] = {}  # fd -> echoes push() refused
        self.seconds = 0

    # -- counters -------------------------------------------------------------------------

    def add(self, name: str, n: int = 1) -> None:
        self.rows[self.base + INDEX[name]] += n

    def put(self, name: str, value: int) -> None:
        self.rows[self.base + INDEX[name]] = value

    def snapshot(self) -> dict[str, Any]:
        rows = [
            {name: int(self.rows[w * len(FIELDS) + i]) for i, name in enumerate(FIELDS)}
            for w in range(self.workers)
        ]
        total = {name: sum(row[name] for row in rows) for name in FIELDS}
        return {"next_seq": int(self.next_seq.value), "total": total, "workers": rows}

    # -- events ---------------------------------------------------------------------------

    def worker_start(self) -> None:
        self.base = max(0, self.server.worker_id) * len(FIELDS)
        self.server.tick(1000, self.every_second)

    def worker_stop(self) -> None:
        print(
            json.dumps({"soak_stats_worker": self.server.worker_id, **self.snapshot()}),
            flush=True,
        )

    def opened(self, fd: int, role: str) -> None:
        self.open.add(fd)
        if role == "slow":
            self.slow.add(fd)
        self.add("opens")
        self.put("open_now", len(self.open))
        self.put("slow_open", len(self.slow))
        self.server.push(fd, f"!hi {self.next_seq.value} {fd}")

    def closed(self, fd: int) -> None:
        if fd not in self.open:
            return  # an HTTP connection (/stats) or a handshake that never finished
        self.open.discard(fd)
        self.slow.discard(fd)
        self.suspects.discard(fd)
        self.dropped_broadcasts.pop(fd, None)
        self.dropped_echoes.pop(fd, None)
        self.add("closes")
        self.put("open_now", len(self.open))
        self.put("slow_open", len(self.slow))

    def message(self, frame: Frame) -> None:
        self.add("messages")
        data = frame.data
        if frame.opcode == 1 and isinstance(data, str) and data.startswith("!"):
            self.command(frame.fd, data)
            return
        if self.server.push(frame.fd, data, frame.opcode):
            self.add("echo_pushed")
        else:
            self.add("echo_push_failed")
            self.dropped_echoes[frame.fd] = self.dropped_echoes.get(frame.fd, 0) + 1

    def command(self, fd: int, text: str) -> None:
        verb, _, arg = text.partition(" ")
        if verb == "!pub" and arg.isdigit():
            self.add("pub_requests")
            self.to_hub(("pub", min(int(arg), MAX_BROADCAST)))
        elif verb == "!bye":
            self.add("byes")
            self.to_hub(("bye", fd, self.dropped_echoes.get(fd, 0)))
        else:
            self.add("bad_commands")

    def to_hub(self, message: tuple[Any, ...]) -> None:
        if self.workers == 1 or self.server.worker_id == HUB:
            self.at_hub(message)
        else:
            self.server.send_message(message, HUB)

    def pipe_message(self, message: Any) -> None:
        if isinstance(message, tuple) and message and message[0] in ("pub", "bye"):
            self.at_hub(message)
        else:
            self.add("bad_commands")

    # -- worker 0: numbering, broadcasting, acknowledging ----------------------------------

    def at_hub(self, message: tuple[Any, ...]) -> None:
        if message[0] == "pub":
            self.publish(int(message[1]))
        else:
            _, fd, dropped_echoes = message
            last = self.next_seq.value - 1
            text = f"!ack {last} {self.dropped_broadcasts.get(fd, 0)} {dropped_echoes}"
            self.add("acks")
            if not self.server.push(fd, text):
                self.add("ack_failed")

    def publish(self, size: int) -> None:
        seq = self.next_seq.value
        self.next_seq.value = seq + 1
        targets = len(self.open)
        queued = self.server.broadcast(f"#{seq}:{size}:{PAD[:size]}")
        self.add("broadcasts")
        self.add("broadcast_queued", queued)
        self.add("broadcast_local_targets", targets)
        # Which of this worker's clients were skipped? Their send buffers are still full:
        # nothing was flushed since broadcast() looked. Check the usual suspects first; look
        # at everyone only when they do not explain the shortfall (a client closing at this
        # moment is skipped too, and is not "full").
        if self.workers == 1 and queued >= targets:
            return
        found = self.full(self.suspects | self.slow)
        if self.workers == 1 and queued + len(found) < targets:
            found = self.full(self.open)
        for fd in found:
            self.dropped_broadcasts[fd] = self.dropped_broadcasts.get(fd, 0) + 1
        self.suspects |= found
        self.add("broadcast_dropped", len(found))

    def full(self, fds: set[int]) -> set[int]:
        found = set()
        for fd in fds:
            info = self.server.get_client_info(fd)
            if info is not None and int(info.get("send_queued_bytes", 0)) >= self.limit:
                found.add(fd)
        return found

    # -- once a second ----------------------------------------------------------------------

    def every_second(self) -> None:
        self.seconds += 1
        self.put("slow_queued_bytes", self.queued(self.slow))
        if self.seconds % TOTAL_EVERY == 0:
            self.put("queued_bytes", self.queued(self.open))

    def queued(self, fds: set[int]) -> int:
        total = 0
        for fd in list(fds):
            info = self.server.get_client_info(fd)
            if info is not None:
                total += int(info.get("send_queued_bytes", 0))
        return total


def trim() -> dict[str, Any]:
    """``GET /trim``, once the clients are gone: collect cyclic garbage, then give the C
    allocator's free memory back to the system (glibc's ``malloc_trim``). What RSS is left
    is memory still in use, not memory freed but kept by the allocator."""
    collected = gc.collect()
    trimmed: int | None = None
    with contextlib.suppress(OSError, AttributeError):
        trimmed = int(ctypes.CDLL("libc.so.6").malloc_trim(0))
    return {"pid": os.getpid(), "gc_collected": collected, "malloc_trim": trimmed}


def build(args: argparse.Namespace) -> WebSocketServer:
    server = WebSocketServer(HOST, args.port)
    settings: dict[str, Any] = {
        "worker_num": args.workers,
        "websocket_compression": args.compression,
        "package_max_length": MAX_MESSAGE,
        "socket_buffer_size": args.socket_buffer_size,
    }
    server.set(settings)
    soak = Soak(server, args.workers, args.socket_buffer_size)

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        soak.worker_start()

    @server.on("workerStop")
    def on_worker_stop(server: WebSocketServer, worker_id: int) -> None:
        soak.worker_stop()

    @server.on("open")
    def on_open(server: WebSocketServer, request: Any) -> None:
        role = (request.get or {}).get("role", "")
        soak.opened(request.fd, role if isinstance(role, str) else "")

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        soak.message(frame)

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int) -> None:
        soak.closed(fd)

    @server.on("pipeMessage")
    def on_pipe_message(server: WebSocketServer, src_worker_id: int, message: Any) -> None:
        soak.pipe_message(message)

    @server.on("request")
    def on_request(request: Any, response: Any) -> None:
        path = request.server.get("request_uri")
        if path == "/stats":
            response.header("Content-Type", "application/json")
            response.end(json.dumps(soak.snapshot()))
        elif path == "/trim":
            response.header("Content-Type", "application/json")
            response.end(json.dumps(trim()))
        else:
            response.status(404)
            response.end("not found\n")

    return server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    build(args).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
