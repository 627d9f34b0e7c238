"""One client connection: an ``asyncio.Protocol`` gluing the socket to the protocol core.

A connection starts in its HTTP phase (:mod:`.http_phase`): requests are answered in order
by the application (:class:`Application`, implemented by the server layer). An upgrade
request is handed to :meth:`Application.upgrade`, which either calls
:meth:`Connection.accept_websocket` (the 101 was written; bytes that arrived after the
request are parsed as frames at once) or answers with an HTTP error. In the WebSocket phase
``data_received`` is the hot path: feed the :class:`WebSocket` core, hand each message to
``on_message``, write what the core queued, close TCP when it says so.

With the compiled helpers, :class:`Connection` is built on ``_fastpath.ConnectionBase``: the
event loop reads into the worker's buffer (``get_buffer``/``buffer_updated``, asyncio's
buffered protocol). In the WebSocket phase, while the state machine has nothing in progress,
C parses the read's leading whole, simple text/binary frames, hands the rest of the read to
``WebSocket.receive_data`` and dispatches every event as ``data_received`` would; the HTTP
phase, raw TCP and a state machine with something in progress still arrive here, in
``data_received``, as bytes.

While a read's callbacks run, writes to *other* connections of the worker are corked too
and leave when the callbacks return (:class:`WorkerState`): a broadcast of every message of
a read is one send per client.

Every byte queued for the client counts towards its limits, and past the high watermark
the connection stops being read (:mod:`.flow`). How it ends -- the close after the last
replies, the close that lingers -- is :mod:`.closing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..constants import (
    WEBSOCKET_STATUS_ACTIVE,
    WEBSOCKET_STATUS_CONNECTION,
)
from ..exceptions import HttpProtocolError
from ..protocol.deflate import PerMessageDeflate
from ..protocol.frames import Frame
from ..protocol.http import HttpRequestParser, ParsedRequest
from ..protocol.websocket import OPEN, SENT, SENT_HEADER, SendData, WebSocket
from .closing import Closing
from .flow import PAUSE_INPUT, PAUSE_USER, FlowControl
from .http_phase import NO_REQUESTS, HttpPhase
from .state import FASTPATH, _fastpath, flush_deferred

if TYPE_CHECKING:
    from .listener import PortProfile
    from .worker import Worker

__all__ = ["Application", "Connection"]

log = logging.getLogger("pyswoole")

_monotonic = time.monotonic
#: the attributes ``_fastpath.ConnectionBase`` holds as C members (Python slots without it)
_HOT_FIELDS = (
    "_jobs",
    "_state",
    "app",
    "closed",
    "corked",
    "deflate",
    "last_recv",
    "on_message",
    "out",
    "out_bytes",
    "_write_paused",
    "status",
    "transport",
    "worker",
    "ws",
)

_BASE_FIELDS: tuple[str, ...]
if TYPE_CHECKING:

    class _Base(asyncio.BufferedProtocol):
        def send_final(self, data: bytes) -> bool: ...  # _fastpath.ConnectionBase

        # the hot fields (C members of _fastpath.ConnectionBase)
        out_bytes: int
        _write_paused: bool

    _BASE_FIELDS = ()
elif FASTPATH:
    _fastpath.configure(WebSocket, Frame, SendData, OPEN, WEBSOCKET_STATUS_ACTIVE)

    class _Base(_fastpath.ConnectionBase, asyncio.BufferedProtocol):
        __slots__ = ()

    _BASE_FIELDS = ()
else:
    _Base = asyncio.Protocol
    _BASE_FIELDS = _HOT_FIELDS


class Application(Protocol):
    """What the server layer provides to connections."""

    def http_request(self, conn: Connection, request: ParsedRequest) -> None:
        """Answer ``request``; must end with ``conn.finish_response`` (now or later)."""

    def upgrade(self, conn: Connection, request: ParsedRequest) -> None:
        """Handshake; must end with ``conn.accept_websocket`` or an HTTP answer."""

    def http_error(self, conn: Connection, error: HttpProtocolError) -> bytes:
        """The response bytes for a malformed request."""

    def connection_lost(self, conn: Connection) -> None:
        """The connection is gone (fire ``close``/``disconnect``)."""

    def receive(self, conn: Connection, data: bytes) -> None:
        """Raw TCP data (a plain ``Server``, no HTTP)."""

    def handshake_accepted(self, conn: Connection, response: object) -> None:
        """A custom handshake ended its response with 101: switch ``conn`` to WebSocket."""

    def callback_result(self, result: Any) -> Any:
        """A message callback returned ``result`` (not None): run it if it is awaitable;
        return the task that runs it (the close waits for it), or anything else."""

    def close_barrier(self, conn: Connection) -> asyncio.Future[Any] | None:
        """The WebSocket is about to close: a future done once the replies to the messages
        it delivered have been written (SWOOLE_PROCESS: the worker's answers), or None."""


class Connection(HttpPhase, FlowControl, Closing, _Base):
    """A client connection, in its HTTP phase and then maybe its WebSocket phase."""

    __slots__ = (
        "_close_after_jobs",
        "_close_hold",
        "_file_task",
        "_finish_after_file",
        "_full",
        "_held",
        "_held_input",
        "_in_next",
        "_jobs_bytes",
        "_parser",
        "_peer",
        "_pending",
        "_raw",
        "_read_block",
        "_replies",
        "_slow_timer",
        "_timer",
        "_trailing",
        "_waiters",
        "busy",
        "connect_time",
        "fd",
        "last_send",
        "request_started",
        "profile",
        "server_port",
        "uid",
        *_BASE_FIELDS,
    )

    def __init__(
        self, worker: Worker, app: Application, server_port: int, raw: bool = False
    ) -> None:
        self.worker = worker
        self._raw = raw
        self.app = app
        self.server_port = server_port
        #: the port's own settings and callbacks (``Port.set``/``Port.on``), or None
        self.profile: PortProfile | None = None
        self.fd = 0
        self.transport: asyncio.Transport | None = None
        self.ws: WebSocket | None = None
        #: called as ``on_message(app, frame)`` for each message (set at the upgrade)
        self.on_message: Callable[[Any, Frame], Any] | None = None
        self.status = WEBSOCKET_STATUS_CONNECTION
        #: the application's id for this connection (Swoole's bind(fd, uid)); 0 if unbound
        self.uid = 0
        self.closed = False
        self.busy = False
        #: while corked, writes are collected in ``out`` (``out_bytes`` long) and sent together
        self.corked = False
        self.out: list[bytes] = []
        self.out_bytes = 0
        #: the negotiated permessage-deflate state (RFC 7692), set during the handshake
        self.deflate: PerMessageDeflate | None = None
        self._peer: tuple[str, int] | None = None
        self.connect_time = 0.0
        self.last_recv = 0.0
        self.last_send = 0.0
        self._parser: HttpRequestParser | None = None
        self._pending: deque[ParsedRequest] = NO_REQUESTS  # (made when needed)
        self._trailing = b""
        self._timer: asyncio.TimerHandle | None = None
        #: monotonic time the current request began to be awaited; 0 when none is
        self.request_started = 0.0
        self._file_task: asyncio.Task[None] | None = None
        #: ordered sends waiting behind work done off the loop (big compressions): bytes, or
        #: a callable producing bytes in a thread, each with its size (``_jobs_bytes`` in
        #: all); None when nothing is waiting
        self._jobs: deque[tuple[bytes | Callable[[], bytes], int]] | None = None
        self._jobs_bytes = 0
        #: 0, or 1/2 to close after the off-loop sends (2: lingering)
        self._close_after_jobs = 0
        self._finish_after_file: bool | None = None
        self._in_next = False  # inside _next_request's loop
        self._state = worker.state
        # flow control (.flow)
        self._write_paused = False
        self._read_block = 0
        self._full = False
        self._waiters: list[asyncio.Future[None]] | None = None
        self._slow_timer: asyncio.TimerHandle | None = None
        #: tasks running ``async def`` message callbacks of this connection
        self._replies: set[asyncio.Future[Any]] | None = None
        #: received bytes the protocol core holds, as counted in the worker's budget
        self._held = 0
        #: bytes read before a pause took effect (uvloop reads once after connection_made
        #: even when paused there: enable_delay_receive); replayed by resume/confirm
        self._held_input = b""
        #: the close after a client's close frame or a protocol error: 0 not reached,
        #: 1 waiting for replies still being made, 2 go
        self._close_hold = 0

    @property
    def remote_addr(self) -> str:
        """The client's address (looked up once, when first needed)."""
        return self._peer_info()[0]

    @property
    def remote_port(self) -> int:
        return self._peer_info()[1]

    def _peer_info(self) -> tuple[str, int]:
        peer = self._peer
        if peer is None:
            info = None if self.transport is None else self.transport.get_extra_info("peername")
            if not isinstance(info, tuple):
                peer = ("", 0)
            else:  # (IPv4's is kept as it is: one tuple less for every connection)
                peer = info if len(info) == 2 else (info[0], info[1])
            self._peer = peer
        return peer

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.connect_time = time.time()
        self.last_recv = now = _monotonic()
        worker = self.worker
        if not worker.register(self):
            return
        # the watermarks (flow.py: _apply_limits for the other states)
        self.transport.set_write_buffer_limits(worker.high_water, worker.low_water)
        profile = self.profile
        limits: Worker | PortProfile = worker if profile is None else profile
        if limits.sock_options:  # settings open_tcp_nodelay=False, open_tcp_keepalive...
            sock = self.transport.get_extra_info("socket")
            for level, name, value in limits.sock_options:
                with contextlib.suppress(OSError):
                    sock.setsockopt(level, name, value)
        if self._raw:
            return
        self._parser = HttpRequestParser(
            max_header_size=limits.max_header_size, max_body_size=limits.max_body_size
        )
        self.request_started = now  # the clock for the first request (_arm_timer)

    def data_received(self, data: bytes) -> None:
        self._state.recv_bytes += len(data)  # stats(): bytes on the wire
        if self.closed:
            self.last_recv = _monotonic()  # lingering: what the client still sends is dropped
            return
        ws = self.ws
        if ws is not None:
            self.last_recv = _monotonic()
            events = ws.receive_data(data)
            if events:
                state = self._state
                state.request_count += len(events)
                # Cork: what callbacks write while handling this read (pushes, a disconnect)
                # is sent in one write, in order, before the protocol's own replies; other
                # connections they write to are corked until the dispatch ends.
                self.corked = True
                state.depth += 1  # Worker.begin_batch, inline: a call costs 10 % here
                on_message = self.on_message
                assert on_message is not None
                app = self.app
                try:
                    for event in events:
                        if isinstance(event, SendData):
                            self.out.append(event.data)
                            self.out_bytes += len(event.data)
                            continue
                        # The user's callback is called right here (no wrapper frame: this
                        # is the per-message path); its failures stay its own.
                        try:
                            result = on_message(app, event)
                        except Exception as exc:
                            self._callback_failed(event, exc)
                            continue
                        if result is not None:
                            self._track_reply(app.callback_result(result))
                finally:
                    self.corked = False
                    state.depth -= 1
                    if not state.depth and state.deferred:
                        flush_deferred(state)
            self._after_read()
            return
        if self._read_block & PAUSE_USER:  # paused (delay_receive): hold it for resume
            self._hold_input(data)
            return
        if self._raw:
            self.last_recv = _monotonic()
            self.app.receive(self, data)
            return
        self._http_data(data)

    def _track_reply(self, task: Any) -> None:
        """An ``async def`` message callback runs as ``task``: a close waits for it."""
        if isinstance(task, asyncio.Future) and not task.done():
            replies = self._replies
            if replies is None:
                replies = self._replies = set()
            replies.add(task)
            task.add_done_callback(replies.discard)

    def _flush_out(self) -> None:
        """Write what was collected while corked, in one write (off-loop jobs keep order)."""
        out = self.out
        if out:
            transport = self.transport
            if transport is None:  # gone before a deferred flush (end_batch_soon)
                out.clear()
                self.out_bytes = 0
                return
            if self._jobs is not None:
                self._queue_job(out[0] if len(out) == 1 else b"".join(out), self.out_bytes)
            elif not transport.is_closing():
                self._state.send_bytes += self.out_bytes
                if len(out) == 1:
                    transport.write(out[0])
                else:  # one writev: big payloads are not copied into a joined buffer
                    transport.writelines(out)
            out.clear()
            self.out_bytes = 0

    def _cork_for_dispatch(self) -> bool:
        """While a read's callbacks run in this worker, cork this connection until they
        return (its writes then leave together); True if it was corked."""
        state = self._state
        if state.depth:
            self.corked = True
            state.deferred.append(self)
            return True
        return False

    def _callback_failed(self, frame: Frame, exc: Exception) -> None:
        """The message callback raised: log it; the connection goes on."""
        log.error("exception in message callback (fd %d)", frame.fd, exc_info=exc)

    def _after_read(self) -> None:
        """After a read's messages were dispatched: write what the callbacks pushed (one
        write), then what the protocol queued; close TCP if the protocol says so. (The
        compiled path does the common case itself: small frames pushed, nothing else.)"""
        self._flush_out()
        ws = self.ws
        assert ws is not None
        worker = self.worker
        if worker.max_buffered:  # the budget of unfinished input (max_buffered_bytes)
            held = ws.buffered_bytes
            if held != self._held:
                worker.buffered += held - self._held
                self._held = held
                if worker.buffered > worker.max_buffered:
                    worker.shed_load()
        if ws.close_transport:
            if self._close_hold == 0:
                hold = (self._replies or worker.close_barriers) and self._hold_close()
                self._close_hold = 1 if hold else 2
            if self._close_hold == 1:
                return  # the close frame waits for the replies still being made
        if ws._out:
            if ws.close_received and ws.close_transport and self._jobs is None:
                # the answer to the client's close: the last bytes, to leave with the FIN
                self.out.append(ws.data_to_send())
            else:
                self.write(ws.data_to_send())
        if ws.close_transport:
            # After a protocol error the client may still be sending: linger.
            self._close_transport(linger=not ws.close_received)
        elif ws.input_pending:
            # More than one turn's worth arrived: the rest on the next loop iteration, and
            # no more reading meanwhile (libuv would read this socket again at once).
            self._block_reading(PAUSE_INPUT)
            if not self._read_block & ~PAUSE_INPUT:
                worker.loop.call_soon(self._resume_input)
        elif self._read_block & PAUSE_INPUT:  # the held input is done: read again
            self._read_block &= ~PAUSE_INPUT
            transport = self.transport
            if not self._read_block and transport is not None and not transport.is_closing():
                self._resume_transport(transport)

    def _resume_input(self) -> None:
        """Reading resumed: go on with input kept for later -- what the protocol core held
        back (a read held more inflated data than one batch may; ``input_pending``), or
        pipelined HTTP requests queued while the connection was full."""
        if self.closed:
            return
        ws = self.ws
        if ws is None:
            if self._pending and not self._full:
                self._next_request()
        elif ws.input_pending and not self._read_block & ~PAUSE_INPUT:
            self.data_received(b"")

    def eof_received(self) -> bool | None:
        if self.ws is not None and not self.closed:
            self.ws.receive_eof()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._gone()

    # -- writing ------------------------------------------------------------------------

    def write(self, data: bytes) -> bool:
        """Queue bytes on the socket; False if the connection is closing or gone."""
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            return False
        if not self.corked:
            state = self._state
            if not state.depth:
                if self._jobs is not None:
                    self._queue_job(data, len(data))
                else:
                    state.send_bytes += len(data)
                    transport.write(data)
                return True
            self.corked = True  # (_cork_for_dispatch, inline: once per HTTP response)
            state.deferred.append(self)
        self.out.append(data)
        self.out_bytes += len(data)
        if self.out_bytes >= self.worker.early_flush:
            self._flush_out()  # as send_message: the transport's marks see it now
        return True

    #: ResponseWriter.write_response (HttpPhase's, without its extra call per response)
    write_response = write

    def send_message(self, frame: bytes, tail: bytes | None, limit: int) -> bool:
        """Queue an encoded message (``frame``, then ``tail`` if given: a big payload sent
        uncopied) as ``push`` and ``broadcast`` do; False while ``limit`` bytes are queued
        (Swoole's output buffer overflow) or if the connection is closing."""
        transport = self.transport
        if self.closed or transport is None:
            return False
        if self.corked and self.out_bytes >= self.worker.early_flush:
            self._flush_out()  # no use holding more (see Worker.early_flush)
        if self.queued_bytes() >= limit:
            self._state.buffer_overflows += 1  # (pyswoole.metrics)
            return False
        state = self._state
        state.response_count += 1
        if self.corked or self._cork_for_dispatch():
            self.out.append(frame)
            if tail is None:
                self.out_bytes += len(frame)
            else:
                self.out.append(tail)
                self.out_bytes += len(frame) + len(tail)
        elif self._jobs is not None:
            data = frame if tail is None else frame + tail
            self._queue_job(data, len(data))
        elif tail is None:
            state.send_bytes += len(frame)
            transport.write(frame)
        else:
            state.send_bytes += len(frame) + len(tail)
            transport.writelines((frame, tail))
        return True

    @property
    def has_jobs(self) -> bool:
        """True while sends wait behind work done off the loop."""
        return self._jobs is not None

    def send_off_loop(self, job: Callable[[], bytes], size: int) -> None:
        """Queue bytes that ``job`` computes in a worker thread (e.g. compressing a big
        message of ``size`` bytes); everything written after it waits, so order is kept."""
        self._state.response_count += 1
        if self.corked and self.out:  # what the current read produced goes first
            pending, self.out = self.out, []
            self._queue_job(b"".join(pending), self.out_bytes)
            self.out_bytes = 0
        self._queue_job(job, size)

    def _queue_job(self, item: bytes | Callable[[], bytes], size: int) -> None:
        if self._jobs is None:
            self._jobs = deque()
            self._jobs.append((item, size))
            self._note_job(size)
            self._run_jobs()
        else:
            self._jobs.append((item, size))
            self._note_job(size)

    def _run_jobs(self) -> None:
        jobs = self._jobs
        transport = self.transport
        while jobs:
            item, size = jobs[0]
            if isinstance(item, bytes):
                jobs.popleft()
                self._jobs_bytes -= size
                if transport is not None and not transport.is_closing():
                    self._state.send_bytes += size
                    transport.write(item)
                continue
            future = self.worker.loop.run_in_executor(None, item)
            future.add_done_callback(self._job_done)
            return
        self._jobs = None
        self._jobs_bytes = 0
        if self._close_after_jobs:
            linger = self._close_after_jobs == 2
            self._close_after_jobs = 0
            self._close_transport(linger)
        elif self._full:
            self._flow_check()

    def _job_done(self, future: asyncio.Future[bytes]) -> None:
        jobs = self._jobs
        if jobs is None:
            return
        _, size = jobs.popleft()
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            log.error("off-loop send failed: %r", error)
            self.abort()
            return
        result = future.result()
        SENT[result[0]] += SENT_HEADER[result[1]] + len(result)  # (a frame: send_off_loop)
        self._jobs_bytes += len(result) - size
        jobs.appendleft((result, len(result)))
        self._run_jobs()

    def write_buffer_size(self) -> int:
        transport = self.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    # -- WebSocket phase ------------------------------------------------------------------

    def accept_websocket(
        self,
        response: bytes,
        ws: WebSocket | None = None,
        on_open: Callable[[], Any] | None = None,
    ) -> None:
        """Switch to WebSocket: write the 101 ``response``, run ``on_open``, then parse the
        bytes that came with the upgrade request (they are frames, not to be lost)."""
        self.busy = False
        self._parser = None
        self.request_started = 0.0  # (no more HTTP requests; its float freed)
        self._cancel_timer()
        if ws is None:
            ws = self.worker.new_websocket(self.fd, self.deflate, self.profile)
        self.ws = ws
        self.status = WEBSOCKET_STATUS_ACTIVE
        profile = self.profile
        if profile is None or profile.on_message is None:
            self.on_message = self.worker.on_message
        else:
            self.on_message = profile.on_message
        if response:
            self.write(response)
        self.worker.websocket_established(self)
        if on_open is not None:
            on_open()
        trailing, self._trailing = self._trailing, b""
        if trailing and not self.closed:
            self._state.recv_bytes -= len(trailing)  # (counted when they were read)
            self.data_received(trailing)

    # -- timers ---------------------------------------------------------------------------

    def _arm_timer(self) -> None:
        """Start the clock for the next request (checked by the worker's sweep)."""
        self.request_started = _monotonic()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
