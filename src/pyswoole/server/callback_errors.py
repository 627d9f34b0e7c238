"""What the log says when user code raises: the event, the function and the fd.

``on('close') callback on_close (fd 3)`` for a plain function; the same, with ``async``,
for an ``async def`` callback that failed in its task: the event is found by comparing the
coroutine's code with the registered callbacks, the fd from the arguments the coroutine was
called with (its frame in the traceback). Only the failure path pays for this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import CodeType, TracebackType
from typing import Any

from .events import EVENTS

__all__ = ["describe_async", "describe_call"]

#: Swoole's argument names that carry the connection: the fd itself, or an object with .fd
_FD_ARGS = ("fd", "frame", "request")


def _fd_of(event: str, args: tuple[Any, ...]) -> int | None:
    names = EVENTS.get(event, ())
    for wanted in _FD_ARGS:
        if wanted in names:
            index = names.index(wanted)
            if index < len(args):
                value = args[index]
                fd = value if wanted == "fd" else getattr(value, "fd", None)
                if isinstance(fd, int) and not isinstance(fd, bool):
                    return fd
    return None


def _label(event: str | None, name: str, fd: int | None, prefix: str = "") -> str:
    what = f"on({event!r}) callback {name}" if event else f"callback {name}"
    return f"{prefix}{what}" + (f" (fd {fd})" if fd is not None else "")


def describe_call(
    callbacks: Mapping[str, Callable[..., Any]],
    raw_callbacks: Mapping[str, Callable[..., Any]],
    callback: Callable[..., Any],
    args: tuple[Any, ...],
) -> str:
    """A plain callback raised: ``on('close') callback on_close (fd 3)``. ``callbacks`` are
    the adapted ones (what was called), ``raw_callbacks`` the user's functions (the name)."""
    event = next((name for name, cb in callbacks.items() if cb is callback), None)
    user = raw_callbacks.get(event, callback) if event is not None else callback
    name = getattr(user, "__qualname__", None) or repr(user)
    return _label(event, name, None if event is None else _fd_of(event, args))


def describe_async(
    callbacks: Mapping[str, Callable[..., Any]], awaitable: Any, exc: BaseException
) -> str:
    """An ``async def`` callback's task raised: ``async on('message') callback on_message
    (fd 3)`` (only the function's name when it is not a registered callback)."""
    code: CodeType | None = getattr(awaitable, "cr_code", None)
    if code is None:
        return f"async callback {getattr(awaitable, '__qualname__', type(awaitable).__name__)}"
    event = next(
        (name for name, cb in callbacks.items() if getattr(cb, "__code__", None) is code), None
    )
    fd = None
    if event is not None:
        local_names = code.co_varnames[: code.co_argcount]
        values = _frame_locals(exc.__traceback__, code)
        if values is not None:
            args = tuple(values.get(name) for name in local_names)
            fd = _fd_of(event, args)
    return _label(event, getattr(code, "co_qualname", code.co_name), fd, "async ")


def _frame_locals(tb: TracebackType | None, code: CodeType) -> dict[str, Any] | None:
    """The locals of the traceback's frame running ``code`` (the failed coroutine)."""
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return dict(tb.tb_frame.f_locals)
        tb = tb.tb_next
    return None
