"""The pieces of server/control.py that need no server: the fd check, the shared
per-process counters (across a real fork) and the peak-tracking task set."""

from __future__ import annotations

import enum
import os

import pytest

from pyswoole import SWOOLE_WORKER_EXIT, SWOOLE_WORKER_IDLE
from pyswoole.server.control import PeakSet, ProcessCounters, check_fd


class Fd(enum.IntEnum):
    ONE = 1


@pytest.mark.parametrize("fd", [1, 0, -5, 2**62, Fd.ONE])
def test_check_fd_takes_ints(fd: int) -> None:
    assert check_fd(fd) == int(fd)
    assert type(check_fd(fd)) is int


@pytest.mark.parametrize("fd", ["1", 1.0, None, True, False, b"1", [1]])
def test_check_fd_refuses_the_rest_naming_the_argument(fd: object) -> None:
    with pytest.raises(TypeError, match=r"^worker_fd must be an int .*not "):
        check_fd(fd, "worker_fd")


def test_counters_are_shared_with_a_forked_child_and_summed() -> None:
    counters = ProcessCounters(3)
    try:
        counters.publish(0, SWOOLE_WORKER_IDLE, 10, 20, 1)
        pid = os.fork()
        if pid == 0:  # the child writes its own slot, as a worker does
            counters.publish(2, SWOOLE_WORKER_EXIT, 100, 200, 5)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert counters.read(2) == (SWOOLE_WORKER_EXIT, 100, 200, 5)
        assert counters.read(1) == (0, 0, 0, 0)
        assert counters.totals() == (110, 220, 6)
        assert counters.totals(skip=0) == (100, 200, 5)
        counters.publish(7, SWOOLE_WORKER_IDLE, 1, 1, 1)  # no such slot: ignored
        assert counters.totals() == (110, 220, 6)
    finally:
        counters.close()


def test_peak_set_remembers_the_most_it_held() -> None:
    tasks = PeakSet({"a"})
    assert tasks.peak == 1
    tasks.add("b")
    tasks.add("c")
    tasks.discard("a")
    tasks.discard("b")
    tasks.add("d")
    assert len(tasks) == 2 and tasks.peak == 3
