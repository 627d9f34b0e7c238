"""The counts behind pyswoole.metrics that live in shared memory: a process's
:class:`Tally` (what ``stats()`` has no key for), its WebSocket frame counts
(:func:`frame_counts`) and the :class:`MetricsBlock` of per-process slots they are published
to, with the task queue's counters (docs/architecture.md, decision 35).
"""

from __future__ import annotations

import bisect
import mmap
import struct
from typing import Any

from .protocol.frames import SPEEDUPS
from .protocol.websocket import MESSAGE, RECEIVED, SENT
from .runtime.state import _fastpath

__all__ = [
    "CLOSE_NONE",
    "CLOSE_RECEIVED",
    "CLOSE_SENT",
    "FRAME_COUNTS",
    "HANDSHAKE_FAILED",
    "KIND",
    "OPCODES",
    "PAIRS",
    "TASK_BUCKET",
    "TASK_BUCKETS",
    "TASK_SUM",
    "MetricsBlock",
    "Tally",
    "frame_counts",
]

# starts, handshakes_ok, slow_consumer, http_requests, buffer_overflows, compressed payload
# bytes, deflated bytes, lag (last), lag (max), then the frame counts (FRAME_COUNTS), then
# (key, count) pairs (labelled counts)
_HEAD = struct.Struct("<QQQQQQQdd")
#: messages received, payload bytes received, messages sent, payload bytes sent: 16 each,
#: by opcode (:func:`frame_counts`)
FRAME_COUNTS = 64
_FRAMES = struct.Struct(f"<{FRAME_COUNTS}Q")
_PAIR = struct.Struct("<qQ")
#: distinct labelled counts one process keeps (handshake statuses, close codes)
PAIRS = 64
_SLOT_SIZE = _HEAD.size + _FRAMES.size + PAIRS * _PAIR.size
# after every slot, per process: tasks sent, their bytes, tasks started, their bytes
_TASKS = struct.Struct("<QQQQ")
#: the opcodes the frame counts are labelled with (RFC 6455 section 5.2)
OPCODES = {1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
_LOW = MESSAGE - 1
_COMPILED: list[Any] = [m for m in (_fastpath,) if m is not None]
if SPEEDUPS:
    from .protocol import _speedups

    _COMPILED.append(_speedups)


def frame_counts() -> list[int]:
    """This process's WebSocket frames so far, as :data:`FRAME_COUNTS` numbers (16 each, by
    opcode: messages received, their payload bytes, messages sent, their payload bytes):
    the compiled paths' counters (one array index per frame, _wscore.h) plus the pure
    Python ones (protocol/websocket.py: ``messages << 64 | bytes`` per entry)."""
    counts = [0] * FRAME_COUNTS
    for module in _COMPILED:
        for i, n in enumerate(module.ws_counts()):
            counts[i] += n
    for opcode, n in enumerate(RECEIVED):
        if n:
            counts[opcode] += n >> 64
            counts[16 + opcode] += n & _LOW
    for first, n in enumerate(SENT):
        if n:
            opcode = first & 0x0F
            counts[32 + opcode] += n >> 64
            counts[48 + opcode] += n & _LOW
    return counts


# labelled keys: kind * 100_000 + value
HANDSHAKE_FAILED = 1
CLOSE_RECEIVED = 2
CLOSE_SENT = 3
CLOSE_NONE = 4
TASK_BUCKET = 5  # value: the index of the bucket in TASK_BUCKETS (len: +Inf)
TASK_SUM = 6  # value 0: the count is the sum of the durations in microseconds
KIND = 100_000
#: upper bounds (seconds) of the task duration histogram's buckets
TASK_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0)


