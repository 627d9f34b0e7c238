"""``Swoole\\Atomic`` and ``Swoole\\Atomic\\Long``: integers in shared memory that every process
forked after their creation changes atomically (swoole-src ``ext-src/swoole_atomic.cc``).

``Atomic`` is an unsigned 32-bit counter: ``add``/``sub`` return the new value and wrap modulo
2**32 (Swoole casts the operand to ``uint32_t``), ``set`` stores the value cast the same way,
``cmpset(cmp, new)`` is a compare-and-swap. ``wait``/``wakeup`` are Swoole's futex pair, a
one-shot event: ``wait()`` returns True at once if the value is 1 (and makes it 0); if it is 0
it sleeps until ``wakeup()`` (which turns a 0 into 1 and wakes up to ``n`` waiters) or the
timeout (False; ``timeout <= 0`` waits for ever); any other value returns False. ``Atomic.Long``
is a signed 64-bit counter without wait/wakeup.

With the compiled helper every operation is a C atomic instruction (and ``wait`` a futex). In
pure Python the value lives in the same shared memory and each operation holds a POSIX record
lock on an unlinked file (released by the kernel if its holder dies); ``wait`` polls every
millisecond.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import tempfile
import threading
import time
import weakref
from typing import Any

__all__ = ["SPEEDUPS", "Atomic", "AtomicLong"]

Cell: Any = None
#: True when the compiled helper is in use (PYSWOOLE_NO_EXTENSIONS=1 disables it)
SPEEDUPS = False
if not os.environ.get("PYSWOOLE_NO_EXTENSIONS"):
    try:
        from ._memory import Cell
    except ImportError:  # not built: a locked struct in shared memory
        pass
    else:
        SPEEDUPS = True

_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_POLL = 0.001  # pure-Python wait: how often the value is looked at


class _PureCell:
    """The pure-Python twin of ``_memory.Cell``: the value under a process-shared lock."""

    __slots__ = ("__weakref__", "_fd", "_file", "_fmt", "_mask", "_mem", "_signed", "_tlock")

    def __init__(self, mem: mmap.mmap, wide: bool) -> None:
        self._mem = mem
        self._fmt = _I64 if wide else _U32
        self._mask = 0xFFFFFFFFFFFFFFFF if wide else 0xFFFFFFFF
        self._signed = wide
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the cell
        self._fd = self._file.fileno()
        self._tlock = threading.Lock()  # record locks do not exclude threads of one process
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forked(ref))

    def _cast(self, value: int) -> int:
        value &= self._mask
        if self._signed and value >= 1 << 63:
            value -= 1 << 64
        return value

    def _locked(self) -> _Locked:
        return _Locked(self)

    def add(self, value: int = 1) -> int:
        with self._locked():
            new = self._cast(self._fmt.unpack_from(self._mem, 0)[0] + value)
            self._fmt.pack_into(self._mem, 0, new)
        return new

    def sub(self, value: int = 1) -> int:
        return self.add(-value)

    def get(self) -> int:
        return int(self._fmt.unpack_from(self._mem, 0)[0])

    def set(self, value: int) -> None:
        with self._locked():
            self._fmt.pack_into(self._mem, 0, self._cast(value))

    def cmpset(self, cmp: int, value: int) -> bool:
        with self._locked():
            if self._fmt.unpack_from(self._mem, 0)[0] != self._cast(cmp):
                return False
            self._fmt.pack_into(self._mem, 0, self._cast(value))
        return True

    def wait(self, timeout: float = 1.0) -> bool:
        deadline = time.monotonic() + timeout if timeout > 0 else None
        while True:
            if self.cmpset(1, 0):
                return True
            if self.get() != 0:
                return False  # futex(FUTEX_WAIT, 0) on another value: EAGAIN
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)

    def wakeup(self, count: int = 1) -> bool:
        self.cmpset(0, 1)  # the waiters poll: they see the 1 (only one of them takes it)
        return True


def _forked(ref: weakref.ref[_PureCell]) -> None:
    cell = ref()
    if cell is not None:
        cell._tlock = threading.Lock()  # it may have been held by a thread that did not fork


class _Locked:
    __slots__ = ("_cell",)

    def __init__(self, cell: _PureCell) -> None:
        self._cell = cell

    def __enter__(self) -> None:
        self._cell._tlock.acquire()
        fcntl.lockf(self._cell._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.lockf(self._cell._fd, fcntl.LOCK_UN)
        self._cell._tlock.release()


def _cell(value: int, wide: bool) -> tuple[mmap.mmap, Any]:
    mem = mmap.mmap(-1, mmap.PAGESIZE)  # MAP_SHARED | MAP_ANONYMOUS: inherited by fork
    cell = Cell(mem, 0, wide) if SPEEDUPS else _PureCell(mem, wide)
    cell.set(value)
    return mem, cell


class AtomicLong:
    """``Swoole\\Atomic\\Long``: a signed 64-bit integer shared by forked processes."""

    __slots__ = ("_cell", "_mem")

    def __init__(self, value: int = 0) -> None:
        self._mem, self._cell = _cell(value, True)

    def add(self, add_value: int = 1) -> int:
        """Add and return the new value (wrapping as a C ``int64_t``)."""
        return int(self._cell.add(add_value))

    def sub(self, sub_value: int = 1) -> int:
        """Subtract and return the new value."""
        return int(self._cell.sub(sub_value))

    def get(self) -> int:
        """The current value."""
        return int(self._cell.get())

    def set(self, value: int) -> None:
        """Store ``value``."""
        self._cell.set(value)

    def cmpset(self, cmp_value: int, new_value: int) -> bool:
        """Set ``new_value`` if the value is ``cmp_value``; whether it did."""
        return bool(self._cell.cmpset(cmp_value, new_value))

    def __int__(self) -> int:
        return self.get()

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self.get()}>"


class Atomic(AtomicLong):
    """``Swoole\\Atomic``: an unsigned 32-bit integer shared by forked processes, with
    Swoole's ``wait``/``wakeup``. ``Atomic.Long`` is the signed 64-bit kind."""

    __slots__ = ()

    Long = AtomicLong

    def __init__(self, value: int = 0) -> None:
        self._mem, self._cell = _cell(value, False)

    def add(self, add_value: int = 1) -> int:
        """Add and return the new value (modulo 2**32)."""
        return int(self._cell.add(add_value))

    def wait(self, timeout: float = 1.0) -> bool:
        """Swoole's futex wait: True at once if the value is 1 (now 0); if 0, sleep until a
        ``wakeup()`` (True) or ``timeout`` seconds (False; <= 0: no timeout). Blocks the
        calling thread, as in Swoole; from ``async def`` code run it in an executor."""
        return bool(self._cell.wait(float(timeout)))

    def wakeup(self, count: int = 1) -> bool:
        """If the value is 0 make it 1 and wake up to ``count`` waiters. Always True."""
        return bool(self._cell.wakeup(count))
