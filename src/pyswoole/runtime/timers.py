"""Timers of one worker: Swoole's ``tick``, ``after``, ``clear_timer`` and ``defer``.

Timer ids are positive integers, unique within the worker. A tick is re-armed from its
scheduled time, not from when its callback finished, so it does not drift.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["Timers"]

log = logging.getLogger("pyswoole")


class Timers:
    """``tick``/``after``/``clear``/``defer`` on one event loop."""

    __slots__ = ("_handles", "_loop", "_next_id", "_run")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        run: Callable[[Callable[..., Any], tuple[Any, ...]], None],
    ) -> None:
        self._loop = loop
        self._run = run  # calls a user callback (sync or async) and logs its exceptions
        self._handles: dict[int, asyncio.TimerHandle] = {}
        self._next_id = 1

    def _new_id(self) -> int:
        timer_id = self._next_id
        self._next_id += 1
        return timer_id

    def tick(self, interval_ms: int, callback: Callable[..., Any], *params: Any) -> int:
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
            self._run(callback, (timer_id, *params))

        first = loop.time() + interval
        self._handles[timer_id] = loop.call_at(first, fire, first)
        return timer_id

    def after(self, delay_ms: int, callback: Callable[..., Any], *params: Any) -> int:
        """Call ``callback(*params)`` once after ``delay_ms``."""
        timer_id = self._new_id()

        def fire() -> None:
            self._handles.pop(timer_id, None)
            self._run(callback, params)

        self._handles[timer_id] = self._loop.call_later(delay_ms / 1000.0, fire)
        return timer_id

    def clear(self, timer_id: int) -> bool:
        """Cancel a timer; False if it does not exist (already fired or cleared)."""
        handle = self._handles.pop(timer_id, None)
        if handle is None:
            return False
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

    def __len__(self) -> int:
        return len(self._handles)
