"""The shared connection table: one record per open connection, readable from every
process of the server without asking the owner (architecture decision 1).

Layout (one anonymous shared ``mmap``, created before the workers fork)::

    header  : next_fd, live, accept_count, close_count        (4 x u64)
    fds     : capacity x i64        fd in the slot, 0 if free (scanned for iteration)
    records : capacity x RECORD     owner worker, status, addresses, times, uid

``fd`` owns slot ``fd % capacity``. A new fd is the next counter value whose slot is free,
so fds stay unique and increasing (a number is skipped only when a long-lived connection
still holds its slot) and a lookup never probes. Allocation and release take the table's
lock; readers take none: each record carries a sequence number (a seqlock) that is odd
while its owner writes, so a reader retries instead of returning a torn record.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

__all__ = ["FLOW_FULL", "FLOW_OVERFLOW", "ConnectionRecord", "ConnectionTable"]

#: ``flow`` bits, written by the process that owns the connection (the SWOOLE_PROCESS
#: master) when its output state changes: past the high watermark until drained
#: (``buffer_full`` of ``get_client_info``) ...
FLOW_FULL = 1
#: ... and at ``socket_buffer_size`` (Swoole's ``conn->overflow``): other processes refuse
#: to push to it (``SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW``) and ``push_async`` waits
FLOW_OVERFLOW = 2

_HEADER = struct.Struct("<QQQQ")  # next_fd, live, accept_count, close_count
# seq, fd, owner, status, family, remote_port, server_port, remote_ip(16),
# connect_time, last_recv, last_send, uid, send_queued_bytes, flow (FLOW_* bits)
_RECORD = struct.Struct("<IqhBBHH16sdddqqB")
_FD = struct.Struct("<q")
_RETRIES = 1000


class ConnectionRecord(NamedTuple):
    """What the table knows about one connection (a named tuple: built on every remote
    ``push``, it costs a third of a frozen dataclass)."""

    fd: int
    owner: int
    status: int
    remote_ip: str
    remote_port: int
    server_port: int
    connect_time: float
    last_recv: float
    last_send: float
    uid: int
    #: bytes queued for the client, as of the owner's last change of ``flow``
    send_queued_bytes: int = 0
    #: FLOW_* bits
    flow: int = 0


def _pack_ip(ip: str) -> tuple[int, bytes]:
    try:
        return 4, socket.inet_pton(socket.AF_INET, ip).ljust(16, b"\0")
    except OSError:
        try:
            return 6, socket.inet_pton(socket.AF_INET6, ip)
        except OSError:
            return 0, b"\0" * 16


def _unpack_ip(family: int, raw: bytes) -> str:
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    if family == 6:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return ""


class ConnectionTable:
    """A fixed-capacity table of connections in memory shared by forked processes."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._fds_at = _HEADER.size
        self._records_at = self._fds_at + capacity * _FD.size
        size = self._records_at + capacity * _RECORD.size
        self._mem = mmap.mmap(-1, size)  # MAP_SHARED | MAP_ANONYMOUS: inherited by fork
        # A POSIX record lock on an unlinked file: held per process, and released by the
        # kernel if its holder dies (a worker killed mid-allocation cannot wedge the others).
        import tempfile  # (here: `import pyswoole`'s servers import this module's constants)

        self._lock_file = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the table
        _HEADER.pack_into(self._mem, 0, 1, 0, 0, 0)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        fd = self._lock_file.fileno()
        fcntl.lockf(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)

    # -- writers (the owning worker) ----------------------------------------------------------

    def allocate(
        self, owner: int, status: int, remote_ip: str, remote_port: int, server_port: int
    ) -> int:
        """Claim the next fd and its slot; 0 if the table is full."""
        family, raw_ip = _pack_ip(remote_ip)
        now = time.time()
        mem = self._mem
        cap = self.capacity
        with self._lock():
            next_fd: int
            next_fd, live, accepted, closed = _HEADER.unpack_from(mem, 0)
            if live >= cap:
                return 0
            fd = next_fd
            while _FD.unpack_from(mem, self._fds_at + (fd % cap) * _FD.size)[0]:
                fd += 1  # slot held by a long-lived connection: skip this number
            slot = fd % cap
            at = self._records_at + slot * _RECORD.size
            seq = _RECORD.unpack_from(mem, at)[0]
            _RECORD.pack_into(
                mem,
                at,
                seq + 1,
                fd,
                owner,
                status,
                family,
                remote_port,
                server_port,
                raw_ip,
                now,
                now,
                0.0,
                0,
                0,
                0,
            )
            _FD.pack_into(mem, self._fds_at + slot * _FD.size, fd)
            struct.pack_into("<I", mem, at, seq + 2)
            _HEADER.pack_into(mem, 0, fd + 1, live + 1, accepted + 1, closed)
        return fd

    def release(self, fd: int) -> bool:
        """Free ``fd``'s slot; False if it was not in the table."""
        mem = self._mem
        slot = fd % self.capacity
        fd_at = self._fds_at + slot * _FD.size
        with self._lock():
            if _FD.unpack_from(mem, fd_at)[0] != fd:
                return False
            at = self._records_at + slot * _RECORD.size
            seq = _RECORD.unpack_from(mem, at)[0]
            struct.pack_into("<I", mem, at, seq + 1)
            _FD.pack_into(mem, fd_at, 0)
            struct.pack_into("<q", mem, at + 4, 0)
            struct.pack_into("<I", mem, at, seq + 2)
            next_fd, live, accepted, closed = _HEADER.unpack_from(mem, 0)
            _HEADER.pack_into(mem, 0, next_fd, live - 1, accepted, closed + 1)
        return True

    def release_owner(self, owner: int) -> int:
        """Free every slot ``owner`` holds (a worker that died without closing them);
        returns how many."""
        released = 0
        for fd in self.fds():
            if self.owner(fd) == owner and self.release(fd):
                released += 1
        return released

    def update(self, fd: int, **fields: Any) -> bool:
        """Change ``status``, ``last_recv``, ``last_send``, ``uid``, ``send_queued_bytes`` or
        ``flow`` of ``fd`` (owner only)."""
        mem = self._mem
        slot = fd % self.capacity
        at = self._records_at + slot * _RECORD.size
        values = list(_RECORD.unpack_from(mem, at))
        if values[1] != fd:
            return False
        for name, value in fields.items():
            values[_FIELD_INDEX[name]] = value
        seq = values[0]
        values[0] = seq + 1  # odd while the record is being written
        struct.pack_into("<I", mem, at, seq + 1)
        _RECORD.pack_into(mem, at, *values)
        struct.pack_into("<I", mem, at, seq + 2)
        return True

    def set_peer(self, fd: int, remote_ip: str, remote_port: int) -> bool:
        """Record the client a trusted proxy named for ``fd`` (server/proxies.py; owner only)."""
        family, raw_ip = _pack_ip(remote_ip)
        return self.update(fd, family=family, remote_port=remote_port, raw_ip=raw_ip)

    # -- readers (any process) ----------------------------------------------------------------

    def get(self, fd: int) -> ConnectionRecord | None:
        """The record of ``fd``, or None if it is not open."""
        if fd <= 0:
            return None
        at = self._records_at + (fd % self.capacity) * _RECORD.size
        mem = self._mem
        for _ in range(_RETRIES):
            values = _RECORD.unpack_from(mem, at)
            if values[0] & 1:
                continue  # being written
            if struct.unpack_from("<I", mem, at)[0] != values[0]:
                continue
            (_, got_fd, owner, status, family, rport, sport, raw_ip, *rest) = values
            if got_fd != fd:
                return None
            return ConnectionRecord(
                fd, owner, status, _unpack_ip(family, raw_ip), rport, sport, *rest
            )
        return None

    def owner(self, fd: int) -> int:
        """The worker that owns ``fd``; -1 if it is not open."""
        if fd <= 0:
            return -1
        at = self._records_at + (fd % self.capacity) * _RECORD.size
        for _ in range(_RETRIES):
            seq, got_fd, owner = struct.unpack_from("<Iqh", self._mem, at)
            if seq & 1:
                continue
            return owner if got_fd == fd else -1
        return -1

    def fds(self) -> list[int]:
        """Every open fd, ascending."""
        raw = self._mem[self._fds_at : self._records_at]
        found = [fd for (fd,) in _FD.iter_unpack(raw) if fd]
        found.sort()
        return found

    def __len__(self) -> int:
        return int(_HEADER.unpack_from(self._mem, 0)[1])

    def __iter__(self) -> Iterator[int]:
        return iter(self.fds())

    def __contains__(self, fd: object) -> bool:
        return isinstance(fd, int) and self.owner(fd) >= 0

    def counters(self) -> dict[str, int]:
        _, live, accepted, closed = _HEADER.unpack_from(self._mem, 0)
        return {"connection_num": live, "accept_count": accepted, "close_count": closed}

    def close(self) -> None:
        self._mem.close()
        self._lock_file.close()


_FIELD_INDEX = {
    "status": 3,
    "family": 4,
    "remote_port": 5,
    "raw_ip": 7,
    "last_recv": 9,
    "last_send": 10,
    "uid": 11,
    "send_queued_bytes": 12,
    "flow": 13,
}
