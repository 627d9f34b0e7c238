"""Write APIs called from another thread are handed to the event loop's thread.

A worker's connections, its IPC queues and its timers belong to its event loop, which is
not thread-safe. ``push`` (and ``ping``), ``broadcast``, ``disconnect``, ``send``,
``sendfile``, ``close``, ``bind``, ``pause``/``resume``/``confirm``/``protect``,
``heartbeat``, ``task``, ``send_message`` and the topic calls (``subscribe``,
``unsubscribe``, ``unsubscribe_all``, ``publish``, ``push_user``: server/topics.py) check
which thread calls them (one int
comparison; the compiled push does it in C); from another thread the call is handed to the
loop with
``call_soon_threadsafe`` and the calling thread waits for its real result, so it returns
True/False honestly (or raises what the call raised). If the loop is not running -- the
server is not started, or has stopped, or a user process's callback holds its loop -- it
raises :class:`~pyswoole.exceptions.ServerStateError` (or returns False if the loop stops
while the call waits). A thread that waits for its own event loop's answer while that loop
waits for the thread deadlocks: the blocking-code watchdog reports such a loop.

Read-only queries (``exist``, ``connections``, ``get_client_info``, ``stats``) read dicts
and shared memory and need no hand-over. ``push_async``/``send_async`` are coroutines: run
them on the loop with ``asyncio.run_coroutine_threadsafe``. Timers (``tick``, ``Timer``)
belong to the loop's thread too. ``stop()`` and ``shutdown()`` were already safe anywhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..exceptions import ServerStateError

__all__ = ["from_thread", "get_ident"]

T = TypeVar("T")

#: ``threading.get_ident``, bound once (the guard's cost is this call and a comparison)
get_ident = threading.get_ident

_POLL = 0.5


def from_thread(
    loop: asyncio.AbstractEventLoop | None, name: str, call: Callable[..., T], *args: Any
) -> T | bool:
    """Run ``call(*args)`` on ``loop``'s thread and return its result (from another thread)."""
    if loop is None or loop.is_closed() or not loop.is_running():
        raise ServerStateError(
            f"{name}() was called from another thread and the event loop that owns the "
            "connections is not running to take it"
        )
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(call(*args))
        except BaseException as exc:
            future.set_exception(exc)

    try:
        loop.call_soon_threadsafe(run)
    except RuntimeError as exc:  # closed meanwhile
        raise ServerStateError(f"{name}(): the event loop is closed") from exc
    while True:
        try:
            return future.result(_POLL)
        except concurrent.futures.TimeoutError:
            if (loop.is_closed() or not loop.is_running()) and future.cancel():
                return False
