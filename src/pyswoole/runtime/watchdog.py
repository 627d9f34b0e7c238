"""The blocking-code watchdog: a thread that notices when a worker's event loop stops
answering, and says which callback held it and where.

Theory of operation
-------------------
The hot path pays nothing: no counter per message or per callback. A daemon thread posts a
probe to the loop (``call_soon_threadsafe``) every ``threshold / 4`` seconds (at least 10
ms) and waits for the loop to run it. A probe still unanswered ``threshold`` seconds after
it was posted means one callback, or one loop iteration's callbacks together, held the loop
that long: the thread takes a stack sample of the loop's thread (``sys._current_frames()``),
finds the user callback in it (the outermost frame whose code is a registered callback's;
a timer's ``fire`` otherwise), reads the fd from that callback's arguments, and logs ONE
warning for the episode: event, fd, the innermost frame (where it was blocked) and the
stack. When the loop answers again one INFO line says for how long it was held.

A loop that holds longer than ``threshold`` is always caught; one that holds less never
is; one between ``threshold`` and ``threshold * 1.25`` may be (the probe period).

``worker_timeout``: in a server with a manager, the manager kills and replaces a worker
whose loop has not beaten for ``worker_timeout`` seconds (process/manager.py), and the
watchdog says nothing more. With one process there is no manager: once the loop has been
held for ``worker_timeout`` the watchdog logs an ERROR saying what a manager would have done,
and the process goes on (nothing else could serve its clients). This works with
``blocking_threshold=0`` too (then only that ERROR is logged).

The sample is taken when the watchdog thread gets the GIL: during a blocking call that
releases it (``time.sleep``, I/O, ``taskwait``, most C libraries) or Python code (the
interpreter switches threads every 5 ms), it shows the blocking frame; a C call that holds
the GIL the whole time is sampled only after it returns, so the stack may then show the
code that ran after it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

__all__ = ["FD_EVENTS", "Watchdog", "describe_stack"]

log = logging.getLogger("pyswoole")

#: events whose callback arguments name a connection
FD_EVENTS = frozenset(
    {
        "connect",
        "receive",
        "close",
        "disconnect",
        "open",
        "message",
        "request",
        "handshake",
        "beforeHandshakeResponse",
        "bufferFull",
        "bufferEmpty",
    }
)
_MIN_PERIOD = 0.01
_STACK_LIMIT = 12


class Watchdog:
    """Probes one event loop from a thread; see the module."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        threshold: float,
        *,
        describe: Callable[[FrameType], str] | None = None,
        name: str = "worker",
        worker_timeout: float = 0.0,
    ) -> None:
        self.loop = loop
        self.threshold = threshold
        self.period = max((threshold or worker_timeout) / 4, _MIN_PERIOD)
        self.describe = describe
        self.name = name
        #: with no manager: the ERROR that says what worker_timeout would have done
        self.worker_timeout = worker_timeout
        self.loop_thread = 0
        self.warnings = 0
        self._answered = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching; call it from the loop's thread (e.g. with ``loop.call_soon``)."""
        if self._thread is not None:
            return
        self.loop_thread = threading.get_ident()
        self._thread = threading.Thread(
            target=self._run, name=f"pyswoole-watchdog-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _ack(self) -> None:
        self._answered.set()

    def _run(self) -> None:
        stop = self._stop
        loop = self.loop
        pid = os.getpid()
        while not stop.is_set():
            self._answered.clear()
            posted = time.monotonic()
            try:
                loop.call_soon_threadsafe(self._ack)
            except RuntimeError:  # the loop is closed
                return
            warned = timed_out = False
            while not self._answered.wait(self.period):
                if stop.is_set() or loop.is_closed() or os.getpid() != pid:
                    return
                if not loop.is_running():  # stopped, not blocked: ask again later
                    break
                held = time.monotonic() - posted
                if not warned and 0 < self.threshold < held:
                    warned = True
                    self._warn(held)
                if self.worker_timeout > 0 and not timed_out and held > self.worker_timeout:
                    timed_out = True
                    log.error(
                        "%s: the event loop has been blocked for %.1f s, more than "
                        "worker_timeout=%.1f s: with a manager (worker_num > 1, task workers "
                        "or add_process) this worker would now be killed and replaced; with "
                        "one process there is no manager, so it keeps waiting for the "
                        "callback",
                        self.name,
                        held,
                        self.worker_timeout,
                    )
            if warned:
                log.info(
                    "%s: the event loop answers again after %.2f s",
                    self.name,
                    time.monotonic() - posted,
                )
            if stop.wait(self.period):
                return

    def _warn(self, held: float) -> None:
        frame = sys._current_frames().get(self.loop_thread)
        what = "a callback"
        stack = ""
        if frame is not None:
            try:
                if self.describe is not None:
                    what = self.describe(frame)
                stack = "".join(traceback.format_stack(frame, limit=_STACK_LIMIT))
            except Exception as exc:  # a sample must never kill the watchdog
                stack = f"  (no stack sample: {exc!r})\n"
        self.warnings += 1
        log.warning(
            "%s: %s blocked the event loop for more than %.2f s (blocking_threshold); "
            "stack sample (most recent call last):\n%s",
            self.name,
            what,
            self.threshold,
            stack.rstrip("\n"),
        )
        del frame


def describe_stack(frame: FrameType, callbacks: Mapping[Any, str]) -> str:
    """``on('message') fd 3, at app.py:12 in on_message`` for a stack sample: the outermost
    frame whose code is a registered callback's (``callbacks``: code object -> event), the
    fd in its arguments for a connection event, and the innermost frame."""
    frames: list[FrameType] = []
    walk: FrameType | None = frame
    while walk is not None:
        frames.append(walk)
        walk = walk.f_back
    inner = frames[0]
    where = f"at {inner.f_code.co_filename}:{inner.f_lineno} in {inner.f_code.co_name}"
    for candidate in reversed(frames):  # outermost first
        event = callbacks.get(candidate.f_code)
        if event is not None:
            fd = _fd_of(candidate) if event in FD_EVENTS else None
            name = f"on({event!r})" + ("" if fd is None else f" fd {fd}")
            return f"{name}, {where}"
    for candidate in reversed(frames):
        code = candidate.f_code
        if code.co_name == "fire" and code.co_filename.endswith("timers.py"):
            return f"a timer callback, {where}"
    return f"a callback, {where}"


def _fd_of(frame: FrameType) -> int | None:
    """The fd among a callback's arguments: an int after the server, or an object's
    ``.fd`` (a Frame, a Request)."""
    code = frame.f_code
    names = code.co_varnames[: code.co_argcount]
    values = frame.f_locals
    for name in names:
        value = values.get(name)
        if type(value) is int:
            return value
        fd = getattr(value, "fd", None)
        if type(fd) is int:
            return fd
    return None
