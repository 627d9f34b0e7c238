"""Lock: Swoole's mutex / rwlock across real forked processes (ext-src/swoole_lock.cc), its
timeouts, recovery from a holder killed with SIGKILL, and the awaitable acquire that keeps
the event loop running."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import mmap
import os
import signal
import struct
import time

import pytest

from pyswoole import Lock
from pyswoole.exceptions import SwooleError

from .forks import fork, join, wait_byte


def test_mutex_lock_trylock_unlock() -> None:
    lock = Lock()
    assert lock.type == Lock.MUTEX
    assert lock.lock() is True
    assert lock.locked()
    assert lock.trylock() is False  # also within one process
    assert lock.unlock() is True
    assert lock.unlock() is False  # not held
    assert lock.trylock() is True
    assert lock.unlock() is True
    assert repr(lock) == "<Lock MUTEX free>"


def test_file_lock_and_semaphore_are_refused_as_in_swoole() -> None:
    with pytest.raises(SwooleError, match="no longer supported"):
        Lock(Lock.FILELOCK)
    with pytest.raises(SwooleError):
        Lock(Lock.SEM)
    with pytest.raises(ValueError):
        Lock(99)


def test_lock_with_timeout_fails_with_etimedout() -> None:
    lock = Lock()
    lock.lock()
    started = time.monotonic()
    assert lock.lock(fcntl.LOCK_EX, 0.2) is False
    assert 0.19 <= time.monotonic() - started < 2
    assert lock.err_code == lock.errCode == errno.ETIMEDOUT
    assert lock.lockwait(0.05) is False
    assert lock.lock(fcntl.LOCK_EX | fcntl.LOCK_NB) is False
    lock.unlock()
    assert lock.lock(timeout=0.2) is True
    assert lock.err_code == 0
    lock.unlock()


def test_context_manager() -> None:
    lock = Lock()
    with lock:
        assert lock.locked()
    assert not lock.locked()


def test_a_lock_excludes_another_process_and_is_freed_when_its_holder_dies() -> None:
    lock = Lock()
    r, w = os.pipe()

    def holder() -> None:
        assert lock.lock()
        os.write(w, b"h")
        time.sleep(60)

    pid = fork(holder)
    os.close(w)
    wait_byte(r)
    os.close(r)
    assert lock.trylock() is False
    assert lock.lock(timeout=0.1) is False
    os.kill(pid, signal.SIGKILL)
    assert join(pid) == -signal.SIGKILL
    assert lock.lock(timeout=5) is True  # the kernel dropped the dead holder's lock
    lock.unlock()


def test_processes_counting_under_the_lock_count_exactly() -> None:
    lock = Lock()
    mem = mmap.mmap(-1, 8)
    cell = struct.Struct("<q")

    def work() -> None:
        for _ in range(1_500):
            with lock:
                cell.pack_into(mem, 0, cell.unpack_from(mem, 0)[0] + 1)

    pids = [fork(work) for _ in range(3)]
    assert [join(pid) for pid in pids] == [0, 0, 0]
    assert cell.unpack_from(mem, 0)[0] == 4_500


def test_rwlock_readers_share_writers_exclude() -> None:
    lock = Lock(Lock.RWLOCK)
    r, w = os.pipe()
    back_r, back_w = os.pipe()

    def reader() -> None:
        assert lock.lock_read()
        os.write(w, b"r")
        os.read(back_r, 1)  # hold it until the parent has checked
        lock.unlock()

    pid = fork(reader)
    os.close(w)
    wait_byte(r)
    assert lock.trylock_read() is True  # another reader gets in
    lock.unlock()
    assert lock.trylock() is False  # a writer does not
    # the same from async def code (the awaitable acquire, shared and exclusive)
    assert asyncio.run(lock.acquire_async(fcntl.LOCK_SH, timeout=5)) is True
    lock.unlock()
    assert asyncio.run(lock.acquire_async(fcntl.LOCK_EX, timeout=0.05)) is False
    os.write(back_w, b"x")
    assert join(pid) == 0
    assert lock.trylock() is True
    lock.unlock()
    for fd in (r, back_r, back_w):
        os.close(fd)


async def test_acquire_async_does_not_block_the_loop() -> None:
    lock = Lock()
    lock.lock()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    waiter = asyncio.create_task(lock.acquire_async())
    await asyncio.sleep(0.1)
    assert not waiter.done()
    assert ticks >= 5  # the loop went on while the waiter waited
    lock.unlock()
    assert await asyncio.wait_for(waiter, 5) is True
    assert lock.locked()
    lock.unlock()
    task.cancel()


async def test_acquire_async_timeout_and_async_with() -> None:
    lock = Lock()
    async with lock:
        assert lock.locked()
        assert await lock.acquire_async(timeout=0.05) is False
        assert lock.err_code == errno.ETIMEDOUT
        assert await asyncio.wait_for(lock.acquire_async(fcntl.LOCK_EX | fcntl.LOCK_NB), 1) is False
        assert lock.err_code == errno.EBUSY  # one try, as lock(LOCK_NB)
    assert not lock.locked()
    order: list[str] = []

    async def worker(name: str) -> None:
        async with lock:
            order.append(name + "+")
            await asyncio.sleep(0.01)
            order.append(name + "-")

    await asyncio.wait_for(asyncio.gather(worker("a"), worker("b")), 5)
    assert order in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])  # never interleaved


async def test_acquire_async_waits_for_another_process() -> None:
    lock = Lock()
    r, w = os.pipe()
    go_r, go_w = os.pipe()

    def holder() -> None:
        lock.lock()
        os.write(w, b"h")
        os.read(go_r, 1)
        lock.unlock()

    pid = fork(holder)
    os.close(w)
    wait_byte(r)
    waiter = asyncio.create_task(lock.acquire_async(timeout=10))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    os.write(go_w, b"g")
    assert await asyncio.wait_for(waiter, 10) is True
    lock.unlock()
    assert join(pid) == 0
    for fd in (r, go_r, go_w):
        os.close(fd)


def test_swoole_docs_example_parent_locks_forks_child_waits_for_unlock() -> None:
    """memory/lock.md: the parent locks, forks; the child's lock() returns only once the
    parent has unlocked (the child does not inherit the parent's hold)."""
    lock = Lock(Lock.MUTEX)
    assert lock.lock()
    r, w = os.pipe()
    got_r, got_w = os.pipe()

    def child() -> None:
        assert not lock.locked()
        os.write(w, b"c")
        assert lock.lock()  # waits for the parent
        os.write(got_w, b"g")
        lock.unlock()

    pid = fork(child)
    os.close(w)
    wait_byte(r)
    import select

    assert select.select([got_r], [], [], 0.2)[0] == []  # still waiting while we hold it
    lock.unlock()
    assert wait_byte(got_r) == b"g"
    assert join(pid) == 0
    for fd in (r, got_r, got_w):
        os.close(fd)
