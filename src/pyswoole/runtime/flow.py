"""Flow control of one connection: what it may queue, and when it stops reading.

Theory of operation
-------------------
Everything queued for a client counts, whatever path queued it: the transport's buffer
(what the kernel did not take: direct sends' leftovers, ``transport.write``), the corked
``out`` list of a read's callbacks (``out_bytes``), and messages waiting behind compression
done off the loop (``_jobs_bytes``). :meth:`FlowControl.queued_bytes` is their sum.

Two thresholds of the worker (Swoole's settings) act on it:

* ``buffer_high_watermark`` (default 80 % of ``socket_buffer_size``): past it the connection
  is *full*. It stops being read -- a client that sends without reading cannot make the
  server queue replies to it without bound, whether they are echoes, pongs, close replies,
  HTTP responses or compressed messages -- and ``on("bufferFull")`` is called.
* ``buffer_low_watermark`` (default 0: empty): once a full connection has drained to it,
  reading resumes, ``on("bufferEmpty")`` is called and ``push_async`` waiters wake up.

``socket_buffer_size`` is the push side's limit: ``push``/``send``/``broadcast`` refuse a
message (``SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW``) while this many bytes are queued.

The transport tells us when its buffer crosses a mark (``pause_writing``/``resume_writing``,
synchronously inside ``write``); its marks are set by :meth:`FlowControl._apply_limits`:
the watermarks normally; while full, both at the low watermark (so that the transport says
when it has drained, even when what made the connection full was compression jobs); while a
file streams, a small window (a 1 GiB download holds ~256 KiB, not the high watermark).
Compression jobs call :meth:`FlowControl._flow_check` when queued and when done.

Reading can be paused for several reasons at once (a bit each in ``_read_block``): too
many pipelined HTTP requests, output past the high watermark, ``server.pause(fd)``, (in
the SWOOLE_PROCESS master) a long IPC queue to the worker, or input held for the
connection's next turn; it resumes when none is left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .worker import Worker

__all__ = [
    "FILE_WINDOW",
    "PAUSE_BACKPRESSURE",
    "PAUSE_INPUT",
    "PAUSE_IPC",
    "PAUSE_PIPELINE",
    "PAUSE_USER",
    "FlowControl",
]

#: reasons reading is paused (bits of ``_read_block``)
PAUSE_PIPELINE = 1  # too many pipelined HTTP requests wait
PAUSE_BACKPRESSURE = 2  # output past the high watermark
PAUSE_USER = 4  # server.pause(fd)
PAUSE_IPC = 8  # SWOOLE_PROCESS master: the IPC queue to the connection's worker is long
PAUSE_INPUT = 16  # input is held for the connection's next turn (WebSocket.input_pending)

#: while a file streams, the transport buffers at most about this much of it
FILE_WINDOW = 256 * 1024


class FlowControl:
    """Mixin of :class:`~pyswoole.runtime.connection.Connection`: flow control (its slots
    are declared there: ``out_bytes``, ``_write_paused``, ``_jobs_bytes``, ``_read_block``,
    ``_full``, ``_waiters``, ``_slow_timer``)."""

    if not TYPE_CHECKING:  # (the slots are Connection's; mypy checks assignments to them)
        __slots__ = ()
    else:
        worker: Worker
        transport: asyncio.Transport | None
        closed: bool
        fd: int
        out_bytes: int
        _write_paused: bool
        _jobs_bytes: int
        _read_block: int
        _held_input: bytes
        _state: Any
        _full: bool
        _waiters: list[asyncio.Future[None]] | None
        _slow_timer: asyncio.TimerHandle | None
        _file_task: asyncio.Task[None] | None

        _resume_input: Callable[[], None]
        data_received: Callable[[bytes], None]

    def queued_bytes(self) -> int:
        """Bytes queued for the client and not yet taken by the kernel."""
        transport = self.transport
        buffered = 0 if transport is None else transport.get_write_buffer_size()
        return buffered + self.out_bytes + self._jobs_bytes

    @property
    def is_full(self) -> bool:
        """True from passing the high watermark until drained to the low one."""
        return self._full

    # -- reading ---------------------------------------------------------------------------

    def _block_reading(self, reason: int) -> None:
        """Stop reading for ``reason`` (reading resumes when no reason is left)."""
        if not self._read_block:
            transport = self.transport
            if transport is not None and not transport.is_closing():
                transport.pause_reading()
        self._read_block |= reason

    def _unblock_reading(self, reason: int) -> None:
        if not self._read_block & reason:
            return
        self._read_block &= ~reason
        if self._read_block & ~PAUSE_INPUT or self.closed:
            return  # something else still pauses reading
        if not self._read_block:
            transport = self.transport
            if transport is not None and not transport.is_closing():
                self._resume_transport(transport)
        if self._held_input:  # read before the pause took effect: it goes first
            held, self._held_input = self._held_input, b""
            self._state.recv_bytes -= len(held)  # (counted when they were read)
            self.data_received(held)
            return
        self._resume_input()  # (held input goes first: it resumes reading when done)

    def _resume_transport(self, transport: asyncio.Transport) -> None:
        """``transport.resume_reading()``, where every connection resumes its transport
        (runtime/tls.py's DirectTlsConnection also makes aiofastnet read what it holds)."""
        transport.resume_reading()

    def _hold_input(self, data: bytes) -> None:
        """Bytes arrived while ``server.pause(fd)`` (or ``enable_delay_receive``) holds the
        connection: uvloop starts reading after ``connection_made`` whatever it was told
        there, so a connection paused then is read once. Keep them for the resume and
        pause the transport again (now it takes)."""
        self._held_input += data
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()

    # -- the transport's marks --------------------------------------------------------------

    def _apply_limits(self) -> None:
        """Set the transport's marks for the connection's state (see the module doc)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        worker = self.worker
        if self._full:
            high = low = worker.low_water
        elif self._file_task is not None:
            high = min(FILE_WINDOW, worker.high_water)
            low = min(high // 4, worker.low_water) if worker.low_water else high // 4
        else:
            high, low = worker.high_water, worker.low_water
        transport.set_write_buffer_limits(high=high, low=low)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._flow_check()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._file_task is not None:
            self.worker.drain_event(self).set()  # type: ignore[arg-type]
        self._flow_check()

    def _flow_check(self) -> None:
        """Become full past the high watermark, or empty at the low one."""
        if self.closed:
            return
        if not self._full:
            if self.queued_bytes() > self.worker.high_water:
                self._become_full()
        elif self.queued_bytes() <= self.worker.low_water:
            self._become_empty()

    def _become_full(self) -> None:
        worker = self.worker
        self._full = True
        self._apply_limits()
        self._block_reading(PAUSE_BACKPRESSURE)
        if worker.buffer_full_timeout > 0:
            self._slow_timer = worker.loop.call_later(
                worker.buffer_full_timeout, self._slow_consumer
            )
        worker.buffer_state_changed(self, True)  # type: ignore[arg-type]

    def _become_empty(self) -> None:
        worker = self.worker
        self._full = False
        if self._slow_timer is not None:
            self._slow_timer.cancel()
            self._slow_timer = None
        self._apply_limits()
        self._wake_waiters()
        worker.buffer_state_changed(self, False)  # type: ignore[arg-type]
        if self._read_block == PAUSE_BACKPRESSURE:
            self._unblock_reading(PAUSE_BACKPRESSURE)  # (and goes on with held input)
        else:  # something else still pauses reading: queued HTTP requests go on anyway
            self._read_block &= ~PAUSE_BACKPRESSURE
            self._resume_input()

    def _slow_consumer(self) -> None:
        """Still full ``buffer_full_timeout`` seconds after it filled up: close it."""
        self._slow_timer = None
        if self._full and not self.closed:
            self.worker.slow_consumer(self)  # type: ignore[arg-type]

    async def wait_for_room(self, limit: int, timeout: float | None) -> bool:
        """Wait until fewer than ``limit`` bytes are queued (drained to the low watermark
        if it was full); False if the connection closed or ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.closed and self.queued_bytes() >= limit:
            if not self._full:
                if limit < self.worker.high_water:
                    return False  # it would never become full: nothing to wait for
                # queued >= limit >= high watermark: full now (also at exactly the mark,
                # so that the drain wakes us)
                self._become_full()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            waiter: asyncio.Future[None] = self.worker.loop.create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except asyncio.TimeoutError:
                return False
        return not self.closed

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def _release_waiters(self) -> None:
        """The connection is gone: wake whoever waits for room (they see it closed)."""
        self._wake_waiters()
        if self._slow_timer is not None:
            self._slow_timer.cancel()
            self._slow_timer = None

    def _note_job(self, size: int) -> None:
        """``size`` bytes more (or fewer, negative) wait behind off-loop work."""
        self._jobs_bytes += size
        if size > 0 or self._full:
            self._flow_check()

    def buffer_info(self) -> dict[str, Any]:
        """What ``get_client_info`` reports of the connection's output."""
        return {"send_queued_bytes": self.queued_bytes(), "buffer_full": self._full}
