"""``Swoole\\Lock``: a lock shared by the processes forked after it is made
(swoole-src ``ext-src/swoole_lock.cc``; docs ``memory/lock.md``).

``Lock()`` / ``Lock(Lock.MUTEX)`` is a mutex, ``Lock(Lock.RWLOCK)`` a read-write lock
(``lock_read``/``trylock_read`` take it shared), ``Lock(Lock.SPINLOCK)`` behaves as the mutex.
``FILELOCK`` and ``SEM`` are refused with Swoole's message ("no longer supported"). Swoole 6's
``lock(operation=LOCK_EX, timeout=-1)`` takes ``fcntl.LOCK_SH`` (shared) and ``LOCK_NB`` (do not
wait) and a timeout in seconds (False and ``err_code`` ``ETIMEDOUT`` when it passes); the older
``trylock()``, ``lockwait(timeout=1.0)``, ``lock_read()``, ``trylock_read()`` are kept. It is a
context manager (``with lock:``) and, for ``async def`` code, ``await lock.acquire_async()`` or
``async with lock:`` wait without blocking the event loop (they poll, backing off to 10 ms).

Across processes the lock is a POSIX record lock (``fcntl``) on an unlinked file made with the
lock: the kernel releases it when its holder dies, so a process killed while holding it does
not wedge the others (a pthread mutex would need to be robust for that). Record locks do not
exclude threads or tasks of one process, so a thread lock of the process comes first: in one
process the lock is exclusive even when taken shared.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import tempfile
import threading
import time
import weakref
from types import TracebackType

from ..exceptions import SwooleError

__all__ = ["LOCK_EX", "LOCK_NB", "LOCK_SH", "Lock"]

LOCK_SH = fcntl.LOCK_SH
LOCK_EX = fcntl.LOCK_EX
LOCK_NB = fcntl.LOCK_NB
_BACKOFF_MIN = 0.0005
_BACKOFF_MAX = 0.01


def _forked(ref: weakref.ref[Lock]) -> None:
    """In a new child: record locks are not inherited by fork, so the child does not hold
    the lock even if its parent did; a fresh thread lock says so (Swoole's docs example: the
    parent locks, forks, and the child's lock() waits for the parent's unlock())."""
    lock = ref()
    if lock is not None:
        lock._tlock = threading.Lock()
        lock._held = False


class Lock:
    """A mutex or read-write lock across processes (``Swoole\\Lock``)."""

    RWLOCK = 1  # Lock::RW_LOCK
    FILELOCK = 2
    MUTEX = 3
    SEM = 4
    SPINLOCK = 5

    __slots__ = ("__weakref__", "_fd", "_file", "_held", "_tlock", "err_code", "type")

    def __init__(self, type: int = MUTEX) -> None:
        if type in (self.FILELOCK, self.SEM):
            raise SwooleError("FileLock and SemLock is no longer supported, please use mutex lock")
        if type not in (self.MUTEX, self.RWLOCK, self.SPINLOCK):
            raise ValueError(f"unknown lock type {type!r}")
        self.type = type
        self.err_code = 0
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the lock
        self._fd = self._file.fileno()
        self._tlock = threading.Lock()
        self._held = False
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forked(ref))

    @property
    def errCode(self) -> int:
        return self.err_code

    def _take(self, shared: bool) -> bool:
        """One non-blocking attempt at both layers."""
        if not self._tlock.acquire(False):
            return False
        try:
            cmd = LOCK_SH if shared and self.type == self.RWLOCK else LOCK_EX
            fcntl.lockf(self._fd, cmd | LOCK_NB)
        except OSError as exc:
            self._tlock.release()
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            return False
        self._held = True
        return True

    def lock(self, operation: int = LOCK_EX, timeout: float = -1) -> bool:
        """Take the lock (Swoole 6: ``LOCK_EX`` or ``LOCK_SH``, ``| LOCK_NB`` not to wait);
        wait at most ``timeout`` seconds if it is >= 0 (0: one try), else for ever."""
        shared = bool(operation & LOCK_SH)
        if operation & LOCK_NB:
            timeout = 0
        self.err_code = 0
        if timeout < 0:
            self._tlock.acquire()
            try:
                cmd = LOCK_SH if shared and self.type == self.RWLOCK else LOCK_EX
                fcntl.lockf(self._fd, cmd)  # blocks in the kernel, the GIL released
            except BaseException:
                self._tlock.release()
                raise
            self._held = True
            return True
        deadline = time.monotonic() + timeout
        delay = _BACKOFF_MIN
        while not self._take(shared):
            left = deadline - time.monotonic()
            if left <= 0:
                self.err_code = errno.ETIMEDOUT if timeout > 0 else errno.EBUSY
                return False
            time.sleep(min(delay, left))
            delay = min(delay * 2, _BACKOFF_MAX)
        return True

    def trylock(self) -> bool:
        """Take the lock if it is free, without waiting."""
        return self.lock(LOCK_EX | LOCK_NB)

    def lockwait(self, timeout: float = 1.0) -> bool:
        """Wait at most ``timeout`` seconds (Swoole 5's ``lockwait``)."""
        return self.lock(LOCK_EX, timeout)

    def lock_read(self) -> bool:
        """Take it shared (a read lock; exclusive unless the lock is an ``RWLOCK``)."""
        return self.lock(LOCK_SH)

    def trylock_read(self) -> bool:
        """``lock_read()`` without waiting: False if a writer holds the lock."""
        return self.lock(LOCK_SH | LOCK_NB)

    def unlock(self, operation: int = LOCK_EX) -> bool:
        """Release it; False if it was not held by this process."""
        if not self._held:
            return False
        self._held = False
        fcntl.lockf(self._fd, fcntl.LOCK_UN)
        self._tlock.release()
        return True

    def locked(self) -> bool:
        """Whether this process holds it."""
        return self._held

    async def acquire_async(self, operation: int = LOCK_EX, timeout: float = -1) -> bool:
        """``lock()`` for ``async def`` code: polls without blocking the event loop (backing
        off from 0.5 to 10 ms); False after ``timeout`` seconds if it is >= 0 (at once with
        ``LOCK_NB``, as ``lock()``)."""
        shared = bool(operation & LOCK_SH)
        if operation & LOCK_NB:
            timeout = 0
        self.err_code = 0
        deadline = time.monotonic() + timeout if timeout >= 0 else None
        delay = _BACKOFF_MIN
        while not self._take(shared):
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.err_code = errno.ETIMEDOUT if timeout > 0 else errno.EBUSY
                    return False
                await asyncio.sleep(min(delay, left))
            else:
                await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)
        return True

    def __enter__(self) -> Lock:
        self.lock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unlock()

    async def __aenter__(self) -> Lock:
        await self.acquire_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unlock()

    def __repr__(self) -> str:
        kind = {self.MUTEX: "MUTEX", self.RWLOCK: "RWLOCK", self.SPINLOCK: "SPINLOCK"}[self.type]
        return f"<Lock {kind} {'held' if self._held else 'free'}>"
