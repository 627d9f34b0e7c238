"""How a connection ends: the close after the last replies, the close that lingers.

* The reply to a message that arrived whole leaves before the close frame: when the
  client's close (or a protocol error) comes while replies are still being made --
  ``async def`` message callbacks, or in SWOOLE_PROCESS mode the worker's answers -- the
  close waits for them (``Application.close_barrier``), at most ``max_wait_time``
  (:meth:`Closing._hold_close`).
* A close that may leave input unread (an HTTP error answer, a failed WebSocket, input
  still in the kernel) *lingers*: the write side is shut down after the answer, what the
  client still sends is dropped, and the socket closes on the client's EOF, after
  ``LINGER_IDLE`` seconds of silence or after ``LINGER_MAX`` (:meth:`Closing._linger`).
  Closing with unread input would make the kernel send RST, which can destroy the answer
  in flight. The connection is over for the application as the linger begins
  (:meth:`Closing._gone`): its fd is gone and ``on("close")`` was called.
* Otherwise the corked output leaves with the FIN when it can (``send_final``, compiled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..constants import WEBSOCKET_STATUS_ACTIVE, WEBSOCKET_STATUS_CLOSING
from ..protocol.websocket import CLOSED
from .state import FASTPATH

if TYPE_CHECKING:
    from ..protocol.websocket import WebSocket
    from .connection import Application
    from .worker import Worker

__all__ = ["CLOSE_TIMEOUT", "LINGER_IDLE", "LINGER_MAX", "Closing"]

log = logging.getLogger("pyswoole")

try:
    import fcntl
    import termios

    _FIONREAD: int | None = termios.FIONREAD
except ImportError:  # pragma: no cover - Windows
    _FIONREAD = None

_monotonic = time.monotonic
#: how long a server-initiated close waits for the client's close frame (RFC 6455 7.1.1)
CLOSE_TIMEOUT = 3.0
#: a lingering close ends when the client has sent nothing for this long ...
LINGER_IDLE = 2.0
#: ... or after this long in all
LINGER_MAX = 10.0


class Closing:
    """Mixin of :class:`~pyswoole.runtime.connection.Connection`: closing (its slots are
    declared there: ``_close_hold``, ``_close_after_jobs``, ``_timer``, ``_replies``)."""

    if not TYPE_CHECKING:  # (the slots are Connection's; mypy checks assignments to them)
        __slots__ = ()
    else:
        worker: Worker
        app: Application
        transport: asyncio.Transport | None
        ws: WebSocket | None
        fd: int
        closed: bool
        status: int
        out: list[bytes]
        out_bytes: int
        _held: int
        _state: Any
        _jobs: Any
        _close_after_jobs: int
        _close_hold: int
        _timer: asyncio.TimerHandle | None
        _replies: set[asyncio.Future[Any]] | None
        _file_task: asyncio.Task[None] | None
        _read_block: int
        _waiters: list[asyncio.Future[None]] | None
        _slow_timer: asyncio.TimerHandle | None
        last_recv: float
        write: Callable[[bytes], bool]
        send_final: Callable[[bytes], bool]
        _after_read: Callable[[], None]
        _resume_transport: Callable[[asyncio.Transport], None]
        _cancel_timer: Callable[[], None]
        _release_waiters: Callable[[], None]

    def _hold_close(self) -> bool:
        """The protocol closes the WebSocket: if replies to messages it delivered are still
        being made, wait for them (bounded) before the close frame; True if waiting."""
        if self.worker.reply_wait <= 0:
            return False  # max_wait_time=0: no waiting at all
        waits: list[asyncio.Future[Any]] = [t for t in self._replies or () if not t.done()]
        barrier = self.app.close_barrier(self)  # type: ignore[arg-type]
        if barrier is not None:
            waits.append(barrier)
        if not waits:
            return False
        self.worker.loop.create_task(self._close_after(waits))
        return True

    async def _close_after(self, waits: list[asyncio.Future[Any]]) -> None:
        _, late = await asyncio.wait(waits, timeout=self.worker.reply_wait)
        if late:
            log.warning(
                "fd %d: closing without waiting longer for %d replies (max_wait_time)",
                self.fd,
                len(late),
            )
        self._close_hold = 2
        if not self.closed and self.ws is not None:
            self._after_read()

    def _gone(self) -> None:
        """The connection is over for the application (the socket may linger a bit)."""
        if self.closed:
            return
        self.closed = True
        if self.status == WEBSOCKET_STATUS_ACTIVE:
            self.status = WEBSOCKET_STATUS_CLOSING
        if self._held:
            self.worker.buffered -= self._held
            self._held = 0
        if self._file_task is not None:
            self._file_task.cancel()
        if self._waiters is not None or self._slow_timer is not None:
            self._release_waiters()
        self.worker.unregister(self)  # type: ignore[arg-type]
        self.app.connection_lost(self)  # type: ignore[arg-type]

    def close_websocket(self, code: int = 1000, reason: str = "") -> bool:
        """Start the closing handshake; TCP closes on the client's answer or a timeout."""
        ws = self.ws
        if ws is None or self.closed or ws.close_sent:
            return False
        self.write(ws.send_close(code, reason))
        self.status = WEBSOCKET_STATUS_CLOSING
        self.worker.status_changed(self)  # type: ignore[arg-type]
        self._cancel_timer()
        self._timer = self.worker.loop.call_later(CLOSE_TIMEOUT, self.abort)
        return True

    def fail_websocket(self, code: int, reason: str = "") -> None:
        """Fail the connection now with ``code`` (e.g. 1011 after a server error)."""
        ws = self.ws
        if ws is None or self.closed:
            return
        ws.fail(code, reason)
        self.write(ws.data_to_send())
        self._close_transport(linger=True)

    def _close_transport(self, linger: bool = False) -> None:
        """Close TCP after what is queued has been written; ``linger`` if the client may
        still be sending (an error answer): see the module docstring."""
        if self._jobs is not None and (not self.closed or self._close_after_jobs > 0):
            # once the off-loop sends are out (also after close() ended it for the app)
            self._close_after_jobs = max(self._close_after_jobs, 2 if linger else 1)
            if self.ws is not None:
                self.ws.state = CLOSED
            return
        if self.ws is not None:
            self.ws.state = CLOSED
            if self.status != WEBSOCKET_STATUS_CLOSING:
                self.status = WEBSOCKET_STATUS_CLOSING
                self.worker.status_changed(self)  # type: ignore[arg-type]
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        out = self.out
        if out:  # corked writes go out first, with the FIN when they can
            if not linger and FASTPATH and self.send_final(b"".join(out)):  # (counts them)
                out.clear()
                self.out_bytes = 0
                transport.close()  # (send_final saw no unread input: no RST)
                return
            self._state.send_bytes += sum(map(len, out))
            transport.writelines(out)
            out.clear()
            self.out_bytes = 0
        if self._close_after_jobs < 0:  # already lingering
            return
        if linger or _unread(transport):
            self._linger(transport)
        else:
            transport.close()

    def _linger(self, transport: asyncio.Transport) -> None:
        """Shut down the write side once the queued bytes are out; drop what the client
        still sends until its EOF, ``LINGER_IDLE`` seconds of silence or ``LINGER_MAX``."""
        if not transport.can_write_eof():
            transport.close()
            return
        try:
            transport.write_eof()
        except (OSError, RuntimeError):
            transport.close()
            return
        self._cancel_timer()
        self._close_after_jobs = -1  # lingering (no off-loop sends can follow: it is closed)
        self._gone()  # over for the application now: its fd is gone, close was called
        if self._read_block:  # (full, pipelining...): read on, to see the client's EOF
            self._read_block = 0
            self._resume_transport(transport)
        self._timer = self.worker.loop.call_later(
            LINGER_IDLE, self._linger_check, _monotonic() + LINGER_MAX
        )
        self.last_recv = _monotonic()

    def _linger_check(self, deadline: float) -> None:
        now = _monotonic()
        idle_until = self.last_recv + LINGER_IDLE
        if now >= deadline or now >= idle_until:
            self._timer = None
            self.abort()
        else:
            self._timer = self.worker.loop.call_later(
                min(idle_until, deadline) - now, self._linger_check, deadline
            )

    def close(self, linger: bool = False) -> None:
        """Swoole's ``close(fd)``: close TCP now (queued bytes are still written);
        ``linger`` after an error answer to a client that may still be sending.

        The connection is over for the application before this returns, as in Swoole's
        SWOOLE_BASE ``BaseFactory::end`` (src/server/base.cc), which calls ``onClose``
        synchronously and then marks the connection closed: ``on("close")`` (or
        ``on("disconnect")``) has run, the fd no longer exists, pushes to it fail, and what
        the client still sends is dropped. The queued bytes still leave, then the FIN."""
        self._close_transport(linger)
        if not self.closed:
            self._gone()

    def abort(self) -> None:
        """Drop the connection without flushing."""
        transport = self.transport
        if transport is not None:
            transport.abort()


def _unread(transport: asyncio.Transport) -> int:
    """Bytes the kernel holds that the connection has not read (FIONREAD); closing with
    any makes the kernel answer RST instead of FIN."""
    sock = transport.get_extra_info("socket")
    if sock is None or _FIONREAD is None:
        return 0
    buf = bytearray(4)
    with contextlib.suppress(OSError, ValueError):
        fcntl.ioctl(sock.fileno(), _FIONREAD, buf)
        return int.from_bytes(buf, sys.byteorder)
    return 0
