"""SWOOLE_PROCESS: which worker serves a connection (``dispatch_mode``, ``dispatch_func``).

Swoole's master (``Server::schedule_worker``, src/server/master.cc) picks a worker for
every packet it forwards. pyswoole's master picks one **once per connection**, at the
first event it forwards for that fd, and records it (:class:`Dispatcher`; the record lives
in ``MasterApp``): every later event of the fd goes to the same worker, in order, so the
close barriers, the in-order replies and bufferFull/bufferEmpty keep working whatever
the mode. The modes differ in how that worker is chosen:

==== ============================ ====================================================
mode Swoole                       pyswoole (per connection)
==== ============================ ====================================================
1    round robin per packet       round robin over connections
2    ``fd % worker_num``          the same
3    first idle worker (status    first idle worker in round-robin order; idle: no
     IDLE), round robin order     forwarded event whose callback has not returned
                                  (:class:`WorkerLoad`); none idle: the least loaded
4    ``s_addr % worker_num``      the same: the IPv4 address (IPv6: its last 4 bytes)
                                  as a native-order 32-bit integer
5    ``uid % worker_num`` once    ``fd % worker_num`` until ``bind(fd, uid)``, then the
     bound, else ``fd % n``       connection moves to ``uid % worker_num`` (the move
                                  waits for the old worker to finish what it was sent,
                                  see ``MasterApp.bound``)
7    stream (not in recent core)  as 3
8    fewest coroutines, once per  fewest open connections, once per connection
     connection (CO_CONN_LB)
9    fewest coroutines, per       as 3 (if settings.py accepts it)
     request (CO_REQ_LB)
10   lowest concurrency, per      as 3 (if settings.py accepts it)
     request (CONCURRENT_LB)
==== ============================ ====================================================

``dispatch_func(server, fd, type, data)`` is called in the master, once per connection,
with Swoole's ``type`` (0 data, 4 close, 5 connect) and ``data`` (the first 8180 bytes of
the request or message; ``b""`` for a connect, None for a close). An int >= 0 picks worker
``result % worker_num``; a negative int (Swoole's ``DISPATCH_RESULT_USERFUNC_FALLBACK`` is
-3) falls back to ``dispatch_mode``; an exception or a non-int is logged and falls back to
``fd % worker_num``. (Swoole calls it per packet, discards a packet whose result is out of
range, and stops on an exception.) With ``dispatch_func`` set, ``bind()`` moves nothing.

Swoole drops onConnect, onClose, onBufferFull and onBufferEmpty (with a warning) in the
modes that are not a hash of the connection (``is_hash_dispatch_mode``: only 2, 4 and 8
keep them), because its per-packet dispatch cannot keep them in order with the data.
pyswoole keeps one connection on one worker, so it delivers them in every mode.
"""

from __future__ import annotations

import logging
import mmap
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from .events import cut_arguments

__all__ = [
    "DISPATCH_CLOSE",
    "DISPATCH_CONNECT",
    "DISPATCH_DATA",
    "DISPATCH_MAX_DATA",
    "LOAD_MODES",
    "Dispatcher",
    "WorkerLoad",
    "ip_key",
]

log = logging.getLogger("pyswoole")

#: Swoole's event types as ``dispatch_func`` sees them (SW_SERVER_EVENT_RECV_DATA,
#: SW_SERVER_EVENT_CLOSE, SW_SERVER_EVENT_CONNECT)
DISPATCH_DATA = 0
DISPATCH_CLOSE = 4
DISPATCH_CONNECT = 5
#: Swoole hands ``dispatch_func`` at most this many bytes of a packet
DISPATCH_MAX_DATA = 8180
#: the modes that choose by the workers' load (:class:`WorkerLoad`): 3 idle worker, 7
#: stream (as 3), and Swoole 6's 9 (CO_REQ_LB) and 10 (CONCURRENT_LB), per connection here
LOAD_MODES = (3, 7, 9, 10)

_SLOT = struct.Struct("<Qd")  # events handled, monotonic start of the running callback
_SINCE = struct.Struct("<d")


class WorkerLoad:
    """What each worker is doing, in shared memory (dispatch modes 3 and 7).

    Created before the workers fork. Worker ``i`` alone writes slot ``i``: when an event's
    callback starts (its start time) and when it returns (the count of events handled goes
    up, the start time back to 0). The master compares the count with what it has sent to
    ``i`` (the difference: events ``i`` has not finished) and reads how long ``i``'s
    current callback has been running. A slot is never reset: a reloaded worker's
    replacement goes on counting the events its predecessor left in the inbox, and counts
    the one its predecessor died in, if it did (:meth:`recover`).
    """

    __slots__ = ("_mem", "count")

    def __init__(self, count: int) -> None:
        self.count = count
        self._mem = mmap.mmap(-1, max(1, count) * _SLOT.size)

    def read(self, worker_id: int) -> tuple[int, float]:
        """(events handled, start of the running callback or 0.0) of ``worker_id``."""
        handled, since = _SLOT.unpack_from(self._mem, worker_id * _SLOT.size)
        return int(handled), float(since)

    def begin(self, worker_id: int) -> None:
        _SINCE.pack_into(self._mem, worker_id * _SLOT.size + 8, time.monotonic())

    def end(self, worker_id: int) -> None:
        at = worker_id * _SLOT.size
        _SLOT.pack_into(self._mem, at, _SLOT.unpack_from(self._mem, at)[0] + 1, 0.0)

    def recover(self, worker_id: int) -> None:
        """A new process takes ``worker_id``: if its predecessor died inside a callback
        (killed, crashed), that event will never end: count it as handled."""
        at = worker_id * _SLOT.size
        handled, since = _SLOT.unpack_from(self._mem, at)
        if since:
            _SLOT.pack_into(self._mem, at, handled + 1, 0.0)

    def close(self) -> None:
        self._mem.close()


