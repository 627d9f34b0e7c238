"""One client connection: an ``asyncio.Protocol`` gluing the socket to the protocol core.

A connection starts in the HTTP phase: bytes go to :class:`HttpRequestParser`; each complete
request is handed, in order, to the application (:class:`Application`, implemented by the
server layer) which answers through this object's :class:`ResponseWriter` methods. One
request is handled at a time (pipelined requests wait in a queue, and reading pauses when
the queue is long), so responses leave in request order (RFC 9112 section 9.3.2).

An upgrade request is handed to :meth:`Application.upgrade`, which either calls
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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..constants import (
    WEBSOCKET_STATUS_ACTIVE,
    WEBSOCKET_STATUS_CLOSING,
    WEBSOCKET_STATUS_CONNECTION,
    WEBSOCKET_STATUS_HANDSHAKE,
)
from ..exceptions import HttpProtocolError
from ..protocol.deflate import PerMessageDeflate
from ..protocol.frames import Frame
from ..protocol.http import HttpRequestParser, ParsedRequest
from ..protocol.websocket import CLOSED, OPEN, SendData, WebSocket
from .state import FASTPATH, _fastpath, flush_deferred

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["Application", "Connection"]

log = logging.getLogger("pyswoole")

_monotonic = time.monotonic
_MAX_QUEUED_REQUESTS = 32
_FILE_CHUNK = 256 * 1024
#: how long a server-initiated close waits for the client's close frame (RFC 6455 7.1.1)
CLOSE_TIMEOUT = 3.0
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
    "status",
    "transport",
    "worker",
    "ws",
)

_BASE_FIELDS: tuple[str, ...]
if TYPE_CHECKING:

    class _Base(asyncio.BufferedProtocol):
        def send_final(self, data: bytes) -> bool: ...  # _fastpath.ConnectionBase

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
        """A message callback returned ``result`` (not None): run it if it is awaitable."""


class Connection(_Base):
    """A client connection, in its HTTP phase and then maybe its WebSocket phase."""

    __slots__ = (
        "_close_after_jobs",
        "_file_task",
        "_finish_after_file",
        "_parser",
        "_peer",
        "_pending",
        "_raw",
        "_read_paused",
        "_timer",
        "_trailing",
        "_write_paused",
        "busy",
        "connect_time",
        "fd",
        "last_send",
        "request_started",
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
        #: while corked, writes are collected in ``out`` and sent together
        self.corked = False
        self.out: list[bytes] = []
        #: the negotiated permessage-deflate state (RFC 7692), set during the handshake
        self.deflate: PerMessageDeflate | None = None
        self._peer: tuple[str, int] | None = None
        self.connect_time = 0.0
        self.last_recv = 0.0
        self.last_send = 0.0
        self._parser: HttpRequestParser | None = None
        self._pending: deque[ParsedRequest] = deque()
        self._trailing = b""
        self._read_paused = False
        self._write_paused = False
        self._timer: asyncio.TimerHandle | None = None
        #: monotonic time the current request began to be awaited; 0 when none is
        self.request_started = 0.0
        self._file_task: asyncio.Task[None] | None = None
        #: ordered sends waiting behind work done off the loop (big compressions): bytes, or
        #: a callable producing bytes in a thread; None when nothing is waiting
        self._jobs: deque[bytes | Callable[[], bytes]] | None = None
        self._close_after_jobs = False
        self._finish_after_file: bool | None = None
        self._state = worker.state

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
            peer = self._peer = (info[0], info[1]) if isinstance(info, tuple) else ("", 0)
        return peer

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.connect_time = time.time()
        self.last_recv = now = _monotonic()
        worker = self.worker
        if self._raw:
            worker.register(self)
            return
        self._parser = HttpRequestParser(
            max_header_size=worker.max_header_size, max_body_size=worker.max_body_size
        )
        if worker.register(self):
            self.request_started = now  # the clock for the first request (_arm_timer)

    def data_received(self, data: bytes) -> None:
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
                            continue
                        # The user's callback is called right here (no wrapper frame: this
                        # is the per-message path); its failures stay its own.
                        try:
                            result = on_message(app, event)
                        except Exception as exc:
                            self._callback_failed(event, exc)
                            continue
                        if result is not None:
                            app.callback_result(result)
                finally:
                    self.corked = False
                    state.depth -= 1
                    if not state.depth and state.deferred:
                        flush_deferred(state)
            self._after_read()
            return
        if self._raw:
            self.last_recv = _monotonic()
            self.app.receive(self, data)
            return
        self._http_data(data)

    def _flush_out(self) -> None:
        """Write what was collected while corked, in one write (off-loop jobs keep order)."""
        out = self.out
        if out:
            transport = self.transport
            assert transport is not None
            if self._jobs is not None:
                self._jobs.append(out[0] if len(out) == 1 else b"".join(out))
            elif not transport.is_closing():
                if len(out) == 1:
                    transport.write(out[0])
                else:  # one writev: big payloads are not copied into a joined buffer
                    transport.writelines(out)
            out.clear()

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
        if ws._out:
            if ws.close_received and ws.close_transport and self._jobs is None:
                # the answer to the client's close: the last bytes, to leave with the FIN
                self.out.append(ws.data_to_send())
            else:
                self.write(ws.data_to_send())
        if ws.close_transport:
            self._close_transport()

    def eof_received(self) -> bool | None:
        if self.ws is not None:
            self.ws.receive_eof()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        if self.status == WEBSOCKET_STATUS_ACTIVE:
            self.status = WEBSOCKET_STATUS_CLOSING
        self._cancel_timer()
        if self._file_task is not None:
            self._file_task.cancel()
        self.worker.unregister(self)
        self.app.connection_lost(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._file_task is not None:
            self.worker.drain_event(self).set()

    # -- writing ------------------------------------------------------------------------

    def write(self, data: bytes) -> bool:
        """Queue bytes on the socket; False if the connection is closing or gone."""
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            return False
        if self.corked or self._cork_for_dispatch():
            self.out.append(data)
        elif self._jobs is not None:
            self._jobs.append(data)
        else:
            transport.write(data)
        return True

    @property
    def has_jobs(self) -> bool:
        """True while sends wait behind work done off the loop."""
        return self._jobs is not None

    def send_off_loop(self, job: Callable[[], bytes]) -> None:
        """Queue bytes that ``job`` computes in a worker thread (e.g. compressing a big
        message); everything written after it waits, so order is kept."""
        if self.corked and self.out:  # what the current read produced goes first
            pending, self.out = self.out, []
            self._queue_job(b"".join(pending))
        self._queue_job(job)

    def _queue_job(self, item: bytes | Callable[[], bytes]) -> None:
        if self._jobs is None:
            self._jobs = deque()
            self._jobs.append(item)
            self._run_jobs()
        else:
            self._jobs.append(item)

    def _run_jobs(self) -> None:
        jobs = self._jobs
        transport = self.transport
        while jobs:
            item = jobs[0]
            if isinstance(item, bytes):
                jobs.popleft()
                if transport is not None and not self.closed:
                    transport.write(item)
                continue
            future = self.worker.loop.run_in_executor(None, item)
            future.add_done_callback(self._job_done)
            return
        self._jobs = None
        if self._close_after_jobs:
            self._close_after_jobs = False
            self._close_transport()

    def _job_done(self, future: asyncio.Future[bytes]) -> None:
        jobs = self._jobs
        if jobs is None:
            return
        jobs.popleft()
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            log.error("off-loop send failed: %r", error)
            self.abort()
            return
        jobs.appendleft(future.result())
        self._run_jobs()

    def write_buffer_size(self) -> int:
        transport = self.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    # -- HTTP phase -----------------------------------------------------------------------

    def _http_data(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self.status != WEBSOCKET_STATUS_CONNECTION:
            return  # after an upgrade request, nothing more is read as HTTP
        self.last_recv = _monotonic()
        try:
            requests = parser.feed(data)
        except HttpProtocolError as error:
            self._pending.clear()
            self._parser = None
            if not self.busy:
                self.write(self.app.http_error(self, error))
                self._close_transport()
            else:  # answer after the request being handled
                self._pending.append(_ErrorMarker(error))  # type: ignore[arg-type]
            return
        if parser.interim:
            # Only between responses: mid-response it would corrupt the stream (the client
            # then sends the body after its own wait, RFC 9110 section 10.1.1).
            if not self.busy and not self._pending:
                self.write(parser.interim)
            parser.interim = b""
        if parser.upgraded:
            self._trailing = parser.trailing
            if len(requests) == 1 and not self.busy and not self._pending and not self.closed:
                # The usual first read of a WebSocket client: its upgrade request, alone,
                # needs no queue.
                self._upgrade(requests[0])
                return
        if requests:
            self._pending.extend(requests)
            if len(self._pending) > _MAX_QUEUED_REQUESTS and not self._read_paused:
                assert self.transport is not None
                self.transport.pause_reading()
                self._read_paused = True
            self._next_request()

    def _next_request(self) -> None:
        """Hand the next queued request to the application, if none is being handled."""
        while self._pending and not self.busy and not self.closed:
            request = self._pending.popleft()
            if isinstance(request, _ErrorMarker):
                self.write(self.app.http_error(self, request.error))
                self._close_transport()
                return
            if request.upgrade:
                self._pending.clear()
                self._upgrade(request)
                return
            self.busy = True
            self.app.http_request(self, request)
        if self._read_paused and len(self._pending) < _MAX_QUEUED_REQUESTS // 2:
            assert self.transport is not None
            self.transport.resume_reading()
            self._read_paused = False

    def _upgrade(self, request: ParsedRequest) -> None:
        """Hand the upgrade request to the application; nothing after it is read as HTTP."""
        self.busy = True
        self.status = WEBSOCKET_STATUS_HANDSHAKE
        self.app.upgrade(self, request)

    # ResponseWriter (pyswoole.server.response) ------------------------------------------

    def write_response(self, data: bytes) -> bool:
        return self.write(data)

    def send_file(self, path: str, offset: int, length: int) -> bool:
        if self.closed:
            return False
        self._file_task = self.worker.loop.create_task(self._stream_file(path, offset, length))
        return True

    async def _stream_file(self, path: str, offset: int, length: int) -> None:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                remaining = length
                while remaining > 0 and not self.closed:
                    chunk = f.read(min(_FILE_CHUNK, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    self.write(chunk)
                    if self._write_paused:
                        event = self.worker.drain_event(self)
                        event.clear()
                        await event.wait()
        except OSError:
            log.exception("sendfile(%r) failed", path)
            self._close_transport()
            return
        finally:
            self._file_task = None
            self.worker.forget_drain_event(self)
        if self._finish_after_file is not None:
            keep_alive = self._finish_after_file
            self._finish_after_file = None
            self._end_request(keep_alive)

    def finish_response(self, response: object, keep_alive: bool) -> None:
        """The current response is complete: go on with the next request, or close."""
        if self.status == WEBSOCKET_STATUS_HANDSHAKE:
            # A custom handshake that ended its response: 101 makes it a WebSocket.
            if getattr(response, "status_code", 0) == 101:
                self.app.handshake_accepted(self, response)
            else:
                self.busy = False
                self._close_transport()
            return
        if self._file_task is not None:
            self._finish_after_file = keep_alive
            return
        self._end_request(keep_alive)

    def _end_request(self, keep_alive: bool) -> None:
        self.busy = False
        if not keep_alive or (self._parser is None and not self._pending):
            self._close_transport()
            return
        self._arm_timer()
        self._next_request()

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
        self._cancel_timer()
        if ws is None:
            ws = self.worker.new_websocket(self.fd, self.deflate)
        self.ws = ws
        self.status = WEBSOCKET_STATUS_ACTIVE
        self.on_message = self.worker.on_message
        if response:
            self.write(response)
        self.worker.websocket_established(self)
        if on_open is not None:
            on_open()
        trailing, self._trailing = self._trailing, b""
        if trailing and not self.closed:
            self.data_received(trailing)

    def close_websocket(self, code: int = 1000, reason: str = "") -> bool:
        """Start the closing handshake; TCP closes on the client's answer or a timeout."""
        ws = self.ws
        if ws is None or self.closed or ws.close_sent:
            return False
        self.write(ws.send_close(code, reason))
        self.status = WEBSOCKET_STATUS_CLOSING
        self.worker.status_changed(self)
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
        self._close_transport()

    # -- closing --------------------------------------------------------------------------

    def _close_transport(self) -> None:
        """Close TCP after what is queued has been written."""
        if self._jobs is not None and not self.closed:
            self._close_after_jobs = True  # close once the off-loop sends are out
            if self.ws is not None:
                self.ws.state = CLOSED
            return
        if self.ws is not None:
            self.ws.state = CLOSED
            if self.status != WEBSOCKET_STATUS_CLOSING:
                self.status = WEBSOCKET_STATUS_CLOSING
                self.worker.status_changed(self)
        transport = self.transport
        if transport is not None and not transport.is_closing():
            out = self.out
            if out:  # corked writes go out first, with the FIN when they can
                if not (FASTPATH and self.send_final(b"".join(out))):
                    transport.writelines(out)
                out.clear()
            transport.close()

    def close(self) -> None:
        """Swoole's ``close(fd)``: close TCP now (queued bytes are still written)."""
        self._close_transport()

    def abort(self) -> None:
        """Drop the connection without flushing."""
        transport = self.transport
        if transport is not None:
            transport.abort()

    # -- timers ---------------------------------------------------------------------------

    def _arm_timer(self) -> None:
        """Start the clock for the next request (checked by the worker's sweep)."""
        self.request_started = _monotonic()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def request_timeout(self) -> None:
        """No complete request in time (or idle keep-alive): answer 408 or just close."""
        if self.busy or self.ws is not None or self.closed:
            return
        parser = self._parser
        if parser is not None and parser.waiting_for_more():
            self.write(self.app.http_error(self, HttpProtocolError(408, "request timeout")))
        self._close_transport()


class _ErrorMarker:
    """Queued in place of a request: answer ``error`` once earlier responses are out."""

    __slots__ = ("error", "upgrade")

    def __init__(self, error: HttpProtocolError) -> None:
        self.error = error
        self.upgrade = False
