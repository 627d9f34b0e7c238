"""A connection's HTTP phase: requests in order, responses, files, the upgrade hand-off.

Bytes go to :class:`~pyswoole.protocol.http.HttpRequestParser`; each complete request is
handed, in order, to the application, which answers through the connection's
``ResponseWriter`` methods (``write_response``, ``send_file``, ``finish_response``). One
request is handled at a time: pipelined requests wait in a queue (reading pauses when it is
long), so responses leave in request order (RFC 9112 section 9.3.2), also with ``async def``
handlers. An upgrade request goes to ``Application.upgrade``; nothing after it is read as
HTTP. A malformed request gets its error answer after the responses before it, then the
connection closes, lingering (the answer must reach a client that may still be sending).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..constants import WEBSOCKET_STATUS_CONNECTION, WEBSOCKET_STATUS_HANDSHAKE
from ..exceptions import HttpProtocolError
from ..protocol.http import HttpRequestParser, ParsedRequest
from .flow import PAUSE_PIPELINE

#: every connection's queue of pipelined requests until it needs one (most never do: a
#: WebSocket after its upgrade, a keep-alive client waiting for each answer): 0.7 KiB of
#: deque less per connection. A maxlen-0 deque drops what is put in it, so this shared one
#: stays empty whatever happens; a connection makes its own before it queues anything.
NO_REQUESTS: deque[ParsedRequest] = deque(maxlen=0)

if TYPE_CHECKING:
    from .connection import Application
    from .worker import Worker

__all__ = ["HttpPhase"]

log = logging.getLogger("pyswoole")

_monotonic = time.monotonic
_MAX_QUEUED_REQUESTS = 32
#: pipelined requests handed to the application per loop iteration (then the others' turn)
_REQUESTS_PER_TURN = 16
_FILE_CHUNK = 256 * 1024


class HttpPhase:
    """Mixin of :class:`~pyswoole.runtime.connection.Connection`: its HTTP phase (slots
    declared there: ``_parser``, ``_pending``, ``_trailing``, ``_file_task``,
    ``_finish_after_file``, ``_in_next``, ``busy``, ``request_started``)."""

    if not TYPE_CHECKING:  # (the slots are Connection's; mypy checks assignments to them)
        __slots__ = ()
    else:
        worker: Worker
        app: Application
        transport: asyncio.Transport | None
        closed: bool
        busy: bool
        status: int
        _full: bool
        _in_next: bool
        request_started: float
        last_recv: float
        _parser: HttpRequestParser | None
        _pending: deque[ParsedRequest]
        _trailing: bytes
        _file_task: asyncio.Task[None] | None
        _finish_after_file: bool | None
        _write_paused: bool
        _read_block: int
        corked: bool

        write: Callable[[bytes], bool]
        _flush_out: Callable[[], None]
        _close_transport: Callable[..., None]
        _block_reading: Callable[[int], None]
        _unblock_reading: Callable[[int], None]
        _apply_limits: Callable[[], None]
        _arm_timer: Callable[[], None]

    def _http_data(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self.status != WEBSOCKET_STATUS_CONNECTION:
            return  # after an upgrade request or an error, nothing more is read as HTTP
        self.last_recv = _monotonic()
        try:
            requests = parser.feed(data)
        except HttpProtocolError as error:
            self._pending.clear()
            self._parser = None
            if not self.busy:
                self.write(self.app.http_error(self, error))  # type: ignore[arg-type]
                self._close_transport(linger=True)
            else:  # answer after the request being handled
                if self._pending is NO_REQUESTS:
                    self._pending = deque()
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
            if (
                len(requests) == 1
                and not self._pending
                and not self.busy
                and not self._in_next
                and not self.closed
                and not self._full
                and not requests[0].upgrade
            ):
                # The usual read of a keep-alive client, one request and none queued: what
                # _next_request does for it, without the queue.
                self.busy = True
                worker = self.worker
                worker.state.depth += 1  # corked: the answer leaves after this poll's reads
                try:
                    self.app.http_request(self, requests[0])  # type: ignore[arg-type]
                finally:
                    worker.end_batch_soon()
                return
            if self._pending is NO_REQUESTS:
                self._pending = deque()
            self._pending.extend(requests)
            if len(self._pending) > _MAX_QUEUED_REQUESTS:
                self._block_reading(PAUSE_PIPELINE)
            self._next_request()

    def _next_request(self) -> None:
        """Hand the next queued requests to the application, one at a time, while none is
        being handled and the connection is not full (its answers wait to be read: the
        rest of the queue waits for ``_flow_check`` to say it drained).

        A handler that answers at once calls back in here (``end()`` finishes the request);
        that inner call returns at once and this loop goes on: many pipelined requests must
        not become as many nested calls."""
        if self._in_next:
            return
        self._in_next = True
        turn = _REQUESTS_PER_TURN
        worker = self.worker
        try:
            while self._pending and not self.busy and not self.closed and not self._full:
                if not turn:
                    # One read of pipelined requests can hold thousands: the rest wait for
                    # the next loop iteration, so other connections are served meanwhile.
                    worker.loop.call_soon(self._next_request)
                    break
                turn -= 1
                request = self._pending.popleft()
                if isinstance(request, _ErrorMarker):
                    self.write(self.app.http_error(self, request.error))
                    self._close_transport(linger=True)
                    return
                if request.upgrade:
                    self._pending.clear()
                    self._upgrade(request)
                    return
                self.busy = True
                # Corked: the answer leaves after this poll's other reads (end_batch_soon).
                worker.state.depth += 1
                try:
                    self.app.http_request(self, request)  # type: ignore[arg-type]
                finally:
                    worker.end_batch_soon()
        finally:
            self._in_next = False
        if self._read_block & PAUSE_PIPELINE and len(self._pending) < _MAX_QUEUED_REQUESTS // 2:
            self._unblock_reading(PAUSE_PIPELINE)

    @property
    def has_pending_requests(self) -> bool:
        """Complete requests wait for their turn (pipelining)."""
        return bool(self._pending)

    def _upgrade(self, request: ParsedRequest) -> None:
        """Hand the upgrade request to the application; nothing after it is read as HTTP."""
        self.busy = True
        self.status = WEBSOCKET_STATUS_HANDSHAKE
        worker = self.worker
        worker.state.depth += 1
        try:
            self.app.upgrade(self, request)  # type: ignore[arg-type]
        finally:
            worker.end_batch_soon()

    # ResponseWriter (pyswoole.server.response) ------------------------------------------

    def write_response(self, data: bytes) -> bool:
        return self.write(data)

    def send_file(self, path: str, offset: int, length: int) -> bool:
        if self.closed:
            return False
        self._file_task = self.worker.loop.create_task(self._stream_file(path, offset, length))
        self._apply_limits()  # a small window while the file streams
        return True

    async def _stream_file(self, path: str, offset: int, length: int) -> None:
        if self.corked:  # the head, corked by the dispatch: out first, then stream uncorked
            self.corked = False
            self._flush_out()
        drain = self.worker.drain_event(self)  # type: ignore[arg-type]
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
                        drain.clear()
                        await drain.wait()
        except OSError:
            log.exception("sendfile(%r) failed", path)
            self._close_transport()
            return
        finally:
            self._file_task = None
            self.worker.forget_drain_event(self)  # type: ignore[arg-type]
            if not self.closed:
                self._apply_limits()
        if self._finish_after_file is not None:
            keep_alive = self._finish_after_file
            self._finish_after_file = None
            self._end_request(keep_alive)

    def finish_response(self, response: object, keep_alive: bool) -> None:
        """The current response is complete: go on with the next request, or close."""
        if self.status == WEBSOCKET_STATUS_HANDSHAKE:
            # A custom handshake that ended its response: 101 makes it a WebSocket.
            if getattr(response, "status_code", 0) == 101:
                self.app.handshake_accepted(self, response)  # type: ignore[arg-type]
            else:
                self.busy = False
                self._close_transport(linger=True)
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
        self.request_started = _monotonic()  # the clock for the next request (_arm_timer)
        if self._pending or self._read_block:
            self._next_request()

    def request_timeout(self) -> None:
        """No complete request in time (or idle keep-alive): answer 408 or just close.
        Not while complete requests wait their turn: they came in time, and a client slow
        to read their answers is flow control's business (``buffer_full_timeout``)."""
        if self.busy or self._pending or self.status != WEBSOCKET_STATUS_CONNECTION or self.closed:
            return
        parser = self._parser
        if parser is not None and parser.waiting_for_more():
            error = HttpProtocolError(408, "request timeout")
            self.write(self.app.http_error(self, error))  # type: ignore[arg-type]
            self._close_transport(linger=True)
        else:
            self._close_transport()


class _ErrorMarker:
    """Queued in place of a request: answer ``error`` once earlier responses are out."""

    __slots__ = ("error", "upgrade")

    def __init__(self, error: HttpProtocolError) -> None:
        self.error = error
        self.upgrade = False
