"""One worker: an event loop serving listeners, its connections, timers and heartbeat.

The worker knows nothing of Swoole's API; the server layer configures it with plain values
and callables (``on_connect``, ``on_message``, ``on_start``, ``on_stop``) and an
:class:`~pyswoole.runtime.connection.Application` that answers requests and handshakes.

Shutdown is graceful: listeners stop accepting, every WebSocket client gets a 1001 close
frame, the worker waits (bounded) for the closing handshakes and for HTTP responses in
flight, then closes what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..constants import (
    WEBSOCKET_CLOSE_GOING_AWAY,
    WEBSOCKET_CLOSE_TRY_AGAIN_LATER,
    WEBSOCKET_STATUS_ACTIVE,
)
from ..protocol.frames import Frame
from ..protocol.websocket import MessageInflater, WebSocket
from .connection import Application, Connection
from .flow import PAUSE_USER
from .listener import Listener, PortProfile, raise_nofile_limit
from .loop import new_event_loop, stop_signals
from .state import flush_deferred, new_worker_state
from .timers import Timers

__all__ = ["Listener", "Worker", "raise_nofile_limit"]

log = logging.getLogger("pyswoole")

#: how long shutdown waits for clients to finish the closing handshake (at most)
SHUTDOWN_TIMEOUT = 3.0
#: the share of ``max_wait_time`` kept for the closing handshakes after the drain
_CLOSE_SHARE = 0.4
#: how often a stopping worker looks whether it has drained
_DRAIN_POLL = 0.02
#: corked writes up to this size are joined into one send (_fastpath_write.h's JOIN_MAX);
#: a corked connection holding more sends it before queuing the next message
EARLY_FLUSH = 64 * 1024


class SharedDirectory(Protocol):
    """The shared connection table of a multi-process server (process/table.py)."""

    def allocate(
        self, owner: int, status: int, remote_ip: str, remote_port: int, server_port: int
    ) -> int: ...

    def release(self, fd: int) -> bool: ...

    def update(self, fd: int, **fields: Any) -> bool: ...


class Worker:
    """The event loop of one worker process (or of the whole server with one worker)."""

    def __init__(
        self,
        app: Application,
        listeners: list[Listener],
        *,
        worker_id: int = 0,
        max_conn: int,
        max_header_size: int,
        max_body_size: int,
        max_message_size: int,
        request_timeout: float,
        heartbeat_check_interval: float,
        heartbeat_idle_time: float,
        deliver_close: bool,
        deliver_ping: bool,
        deliver_pong: bool,
        backlog: int = 511,
        raw_tcp: bool = False,
        task_grace: float = 3.0,
        buffer_limit: int = 8 * 1024 * 1024,
        high_water: int | None = None,
        low_water: int = 0,
        buffer_full_timeout: float = 0.0,
        max_buffered: int = 0,
    ) -> None:
        self.app = app
        self.listeners = listeners
        self.worker_id = worker_id
        self.max_conn = max_conn
        self.max_header_size = max_header_size
        self.max_body_size = max_body_size
        self.max_message_size = max_message_size
        self.request_timeout = request_timeout
        self.heartbeat_check_interval = heartbeat_check_interval
        self.heartbeat_idle_time = heartbeat_idle_time
        self.deliver_close = deliver_close
        self.deliver_ping = deliver_ping
        self.deliver_pong = deliver_pong
        self.backlog = backlog
        self.raw_tcp = raw_tcp
        #: how long a graceful stop waits for callbacks still running (Swoole's max_wait_time),
        #: and a closing WebSocket for the replies to its last messages
        self.task_grace = task_grace
        self.reply_wait = task_grace
        #: flow control (.flow): push refuses while ``buffer_limit`` bytes are queued for a
        #: connection; past ``high_water`` it is full (not read) until drained to ``low_water``
        self.buffer_limit = buffer_limit
        self.high_water = int(buffer_limit * 0.8) if high_water is None else high_water
        self.low_water = low_water
        #: seconds a connection may stay full before ``slow_consumer`` closes it; 0: never
        self.buffer_full_timeout = buffer_full_timeout
        #: the budget of received bytes held by this worker's connections until their frames
        #: or messages complete (max_buffered_bytes; 0: none), and what they hold now
        self.max_buffered = max_buffered
        self.buffered = 0
        self.loop = new_event_loop()
        self.timers = Timers(self.loop, self.run_callback)
        self.connections: dict[int, Connection] = {}
        #: the connections still speaking HTTP (not upgraded): what the request-timeout
        #: sweep looks at, so 100k WebSocket connections cost it nothing each second
        self.http_conns: dict[int, Connection] = {}
        #: what the connections share: request count, read buffer, writes deferred while a
        #: read's callbacks run
        self.state = new_worker_state()
        # Below this many corked bytes a push needs not ask the transport its size (a
        # transport that did not say pause_writing holds at most high_water): compiled push.
        self.state.buffer_slack = slack = max(0, self.buffer_limit - self.high_water)
        #: a corked connection holding this much sends it at once (_fastpath_write.h:
        #: early_flush): one join's worth, less when the limit leaves little room
        self.early_flush = min(EARLY_FLUSH, slack) or 1
        self.websocket_count = 0
        #: fds exempt from the idle check (Swoole's ``protect(fd)``)
        self.protected: set[int] = set()
        #: ``enable_delay_receive``: a new connection is not read until ``confirm(fd)``
        self.delay_receive = False
        self.next_fd = 1
        self.start_time = 0
        self.accept_count = 0
        self.close_count = 0
        self.abort_count = 0
        self.running = False
        self.stopping = False
        self.thread_id = 0
        # set by the server layer
        self.on_connect: Callable[[Connection], None] | None = None
        #: called as ``on_message(app, frame)`` by the connections (``app`` is theirs)
        self.on_message: Callable[[Any, Frame], Any] = _drop_frame
        self.run_callback_hook: Callable[[Callable[..., Any], tuple[Any, ...]], None] | None = None
        #: called when a graceful stop begins (before connections close and callbacks drain)
        self.on_stopping: Callable[[], None] | None = None
        #: called as ``on_buffer(conn, full)`` when a connection becomes full or drains
        self.on_buffer: Callable[[Connection, bool], None] | None = None
        #: called as ``on_websocket(conn, opened)`` at an upgrade and when a WebSocket is
        #: gone (the access log, server/access_log.py)
        self.on_websocket: Callable[[Connection, bool], None] | None = None
        #: the app's close_barrier() may hold a close (the SWOOLE_PROCESS master's does);
        #: when False, a closing connection does not ask
        self.close_barriers = False
        #: setsockopt() calls for each accepted connection (settings open_tcp_nodelay...)
        self.sock_options: tuple[tuple[int, int, int], ...] = ()
        #: reload_async: a stopping worker waits for its running callbacks (False: it
        #: goes straight to the close handshakes, and cancels what still runs)
        self.drain_on_stop = True
        #: the shared table when several processes serve (fds then come from it)
        self.shared: SharedDirectory | None = None
        self._drain_events: dict[int, asyncio.Event] = {}
        self._flush_soon = False  # end_batch_soon scheduled _flush_batch
        self._stopped: asyncio.Event | None = None
        #: a second signal came during the graceful stop: abort instead of waiting
        self._forced = False
        self._heartbeat: asyncio.TimerHandle | None = None
        self._sweep_handle: asyncio.TimerHandle | None = None

    @property
    def request_count(self) -> int:
        """HTTP requests and WebSocket messages handled (``max_request``, ``stats()``)."""
        return self.state.request_count

    @request_count.setter
    def request_count(self, value: int) -> None:
        self.state.request_count = value

    def begin_batch(self) -> None:
        """Writes to connections from here to :meth:`end_batch` leave together, one send per
        connection (as the writes a read's callbacks make do)."""
        self.state.depth += 1

    def end_batch(self) -> None:
        state = self.state
        state.depth -= 1
        if not state.depth and state.deferred:
            flush_deferred(state)

    def end_batch_soon(self) -> None:
        """As :meth:`end_batch`, but the corked writes leave once the event loop has run
        every callback already due -- the other reads of this poll -- in one pass.

        HTTP answers go this way (decision 36): a response written at once wakes its
        client, whose next request then arrives while this loop is still busy, one
        segment and one wakeup per request; written after the poll's reads, the answers
        of a batch leave together, as an ASGI server's do (its app runs in a task). It
        costs no latency that the loop would not add anyway."""
        state = self.state
        state.depth -= 1
        if not state.depth and state.deferred and not self._flush_soon:
            self._flush_soon = True
            self.loop.call_soon(self._flush_batch)

    def _flush_batch(self) -> None:
        self._flush_soon = False
        state = self.state
        if not state.depth and state.deferred:
            flush_deferred(state)

    # -- callbacks ------------------------------------------------------------------------

    def run_callback(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Run a user callback (timers, defer): the server layer adapts and guards it."""
        hook = self.run_callback_hook
        if hook is not None:
            hook(callback, args)
        else:
            callback(*args)

    # -- connection table -----------------------------------------------------------------

    def register(self, conn: Connection) -> bool:
        """Give ``conn`` its fd; refuse it (close) beyond ``max_conn`` or while stopping."""
        if self.stopping or len(self.connections) >= self.max_conn:
            log.warning(
                "refusing connection from %s: max_conn=%d reached or stopping",
                conn.remote_addr,
                self.max_conn,
            )
            conn.closed = True
            assert conn.transport is not None
            conn.transport.abort()
            self.abort_count += 1
            return False
        if self.shared is not None:
            fd = self.shared.allocate(
                self.worker_id, conn.status, conn.remote_addr, conn.remote_port, conn.server_port
            )
            if fd == 0:  # the table (max_conn) is full
                conn.closed = True
                assert conn.transport is not None
                conn.transport.abort()
                self.abort_count += 1
                return False
        else:
            fd = self.next_fd
            self.next_fd = fd + 1
        conn.fd = fd
        self.connections[fd] = conn
        self.http_conns[fd] = conn
        self.accept_count += 1
        if self.delay_receive:  # (before on("connect"), which may confirm it at once)
            conn._block_reading(PAUSE_USER)
        if self.on_connect is not None:
            self.on_connect(conn)
        return True

    def unregister(self, conn: Connection) -> None:
        if self.connections.pop(conn.fd, None) is not None:
            self.http_conns.pop(conn.fd, None)
            self.close_count += 1
            if self.shared is not None:
                self.shared.release(conn.fd)
            if conn.ws is not None:
                self.websocket_count -= 1
                if self.on_websocket is not None:
                    self.on_websocket(conn, False)
        self._drain_events.pop(conn.fd, None)
        if self.protected:
            self.protected.discard(conn.fd)
        if self.stopping and not self.connections and self._stopped is not None:
            self._stopped.set()

    def new_websocket(
        self, fd: int, inflater: MessageInflater | None = None, profile: PortProfile | None = None
    ) -> WebSocket:
        limits: Worker | PortProfile = self if profile is None else profile
        return WebSocket(
            fd,
            max_message_size=limits.max_message_size,
            deliver_close=limits.deliver_close,
            deliver_ping=limits.deliver_ping,
            deliver_pong=limits.deliver_pong,
            inflater=inflater,
        )

    def websocket_established(self, conn: Connection) -> None:
        self.http_conns.pop(conn.fd, None)
        self.websocket_count += 1
        if self.on_websocket is not None:
            self.on_websocket(conn, True)
        if self.shared is not None:
            self.shared.update(conn.fd, status=conn.status)

    def status_changed(self, conn: Connection) -> None:
        """``conn.status`` changed (closing): tell the other processes."""
        if self.shared is not None and not conn.closed:
            self.shared.update(conn.fd, status=conn.status)

    def sync_activity(self, since: float) -> None:
        """Copy the last-receive times newer than ``since`` (monotonic) to the shared table."""
        shared = self.shared
        if shared is None:
            return
        offset = time.time() - time.monotonic()
        for fd, conn in self.connections.items():
            if conn.last_recv > since:
                shared.update(fd, last_recv=conn.last_recv + offset)

    # -- flow control ---------------------------------------------------------------------

    def buffer_state_changed(self, conn: Connection, full: bool) -> None:
        """``conn`` passed the high watermark (``full``) or drained to the low one."""
        if self.on_buffer is not None:
            self.on_buffer(conn, full)

    def slow_consumer(self, conn: Connection) -> None:
        """``conn`` stayed full for ``buffer_full_timeout`` seconds: close it (WebSocket:
        1013, try again later, RFC 6455 section 7.4.1 / IANA registry)."""
        log.warning(
            "fd %d: send buffer full for %.1f s (%d bytes queued): closing",
            conn.fd,
            self.buffer_full_timeout,
            conn.queued_bytes(),
        )
        if conn.ws is not None and conn.status == WEBSOCKET_STATUS_ACTIVE:
            conn.close_websocket(WEBSOCKET_CLOSE_TRY_AGAIN_LATER, "slow consumer")
        else:
            conn.close()

    def shed_load(self) -> None:
        """The connections hold more unfinished input than ``max_buffered``: fail the
        biggest holders with 1013 (try again later) until the rest fits."""
        over = self.buffered - self.max_buffered
        holders = sorted((c for c in self.connections.values() if c._held), key=lambda c: -c._held)
        log.warning(
            "%d bytes of unfinished messages held, over max_buffered_bytes=%d: closing the "
            "biggest holders",
            self.buffered,
            self.max_buffered,
        )
        for conn in holders:
            if over <= 0:
                break
            over -= conn._held
            conn.fail_websocket(WEBSOCKET_CLOSE_TRY_AGAIN_LATER, "server busy")

    def drain_event(self, conn: Connection) -> asyncio.Event:
        event = self._drain_events.get(conn.fd)
        if event is None:
            event = self._drain_events[conn.fd] = asyncio.Event()
        return event

    def forget_drain_event(self, conn: Connection) -> None:
        self._drain_events.pop(conn.fd, None)

    # -- request deadlines ----------------------------------------------------------------

    def _schedule_sweep(self) -> None:
        if self.request_timeout > 0 and not self.stopping:
            period = min(1.0, self.request_timeout / 4)
            self._sweep_handle = self.loop.call_later(period, self._sweep)

    def _sweep(self) -> None:
        """Time out HTTP connections whose request did not complete within
        ``handshake_timeout`` (one periodic pass instead of a timer per connection)."""
        limit = time.monotonic() - self.request_timeout
        for conn in list(self.http_conns.values()):
            started = conn.request_started
            if started and started < limit and conn.ws is None and not conn.busy:
                conn.request_timeout()
        self._schedule_sweep()

    # -- heartbeat ------------------------------------------------------------------------

    def _schedule_heartbeat(self) -> None:
        if self.heartbeat_check_interval > 0 and not self.stopping:
            self._heartbeat = self.loop.call_later(self.heartbeat_check_interval, self._check)

    def idle_connections(self) -> list[Connection]:
        """Connections that sent nothing for ``heartbeat_idle_time`` seconds, not busy with
        a request and not protected (Swoole's ``Server::is_healthy_connection``)."""
        limit = time.monotonic() - self.heartbeat_idle_time
        protected = self.protected
        return [
            conn
            for conn in self.connections.values()
            if conn.last_recv < limit and not conn.busy and conn.fd not in protected
        ]

    @staticmethod
    def close_idle(conn: Connection) -> None:
        """Close an idle connection: a WebSocket client gets a close frame (1001), others a
        TCP close."""
        if conn.status == WEBSOCKET_STATUS_ACTIVE:
            conn.close_websocket(WEBSOCKET_CLOSE_GOING_AWAY, "idle timeout")
        elif conn.ws is None:
            conn.close()

    def _check(self) -> None:
        """Close connections idle longer than ``heartbeat_idle_time``."""
        for conn in self.idle_connections():
            self.close_idle(conn)
        self._schedule_heartbeat()

    # -- running ----------------------------------------------------------------------------

    def run(
        self,
        on_start: Callable[[], None] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        """Bind, serve until :meth:`stop`, then shut down gracefully. Blocks."""
        raise_nofile_limit()
        asyncio.set_event_loop(self.loop)
        self.thread_id = threading.get_ident()
        try:
            self.loop.run_until_complete(self._serve(on_start))
        finally:
            try:
                if on_stop is not None:
                    on_stop()
            finally:
                self.timers.clear_all()
                self._cancel_tasks()
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self.loop.close()
                asyncio.set_event_loop(None)

    async def _serve(self, on_start: Callable[[], None] | None) -> None:
        loop = self.loop
        self._stopped = asyncio.Event()
        if self.stopping:  # stop() came before the loop ran
            self._stopped.set()
        self.start_time = int(time.time())
        for listener in self.listeners:
            sock = listener.sock or listener.bind(self.backlog)
            port = listener.port
            profile = listener.profile
            # (TLS: the connection class of the listener's ssl_engine, runtime/tls.py)
            tls = listener.tls
            cls = Connection if tls is None else tls.connection_class()

            def factory(
                port: int = port, profile: PortProfile | None = profile, cls: type = cls
            ) -> Connection:
                if profile is None:
                    conn: Connection = cls(self, self.app, port, self.raw_tcp)
                    return conn
                conn = cls(self, self.app, port, profile.raw)
                conn.profile = profile
                return conn

            if tls is None:
                listener.server = await loop.create_server(factory, sock=sock, backlog=self.backlog)
            else:  # a TLS transport (ssl_engine): connections see plaintext; a handshake
                # that never completes is closed (handshake_timeout; 0: asyncio's 60 s)
                listener.server = await tls.create_server(
                    loop, factory, sock, self.backlog, self.request_timeout or 60.0
                )
        if threading.current_thread() is threading.main_thread():
            for sig in stop_signals():
                loop.add_signal_handler(sig, self._on_signal)
        self.running = True
        self._schedule_heartbeat()
        self._schedule_sweep()
        if on_start is not None:
            on_start()
        await self._stopped.wait()
        await self._shutdown()

    def stop(self) -> None:
        """Ask the worker to shut down; safe from any thread and from signal handlers."""
        if self.thread_id and threading.get_ident() != self.thread_id:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self.loop.call_soon_threadsafe(self.stop)
            return
        if self.stopping:
            return
        self.stopping = True
        if self._stopped is not None:
            self._stopped.set()

    async def _shutdown(self) -> None:
        """The graceful stop, in one budget of ``task_grace`` (``max_wait_time``) seconds:

        1. stop accepting; close idle HTTP connections;
        2. drain: in-flight HTTP responses end, queued output is written, callbacks still
           running finish (a reload must not drop the reply a handler is about to send);
        3. tell every WebSocket client we are going away (RFC 6455 section 7.4.1: 1001) and
           wait for the closing handshakes (at least ``_CLOSE_SHARE`` of the budget);
        4. abort what is left, cancel what still runs.

        A second SIGINT/SIGTERM meanwhile jumps to 4: it exits at once.
        """
        loop = self.loop
        budget = max(self.task_grace, 0.0)
        deadline = loop.time() + budget
        close_from = deadline - min(budget * _CLOSE_SHARE, SHUTDOWN_TIMEOUT)
        if self.on_stopping is not None:
            try:
                self.on_stopping()
            except Exception:
                log.exception("on_stopping hook failed")
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
        for listener in self.listeners:
            if listener.server is not None:
                listener.server.close()
        current = asyncio.current_task()

        def running() -> list[asyncio.Task[Any]]:
            return [t for t in asyncio.all_tasks(loop) if t is not current and not t.done()]

        def drained() -> bool:
            for conn in list(self.connections.values()):
                if conn.ws is None and not conn.busy and not conn.has_pending_requests:
                    conn.close()  # idle HTTP: nothing to wait for
                elif conn.busy or conn.queued_bytes():
                    return False
            return not running()

        if self.drain_on_stop:
            await self._wait_until(drained, close_from)
        assert self._stopped is not None
        self._stopped.clear()
        for conn in list(self.connections.values()):
            if conn.ws is not None:
                if not conn.close_websocket(WEBSOCKET_CLOSE_GOING_AWAY, "server shutdown"):
                    conn.close()
            elif not conn.busy:
                conn.close()
        await self._wait_until(lambda: not self.connections, deadline)
        if self.connections:
            log.warning("shutdown: %d connections did not close in time", len(self.connections))
        for conn in list(self.connections.values()):
            conn.abort()
        late = running()
        if late and not self._forced and self.drain_on_stop:
            # What is left of the budget (callbacks that did not finish while the clients
            # closed), then cancel.
            _, late_set = await asyncio.wait(late, timeout=max(0.0, deadline - loop.time()))
            late = list(late_set)
        if late:
            log.warning(
                "shutdown: %d callbacks still running after %.1f s: cancelled",
                len(late),
                budget,
            )
        for listener in self.listeners:
            if listener.server is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(listener.server.wait_closed(), 1.0)
        if threading.current_thread() is threading.main_thread():
            for sig in stop_signals():
                loop.remove_signal_handler(sig)
        self.running = False

    async def _wait_until(self, condition: Callable[[], bool], deadline: float) -> None:
        """Poll ``condition`` (shutdown only: a few checks per 100 ms) until it holds, the
        loop time ``deadline`` passes, or a second signal forces the stop."""
        loop = self.loop
        while not self._forced and not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, _DRAIN_POLL))

    def _on_signal(self) -> None:
        """SIGINT/SIGTERM: the graceful stop; a second one during it: stop waiting, abort."""
        if not self.stopping:
            self.stop()
        elif not self._forced:
            log.warning("second signal: stopping at once")
            self._forced = True

    def _cancel_tasks(self) -> None:
        tasks = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def _drop_frame(app: object, frame: Frame) -> None:
    """Default ``on_message`` before the server layer sets one."""
