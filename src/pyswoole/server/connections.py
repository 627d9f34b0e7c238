"""The server's connection API: ``connections``, ``exist``, ``bind``, ``send``, ``close``,
``get_client_info``, ``get_client_list``, ``stats`` (mixed into :class:`~.base.Server`).

A connection of this worker is answered from the runtime's table; another worker's from
the shared connection table (``process/table.py``), without IPC. ``send`` and ``close`` to
another worker's fd travel over IPC to its owner.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..constants import (
    SWOOLE_ERROR_FILE_NOT_EXIST,
    SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW,
    SWOOLE_ERROR_SESSION_NOT_EXIST,
)
from ..exceptions import ConfigError, ServerStateError
from ..process import messages as msg
from ..process.table import FLOW_FULL, FLOW_OVERFLOW
from ..runtime.connection import Connection
from ..runtime.loop import loop_name
from ..runtime.tls import peer_certificate
from ..runtime.worker import Listener, Worker
from .control import check_fd
from .threads import from_thread, get_ident

if TYPE_CHECKING:
    from .processes import ProcessModel
    from .settings import Settings

__all__ = ["ConnectionApi", "ConnectionList"]


class ConnectionList:
    """``server.connections``: iterate the fds of open connections; ``len()`` and ``in``."""

    __slots__ = ("_server",)

    def __init__(self, server: ConnectionApi) -> None:
        self._server = server

    def _fds(self) -> list[int]:
        procs = self._server._procs
        if procs is not None:
            return procs.table.fds()
        worker = self._server._worker
        return [] if worker is None else list(worker.connections)

    def __iter__(self) -> Iterator[int]:
        return iter(self._fds())

    def __len__(self) -> int:
        procs = self._server._procs
        if procs is not None:
            return len(procs.table)
        worker = self._server._worker
        return 0 if worker is None else len(worker.connections)

    def __contains__(self, fd: object) -> bool:
        return isinstance(fd, int) and not isinstance(fd, bool) and self._server.exist(fd)

    def __repr__(self) -> str:
        return f"ConnectionList({self._fds()})"


class ConnectionApi:
    """Mixin of :class:`~.base.Server`: what can be asked of and done to connections."""

    if TYPE_CHECKING:
        _worker: Worker | None
        _loop_thread: int
        _loop: asyncio.AbstractEventLoop | None
        _procs: ProcessModel | None
        _table: dict[int, Connection]
        _closed_actively: set[int]
        _buffer_limit: int
        _last_error: int
        _settings: Settings
        _listeners: list[Listener]
        _tasks: set[Any]
        type: int
        worker_id: int

        def _byte_totals(self) -> tuple[int, int, int, int, int]: ...

        def _idle_worker_num(self) -> int: ...

    @property
    def connections(self) -> ConnectionList:
        """Every connection of the server, in every process (Swoole's ``$server->connections``):
        iterate for the fds, ``len()``, ``fd in server.connections``."""
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
        """True while connection ``fd`` is open (in any worker); False from the moment it
        is closed (as Swoole >= 6.1.2: not while it is still closing)."""
        if self._conn(check_fd(fd)) is not None:
            return True
        procs = self._procs
        return procs is not None and procs.record(fd) is not None

    exists = exist

    def bind(self, fd: int, uid: int) -> bool:
        """Attach the application's id ``uid`` to connection ``fd`` (Swoole's ``bind``): it
        shows in ``get_client_info(fd)["uid"]`` in every process. Only the worker that owns
        ``fd`` can bind it; a bound connection cannot be bound again (as in Swoole)."""
        if isinstance(uid, bool) or not isinstance(uid, int) or not 0 < uid < 2**63:
            raise ConfigError(f"uid must be a positive int, not {uid!r}")
        if self._loop_thread and get_ident() != self._loop_thread:
            return from_thread(self._loop, "bind", self.bind, fd, uid)
        conn = self._conn(check_fd(fd))
        if conn is None:  # SWOOLE_PROCESS: the master owns fd (process_mode.WorkerEvents.bind)
            events = None if self._procs is None else self._procs.events
            return events is not None and events.bind(fd, uid)
        if conn.uid:
            return False
        conn.uid = uid
        if self._procs is not None:
            self._procs.table.update(fd, uid=uid)
        return True

    def get_last_error(self) -> int:
        """The ``SWOOLE_ERROR_*`` code of the last failed call."""
        return self._last_error

    getLastError = get_last_error

    def send(self, fd: int, data: str | bytes) -> bool:
        """Write raw bytes to connection ``fd`` (Swoole's ``send``), in any worker."""
        check_fd(fd)
        if self._loop_thread and get_ident() != self._loop_thread:
            return from_thread(self._loop, "send", self.send, fd, data)
        payload = data.encode() if isinstance(data, str) else bytes(data)
        if fd not in self._table and self._procs is not None:
            owner = self._procs.remote(fd, need_websocket=False, need_room=True)
            return owner >= 0 and self._procs.send(owner, msg.SEND, msg.pack_send(fd, payload))
        return self._send_local(fd, payload)

    def _send_local(self, fd: int, payload: bytes) -> bool:
        conn = self._conn(fd)
        if conn is None:
            return False
        if not conn.send_message(payload, None, self._buffer_limit):
            self._last_error = SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
            procs = self._procs
            if procs is not None and procs.base_flow is not None:  # (base_flow.py)
                procs.base_flow.overflowed(conn)
            return False
        return True

    async def send_async(self, fd: int, data: str | bytes, timeout: float | None = None) -> bool:
        """``send()`` that waits while the connection's buffer is full (Swoole's
        ``send_yield``) instead of failing; False if it closed or ``timeout`` passed."""
        if not await self._wait_for_room(fd, timeout):
            return False
        return self.send(fd, data)

    async def _wait_for_room(self, fd: int, timeout: float | None) -> bool:
        """Wait until a push or send to local ``fd`` would not overflow (with
        ``send_yield``); for another process's (another SWOOLE_BASE worker's, the
        SWOOLE_PROCESS master's), :meth:`_wait_for_owner`."""
        conn = self._table.get(fd)
        if conn is None:
            procs = self._procs
            if procs is not None and procs.process_id != procs.master_id:
                return await self._wait_for_owner(procs, fd, timeout)
            return True
        if conn.closed or not self._settings.get_value("send_yield"):
            return True
        if conn.queued_bytes() < self._buffer_limit:
            return True
        if await conn.wait_for_room(self._buffer_limit, timeout):
            return True
        self._last_error = (
            SWOOLE_ERROR_SESSION_NOT_EXIST if conn.closed else SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
        )
        return False

    async def _wait_for_owner(self, procs: ProcessModel, fd: int, timeout: float | None) -> bool:
        """``fd`` is another process's (the SWOOLE_PROCESS master's, another SWOOLE_BASE
        worker's): wait while its owner's queue for it is full (past
        ``buffer_high_watermark``: ``FLOW_FULL`` in the shared table, cleared once it
        drained to ``buffer_low_watermark``) or overflowing, or while this process still
        queues IPC for the owner (what it sent is not all in flight yet). Any process may
        wait, so the table is polled, 1 ms doubling to 20 ms. False (with the error set)
        if ``fd`` closed or ``timeout`` passed; with ``send_yield`` off, no waiting: False
        at once if it overflows."""
        mailer = procs.mailer
        queued = {} if mailer is None else mailer.queued
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        delay = 0.001
        while True:
            rec = procs.record(fd)
            if rec is None:
                self._last_error = SWOOLE_ERROR_SESSION_NOT_EXIST
                return False
            if rec.owner == procs.process_id:
                return True  # (it became this process's: push() decides)
            if not self._settings.get_value("send_yield"):
                if rec.flow & FLOW_OVERFLOW:
                    self._last_error = SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
                    return False
                return True
            if not rec.flow and rec.owner not in queued:
                return True
            wait = delay
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    self._last_error = SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
                    return False
            await asyncio.sleep(wait)
            delay = min(delay * 2, 0.02)

    def close(self, fd: int, reset: bool = False) -> bool:
        """Close connection ``fd`` (``reset=True``: drop it without flushing), in any worker.

        For a connection of this process ``on("close")`` (or ``on("disconnect")``) runs
        before this returns, as Swoole's ``BaseFactory::end`` calls ``onClose``
        synchronously; a close callback that closes or pushes to the fd again gets False.
        Another worker's connection is closed by its owner, soon after."""
        if self._loop_thread and get_ident() != self._loop_thread:
            return from_thread(self._loop, "close", self.close, fd, reset)
        if check_fd(fd) not in self._table and self._procs is not None:
            owner = self._procs.remote(fd, need_websocket=False)
            return owner >= 0 and self._procs.send(owner, msg.CLOSE, msg.pack_close(fd, reset))
        return self._close_local(fd, reset)

    def _close_local(self, fd: int, reset: bool) -> bool:
        """Close ``fd`` of this process. The server closes it itself: its ``on("close")``
        gets reactor_id -1 (Swoole's ``Server::close`` ends it with ``CLOSE_ACTIVELY``;
        ``connection_lost`` takes the fd out of ``_closed_actively``)."""
        conn = self._conn(fd)
        if conn is None:
            return False
        self._closed_actively.add(fd)
        if reset:
            conn.abort()
            conn._gone()  # (the transport reports the loss later: the app hears it now)
        else:
            conn.close()
        return True

    def get_client_info(self, fd: int, reactor_id: int = -1) -> dict[str, Any] | None:
        """Swoole's ``getClientInfo``: a dict about ``fd``, or None if it is not open."""
        conn = self._conn(check_fd(fd))
        if conn is None:
            return self._remote_client_info(fd)
        listener = next((li for li in self._listeners if li.port == conn.server_port), None)
        info: dict[str, Any] = {
            "server_port": conn.server_port,
            "server_fd": listener.sock.fileno() if listener and listener.sock else -1,
            "socket_type": self.type,
            "remote_port": conn.remote_port,
            "remote_ip": conn.remote_addr,
            "reactor_id": 0,
            "worker_id": self.worker_id,
            "connect_time": int(conn.connect_time),
            "last_time": int(time.time() - (time.monotonic() - conn.last_recv)),
            **conn.buffer_info(),
            "recv_queued_bytes": 0 if conn.ws is None else conn.ws.buffered_bytes,
        }
        if conn.ws is not None or conn.status != 1:
            info["websocket_status"] = conn.status
        if conn.uid:
            info["uid"] = conn.uid
        cert = peer_certificate(conn.transport)  # mutual TLS: the client's, PEM (as Swoole)
        if cert is not None:
            info["ssl_client_cert"] = cert
        return info

    getClientInfo = get_client_info
    connection_info = get_client_info  # Swoole's older name, still shipped

    def _remote_client_info(self, fd: int) -> dict[str, Any] | None:
        rec = None if self._procs is None else self._procs.record(fd)
        if rec is None:
            return None
        info: dict[str, Any] = {
            "server_port": rec.server_port,
            "socket_type": self.type,
            "remote_port": rec.remote_port,
            "remote_ip": rec.remote_ip,
            "reactor_id": 0,
            "worker_id": rec.owner,
            "connect_time": int(rec.connect_time),
            "last_time": int(rec.last_recv),
            "uid": rec.uid,
        }
        if rec.status != 1:
            info["websocket_status"] = rec.status
        if not rec.uid:
            del info["uid"]
        procs = self._procs
        assert procs is not None
        # the owner's state as of its last change (table.py; base_flow.py in SWOOLE_BASE)
        info["send_queued_bytes"] = rec.send_queued_bytes
        info["buffer_full"] = bool(rec.flow & FLOW_FULL)
        events = procs.events
        if events is not None:  # a SWOOLE_PROCESS worker: the master sent it (process_certs.py)
            cert = events.certs.get(fd)
            if cert is not None:
                info["ssl_client_cert"] = cert
        return info

    def get_client_list(self, start_fd: int = 0, find_count: int = 10) -> list[int]:
        """Up to ``find_count`` (at most 100) open fds greater than ``start_fd``, ascending."""
        count = max(0, min(find_count, 100))
        return [fd for fd in self.connections if fd > start_fd][:count]

    getClientList = get_client_list
    connection_list = get_client_list  # Swoole's older name, still shipped

    def sendfile(self, fd: int, filename: str, offset: int = 0, length: int = 0) -> bool:
        """Send a file's bytes to connection ``fd`` (Swoole's ``Server::sendfile``, raw TCP),
        streamed with flow control; ``length`` 0: to the end. Only the worker that owns
        ``fd`` can (False elsewhere, ``SWOOLE_ERROR_SESSION_NOT_EXIST``)."""
        check_fd(fd)
        if self._loop_thread and get_ident() != self._loop_thread:
            return from_thread(self._loop, "sendfile", self.sendfile, fd, filename, offset, length)
        conn = self._conn(fd)
        if conn is None:
            return False
        try:
            size = os.stat(filename).st_size
        except OSError:
            self._last_error = SWOOLE_ERROR_FILE_NOT_EXIST
            return False
        if offset < 0 or length < 0 or offset > size or offset + length > size:
            return False
        return conn.send_file(filename, offset, length or size - offset)

    def stats(self) -> dict[str, Any]:
        """Swoole 6.2's ``stats()`` (swoole_server.cc), key for key and in its order, then
        pyswoole's own (``websocket_num``, ``timer_num``, ``event_loop``).

        Server-wide: ``start_time``, ``connection_num``, ``accept_count``,
        ``close_count``, ``abort_count``, ``worker_num``, ``task_worker_num``,
        ``user_worker_num`` (processes added with ``add_process``), ``idle_worker_num``,
        ``request_count`` and ``dispatch_count`` (events handed to callbacks: messages,
        requests, received data), ``response_count`` (messages, responses and sends
        queued for clients), ``total_recv_bytes``/``total_send_bytes`` (bytes read from and
        written to clients' sockets: HTTP and WebSocket on the wire), ``session_round``
        (the last fd given), ``min_fd``/``max_fd`` (of the open connections, 0 if none),
        ``pipe_packet_msg_id`` (0: IPC messages are not chunked). This worker's:
        ``worker_request_count``, ``worker_response_count``, ``worker_dispatch_count``,
        ``worker_concurrency`` (``async def`` callbacks running). With task workers:
        ``task_queue_num``/``task_queue_bytes`` (tasks sent and not yet taken by a task
        worker, and their bytes, over the server: Swoole reports them only for its System V
        queue, ``task_ipc_mode`` 3), ``task_idle_worker_num``, ``tasking_num``. Then
        ``coroutine_num`` (running ``async def`` callbacks) and ``coroutine_peek_num`` (the
        most seen at once).
        """
        worker = self._worker
        procs = self._procs
        if worker is None and procs is None:
            raise ServerStateError("stats() needs a running server")
        recv, sent, responses, worker_responses, concurrency = self._byte_totals()
        fds = self.connections._fds()
        if procs is None:
            assert worker is not None
            start_time = worker.start_time
            counters = {
                "connection_num": len(worker.connections),
                "abort_count": worker.abort_count,
                "accept_count": worker.accept_count,
                "close_count": worker.close_count,
            }
            worker_num, task_worker_num = 1, 0
            requests = worker_requests = worker.request_count
            session_round = worker.next_fd - 1
        else:  # (a task worker, or the manager, has no Worker: the shared counts only)
            shared = procs.table.counters()
            start_time = procs.counters.start_time
            counters = {
                "connection_num": shared["connection_num"],
                "abort_count": 0 if worker is None else worker.abort_count,
                "accept_count": shared["accept_count"],
                "close_count": shared["close_count"],
            }
            worker_num, task_worker_num = procs.worker_num, procs.task_worker_num
            own = procs.process_id
            if worker is not None:
                worker_requests = worker.request_count
            elif 0 <= own < procs.count:
                worker_requests = procs.status.requests(own)
            else:
                worker_requests = 0
            requests = sum(
                worker_requests if i == own else procs.status.requests(i)
                for i in range(procs.worker_num)
            )
            session_round = shared["accept_count"]
        stats: dict[str, Any] = {
            "start_time": start_time,
            **counters,
            "worker_num": worker_num,
            "task_worker_num": task_worker_num,
            "user_worker_num": 0 if procs is None else procs.user_count,
            "idle_worker_num": self._idle_worker_num(),
            "dispatch_count": requests,
            "request_count": requests,
            "response_count": responses,
            "total_recv_bytes": recv,
            "total_send_bytes": sent,
            "pipe_packet_msg_id": 0,
            "session_round": session_round,
            "min_fd": fds[0] if fds else 0,
            "max_fd": fds[-1] if fds else 0,
        }
        if self.worker_id >= 0:  # (Swoole: in a worker or task worker, SwooleWG.worker)
            stats["worker_request_count"] = worker_requests
            stats["worker_response_count"] = worker_responses
            stats["worker_dispatch_count"] = worker_requests
            stats["worker_concurrency"] = concurrency
        if procs is not None and task_worker_num:
            # (Swoole: only with task_ipc_mode 3, its System V queue; here always -- metrics.py)
            stats["task_queue_num"], stats["task_queue_bytes"] = procs.counters.metrics.task_queue()
            busy = sum(procs.status.busy(i) for i in range(procs.worker_num, procs.count))
            stats["task_idle_worker_num"] = task_worker_num - busy
            stats["tasking_num"] = busy
        tasks = self._tasks
        stats["coroutine_num"] = len(tasks)
        stats["coroutine_peek_num"] = max(len(tasks), getattr(tasks, "peak", 0))
        if worker is not None:
            stats["websocket_num"] = worker.websocket_count
            stats["timer_num"] = len(worker.timers)
            stats["event_loop"] = loop_name(worker.loop)
        return stats
