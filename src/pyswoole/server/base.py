"""``Server``: what every Swoole server has — callbacks, settings, start/shutdown, timers,
connection queries, extra listeners and raw TCP ``send``/``receive``.

``HttpServer`` (:mod:`.http_server`) and ``WebSocketServer`` (:mod:`.websocket_server`)
build on it. The event loop and sockets live in :mod:`pyswoole.runtime`; this layer
translates between Swoole's API and the runtime's :class:`Worker` and :class:`Connection`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..constants import (
    SWOOLE_BASE,
    SWOOLE_PROCESS,
    SWOOLE_SOCK_TCP,
    SWOOLE_SOCK_TCP6,
    SWOOLE_SOCK_UNIX_STREAM,
    SWOOLE_SSL,
)
from ..exceptions import ConfigError, ServerStateError
from ..extensions import fallback_line
from ..runtime.connection import Connection
from ..runtime.loop import loop_name
from ..runtime.timers import set_current
from ..runtime.tls import TlsConfig
from ..runtime.watchdog import Watchdog, describe_stack
from ..runtime.worker import Listener, Worker
from .access_log import websocket_event
from .app_events import ConnectionEvents
from .callback_errors import describe_async, describe_call
from .callbacks import EventRegistration
from .connections import ConnectionApi, ConnectionList
from .control import ServerControl
from .events import EVENTS, adapt, canonical_event
from .logs import configure as configure_logs
from .ports import Port
from .process_setup import (
    Identity,
    connection_options,
    daemonize,
    enter_worker_process,
    listener_options,
    resolve_identity,
)
from .process_setup import apply as apply_options
from .settings import Settings
from .startup import bind_error, close_listeners, startup_line
from .tasks import TaskApi
from .timer_api import TimerApi

if TYPE_CHECKING:
    from ..process.user import Process
    from .processes import ProcessModel

__all__ = ["ConnectionList", "Port", "Server"]

log = logging.getLogger("pyswoole")


class Server(EventRegistration, ConnectionApi, TaskApi, ServerControl, TimerApi, ConnectionEvents):
    """A Swoole server: ``on()``, ``set()``, ``start()``.

    ``Server`` itself speaks raw TCP (``receive`` event, ``send()``); see ``HttpServer`` and
    ``WebSocketServer`` for the protocols on top.

    Internal, not for applications: ``http_request``, ``upgrade``, ``http_error``,
    ``receive``, ``connection_lost``, ``handshake_accepted``, ``callback_result`` and
    ``close_barrier`` are the runtime's ``Application`` protocol
    (``runtime/connection.py``), called by name by each connection; the other internals are
    ``_``-prefixed.
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
        self._ports = [Port(self, self._listeners[0])]
        self._callbacks: dict[str, Callable[..., Any]] = {}
        self._raw_callbacks: dict[str, Callable[..., Any]] = {}
        self._settings = Settings()
        self._worker: Worker | None = None
        #: the multi-process state (None when everything runs in one process)
        self._procs: ProcessModel | None = None
        self._identity = Identity(None, None, "")
        #: fd -> connection of the running worker (empty before start)
        self._table: dict[int, Connection] = {}
        #: fds this process is closing by close()/disconnect(): on("close") gets reactor_id -1
        self._closed_actively: set[int] = set()
        self._buffer_limit = 0
        self._last_error = 0
        self._started = False
        self._tasks: set[asyncio.Task[Any]] = set()
        #: processes added with add_process(), started by the manager
        self._user_processes: list[Process] = []
        #: the thread running this process's event loop (0 before start) and that loop:
        #: push() and the other write APIs called from another thread are handed to it
        self._loop_thread = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchdog: Watchdog | None = None
        #: set once the server serves (after the start/workerStart callbacks); cleared at stop
        self.ready = threading.Event()
        self.master_pid = 0
        self.manager_pid = 0
        self.worker_pid = 0
        self.worker_id = -1
        self.taskworker = False

    @staticmethod
    def _check_sock_type(sock_type: int) -> None:
        if (
            isinstance(sock_type, int)
            and not isinstance(sock_type, bool)
            and sock_type & SWOOLE_SSL
        ):
            if sock_type & ~SWOOLE_SSL not in (SWOOLE_SOCK_TCP, SWOOLE_SOCK_TCP6):
                raise ConfigError(
                    f"sock_type {sock_type!r}: SWOOLE_SSL goes with SWOOLE_SOCK_TCP or "
                    "SWOOLE_SOCK_TCP6"
                )
            return
        if sock_type not in (SWOOLE_SOCK_TCP, SWOOLE_SOCK_TCP6, SWOOLE_SOCK_UNIX_STREAM):
            raise ConfigError(
                f"sock_type {sock_type!r} is not supported: SWOOLE_SOCK_TCP, SWOOLE_SOCK_TCP6 "
                "or SWOOLE_SOCK_UNIX_STREAM (WebSocket and HTTP need a byte stream: no UDP)"
            )

    # -- configuration ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The main port; the one actually bound once started (``port=0`` picks a free one)."""
        return self._listeners[0].port

    @property
    def ports(self) -> list[Port]:
        """The listeners: the main one first, then those ``listen()`` added (Swoole's
        ``$server->ports``)."""
        return list(self._ports)

    @property
    def setting(self) -> dict[str, Any]:
        """What was passed to ``set()`` (Swoole's ``$server->setting``)."""
        return dict(self._settings)

    # on() (callbacks.EventRegistration, typed per event by pyswoole.typing) calls these two
    def _event_name(self, event: str) -> str:
        name = canonical_event(event)
        if name not in self._supported_events():
            raise ConfigError(f"event {name!r} is not available on {type(self).__name__}")
        return name

    def _register(self, name: str, callback: Callable[..., Any]) -> bool:
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

    getCallback = get_callback

    def get_socket(self, port: int = 0) -> socket.socket | None:
        """The listening socket of ``port`` (the main one by default) once bound, or None
        (Swoole's ``getSocket``, which needs ext-sockets there)."""
        for listener in self._listeners:
            if port in (0, listener.port) and listener.sock is not None:
                return listener.sock
        return None

    getSocket = get_socket

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
        self._ports.append(Port(self, listener))
        return self._ports[-1]

    add_listener = listen
    addlistener = listen

    def add_process(self, process: Process) -> int:
        """Add a user process (Swoole's ``addProcess``): the manager starts it with the
        workers, restarts it when it exits and stops it with the server; its callback gets
        the :class:`~pyswoole.Process` and may use this server (``push``, ``broadcast``,
        ``exist``, ``connections``, ``send_message``, tables). Returns its process id,
        ``worker_num + task_worker_num + index`` (set ``worker_num`` and
        ``task_worker_num`` first). A server with added processes always has a manager,
        even with ``worker_num=1`` (as Swoole's SWOOLE_BASE)."""
        from ..process.user import Process

        if self._started:
            raise ServerStateError("add_process() must be called before start()")
        if not isinstance(process, Process):
            raise TypeError(f"add_process() takes a pyswoole.Process, not {type(process).__name__}")
        if process in self._user_processes:
            raise ConfigError("this Process was already added")
        self._user_processes.append(process)
        get = self._settings.get_value
        process.id = get("worker_num") + get("task_worker_num") + len(self._user_processes) - 1
        return process.id

    addProcess = add_process

    # -- running ------------------------------------------------------------------------------

    def start(self) -> bool:
        """Bind, run callbacks until ``shutdown()`` or SIGINT/SIGTERM, then stop. Blocks.

        SWOOLE_BASE with ``worker_num=1`` and no task workers runs everything in this
        process. Otherwise this process becomes the manager of ``worker_num`` workers and
        ``task_worker_num`` task workers (:mod:`pyswoole.server.processes`); SWOOLE_PROCESS
        always has a master (this process) and at least one worker, so ``reload()`` works.
        """
        if self._started:
            raise ServerStateError("the server was already started")
        for event in self._required_events:
            if event not in self._callbacks:
                raise ConfigError(f"{type(self).__name__} requires an on({event!r}) callback")
        self._settings.check_startable()
        get = self._settings.get_value
        # SWOOLE_PROCESS always has a master and workers (one by default), so reload() works
        multi = (
            self.mode == SWOOLE_PROCESS
            or get("worker_num") > 1
            or get("task_worker_num") > 0
            or bool(self._user_processes)
        )
        if get("task_worker_num") > 0 and "task" not in self._callbacks:
            raise ConfigError("task_worker_num > 0 requires an on('task') callback")
        self._buffer_limit = get("socket_buffer_size")
        # Bind before any callback runs (and before forking) so that port=0 is resolved
        # and every worker shares the listening sockets.
        self._identity = resolve_identity(get)
        self._prepare_ports()
        self._prepare_tls()
        for port in self._ports:
            listener = port._listener
            if listener.sock is None:
                port_get = get if port._settings is None else port._settings.get_value
                try:
                    listener.bind(port_get("backlog"))
                except OSError as exc:  # one line naming the address (startup.py)
                    close_listeners(self._listeners)
                    raise bind_error(listener, exc) from None
                apply_options(listener.sock, listener_options(port_get))
        self._started = True
        self._apply_process_settings()
        if self.mode == SWOOLE_BASE and get("worker_num") > 1:
            dispatch = [key for key in ("dispatch_mode", "dispatch_func") if key in self._settings]
            if dispatch:  # Swoole: the kernel hands each connection to the accepting worker
                log.warning("%s has no effect in SWOOLE_BASE mode", " and ".join(dispatch))
        self.master_pid = os.getpid()
        log.info("%s", startup_line(self))
        if (fallback := fallback_line()) is not None:  # built without a compiler
            log.warning("%s", fallback)
        pid_file = get("pid_file")
        if pid_file:
            with open(pid_file, "w") as f:
                f.write(f"{self.master_pid}\n")
        try:
            if not multi:
                self._enter_worker_process(0)
                worker = self._build_worker(0)
                worker.on_stopping = lambda: self._call_event("beforeShutdown", self)
                self.worker_pid = self.master_pid
                log.debug("pyswoole starting on %s (%s)", self.port, loop_name(worker.loop))
                worker.run(on_start=self._on_worker_start, on_stop=self._on_worker_stop)
                return True
            from .processes import ProcessModel

            self._procs = ProcessModel(self)
            return self._procs.run() == 0
        finally:
            for listener in self._listeners:
                if listener.sock is not None:
                    listener.sock.close()
                    listener.sock = None
                    if os.getpid() == self.master_pid:
                        listener.unlink()
            if pid_file and os.getpid() == self.master_pid:
                with contextlib.suppress(OSError):
                    os.unlink(pid_file)

    def _prepare_ports(self) -> None:
        """Each port with its own settings or callbacks gets its profile (ports.py)."""
        for port in self._ports:
            port.check_startable()
            if not port.has_own:
                port._listener.profile = None
                continue
            port._listener.profile = port.build_profile(self._callbacks)

    def _prepare_tls(self) -> None:
        """Each ``SWOOLE_SSL`` listener's context, from its port's settings if it called
        ``set()``, else the server's (as Swoole's ports): built now, before any fork or
        privilege drop, so a missing file or a wrong passphrase fails ``start()``; the
        workers inherit it, and ``reload()`` re-reads the files (:meth:`_reload_tls`)."""
        for port in self._ports:
            listener = port._listener
            listener.tls = None
            if not listener.sock_type & SWOOLE_SSL:
                continue
            own = port._settings if not port._is_main() else None
            get = self._settings.get_value if own is None else own.get_value
            raw = self._raw_tcp if listener.profile is None else listener.profile.raw
            tls = TlsConfig.from_settings(get, alpn=not raw, name=f"{port.host}:{port.port}")
            tls.build()
            listener.tls = tls

    def _reload_tls(self) -> None:
        """Re-read the certificate files of this process's TLS listeners at ``reload()``:
        in the SWOOLE_BASE manager before it forks the new workers (they inherit the
        renewed contexts), in the SWOOLE_PROCESS master (it keeps the sockets)."""
        for listener in self._listeners:
            if listener.tls is not None:
                listener.tls.reload()

    def _callback(self, conn: Connection, event: str) -> Callable[..., Any] | None:
        """The callback of ``event`` for ``conn``: its port's, else the server's."""
        profile = conn.profile
        if profile is not None:
            callback: Callable[..., Any] | None = profile.callbacks.get(event)
            return callback
        return self._callbacks.get(event)

    def _wants(self, *events: str) -> bool:
        """Whether the server or a port has a callback for one of ``events``."""
        return any(
            event in callbacks
            for event in events
            for callbacks in (self._callbacks, *(p._callbacks for p in self._ports))
        )

    def _apply_process_settings(self) -> None:
        """The log settings and ``daemonize`` (before any process is forked)."""
        get = self._settings.get_value
        configure_logs(get)
        if get("daemonize"):
            daemonize(get("log_file"))

    def _enter_worker_process(self, worker_id: int) -> None:
        """In a worker or task worker process (or the single process), before its loop
        runs: CPU affinity, chroot, group and user (:mod:`.process_setup`)."""
        enter_worker_process(self._settings.get_value, self._identity, worker_id)

    def _build_worker(self, worker_id: int, listeners: list[Listener] | None = None) -> Worker:
        """The event loop of worker ``worker_id`` (in the process that will run it); a
        SWOOLE_PROCESS worker gets no listeners (the master owns the sockets)."""
        get = self._settings.get_value
        worker = Worker(
            self,
            self._listeners if listeners is None else listeners,
            worker_id=worker_id,
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
            task_grace=get("max_wait_time"),
            buffer_limit=get("socket_buffer_size"),
            high_water=get("buffer_high_watermark"),
            low_water=get("buffer_low_watermark"),
            buffer_full_timeout=get("buffer_full_timeout"),
            max_buffered=get("max_buffered_bytes"),
        )
        self._table = worker.connections
        self._configure_worker(worker)
        self._worker = worker
        self.worker_id = worker_id
        return worker

    def _configure_worker(self, worker: Worker) -> None:
        get = self._settings.get_value
        worker.run_callback_hook = self._run_timer_callback
        if get("access_log"):  # WebSocket opens and closes (server/access_log.py)
            worker.on_websocket = websocket_event
        # the module-level Timer works on this worker's timers (same ids as server.tick)
        set_current(worker.timers)
        self._loop_thread = threading.get_ident()
        self._loop = worker.loop
        threshold = get("blocking_threshold")
        procs = self._procs
        managed = procs is not None
        # (with one process the watchdog also says what worker_timeout would have done)
        if threshold > 0 or (not managed and get("worker_timeout") > 0):
            master = (
                procs is not None and procs.process_mode and worker.worker_id == procs.master_id
            )
            self._watchdog = Watchdog(
                worker.loop,
                threshold,
                describe=lambda frame: describe_stack(frame, self._callback_codes()),
                name="the master" if master else f"worker {worker.worker_id}",
                worker_timeout=0.0 if managed else get("worker_timeout"),
            )
            worker.loop.call_soon(self._watchdog.start)
        self._control_configure(worker)
        worker.sock_options = connection_options(get)
        worker.drain_on_stop = get("reload_async")
        if get("debug_mode"):
            worker.loop.set_debug(True)
        if self._wants("connect"):
            worker.on_connect = self._on_connect
        if self._wants("bufferFull", "bufferEmpty"):
            worker.on_buffer = self._buffer_state_changed

    def _callback_codes(self) -> dict[Any, str]:
        """The code objects of the registered callbacks (the server's and the ports'),
        by event name: the watchdog finds them in a stack sample."""
        codes: dict[Any, str] = {}
        for callbacks in (self._raw_callbacks, *(p._callbacks for p in self._ports)):
            for event, callback in callbacks.items():
                code = getattr(callback, "__code__", None)
                if code is None:
                    code = getattr(getattr(callback, "__call__", None), "__code__", None)  # noqa: B004
                if code is not None:
                    codes.setdefault(code, event)
        return codes

    def _on_connect(self, conn: Connection) -> None:
        callback = self._callback(conn, "connect")
        if callback is not None:
            self._call(callback, self, conn.fd, 0)

    def _buffer_state_changed(self, conn: Connection, full: bool) -> None:
        """A connection became full or drained: ``on("bufferFull"/"bufferEmpty")``, run
        after the write that caused it returns (never inside a push)."""
        callback = self._callback(conn, "bufferFull" if full else "bufferEmpty")
        worker = self._worker
        if callback is not None and worker is not None:
            worker.loop.call_soon(self._call, callback, self, conn.fd)

    def _on_worker_start(self) -> None:
        self._call_event("start", self)
        self._call_event("workerStart", self, 0)
        self.ready.set()

    def _on_worker_stop(self) -> None:
        self.ready.clear()
        self._call_event("workerStop", self, 0)
        self._call_event("shutdown", self)

    def shutdown(self) -> bool:
        """Stop gracefully: WebSocket clients get 1001, then everything closes.

        In a multi-process server, any process may call it: the manager is told to stop.
        """
        if self._procs is not None:
            self._procs.shutdown()
            return True
        worker = self._worker
        if worker is None:
            raise ServerStateError("the server is not running")
        worker.stop()
        return True

    def reload(self, only_reload_taskworker: bool = False) -> bool:
        """Restart the workers one by one (only the task workers if asked): SIGUSR1/SIGUSR2."""
        if self._procs is None:
            raise ServerStateError("reload() needs worker_num > 1 or task workers")
        return self._procs.reload(only_reload_taskworker)

    # -- calling user code --------------------------------------------------------------------

    def _call_event(self, event: str, *args: Any) -> Any:
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
            what = describe_call(self._callbacks, self._raw_callbacks, callback, args)
            log.exception("exception in %s", what)
            return None
        return self.callback_result(result)

    def spawn(self, awaitable: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run a coroutine on the worker loop; its exception is logged, not lost."""
        assert self._worker is not None
        task = self._worker.loop.create_task(_logged(awaitable, self._raw_callbacks))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _run_timer_callback(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._call(callback, *args)

    def __repr__(self) -> str:
        state = "running" if self._worker is not None and self._worker.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"


async def _logged(awaitable: Awaitable[Any], callbacks: Mapping[str, Any]) -> Any:
    try:
        return await awaitable
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # names the event and the fd as the sync path does
        log.exception("exception in %s", describe_async(callbacks, awaitable, exc))
        return None
