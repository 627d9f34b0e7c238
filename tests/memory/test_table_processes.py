"""Table across real forked processes: exact incr sums, no torn row ever seen by a reader, and
a writer killed with SIGKILL (at a random moment, and deterministically in the middle of a
row write while holding the row lock) leaves every row old or new and the table usable."""

from __future__ import annotations

import logging
import os
import random
import signal
import time

import pytest

from pyswoole import Atomic, Table
from pyswoole.memory import layout
from pyswoole.memory.table import SPEEDUPS

from .forks import fork, join, wait_byte

KEYS = [f"row{i}" for i in range(40)]


def consistent_table() -> Table:
    """Rows whose columns must agree: b == -a, f == a / 4, s == str(a) repeated."""
    table = Table(256)
    table.column("a", Table.TYPE_INT)
    table.column("b", Table.TYPE_INT)
    table.column("f", Table.TYPE_FLOAT)
    table.column("s", Table.TYPE_STRING, 64)
    table.create()
    for key in KEYS:
        table.set(key, row_for(0))
    return table


def row_for(a: int) -> dict[str, int | float | str]:
    return {"a": a, "b": -a, "f": a / 4, "s": (str(a) + "-") * (1 + a % 5)}


def check(row: object) -> None:
    assert isinstance(row, dict), row
    a = row["a"]
    assert row == row_for(a), f"torn row: {row}"


def test_four_processes_incr_exactly() -> None:
    table = Table(64)
    table.column("n", Table.TYPE_INT)
    table.column("f", Table.TYPE_FLOAT)
    table.create()

    def work() -> None:
        for i in range(10_000):
            table.incr("total", "n")
            if i % 10 == 0:
                table.incr("total", "f", 0.5)
            table.decr(f"k{i % 7}", "n")

    pids = [fork(work) for _ in range(4)]
    assert [join(pid) for pid in pids] == [0, 0, 0, 0]
    assert table.get("total", "n") == 40_000
    assert table.get("total", "f") == 2_000.0
    assert sum(table.get(f"k{i}", "n") for i in range(7)) == -40_000  # type: ignore[misc]
    assert table.count() == 8


def test_concurrent_writers_and_readers_never_see_a_torn_row() -> None:
    table = consistent_table()
    readers_in = Atomic(0)  # writers start once both readers read: the runs overlap
    done = Atomic(0)

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        deadline = time.monotonic() + 10
        while readers_in.get() < 2 and time.monotonic() < deadline:
            pass
        for i in range(50_000):
            key = rng.choice(KEYS)
            if i % 50 == 0:
                table.delete(key)
            table.set(key, row_for(rng.randrange(1, 10**9)))
        done.add(1)

    def reader() -> None:
        seen = 0
        passes = 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for key in KEYS:
                row = table.get(key)
                if row is not None:
                    check(row)
                    seen += 1
            for _, row in table:  # iteration while others write
                check(row)
            passes += 1
            if passes == 1:
                readers_in.add(1)
            elif done.get() == 2:
                break
        assert seen > 0 and passes > 1

    pids = [fork(lambda s=s: writer(s)) for s in (1, 2)] + [fork(reader), fork(reader)]
    assert [join(pid) for pid in pids] == [0, 0, 0, 0]
    assert done.get() == 2
    for key in KEYS:
        check(table.get(key))


def test_a_writer_killed_at_a_random_moment_leaves_rows_old_or_new() -> None:
    table = consistent_table()
    for attempt in range(3):
        r, w = os.pipe()

        def writer(w: int = w, attempt: int = attempt) -> None:
            rng = random.Random(attempt)
            os.write(w, b"s")
            while True:
                table.set(rng.choice(KEYS), row_for(rng.randrange(1, 10**9)))
                table.incr("counter", "a")

        pid = fork(writer)
        os.close(w)
        wait_byte(r)
        os.close(r)
        time.sleep(0.02 + attempt * 0.013)  # let it write for a while, then kill it anywhere
        os.kill(pid, signal.SIGKILL)
        assert join(pid) == -signal.SIGKILL
        for key in KEYS:
            check(table.get(key))
        for key, row in table:
            if key != "counter":
                check(row)
    # every bucket lock is free again: each row can be written at once
    for key in KEYS:
        assert table.set(key, row_for(5))
        check(table.get(key))
    before = table.get("counter", "a")
    assert table.incr("counter", "a") == before + 1  # type: ignore[operator]


def _die_mid_write(table: Table, key: str, w: int) -> None:
    """Fault injection: take ``key``'s bucket lock and write half of a new row image into the
    copy readers do not use, then report and wait to be killed."""
    raw = key.encode()
    head = table._head(raw)
    table._lock(head)
    slot = table._find(head, raw)
    mem = table._mem
    inactive = mem[slot + layout.ACT] ^ 1
    dst = slot + layout.SLOT_SIZE + inactive * table._image_size + layout.KEY_HEAD_SIZE
    mem[dst : dst + 12] = b"\x7f" * 12  # a: garbage, b: half written
    os.write(w, b"x")
    time.sleep(60)


def test_a_writer_killed_in_the_middle_of_a_row_write(caplog: pytest.LogCaptureFixture) -> None:
    table = consistent_table()
    table.set("row0", row_for(41))
    r, w = os.pipe()
    pid = fork(lambda: _die_mid_write(table, "row0", w))
    os.close(w)
    assert wait_byte(r) == b"x"
    os.close(r)
    check(table.get("row0"))  # the old row, while the writer holds the lock
    assert table.get("row0", "a") == 41
    os.kill(pid, signal.SIGKILL)
    assert join(pid) == -signal.SIGKILL  # reaped: the pid no longer exists
    with caplog.at_level(logging.WARNING, logger="pyswoole"):
        assert table.set("row0", row_for(42))  # the dead writer's lock is recovered
    assert table.get("row0") == row_for(42)
    assert table.incr("row0", "a") == 43
    if SPEEDUPS:  # Swoole's "lock process[..] not exists, force unlock"
        assert "no longer exists, force unlock" in caplog.text
    for key in KEYS[1:]:
        check(table.get(key))


@pytest.mark.skipif(not SPEEDUPS, reason="the 2 s takeover is the compiled row lock's")
def test_a_row_lock_held_too_long_is_taken_over_after_2_s(
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = consistent_table()
    r, w = os.pipe()
    pid = fork(lambda: _die_mid_write(table, "row1", w))
    os.close(w)
    wait_byte(r)
    os.close(r)
    try:
        os.kill(pid, signal.SIGSTOP)  # alive but stuck: only the timeout can free the lock
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="pyswoole"):
            assert table.set("row1", row_for(7))
        assert 1.9 < time.monotonic() - started < 10
        assert "held for more than 2 s" in caplog.text
        assert table.get("row1") == row_for(7)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGCONT)
        join(pid)
