"""Atomic and Atomic.Long: Swoole's semantics (ext-src/swoole_atomic.cc) in one process and
across real forked processes, on both builds (C atomics + futex, or pure Python)."""

from __future__ import annotations

import os
import time

import pytest

from pyswoole import Atomic
from pyswoole.memory import AtomicLong
from pyswoole.memory.atomic import SPEEDUPS

from .forks import fork, join, wait_byte


def test_atomic_is_unsigned_32_bit_and_wraps() -> None:
    atomic = Atomic()
    assert atomic.get() == 0
    assert atomic.add() == 1
    assert atomic.add(10) == 11
    assert atomic.sub(2) == 9
    assert atomic.sub(10) == 2**32 - 1  # uint32_t wraps
    assert atomic.add(1) == 0
    atomic.set(-1)  # cast to uint32_t, as Swoole casts
    assert atomic.get() == 2**32 - 1
    atomic.set(2**32 + 5)
    assert atomic.get() == 5
    assert Atomic(7).get() == 7
    assert int(Atomic(3)) == 3
    assert repr(Atomic(4)) == "<Atomic 4>"


def test_cmpset() -> None:
    atomic = Atomic(5)
    assert atomic.cmpset(4, 9) is False
    assert atomic.get() == 5
    assert atomic.cmpset(5, 9) is True
    assert atomic.get() == 9
    assert atomic.cmpset(9 + 2**32, 1) is True  # both operands cast to uint32_t


def test_long_is_signed_64_bit() -> None:
    assert Atomic.Long is AtomicLong
    value = Atomic.Long(-5)
    assert value.get() == -5
    assert value.add(10) == 5
    assert value.sub(20) == -15
    value.set(2**63 - 1)
    assert value.add() == -(2**63)  # int64_t wraps
    assert value.cmpset(-(2**63), 42) is True
    assert value.get() == 42
    assert not hasattr(value, "wait")
    assert repr(value) == "<AtomicLong 42>"


def test_wait_returns_at_once_on_1_and_takes_it() -> None:
    atomic = Atomic(1)
    assert atomic.wait(0.5) is True
    assert atomic.get() == 0


def test_wait_times_out_on_0() -> None:
    atomic = Atomic(0)
    started = time.monotonic()
    assert atomic.wait(0.1) is False
    assert 0.09 <= time.monotonic() - started < 2
    assert atomic.get() == 0


def test_wait_on_another_value_fails_at_once() -> None:
    atomic = Atomic(5)
    started = time.monotonic()
    assert atomic.wait(1.0) is False
    assert time.monotonic() - started < 0.5
    assert atomic.get() == 5


def test_wakeup_turns_0_into_1_and_leaves_others() -> None:
    atomic = Atomic(0)
    assert atomic.wakeup() is True
    assert atomic.get() == 1
    assert atomic.wakeup(3) is True
    assert atomic.get() == 1
    atomic.set(7)
    assert atomic.wakeup() is True
    assert atomic.get() == 7


def test_four_processes_add_exactly() -> None:
    counter = Atomic()
    total = Atomic.Long()

    def work() -> None:
        for _ in range(10_000):
            counter.add()
            total.add(3)
            total.sub(1)

    pids = [fork(work) for _ in range(4)]
    assert [join(pid) for pid in pids] == [0, 0, 0, 0]
    assert counter.get() == 40_000
    assert total.get() == 80_000


def test_cmpset_elects_exactly_one_process() -> None:
    flag = Atomic(0)
    winners = Atomic(0)

    def contend() -> None:
        if flag.cmpset(0, 1):
            winners.add()

    pids = [fork(contend) for _ in range(4)]
    assert [join(pid) for pid in pids] == [0, 0, 0, 0]
    assert winners.get() == 1


def test_wakeup_from_another_process_ends_a_wait() -> None:
    event = Atomic(0)
    result = Atomic(0)
    r, w = os.pipe()

    def waiter() -> None:
        os.write(w, b"w")
        result.set(2 if event.wait(10) else 1)

    pid = fork(waiter)
    os.close(w)
    wait_byte(r)
    os.close(r)
    started = time.monotonic()
    # the child may not be asleep yet: wakeup sets 1, which its wait takes either way
    assert event.wakeup() is True
    assert join(pid) == 0
    assert result.get() == 2
    assert event.get() == 0  # the waiter took the 1
    assert time.monotonic() - started < 5


@pytest.mark.skipif(not SPEEDUPS, reason="compiled helper not available")
def test_compiled_cells_are_in_use() -> None:
    from pyswoole.memory._memory import Cell

    assert isinstance(Atomic()._cell, Cell)
