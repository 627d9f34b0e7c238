"""Per-process status in shared memory: pid, loop heartbeat, counters, busy flag.

One slot per process id (workers ``0..worker_num-1``, then task workers). A worker's
event loop writes its heartbeat every second (from the loop itself, never from a side
thread, so a stuck loop stops the heartbeat); the manager reads it to find stuck workers.
``CLOCK_MONOTONIC`` is system-wide on Linux, so the values compare across processes.
"""

from __future__ import annotations

import mmap
import struct
import time

__all__ = ["ProcessStatus"]

# pid, busy, heartbeat (monotonic), started (monotonic), requests, tasks
_SLOT = struct.Struct("<iidd" + "QQ")


class ProcessStatus:
    """A shared array of per-process status slots, created before forking."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._mem = mmap.mmap(-1, max(1, count) * _SLOT.size)

    def _at(self, process_id: int) -> int:
        if not 0 <= process_id < self.count:
            raise IndexError(process_id)
        return process_id * _SLOT.size

    def started(self, process_id: int, pid: int) -> None:
        """A (new) process took ``process_id``: reset its slot."""
        now = time.monotonic()
        _SLOT.pack_into(self._mem, self._at(process_id), pid, 0, now, now, 0, 0)

    def beat(self, process_id: int) -> None:
        """Heartbeat from the process's own event loop."""
        struct.pack_into("<d", self._mem, self._at(process_id) + 8, time.monotonic())

    def set_busy(self, process_id: int, busy: bool) -> None:
        struct.pack_into("<i", self._mem, self._at(process_id) + 4, 1 if busy else 0)

    def add_requests(self, process_id: int, n: int = 1) -> int:
        at = self._at(process_id) + 24
        count: int = struct.unpack_from("<Q", self._mem, at)[0] + n
        struct.pack_into("<Q", self._mem, at, count)
        return count

    def pid(self, process_id: int) -> int:
        return int(struct.unpack_from("<i", self._mem, self._at(process_id))[0])

    def busy(self, process_id: int) -> bool:
        return bool(struct.unpack_from("<i", self._mem, self._at(process_id) + 4)[0])

    def heartbeat_age(self, process_id: int) -> float:
        """Seconds since the process's loop last beat (or since it started)."""
        last: float = struct.unpack_from("<d", self._mem, self._at(process_id) + 8)[0]
        return time.monotonic() - last

    def requests(self, process_id: int) -> int:
        return int(struct.unpack_from("<Q", self._mem, self._at(process_id) + 24)[0])

    def close(self) -> None:
        self._mem.close()
