"""``Timer``: Swoole's module-level timer API (``Swoole\\Timer``), usable in workers, task
workers, user processes and plain scripts.

Every method works on the *current* timers of the process
(:func:`pyswoole.runtime.timers.current`):

* in a worker, the worker's own timers: ``Timer.tick`` and ``server.tick`` share ids and
  ``server.clear_timer`` clears a ``Timer`` timer (Swoole 6: ``Server::tick`` is
  ``Timer::tick``);
* in a user process (:class:`pyswoole.Process`), the timers of its own event loop, which
  runs after its callback returns for as long as timers are pending (Swoole runs the
  process's reactor the same way);
* in a task worker or any code already running on an asyncio loop, timers on that loop;
* in a plain script with no loop, a loop of its own that runs the timers when the script
  ends (as Swoole runs its event loop at the end of a CLI script), or at once with
  :meth:`Timer.wait`.

Callbacks get Swoole's arguments cut to their arity: ``tick`` calls ``callback(timer_id,
*params)``, ``after`` calls ``callback(*params)``; they may be ``async def`` (run as a task);
an exception is logged and the timer goes on. Timers belong to one event loop: call these
from that loop's thread.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from ..exceptions import ConfigError
from ..runtime.loop import new_event_loop
from ..runtime.timers import Timers, current, set_current
from .events import cut_arguments

__all__ = ["Timer", "run_timers", "user_timers"]

log = logging.getLogger("pyswoole")

_pending_tasks: set[asyncio.Task[Any]] = set()
_standalone: Timers | None = None
#: timers of loops other than the process's current one (a task worker's, a user's own)
_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Timers] = weakref.WeakKeyDictionary()


def user_timers(loop: asyncio.AbstractEventLoop, make_current: bool = True) -> Timers:
    """New timers on ``loop`` that call user callbacks (logged, ``async def`` as tasks),
    made current for this process (else kept for that loop)."""

    def run(callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            result = callback(*args)
        except Exception:
            log.exception("exception in timer callback %s", getattr(callback, "__name__", ""))
            return
        if asyncio.iscoroutine(result):
            task = loop.create_task(_logged(result))
            _pending_tasks.add(task)
            task.add_done_callback(_pending_tasks.discard)

    timers = Timers(loop, run)
    if make_current:
        set_current(timers)
    else:
        _by_loop[loop] = timers
    return timers


async def _logged(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("exception in async timer callback")


async def run_timers(timers: Timers, poll: float = 0.05) -> None:
    """Wait (on the timers' loop) until no timer is pending and no timer task runs."""
    while len(timers) or any(not t.done() for t in _pending_tasks):
        await asyncio.sleep(poll)


def _find() -> Timers | None:
    """The timers of the running loop (the process's current ones if they are that
    loop's); with no running loop, the process's current ones."""
    timers = current()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return timers
    if timers is not None and timers.loop is running:
        return timers
    return _by_loop.get(running)


def _timers() -> Timers:
    """The timers to add to: the worker's, a user process's, the running loop's (made
    now: a task worker's), or a loop of this script's own (run at exit)."""
    global _standalone
    timers = _find()
    if timers is not None:
        return timers
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        return user_timers(running, make_current=current() is None)
    loop = new_event_loop()
    timers = user_timers(loop)
    if _standalone is None:
        atexit.register(_run_at_exit)
    _standalone = timers
    return timers


def _run_at_exit() -> None:
    """Swoole runs a CLI script's timers when the script ends: so does a plain script."""
    timers = _standalone
    if timers is not None and not timers.loop.is_closed() and len(timers):
        Timer.wait()


def _check_ms(ms: object) -> float:
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms <= 0:
        raise ConfigError(f"timer interval must be a positive number of ms, not {ms!r}")
    return float(ms)


class Timer:
    """Swoole's ``Timer`` (static methods only, as ``Swoole\\Timer``)."""

    @staticmethod
    def tick(ms: int, callback: Callable[..., Any], *params: Any) -> int:
        """Call ``callback(timer_id, *params)`` every ``ms`` milliseconds; the timer id."""
        interval = _check_ms(ms)
        return _timers().tick(interval, cut_arguments(callback, 1 + len(params)), *params)

    @staticmethod
    def after(ms: int, callback: Callable[..., Any], *params: Any) -> int:
        """Call ``callback(*params)`` once, ``ms`` milliseconds from now; the timer id."""
        delay = _check_ms(ms)
        return _timers().after(delay, cut_arguments(callback, len(params)), *params)

    @staticmethod
    def clear(timer_id: int) -> bool:
        """Cancel a timer; False if there is none with that id (fired, cleared)."""
        timers = _find()
        return timers is not None and timers.clear(timer_id)

    @staticmethod
    def clear_all() -> bool:
        """Cancel every timer of this process (Swoole's ``clearAll``)."""
        timers = _find()
        if timers is not None:
            timers.clear_all()
        return True

    clearAll = clear_all

    @staticmethod
    def exists(timer_id: int) -> bool:
        """Whether timer ``timer_id`` of this process is still pending."""
        timers = _find()
        return timers is not None and timers.exists(timer_id)

    @staticmethod
    def info(timer_id: int) -> dict[str, Any] | None:
        """``exec_msec``, ``exec_count``, ``interval``, ``round``, ``removed`` of a timer;
        None if there is none with that id (Swoole returns null)."""
        timers = _find()
        return None if timers is None else timers.info(timer_id)

    @staticmethod
    def list() -> Iterator[int]:
        """The ids of the pending timers (Swoole's ``Timer::list``, an iterator)."""
        timers = _find()
        return iter(()) if timers is None else timers.ids()

    @staticmethod
    def stats() -> dict[str, Any]:
        """``initialized``, ``num`` (pending timers), ``round`` (timer callbacks run)."""
        timers = _find()
        if timers is None:
            return {"initialized": False, "num": 0, "round": 0}
        return timers.stats()

    @staticmethod
    def wait() -> None:
        """Run this script's own timer loop until no timer is left (Swoole's
        ``Event::wait()``); not for a worker or a running loop (they run already)."""
        timers = current()
        if timers is None or timers.loop.is_running() or timers is not _standalone:
            return
        loop = timers.loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(run_timers(timers))
