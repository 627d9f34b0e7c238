"""``Server``: what every Swoole server has — callbacks, settings, start/shutdown, timers,
connection queries, extra listeners and raw TCP ``send``/``receive``.

``HttpServer`` (:mod:`.http_server`) and ``WebSocketServer`` (:mod:`.websocket_server`)
build on it. The event loop and sockets live in :mod:`pyswoole.runtime`; this layer
translates between Swoole's API and the runtime's :class:`Worker` and :class:`Connection`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar, overload

from ..constants import (
    SWOOLE_BASE,
    SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW,
    SWOOLE_ERROR_SESSION_NOT_EXIST,
    SWOOLE_PROCESS,
    SWOOLE_SOCK_TCP,
    SWOOLE_SOCK_TCP6,
    WEBSOCKET_STATUS_ACTIVE,
)
from ..exceptions import ConfigError, HttpProtocolError, ServerStateError
from ..protocol.http import ParsedRequest
from ..runtime.connection import Connection
from ..runtime.loop import loop_name
from ..runtime.worker import Listener, Worker
from .events import EVENTS, adapt, canonical_event
from .response import error_response
from .settings import Settings

__all__ = ["ConnectionList", "Port", "Server"]

log = logging.getLogger("pyswoole")

F = TypeVar("F", bound=Callable[..., Any])


class Port:
    """An extra listening port (Swoole's ``Server\\Port``): same callbacks as the server."""

    __slots__ = ("_listener",)

    def __init__(self, listener: Listener) -> None:
        self._listener = listener

    @property
    def host(self) -> str:
        return self._listener.host

    @property
    def port(self) -> int:
        return self._listener.port

    @property
    def type(self) -> int:
        return self._listener.sock_type

    def __repr__(self) -> str:
        return f"Port(host={self.host!r}, port={self.port})"


class ConnectionList:
    """``server.connections``: iterate the fds of open connections; ``len()`` and ``in``."""

    __slots__ = ("_server",)

    def __init__(self, server: Server) -> None:
        self._server = server

    def _table(self) -> dict[int, Connection]:
        worker = self._server._worker
        return {} if worker is None else worker.connections

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._table()))

    def __len__(self) -> int:
        return len(self._table())

    def __contains__(self, fd: object) -> bool:
        return fd in self._table()

    def __repr__(self) -> str:
        return f"ConnectionList({list(self._table())})"


