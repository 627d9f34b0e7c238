"""Real forked processes for the shared-memory tests: ``fork(fn)`` runs ``fn`` in a child
(exit code 0 if it returned, 1 with the traceback on stderr if it raised), ``join`` waits for
it with a deadline and returns the exit code (-signal if a signal ended it)."""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

DEADLINE = 20.0  # seconds a child may take


def fork(fn: Callable[[], object]) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            fn()
            code = 0
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(code)
    return pid


def join(pid: int, timeout: float = DEADLINE) -> int:
    """The child's exit code; it is killed (and the test fails) past ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"child {pid} still running after {timeout} s")
        time.sleep(0.005)


def wait_byte(fd: int, timeout: float = DEADLINE) -> bytes:
    """One byte from a pipe the child writes to when it reaches a point (no sleeps)."""
    import select

    ready, _, _ = select.select([fd], [], [], timeout)
    assert ready, "the child did not report in time"
    return os.read(fd, 1)
