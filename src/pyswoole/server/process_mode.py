"""SWOOLE_PROCESS mode: the master owns every socket, the workers only run callbacks.

The master process runs the event loop with the listeners and every connection: HTTP
parsing, the WebSocket handshake and protocol all happen there. Each event is forwarded over
IPC to the connection's worker, chosen once at its first event by ``dispatch_mode`` /
``dispatch_func`` (:mod:`.dispatch`; ``fd % worker_num`` by default) and recorded, so one
connection's events stay in order; that worker's loop runs the user's callback. What a
callback does to a connection (``push``, ``disconnect``, ``close``, an HTTP ``Response``)
goes back to the master as IPC messages, the same ones SWOOLE_BASE workers send each other.
Raw TCP (``on("receive")``) is forwarded the same way (EV_RECEIVE), and a port with its own
callbacks (``Port::on``) gets them run by the worker (EV_PORT).

This module routes the events (which worker, in order, flow control, moves, barriers) and
applies the workers' answers; :mod:`.process_forward` turns each event into its message,
:mod:`.process_worker` runs the callbacks in the worker.

Its point: ``reload()`` replaces the workers (new code) while every connection stays open
in the master, keeping its fd.

Replies before the close
------------------------
When the WebSocket protocol closes a connection -- the client's close frame, or a protocol
error that fails it -- the runtime asks :meth:`MasterApp.close_barrier` before it sends
the close frame. If events of that fd were forwarded since its last barrier (one set add
per forwarded message marks it), the master sends the worker EV_BARRIER and the close
waits (at most ``max_wait_time``) for the BARRIER_ACK. The worker reads its inbox in order,
so it sees the barrier after every event before it; it answers once the ``async def``
callbacks still running for that fd have finished (bounded by ``max_wait_time`` too), and
the ack travels behind everything those callbacks pushed (IPC keeps order per sender and
destination): the echo of a message that arrived whole leaves before the close frame. It
costs one IPC round trip per close the client starts; none when nothing was forwarded,
when the server started the close itself (a push would be refused by then anyway) or
while the master stops. A barrier left in the inbox of a reloading or killed worker is
answered by its replacement, which reads that inbox next (after the events before it);
if no answer comes, the bounded wait ends the hold. (Not covered: an ``async def``
callback a reloading worker is still finishing while its replacement acks -- two
senders, no order between them.)

Flow control across IPC
-----------------------
A worker slower than its clients makes the master queue events for it: first in the
kernel (the inbox's socket buffer, ~8 MiB), then in the Mailer. Past
:data:`IPC_HIGH_WATER` bytes in the Mailer's queue for a worker, each connection that
forwards an event to it stops being read (``PAUSE_IPC``); when the queue has drained
(``Mailer.on_drain``) every connection paused for that worker resumes. An event the Mailer
refuses (its queue at ``max_pending``: many connections, each adding a read's worth after
the mark) waits in the master's own backlog for that worker, in order, and is handed over
on the next drain -- no event is dropped for being early.

``bufferFull``/``bufferEmpty``: the master owns the connections, so ``worker.on_buffer``
is forwarded to the fd's worker (EV_BUFFER), which calls the user's callback.

Pushes past ``socket_buffer_size``
----------------------------------
Each change of a connection's output state goes to the shared table (``flow``: FULL past
the high watermark, OVERFLOW; ``send_queued_bytes``), so ``get_client_info`` anywhere
reports it and every process's ``push``/``send``/``broadcast`` refuses an OVERFLOW fd
itself, with no IPC (Swoole's ``conn->overflow``). A worker's push the master refuses is
still queued below the fd's mark -- ``socket_buffer_size`` plus what the client itself sent
and was not yet answered by as many bytes pushed below the limit, at most
:data:`REPLY_WINDOWS` IPC windows: the answers to messages read before the client was
paused are in flight -- and up to one window more once marked
(sent before the sender could see the mark); past that it is dropped with one warning per
fd until it drains (:meth:`MasterApp.refused`). ``push_async`` elsewhere waits for the
table to show room, then sends PUSH_YIELD, always queued.

Moving a connection (``dispatch_mode`` 5)
------------------------------------------
``bind(fd, uid)`` in a worker sends BIND to the master, which records the uid (shared
table: ``get_client_info``) and, with ``dispatch_mode=5``, moves the connection to worker
``uid % worker_num`` without reordering its events: it sends the old worker EV_BARRIER and
holds the fd's next events (not reading it meanwhile) until the BARRIER_ACK (the old
worker has run every callback it was sent and its replies have reached the master), at
most ``max_wait_time``, then hands them to the new worker. Swoole instead dispatches each
packet by the uid bound at that moment, so a packet sent just after ``bind()`` may be
handled by the new worker before the old one has finished the previous packet.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from ..constants import SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW, WEBSOCKET_STATUS_ACTIVE
from ..exceptions import HttpProtocolError
from ..process import messages as msg
from ..process.table import FLOW_FULL, FLOW_OVERFLOW
from ..protocol.http import ParsedRequest
from ..runtime.connection import Connection
from ..runtime.flow import PAUSE_IPC
from ..runtime.worker import Worker
from .dispatch import (
    DISPATCH_CLOSE,
    DISPATCH_CONNECT,
    DISPATCH_DATA,
    DISPATCH_MAX_DATA,
    Dispatcher,
)
from .process_certs import MasterCertificates, verifies_peers
from .process_forward import MasterForwarders
from .process_worker import ResponseRelay, WorkerEvents
from .request import Request

if TYPE_CHECKING:
    from .base import Server
    from .processes import ProcessModel

__all__ = [
    "IPC_HIGH_WATER",
    "IPC_READ_SLACK",
    "REPLY_WINDOWS",
    "MasterApp",
    "ResponseRelay",
    "WorkerEvents",
]

log = logging.getLogger("pyswoole")

#: Bytes the master may queue (in user space) for one worker before the connections feeding
#: it stop being read. The kernel already holds ~8 MiB for that inbox when anything queues
#: (its SO_SNDBUF), so the worker is still that far behind when reading pauses and never
#: idles while the master resumes; 1 MiB on top bounds the master's memory per slow worker
#: (plus at most one read's events per connection that arrives after the mark), far from
#: the Mailer's 64 MiB refusal, and above any one ordinary message (a bigger one just pauses
#: its connection right after it is queued).
IPC_HIGH_WATER = 1024 * 1024
#: What one connection may still hand to its worker after the mark (a read's events; an
#: inflate batch): part of the window of replies taken past ``socket_buffer_size``.
IPC_READ_SLACK = 1024 * 1024
#: How many one-way IPC windows of replies a connection that sent messages may get past
#: ``socket_buffer_size``: its messages in flight to the worker and their answers in flight
#: back (two kernel buffers, the Mailers' queues) when the master stopped reading it.
REPLY_WINDOWS = 3


#: the limit given to ``send_message`` for what is queued past ``socket_buffer_size``
_NO_LIMIT = 1 << 62


def publish_flow(table: Any, overflow: dict[int, bool], conn: Connection, full: bool) -> None:
    """The owner's view of ``conn`` in the shared table, at a buffer state change (the
    SWOOLE_PROCESS master and a SWOOLE_BASE worker): FULL (and OVERFLOW while a push to
    it was refused, ``overflow``) past the high watermark, nothing once drained to the
    low one, which also ends the overflow."""
    fd = conn.fd
    if full:
        flow = FLOW_FULL | (FLOW_OVERFLOW if fd in overflow else 0)
    else:
        flow = 0
        overflow.pop(fd, None)
    table.update(fd, flow=flow, send_queued_bytes=conn.queued_bytes())


def keep_or_drop(
    server: Any,
    conn: Connection,
    overflow: dict[int, bool],
    src: int,
    queued: int,
    cap: int,
    yielded: bool,
    data: bytes,
    opcode: int,
    flags: int,
) -> None:
    """A push (``opcode`` >= 0) or send (-1) from process ``src`` that its owner refused
    (the SWOOLE_PROCESS master, or a SWOOLE_BASE worker: ``BaseFlow``): queued whatever
    ``socket_buffer_size`` says up to ``cap`` bytes queued, dropped past it with a warning
    once per fd until it drains (``overflow``), as Swoole's reactor warns "output buffer
    overflow". A ``push_async`` (``yielded``) waited for room: always queued."""
    if not yielded and queued >= cap:
        fd = conn.fd
        if not overflow.get(fd):
            overflow[fd] = True
            log.warning(
                "fd %d: output buffer overflow: dropped %d bytes from process %d "
                "(%d bytes queued; socket_buffer_size %d, taken up to %d); "
                "not logged again for this fd until it drains",
                fd,
                len(data),
                src,
                queued,
                server._buffer_limit,
                cap,
            )
        return
    if opcode < 0:
        conn.send_message(data, None, _NO_LIMIT)
    else:
        server._push_unlimited(conn, data, opcode, flags)