class Server:
    """A Swoole server: ``on()``, ``set()``, ``start()``.

    ``Server`` itself speaks raw TCP (``receive`` event, ``send()``); see ``HttpServer`` and
    ``WebSocketServer`` for the protocols on top.
    """

    #: events that must be registered before start()
    _required_events: tuple[str, ...] = ("receive",)
    _raw_tcp = True

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 0,
        mode: int = SWOOLE_BASE,
        sock_type: int = SWOOLE_SOCK_TCP,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ConfigError(f"host must be a non-empty string, not {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port must be an int in 0..65535, not {port!r}")
        if mode not in (SWOOLE_BASE, SWOOLE_PROCESS):
            raise ConfigError(f"mode must be SWOOLE_BASE or SWOOLE_PROCESS, not {mode!r}")
        self._check_sock_type(sock_type)
        self.host = host
        self.mode = mode
        self.type = sock_type
        self._listeners = [Listener(host, port, sock_type)]
        self._callbacks: dict[str, Callable[..., Any]] = {}
        self._raw_callbacks: dict[str, Callable[..., Any]] = {}
        self._settings = Settings()
        self._worker: Worker | None = None
        #: fd -> connection of the running worker (empty before start)
        self._table: dict[int, Connection] = {}
        self._buffer_limit = 0
        self._last_error = 0
        self._started = False
        self._tasks: set[asyncio.Task[Any]] = set()
        #: set once the server serves (after the start/workerStart callbacks); cleared at stop
        self.ready = threading.Event()
        self.master_pid = 0
        self.manager_pid = 0
        self.worker_pid = 0
        self.worker_id = -1
        self.taskworker = False

    @staticmethod
    def _check_sock_type(sock_type: int) -> None:
        if sock_type not in (SWOOLE_SOCK_TCP, SWOOLE_SOCK_TCP6):
            raise ConfigError(
                f"sock_type {sock_type!r} is not supported (SWOOLE_SOCK_TCP or SWOOLE_SOCK_TCP6)"
            )

    # -- configuration ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The main port; the one actually bound once started (``port=0`` picks a free one)."""
        return self._listeners[0].port

    @property
    def ports(self) -> list[Port]:
        return [Port(listener) for listener in self._listeners]

    @property
    def setting(self) -> dict[str, Any]:
        """What was passed to ``set()`` (Swoole's ``$server->setting``)."""
        return dict(self._settings)

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...

    @overload
    def on(self, event: str, callback: F) -> bool: ...

    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        """Register ``callback`` for ``event``; without ``callback``, a decorator."""
        name = canonical_event(event)
        if name not in self._supported_events():
            raise ConfigError(f"event {name!r} is not available on {type(self).__name__}")
        if callback is None:

            def decorator(fn: F) -> F:
                self.on(name, fn)
                return fn

            return decorator
        if self._started:
            raise ServerStateError("on() must be called before start()")
        self._raw_callbacks[name] = callback
        self._callbacks[name] = adapt(name, callback)
        return True

    def _supported_events(self) -> set[str]:
        return set(EVENTS) - {"handshake", "beforeHandshakeResponse", "open", "message", "request"}

    def get_callback(self, event: str) -> Callable[..., Any] | None:
        """The callback registered for ``event`` (Swoole's ``getCallback``)."""
        return self._raw_callbacks.get(canonical_event(event))

    def set(self, settings: Mapping[str, Any] | None = None, **kwargs: Any) -> bool:
        """Apply settings: ``set({"worker_num": 1})`` or ``set(worker_num=1)``."""
        if self._started:
            raise ServerStateError("set() must be called before start()")
        values: dict[str, Any] = {}
        if settings is not None:
            if not isinstance(settings, Mapping):
                raise ConfigError(f"set() takes a mapping, not {type(settings).__name__}")
            values.update(settings)
        values.update(kwargs)
        self._settings.update(values)
        return True

    def listen(self, host: str, port: int, sock_type: int = SWOOLE_SOCK_TCP) -> Port:
        """Serve the same callbacks on another address (Swoole's ``listen``/``addListener``)."""
        if self._started:
            raise ServerStateError("listen() must be called before start()")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port must be an int in 0..65535, not {port!r}")
        self._check_sock_type(sock_type)
        listener = Listener(host, port, sock_type)
        self._listeners.append(listener)
        return Port(listener)

    add_listener = listen
    addlistener = listen

    # -- running ------------------------------------------------------------------------------

    def start(self) -> bool:
        """Bind, run callbacks until ``shutdown()`` or SIGINT/SIGTERM, then stop. Blocks."""
        if self._started:
            raise ServerStateError("the server was already started")
        for event in self._required_events:
            if event not in self._callbacks:
                raise ConfigError(f"{type(self).__name__} requires an on({event!r}) callback")
        get = self._settings.get_value
        if get("worker_num") > 1 or get("task_worker_num") > 0:
            raise ConfigError(
                "worker_num > 1 and task_worker_num > 0 need the process model, which is not "
                "implemented yet; use worker_num=1"
            )
        worker = Worker(
            self,
            self._listeners,
            max_conn=get("max_conn"),
            max_header_size=get("http_max_header_size"),
            max_body_size=get("package_max_length"),
            max_message_size=get("package_max_length"),
            request_timeout=get("handshake_timeout"),
            heartbeat_check_interval=get("heartbeat_check_interval"),
            heartbeat_idle_time=get("heartbeat_idle_time"),
            deliver_close=get("open_websocket_close_frame"),
            deliver_ping=get("open_websocket_ping_frame"),
            deliver_pong=get("open_websocket_pong_frame"),
            backlog=get("backlog"),
            raw_tcp=self._raw_tcp,
        )
        self._configure_worker(worker)
        # Bind before start() returns control to callbacks so that port=0 is resolved.
        for listener in self._listeners:
            if listener.sock is None:
                listener.bind(worker.backlog)
        self._worker = worker
        self._table = worker.connections
        self._buffer_limit = get("socket_buffer_size")
        self._started = True
        pid = os.getpid()
        self.master_pid = self.worker_pid = pid
        self.worker_id = 0
        log.debug("pyswoole starting on %s (%s)", self.port, loop_name(worker.loop))
        worker.run(on_start=self._on_worker_start, on_stop=self._on_worker_stop)
        return True

    def _configure_worker(self, worker: Worker) -> None:
        worker.run_callback_hook = self._run_timer_callback
        connect = self._callbacks.get("connect")
        if connect is not None:
            worker.on_connect = lambda conn: self._call(connect, self, conn.fd, 0)

    def _on_worker_start(self) -> None:
        self.call_event("start", self)
        self.call_event("workerStart", self, 0)
        self.ready.set()

    def _on_worker_stop(self) -> None:
        self.ready.clear()
        self.call_event("workerStop", self, 0)
        self.call_event("shutdown", self)
        for listener in self._listeners:
            if listener.sock is not None:
                listener.sock.close()
                listener.sock = None

    def shutdown(self) -> bool:
        """Stop gracefully: WebSocket clients get 1001, then everything closes."""
        worker = self._worker
        if worker is None:
            raise ServerStateError("the server is not running")
        worker.stop()
        return True

    stop = shutdown

    # -- calling user code --------------------------------------------------------------------

    def call_event(self, event: str, *args: Any) -> Any:
        """Run the callback of ``event`` with Swoole's arguments (no-op if none)."""
        callback = self._callbacks.get(event)
        if callback is None:
            return None
        return self._call(callback, *args)

    def _call(self, callback: Callable[..., Any], *args: Any) -> Any:
        """Call user code: exceptions are logged; an awaitable becomes a task."""
        try:
            result = callback(*args)
        except Exception:
            log.exception("exception in callback %s", getattr(callback, "__name__", callback))
            return None
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            return self.spawn(result)
        return result

    def spawn(self, awaitable: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run a coroutine on the worker loop; its exception is logged, not lost."""
        assert self._worker is not None
        task = self._worker.loop.create_task(_logged(awaitable))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _run_timer_callback(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        from .events import positional_arity

        arity = positional_arity(callback)
        self._call(callback, *(args if arity is None else args[:arity]))

    # -- timers ---------------------------------------------------------------------------------

    def _running_worker(self, what: str) -> Worker:
        worker = self._worker
        if worker is None or not worker.running:
            raise ServerStateError(f"{what}() needs a running server: call it from a callback")
        return worker

    def tick(self, ms: int, callback: Callable[..., Any], *params: Any) -> int:
        """Call ``callback(timer_id, *params)`` every ``ms`` milliseconds; returns the id."""
        _check_ms(ms)
        return self._running_worker("tick").timers.tick(ms, callback, *params)

    def after(self, ms: int, callback: Callable[..., Any], *params: Any) -> int:
        """Call ``callback(*params)`` once after ``ms`` milliseconds; returns the timer id."""
        _check_ms(ms)
        return self._running_worker("after").timers.after(ms, callback, *params)

    def clear_timer(self, timer_id: int) -> bool:
        """Cancel a ``tick``/``after`` timer; False if it does not exist."""
        return self._running_worker("clear_timer").timers.clear(timer_id)

    clearTimer = clear_timer

    def defer(self, callback: Callable[..., Any]) -> None:
        """Call ``callback()`` at the end of the current event-loop iteration."""
        self._running_worker("defer").timers.defer(callback)

    # -- connections ----------------------------------------------------------------------------

    @property
    def connections(self) -> ConnectionList:
        return ConnectionList(self)

    def _conn(self, fd: int) -> Connection | None:
        worker = self._worker
        if worker is None:
            return None
        conn = worker.connections.get(fd)
        if conn is None or conn.closed:
            self._last_error = SWOOLE_ERROR_SESSION_NOT_EXIST
            return None
        return conn

    def exist(self, fd: int) -> bool:
        """True while connection ``fd`` is open."""
        return self._conn(fd) is not None

    exists = exist

    def get_last_error(self) -> int:
        """The ``SWOOLE_ERROR_*`` code of the last failed call."""
        return self._last_error

    getLastError = get_last_error

    def send(self, fd: int, data: str | bytes) -> bool:
        """Write raw bytes to connection ``fd`` (Swoole's ``send``)."""
        conn = self._conn(fd)
        if conn is None:
            return False
        payload = data.encode() if isinstance(data, str) else bytes(data)
        if conn.write_buffer_size() >= self._buffer_limit:
            self._last_error = SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
            return False
        return conn.write(payload)

    def close(self, fd: int, reset: bool = False) -> bool:
        """Close connection ``fd`` (``reset=True``: drop it without flushing)."""
        conn = self._conn(fd)
        if conn is None:
            return False
        if reset:
            conn.abort()
        else:
            conn.close()
        return True

    def get_client_info(self, fd: int, reactor_id: int = -1) -> dict[str, Any] | None:
        """Swoole's ``getClientInfo``: a dict about ``fd``, or None if it is not open."""
        conn = self._conn(fd)
        if conn is None:
            return None
        listener = next((li for li in self._listeners if li.port == conn.server_port), None)
        info: dict[str, Any] = {
            "server_port": conn.server_port,
            "server_fd": listener.sock.fileno() if listener and listener.sock else -1,
            "socket_type": self.type,
            "remote_port": conn.remote_port,
            "remote_ip": conn.remote_addr,
            "reactor_id": 0,
            "worker_id": 0,
            "connect_time": int(conn.connect_time),
            "last_time": int(time.time() - (time.monotonic() - conn.last_recv)),
            "send_queued_bytes": conn.write_buffer_size(),
        }
        if conn.ws is not None or conn.status != 1:
            info["websocket_status"] = conn.status
        return info

    getClientInfo = get_client_info

    def get_client_list(self, start_fd: int = 0, find_count: int = 10) -> list[int]:
        """Up to ``find_count`` (at most 100) open fds greater than ``start_fd``, ascending."""
        worker = self._worker
        if worker is None:
            return []
        count = max(0, min(find_count, 100))
        return sorted(fd for fd in worker.connections if fd > start_fd)[:count]

    getClientList = get_client_list

    def stats(self) -> dict[str, Any]:
        """Swoole's ``stats()`` keys that make sense for this server."""
        worker = self._worker
        if worker is None:
            raise ServerStateError("stats() needs a running server")
        return {
            "start_time": worker.start_time,
            "connection_num": len(worker.connections),
            "websocket_num": worker.websocket_count,
            "accept_count": worker.accept_count,
            "close_count": worker.close_count,
            "abort_count": worker.abort_count,
            "worker_num": 1,
            "task_worker_num": 0,
            "idle_worker_num": 1,
            "tasking_num": 0,
            "request_count": worker.request_count,
            "dispatch_count": worker.request_count,
            "timer_num": len(worker.timers),
            "coroutine_num": len(self._tasks),
            "event_loop": loop_name(worker.loop),
        }

    # -- runtime.connection.Application -----------------------------------------------------

    def handshake_accepted(self, conn: Connection, response: object) -> None:
        conn.accept_websocket(b"")

    def receive(self, conn: Connection, data: bytes) -> None:
        self._call(self._callbacks["receive"], self, conn.fd, 0, data)

    def http_request(self, conn: Connection, request: ParsedRequest) -> None:
        conn.write(self.http_error(conn, HttpProtocolError(400, "not an HTTP server")))
        conn.close()

    def upgrade(self, conn: Connection, request: ParsedRequest) -> None:
        self.http_request(conn, request)

    def http_error(self, conn: Connection, error: HttpProtocolError) -> bytes:
        return error_response(
            error.status,
            server_name=self._settings.get_value("server_name"),
            reason=error.reason,
            headers=error.headers,
        )

    def connection_lost(self, conn: Connection) -> None:
        if conn.status != WEBSOCKET_STATUS_ACTIVE and conn.ws is None:
            disconnect = self._callbacks.get("disconnect")
            if disconnect is not None:
                self._call(disconnect, self, conn.fd)
                return
        close = self._callbacks.get("close")
        if close is not None:
            self._call(close, self, conn.fd, 0)

    def __repr__(self) -> str:
        state = "running" if self._worker is not None and self._worker.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"


def _check_ms(ms: int) -> None:
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms <= 0:
        raise ConfigError(f"timer interval must be a positive number of ms, not {ms!r}")


async def _logged(awaitable: Awaitable[Any]) -> Any:
    try:
        return await awaitable
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("exception in async callback")
        return None