def ip_key(ip: str) -> int:
    """Swoole's ``DISPATCH_IPMOD`` key: ``sin_addr.s_addr`` read as a native uint32 (for
    IPv6, the last 32 bits of the address). On a little-endian machine that is the
    byte-reversed ``ip2long``: 127.0.0.1 -> 0x0100007f."""
    try:
        raw = socket.inet_pton(socket.AF_INET, ip)
    except OSError:
        try:
            raw = socket.inet_pton(socket.AF_INET6, ip)[-4:]
        except OSError:
            return 0
    return int.from_bytes(raw, sys.byteorder)


class Dispatcher:
    """Chooses the worker of a new connection (see the module docstring)."""

    __slots__ = (
        "_connections",
        "_func",
        "_round",
        "load",
        "mode",
        "sent",
        "server",
        "worker_num",
    )

    def __init__(
        self,
        server: Any,
        worker_num: int,
        mode: int,
        func: Callable[..., Any] | None,
        load: WorkerLoad | None,
    ) -> None:
        self.server = server
        self.worker_num = worker_num
        self.mode = mode
        self._func = None if func is None else cut_arguments(func, 4)
        self._round = 0
        #: modes 3/7: events sent to each worker (compared with ``load``); else None
        self.load = load if mode in LOAD_MODES else None
        self.sent: list[int] | None = [0] * worker_num if self.load is not None else None
        #: open connections per worker (mode 8)
        self._connections = [0] * worker_num

    def choose(self, fd: int, remote_ip: str, kind: int, data: Any) -> int:
        """The worker for the new connection ``fd``; ``kind`` and ``data`` describe the
        first event forwarded for it (what ``dispatch_func`` receives)."""
        worker = -1
        if self._func is not None:
            worker = self._call_func(fd, kind, data)
        if worker < 0:
            worker = self._by_mode(fd, remote_ip)
        self._connections[worker] += 1
        return worker

    @property
    def has_func(self) -> bool:
        return self._func is not None

    def take(self, worker: int) -> int:
        """Count one more connection for ``worker`` (one moved there); returns it."""
        self._connections[worker] += 1
        return worker

    def released(self, worker: int) -> None:
        """A connection of ``worker`` is gone (mode 8 counts them)."""
        self._connections[worker] -= 1

    def _call_func(self, fd: int, kind: int, data: Any) -> int:
        """``dispatch_func``'s choice; -1: use ``dispatch_mode``."""
        assert self._func is not None
        try:
            result = self._func(self.server, fd, kind, data)
        except Exception:
            log.exception("dispatch_func failed for fd %d: using fd %% worker_num", fd)
            return fd % self.worker_num
        if isinstance(result, bool) or not isinstance(result, int):
            log.error(
                "dispatch_func returned %r for fd %d, not an int: using fd %% worker_num",
                result,
                fd,
            )
            return fd % self.worker_num
        if result < 0:
            return -1  # Swoole's DISPATCH_RESULT_USERFUNC_FALLBACK: dispatch_mode decides
        return result % self.worker_num

    def _by_mode(self, fd: int, remote_ip: str) -> int:
        mode = self.mode
        n = self.worker_num
        if mode == 1:
            worker = self._round % n
            self._round = worker + 1
            return worker
        if mode == 4:
            return ip_key(remote_ip) % n
        if mode in LOAD_MODES:
            return self._idle()
        if mode == 8:
            counts = self._connections
            return counts.index(min(counts))
        return fd % n  # 2, and 5 until the connection is bound

    def _idle(self) -> int:
        """The first idle worker in round-robin order (Swoole's ``get_idle_worker_id``):
        idle is not in a callback, with every event it was sent handled. If none is, the
        one whose running callback started last (a worker stuck in a long callback comes
        last), then the one with the fewest unfinished events."""
        load = self.load
        sent = self.sent
        assert load is not None and sent is not None
        n = self.worker_num
        now = time.monotonic()
        best = start = self._round % n
        best_key: tuple[float, int] | None = None
        for step in range(n):
            worker = (start + step) % n
            handled, since = load.read(worker)
            pending = sent[worker] - handled
            if not since and pending <= 0:
                best = worker
                break
            key = (now - since if since else 0.0, pending)
            if best_key is None or key < best_key:
                best, best_key = worker, key
        self._round = best + 1
        return best
