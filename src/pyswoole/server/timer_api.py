"""The server's timers (Swoole's ``tick``/``after``/``clearTimer``/``defer``): a mixin of
:class:`~.base.Server`, on the running worker's loop, or in a task worker or a user process
on that process's loop (the module-level ``Timer``'s, same ids)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError, ServerStateError
from ..runtime.timers import Timers
from ..runtime.worker import Worker
from .events import cut_arguments

if TYPE_CHECKING:
    from .processes import ProcessModel

__all__ = ["TimerApi"]


class TimerApi:
    """Mixin of :class:`~.base.Server`: ``tick``, ``after``, ``clear_timer``, ``defer``."""

    if TYPE_CHECKING:
        _worker: Worker | None
        _procs: ProcessModel | None

    def _running_worker(self, what: str) -> Worker:
        worker = self._worker
        if worker is None or not worker.running:
            raise ServerStateError(f"{what}() needs a running server: call it from a callback")
        return worker

    def _timers(self, what: str) -> Timers:
        """The timers ``tick``/``after`` use: the worker's; in a task worker or a user
        process, those of its loop (the module-level ``Timer``'s: same ids)."""
        worker = self._worker
        if worker is not None and worker.running:
            return worker.timers
        if self._procs is not None and self._procs.process_id >= 0:
            from .timer import _timers

            return _timers()
        raise ServerStateError(f"{what}() needs a running server: call it from a callback")

    def tick(self, ms: int, callback: Callable[..., Any], *params: Any) -> int:
        """Call ``callback(timer_id, *params)`` every ``ms`` milliseconds; returns the id."""
        _check_ms(ms)
        timers = self._timers("tick")
        return timers.tick(ms, cut_arguments(callback, 1 + len(params)), *params)

    def after(self, ms: int, callback: Callable[..., Any], *params: Any) -> int:
        """Call ``callback(*params)`` once after ``ms`` milliseconds; returns the timer id."""
        _check_ms(ms)
        timers = self._timers("after")
        return timers.after(ms, cut_arguments(callback, len(params)), *params)

    def clear_timer(self, timer_id: int) -> bool:
        """Cancel a ``tick``/``after`` timer; False if it does not exist."""
        return self._timers("clear_timer").clear(timer_id)

    clearTimer = clear_timer

    def defer(self, callback: Callable[..., Any]) -> None:
        """Call ``callback()`` at the end of the current event-loop iteration."""
        self._timers("defer").defer(callback)


def _check_ms(ms: int) -> None:
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms <= 0:
        raise ConfigError(f"timer interval must be a positive number of ms, not {ms!r}")