def _recheck(conn: Connection) -> None:
    """After the batch that made ``conn`` full has been written: drained already?"""
    if not conn.closed and conn.is_full:
        conn._flow_check()


def mark_overflow(
    table: Any,
    overflow: dict[int, bool],
    conn: Connection,
    queued: int,
    loop: asyncio.AbstractEventLoop,
) -> None:
    """The owner (the SWOOLE_PROCESS master, a SWOOLE_BASE worker) refused a write to
    ``conn``, ``queued`` bytes queued: FLOW_OVERFLOW in the shared table until it has
    drained (``publish_flow``). It is made full if it was not yet (a high watermark above
    the limit, or a queue still corked, not yet in the transport), so that the drain is
    noticed."""
    overflow[conn.fd] = False
    if conn.is_full:
        table.update(conn.fd, flow=FLOW_FULL | FLOW_OVERFLOW, send_queued_bytes=queued)
    else:
        conn._become_full()  # (-> buffer_changed: the table has both bits)
        # if the kernel takes all of it at the flush, no transport mark says so
        loop.call_soon(_recheck, conn)


class _Status:
    """What ``Connection.finish_response`` needs of a relayed response."""

    __slots__ = ("headers", "status_code")

    def __init__(self, status_code: int, extensions: str) -> None:
        self.status_code = status_code
        #: a custom handshake's 101: the permessage-deflate it kept (``handshake_accepted``)
        self.headers = {"Sec-WebSocket-Extensions": extensions} if extensions else {}


