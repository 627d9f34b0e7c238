"""Event names and callback adaptation.

Swoole's event names are accepted in any case and in snake_case (``workerStart``,
``WorkerStart``, ``worker_start``). A callback gets Swoole's arguments cut to the number
of positional parameters it declares, so ``on_close(server, fd)`` works although Swoole
passes ``(server, fd, reactor_id)``. ``async def`` callbacks are scheduled as tasks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..exceptions import ConfigError

__all__ = ["EVENTS", "adapt", "canonical_event", "cut_arguments", "positional_arity"]

#: canonical name -> the arguments Swoole passes, for documentation and arity checks
EVENTS: dict[str, tuple[str, ...]] = {
    "start": ("server",),
    "beforeShutdown": ("server",),
    "shutdown": ("server",),
    "beforeReload": ("server",),
    "afterReload": ("server",),
    "workerStart": ("server", "worker_id"),
    "workerStop": ("server", "worker_id"),
    "workerExit": ("server", "worker_id"),
    "workerError": ("server", "worker_id", "worker_pid", "exit_code", "signal"),
    "managerStart": ("server",),
    "managerStop": ("server",),
    "connect": ("server", "fd", "reactor_id"),
    "receive": ("server", "fd", "reactor_id", "data"),
    "close": ("server", "fd", "reactor_id"),
    "disconnect": ("server", "fd"),
    "handshake": ("request", "response"),
    "beforeHandshakeResponse": ("server", "request", "response"),
    "open": ("server", "request"),
    "message": ("server", "frame"),
    "request": ("request", "response"),
    "task": ("server", "task_id", "src_worker_id", "data"),
    "finish": ("server", "task_id", "data"),
    "pipeMessage": ("server", "src_worker_id", "message"),
    "bufferFull": ("server", "fd"),
    "bufferEmpty": ("server", "fd"),
}

_BY_KEY = {name.lower(): name for name in EVENTS}


def canonical_event(name: str) -> str:
    """``"WorkerStart"``/``"worker_start"``/``"onWorkerStart"`` -> ``"workerStart"``."""
    if not isinstance(name, str):
        raise ConfigError(f"event name must be a string, not {type(name).__name__}")
    key = name.replace("_", "").lower()
    if key not in _BY_KEY and key.startswith("on"):
        key = key[2:]
    try:
        return _BY_KEY[key]
    except KeyError:
        raise ConfigError(f"unknown event {name!r}; known events: {', '.join(EVENTS)}") from None


def positional_arity(callback: Callable[..., Any]) -> int | None:
    """How many positional arguments ``callback`` takes; None if it takes ``*args``."""
    try:
        sig = inspect.signature(callback)
    except (TypeError, ValueError):
        return None
    count = 0
    for param in sig.parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            return None
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def adapt(event: str, callback: Callable[..., Any]) -> Callable[..., Any]:
    """Return a callable taking Swoole's full argument list for ``event``.

    When the callback takes exactly Swoole's arguments (or ``*args``) it is returned as is:
    no wrapper on the hot path.
    """
    if not callable(callback):
        raise ConfigError(f"callback for {event!r} is not callable")
    return cut_arguments(callback, len(EVENTS[event]))


def cut_arguments(callback: Callable[..., Any], full: int) -> Callable[..., Any]:
    """A callable taking ``full`` positional arguments that passes ``callback`` as many of
    them as it declares (computed once, here, not at every call)."""
    arity = positional_arity(callback)
    if arity is None or arity >= full:
        return callback
    if arity == 0:
        return lambda *args: callback()
    if arity == 1:
        return lambda *args: callback(args[0])
    if arity == 2:
        return lambda *args: callback(args[0], args[1])
    n = arity
    return lambda *args: callback(*args[:n])


def is_async(callback: Callable[..., Any]) -> bool:
    """True for ``async def`` functions (and callables whose ``__call__`` is one)."""
    return inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
        getattr(callback, "__call__", None)  # noqa: B004
    )
