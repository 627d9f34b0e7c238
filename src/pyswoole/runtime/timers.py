"""Timers of one worker: Swoole's ``tick``, ``after``, ``clear_timer`` and ``defer``.

Timer ids are positive integers, unique within the worker. A tick is re-armed from its
scheduled time, not from when its callback finished, so it does not drift.

One :class:`Timers` per event loop of a process is *current* (:func:`set_current`): the
worker's (so the module-level ``Timer`` of :mod:`pyswoole.server.timer` and
``server.tick`` share ids), a user process's or a task worker's. ``info``/``ids``/``stats``
answer Swoole's ``Timer::info``/``list``/``stats``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Timers", "current", "set_current"]

log = logging.getLogger("pyswoole")


class Timers:
    """``tick``/``after``/``clear``/``defer`` on one event loop."""

    __slots__ = ("_base", "_handles", "_info", "_loop", "_next_id", "_round", "_run")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        run: Callable[[Callable[..., Any], tuple[Any, ...]], None],
    ) -> None:
        self._loop = loop
        self._run = run  # calls a user callback (sync or async) and logs its exceptions
        self._handles: dict[int, asyncio.TimerHandle] = {}
        #: timer id -> [interval ms (0: after), times run, loop time of the next run]
        self._info: dict[int, list[float]] = {}
        self._next_id = 1
        self._round = 0  # timer callbacks run (Swoole's stats()["round"])
        self._base = loop.time()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def _new_id(self) -> int:
        timer_id = self._next_id
        self._next_id += 1
        return timer_id

    def tick(self, interval_ms: float, callback: Callable[..., Any], *params: Any) -> int:
        """Call ``callback(timer_id, *params)`` every ``interval_ms`` until cleared."""
        timer_id = self._new_id()
        interval = interval_ms / 1000.0
        loop = self._loop

        def fire(when: float) -> None:
            next_when = when + interval
            now = loop.time()
            if next_when < now:  # fell behind (a slow callback): skip, do not burst
                next_when = now + interval
            self._handles[timer_id] = loop.call_at(next_when, fire, next_when)
            info = self._info[timer_id]
            info[1] += 1
            info[2] = next_when
            self._round += 1
            self._run(callback, (timer_id, *params))

        first = loop.time() + interval
        self._handles[timer_id] = loop.call_at(first, fire, first)
        self._info[timer_id] = [float(interval_ms), 0, first]
        return timer_id

    def after(self, delay_ms: float, callback: Callable[..., Any], *params: Any) -> int:
        """Call ``callback(*params)`` once after ``delay_ms``."""
        timer_id = self._new_id()

        def fire() -> None:
            self._handles.pop(timer_id, None)
            self._info.pop(timer_id, None)
            self._round += 1
            self._run(callback, params)

        self._handles[timer_id] = self._loop.call_later(delay_ms / 1000.0, fire)
        self._info[timer_id] = [0.0, 0, self._loop.time() + delay_ms / 1000.0]
        return timer_id

    def clear(self, timer_id: int) -> bool:
        """Cancel a timer; False if it does not exist (already fired or cleared)."""
        handle = self._handles.pop(timer_id, None)
        if handle is None:
            return False
        self._info.pop(timer_id, None)
        handle.cancel()
        return True

    def exists(self, timer_id: int) -> bool:
        return timer_id in self._handles

    def defer(self, callback: Callable[..., Any]) -> None:
        """Call ``callback()`` at the end of the current loop iteration."""
        self._loop.call_soon(self._run, callback, ())

    def clear_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        self._info.clear()

    def __len__(self) -> int:
        return len(self._handles)

    def ids(self) -> Iterator[int]:
        """The ids of the timers not yet fired (after) or cleared (Swoole's ``Timer::list``)."""
        return iter(list(self._handles))

    def info(self, timer_id: int) -> dict[str, Any] | None:
        """Swoole's ``Timer::info``: ``exec_msec`` (when it runs next, in ms since these
        timers were created), ``exec_count``, ``interval`` (ms; 0 for ``after``),
        ``round`` and ``removed``; None for an unknown id."""
        info = self._info.get(timer_id)
        if info is None:
            return None
        interval, count, when = info
        return {
            "exec_msec": int((when - self._base) * 1000),
            "exec_count": int(count),
            "interval": int(interval),
            "round": self._round,
            "removed": False,
        }

    def stats(self) -> dict[str, Any]:
        """Swoole's ``Timer::stats``: ``initialized``, ``num`` (timers pending) and
        ``round`` (timer callbacks run so far)."""
        return {"initialized": True, "num": len(self._handles), "round": self._round}


_current: Timers | None = None


def set_current(timers: Timers | None) -> None:
    """Make ``timers`` this process's current timers (the module-level ``Timer``'s)."""
    global _current
    _current = timers


def current() -> Timers | None:
    """This process's current timers if their loop is still open, else None."""
    timers = _current
    if timers is not None and timers.loop.is_closed():
        return None
    return timers