class MasterApp(MasterForwarders):
    """The master's ``Application``: the server's own HTTP and handshake handling, with the
    user's callbacks replaced by forwarding to the workers (see the module docstring)."""

    def __init__(self, server: Server, procs: ProcessModel, worker: Worker) -> None:
        self.server = server
        self.procs = procs
        self.worker = worker
        assert procs.mailer is not None
        self.mailer = procs.mailer
        self.worker_num = procs.worker_num
        #: bytes the Mailer queues per worker (its live mapping: read after each send)
        self._queued = self.mailer.queued
        #: fds with events forwarded since their last barrier (their worker may be answering)
        self._forwarded: set[int] = set()
        #: fd -> the close waiting for its worker's BARRIER_ACK
        self._barriers: dict[int, asyncio.Future[None]] = {}
        #: worker -> {fd: connection} not read because the IPC queue to it is long
        self._paused: dict[int, dict[int, Connection]] = {}
        #: worker -> events the Mailer refused (its queue was full), to send in order
        self._backlog: dict[int, deque[tuple[int, int, bytes]]] = {}
        get = server._settings.get_value
        self.dispatcher = Dispatcher(
            server, self.worker_num, get("dispatch_mode"), get("dispatch_func"), procs.load
        )
        #: events sent per worker (dispatch modes 3/7), else None
        self._sent = self.dispatcher.sent
        #: fd -> its worker, chosen at its first forwarded event; -1 while it moves
        self._route: dict[int, int] = {}
        #: fd -> (new worker, events held, timeout) while it moves (bound, dispatch_mode 5)
        self._moving: dict[int, tuple[int, deque[tuple[int, bytes, bool]], Any]] = {}
        #: fds lost while moving: their route is dropped once the move ends
        self._gone: set[int] = set()
        self.mailer.on_drain = self._drained
        #: fd -> whether a drop was logged, while it overflows (FLOW_OVERFLOW in the table)
        self._overflow: dict[int, bool] = {}
        #: fd -> bytes of its messages forwarded and not yet answered by as many bytes of
        #: pushes taken below socket_buffer_size (see refused())
        self.received: dict[int, int] = {}
        #: what may be in flight one way between the master and a worker: its inbox's
        #: kernel buffer, the Mailer's queue below the mark, a read's events after it
        window = max((procs.inboxes[i].send_buffer for i in range(self.worker_num)), default=0)
        self.ipc_window = window + IPC_HIGH_WATER + IPC_READ_SLACK
        #: at most this much of a connection's own input counts toward its replies' room
        self.reply_room = REPLY_WINDOWS * self.ipc_window
        # In the master, "calling" a callback forwards it (process_forward.py)
        self._forward_events()
        worker.close_barriers = True  # a closing connection asks close_barrier()
        #: ``ssl_verify_peer`` ports: client certificates reach the workers (process_certs.py)
        self.certs = None
        if verifies_peers(server):
            self.certs = MasterCertificates(self, self.wants_connect)
            worker.on_connect = self.certs.connected

    def worker_for(self, fd: int) -> int:
        """The worker that serves ``fd`` (-1: none chosen yet, or it is moving)."""
        return self._route.get(fd, -1)

    def _send(self, fd: int, kind: int, body: bytes, pause: bool = True, first: Any = None) -> None:
        """Hand an event of ``fd`` to its worker, in order; past the high water mark of
        that worker's queue, stop reading ``fd`` until the queue drains (unless not
        ``pause``: the barrier of a closing connection, which must go on reading). The
        first event of ``fd`` chooses its worker (``first``: what dispatch_func sees)."""
        dst = self._route.get(fd)
        if dst is None:
            dst = self._assign(fd, kind, first)
        elif dst < 0:  # moving: held until the old worker has finished (bound())
            self._moving[fd][1].append((kind, body, pause))
            return
        if self._sent is not None:
            self._sent[dst] += 1
        backlog = self._backlog.get(dst)
        if backlog is not None:  # earlier events wait here: this one goes behind them
            backlog.append((fd, kind, body))
            if pause:
                self._pause(fd, dst)
        elif not self.mailer.send(dst, kind, body):
            self._refused(fd, dst, kind, body, pause)
        elif pause and dst in self._queued and self._queued[dst] > IPC_HIGH_WATER:
            self._pause(fd, dst)

    def _assign(self, fd: int, kind: int, first: Any) -> int:
        """Choose and record the worker of ``fd`` (:class:`.dispatch.Dispatcher`)."""
        conn = self.worker.connections.get(fd)
        ip = "" if conn is None else conn.remote_addr
        data: Any = None
        if kind == msg.EV_CONNECT or kind == msg.EV_CERT:
            event = DISPATCH_CONNECT
            data = b""
        elif kind == msg.EV_CLOSE:
            event = DISPATCH_CLOSE
        else:
            event = DISPATCH_DATA
            if isinstance(first, Request):
                data = first.get_data()[:DISPATCH_MAX_DATA]
            elif isinstance(first, bytes):
                data = first[:DISPATCH_MAX_DATA]
        dst = self._route[fd] = self.dispatcher.choose(fd, ip, event, data)
        return dst

    def _release(self, fd: int) -> None:
        """``fd`` is gone: forget its worker (after its last event was handed over)."""
        self._overflow.pop(fd, None)
        self.received.pop(fd, None)
        if fd in self._moving:
            self._gone.add(fd)
            return
        dst = self._route.pop(fd, None)
        if dst is not None:
            self.dispatcher.released(dst)

    def bound(self, fd: int, uid: int) -> None:
        """BIND from a worker: ``fd`` has the application's id ``uid`` (Swoole's ``bind``).
        With ``dispatch_mode=5`` (and no ``dispatch_func``) the connection moves to worker
        ``uid % worker_num`` (see the module docstring)."""
        conn = self.worker.connections.get(fd)
        if conn is None or conn.closed or conn.uid:
            return
        conn.uid = uid
        self.procs.table.update(fd, uid=uid)
        dispatcher = self.dispatcher
        if dispatcher.mode != 5 or dispatcher.has_func:
            return
        new = uid % self.worker_num
        old = self._route.get(fd)
        if old is None:  # nothing forwarded yet: it starts there
            self._route[fd] = dispatcher.take(new)
            return
        if old == new or old < 0 or fd in self._barriers:
            return  # (closing: it stays where its close barrier is)
        wait = self.worker.reply_wait
        if wait <= 0:  # max_wait_time=0: no waiting, move at once
            dispatcher.released(old)
            self._route[fd] = dispatcher.take(new)
            return
        # Everything sent to the old worker before this barrier is handled before its ack.
        self._send(fd, msg.EV_BARRIER, msg.pack_fd(fd), pause=False)
        self._route[fd] = -1
        timer = self.worker.loop.call_later(wait, self._move_late, fd)
        self._moving[fd] = (new, deque(), timer)
        dispatcher.released(old)
        dispatcher.take(new)
        self._pause(fd, new)  # read nothing more until the move is done

    def _move_late(self, fd: int) -> None:
        if fd in self._moving:
            log.warning("fd %d: its worker did not answer within max_wait_time: moving it", fd)
            self._moved(fd)

    def _moved(self, fd: int) -> None:
        """The old worker has handled everything of ``fd`` it was sent: hand the held
        events to the new one, in order, and read ``fd`` again."""
        new, held, timer = self._moving.pop(fd)
        timer.cancel()
        self._route[fd] = new
        for kind, body, pause in held:
            self._send(fd, kind, body, pause)
        if fd in self._gone:
            self._gone.discard(fd)
            self._release(fd)
            return
        conn = self.worker.connections.get(fd)
        paused = self._paused.get(new)
        if (
            conn is not None
            and paused is not None
            and new not in self._backlog
            and self._queued.get(new, 0) <= IPC_HIGH_WATER
            and paused.pop(fd, None) is not None
            and not conn.closed
        ):
            conn._unblock_reading(PAUSE_IPC)

    def _refused(self, fd: int, dst: int, kind: int, body: bytes, pause: bool) -> None:
        if self.mailer.pending(dst):  # its queue is full: keep the event here, in order
            self._backlog[dst] = deque([(fd, kind, body)])
            if pause:
                self._pause(fd, dst)
        else:  # the inbox is closed or broken, or the event is bigger than any queue
            log.error("could not hand event %d of fd %d to worker %d", kind, fd, dst)

    def _pause(self, fd: int, dst: int) -> None:
        conn = self.worker.connections.get(fd)
        if conn is not None and not conn.closed:
            conn._block_reading(PAUSE_IPC)
            paused = self._paused.get(dst)
            if paused is None:
                paused = self._paused[dst] = {}
            paused[fd] = conn

    def _drained(self, dst: int) -> None:
        """``Mailer.on_drain``: the queue to worker ``dst`` is empty. Hand over what waits
        in the backlog; once that is all queued below the mark, resume reading."""
        backlog = self._backlog.get(dst)
        if backlog is not None:
            send = self.mailer.send
            while backlog:
                fd, kind, body = backlog[0]
                if not send(dst, kind, body):
                    if self.mailer.pending(dst):
                        return  # full again: the next drain goes on
                    log.error("could not hand event %d of fd %d to worker %d", kind, fd, dst)
                backlog.popleft()
            del self._backlog[dst]
            if self.mailer.pending(dst) > IPC_HIGH_WATER:
                return  # resume at the next drain
        paused = self._paused.pop(dst, None)
        if paused:
            for conn in paused.values():
                if not conn.closed:
                    conn._unblock_reading(PAUSE_IPC)

    # -- output flow control (see the module doc) -------------------------------------------

    def buffer_changed(self, conn: Connection, full: bool) -> None:
        """``worker.on_buffer``: ``conn`` passed the high watermark or drained to the low
        one. The state goes to the shared table (``get_client_info`` and the workers'
        pushes read it); a drained connection no longer overflows. bufferFull/bufferEmpty
        go to the fd's worker if the application has them."""
        publish_flow(self.procs.table, self._overflow, conn, full)
        if self.wants_buffer:
            self._forward_buffer(conn, full)

    def refused(
        self, src: int, fd: int, yielded: bool, data: bytes, opcode: int, flags: int
    ) -> None:
        """A push (``opcode`` >= 0) or send (-1) from process ``src`` was refused here:
        ``socket_buffer_size`` bytes are queued.

        The connection's *mark* is ``socket_buffer_size`` plus its replies' room: the
        bytes of its own messages forwarded to its worker less the bytes of the pushes
        to it taken below the limit since, at most :attr:`reply_room` (the answers to
        what the master read before it stopped reading it are still on their way: an
        echo server loses none; pushes past the limit do not count, so the room stays
        what was in flight when the limit was reached). Below the mark the
        message is queued. From the mark on the connection is marked overflowing in the
        shared table (``FLOW_OVERFLOW``), so the workers refuse further pushes themselves
        (Swoole's ``conn->overflow``); what they sent before they could see it is queued
        up to one more :attr:`ipc_window`, and past that dropped with a warning (once per
        fd until it drains), as Swoole's reactor warns "output buffer overflow". A
        ``push_async`` (``yielded``) waited for room before it was sent: always queued."""
        if self.server._last_error != SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW:
            return  # (the connection is gone or closing: nothing to keep)
        conn = self.worker.connections.get(fd)
        if conn is None or conn.closed:
            return
        queued = conn.queued_bytes()
        mark = self.server._buffer_limit + min(self.received.get(fd, 0), self.reply_room)
        if queued >= mark:
            self._mark_overflow(conn, queued)
        cap = mark + self.ipc_window
        keep_or_drop(
            self.server, conn, self._overflow, src, queued, cap, yielded, data, opcode, flags
        )

    def _mark_overflow(self, conn: Connection, queued: int) -> None:
        """``conn`` holds ``socket_buffer_size`` bytes or more: FLOW_OVERFLOW until it has
        drained (``buffer_changed``). It is made full if it was not yet (its queue may be
        corked, not yet in the transport), so that the drain is noticed."""
        if conn.fd not in self._overflow:
            mark_overflow(self.procs.table, self._overflow, conn, queued, self.worker.loop)

    # -- runtime.connection.Application --------------------------------------------------

    def http_request(self, conn: Connection, request: ParsedRequest) -> None:
        self.server.http_request(conn, request)

    def upgrade(self, conn: Connection, request: ParsedRequest) -> None:
        self.server.upgrade(conn, request)

    def http_error(self, conn: Connection, error: HttpProtocolError) -> bytes:
        return self.server.http_error(conn, error)

    def handshake_accepted(self, conn: Connection, response: object) -> None:
        self.server.handshake_accepted(conn, response)

    def callback_result(self, result: Any) -> Any:
        return result  # the master's message callback only forwards (and returns None)

    def close_barrier(self, conn: Connection) -> asyncio.Future[Any] | None:
        """The protocol closes ``conn``: if its worker may still be answering events it
        was sent, a future done when the worker has acknowledged a barrier (its replies
        were sent before the ack); None if there is nothing to wait for -- nothing was
        forwarded since the last barrier, or the server already closed the WebSocket
        (a push would be refused now), or the master is stopping."""
        fd = conn.fd
        if (
            fd not in self._forwarded
            or conn.status != WEBSOCKET_STATUS_ACTIVE
            or self.worker.stopping
        ):
            return None
        self._forwarded.discard(fd)
        future = self._barriers.get(fd)
        if future is None:
            future = self._barriers[fd] = self.worker.loop.create_future()
            # (not paused: after the close, a failed connection lingers, reading to EOF)
            self._send(fd, msg.EV_BARRIER, msg.pack_fd(fd), pause=False)
        return future

    # -- answers from the workers ----------------------------------------------------------

    def on_reply(self, kind: int, body: bytes) -> bool:
        """Apply a worker's RESP_*, BARRIER_ACK or BIND message; False if ``kind`` is none."""
        if kind == msg.RESP_DATA:
            fd, data = msg.unpack_send(body)
            conn = self.worker.connections.get(fd)
            if conn is not None:
                conn.write_response(data)
        elif kind == msg.RESP_FILE:
            fd, offset, length, path = msg.unpack_resp_file(body)
            conn = self.worker.connections.get(fd)
            if conn is not None:
                conn.send_file(path, offset, length)
        elif kind == msg.RESP_END:
            fd, keep_alive, status, extensions = msg.unpack_resp_end(body)
            conn = self.worker.connections.get(fd)
            if conn is not None and conn.busy:
                conn.finish_response(_Status(status, extensions), keep_alive)
        elif kind == msg.BARRIER_ACK:
            fd = msg.unpack_fd(body)
            if fd in self._moving:  # the old worker of a moving fd is done with it
                self._moved(fd)
                return True
            barrier = self._barriers.pop(fd, None)
            if barrier is not None and not barrier.done():
                barrier.set_result(None)
        elif kind == msg.RESP_HEADERS:
            self.before_handshake_answered(body)
        elif kind == msg.BIND:
            self.bound(*msg.unpack_bind(body))
        elif kind == msg.CERTS:
            if self.certs is not None:
                self.certs.resend(msg.unpack_fd(body))
        else:
            return False
        return True