class Tally:
    """One process's counts of what ``stats()`` has no key for (see the module)."""

    __slots__ = (
        "buffer_overflows",
        "deflated",
        "frames",
        "handshakes_ok",
        "http_requests",
        "labelled",
        "lag",
        "lag_max",
        "payload",
        "slow_consumer",
        "starts",
    )

    def __init__(self) -> None:
        self.starts = 0
        self.handshakes_ok = 0
        self.slow_consumer = 0
        self.http_requests = 0
        #: messages refused for a full output buffer (the worker's WorkerState counts them)
        self.buffer_overflows = 0
        #: bytes given to permessage-deflate and the bytes it made (protocol/deflate.py)
        self.payload = 0
        self.deflated = 0
        self.lag = 0.0
        self.lag_max = 0.0
        #: messages and payload bytes by opcode and direction (:func:`frame_counts`)
        self.frames = [0] * FRAME_COUNTS
        #: ``kind * 100_000 + value`` -> count (kind: HANDSHAKE_FAILED, CLOSE_*)
        self.labelled: dict[int, int] = {}

    def add(self, kind: int, value: int, count: int = 1) -> None:
        key = kind * KIND + value
        labelled = self.labelled
        if key in labelled or len(labelled) < PAIRS:  # (more distinct codes: not kept)
            labelled[key] = labelled.get(key, 0) + count

    def task_done(self, seconds: float) -> None:
        """A task took ``seconds`` from ``task()`` in the worker to its end here."""
        self.add(TASK_BUCKET, bisect.bisect_left(TASK_BUCKETS, seconds))
        self.add(TASK_SUM, 0, int(max(0.0, seconds) * 1e6))

    def closed(self, close_received: bool, close_sent: bool, code: int, reason: str) -> None:
        """A WebSocket is gone. ``code`` is the closing handshake's (the peer's when its
        close frame arrived; pyswoole answers with the same code, RFC 6455 section 5.5.1);
        neither side's close frame: 1006 (section 7.1.5), direction ``none``."""
        if close_received:
            self.add(CLOSE_RECEIVED, code)
        if close_sent:
            self.add(CLOSE_SENT, code)
            if code == 1013 and reason == "slow consumer":
                self.slow_consumer += 1
        if not close_received and not close_sent:
            self.add(CLOSE_NONE, 1006)


class MetricsBlock:
    """Shared memory, one :class:`Tally` slot per process id, each written only by its
    owner (created before forking; a replacement process goes on from its slot)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._tasks_at = max(1, count) * _SLOT_SIZE
        self._mem = mmap.mmap(-1, self._tasks_at + max(1, count) * _TASKS.size)

    # -- the task queue: written at once (not with the tally), each process in its slot --

    def _task_add(self, process_id: int, field: int, nbytes: int, count: int) -> None:
        if 0 <= process_id < self.count:
            at = self._tasks_at + process_id * _TASKS.size
            values = list(_TASKS.unpack_from(self._mem, at))
            values[field] += count
            values[field + 1] += count * nbytes
            _TASKS.pack_into(self._mem, at, *values)

    def task_sent(self, process_id: int, nbytes: int, count: int = 1) -> None:
        """``process_id`` handed a task of ``nbytes`` to a task worker's inbox (``count``
        -1: it could not be queued after all)."""
        self._task_add(process_id, 0, nbytes, count)

    def task_started(self, process_id: int, nbytes: int) -> None:
        """Task worker ``process_id`` took a task of ``nbytes`` from its inbox."""
        self._task_add(process_id, 2, nbytes, 1)

    def task_queue(self) -> tuple[int, int]:
        """``(tasks, bytes)`` sent to task workers and not yet taken, over the server:
        every process's sent minus every process's started (each slot has one writer, so
        no lock; a start read before its send shows as 0, never below)."""
        sent = sent_bytes = started = started_bytes = 0
        for i in range(self.count):
            s, sb, t, tb = _TASKS.unpack_from(self._mem, self._tasks_at + i * _TASKS.size)
            sent += s
            sent_bytes += sb
            started += t
            started_bytes += tb
        return max(0, sent - started), max(0, sent_bytes - started_bytes)

    def publish(self, process_id: int, tally: Tally) -> None:
        if not 0 <= process_id < self.count:
            return
        at = process_id * _SLOT_SIZE
        mem = self._mem
        _HEAD.pack_into(
            mem,
            at,
            tally.starts,
            tally.handshakes_ok,
            tally.slow_consumer,
            tally.http_requests,
            tally.buffer_overflows,
            tally.payload,
            tally.deflated,
            tally.lag,
            tally.lag_max,
        )
        at += _HEAD.size
        _FRAMES.pack_into(mem, at, *tally.frames)
        at += _FRAMES.size
        pairs = list(tally.labelled.items())[:PAIRS]
        for key, count in pairs:
            _PAIR.pack_into(mem, at, key, count)
            at += _PAIR.size
        if len(pairs) < PAIRS:
            _PAIR.pack_into(mem, at, 0, 0)  # the end of the list

    def read(self, process_id: int) -> Tally:
        at = process_id * _SLOT_SIZE
        tally = Tally()
        mem = self._mem
        (
            tally.starts,
            tally.handshakes_ok,
            tally.slow_consumer,
            tally.http_requests,
            tally.buffer_overflows,
            tally.payload,
            tally.deflated,
            tally.lag,
            tally.lag_max,
        ) = _HEAD.unpack_from(mem, at)
        at += _HEAD.size
        tally.frames = list(_FRAMES.unpack_from(mem, at))
        at += _FRAMES.size
        for _ in range(PAIRS):
            key, count = _PAIR.unpack_from(mem, at)
            if key == 0:
                break
            tally.labelled[key] = count
            at += _PAIR.size
        return tally

    def close(self) -> None:
        self._mem.close()
