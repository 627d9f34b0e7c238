"""The server's connection API: ``connections``, ``exist``, ``bind``, ``send``, ``close``,
``get_client_info``, ``get_client_list``, ``stats`` (mixed into :class:`~.base.Server`).

A connection of this worker is answered from the runtime's table; another worker's from
the shared connection table (``process/table.py``), without IPC. ``send`` and ``close`` to
another worker's fd travel over IPC to its owner.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..constants import (
    SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW,
    SWOOLE_ERROR_SESSION_NOT_EXIST,
)
from ..exceptions import ConfigError, ServerStateError
from ..process import messages as msg
from ..runtime.connection import Connection
from ..runtime.loop import loop_name
from ..runtime.worker import Listener, Worker

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
        return isinstance(fd, int) and self._server.exist(fd)

    def __repr__(self) -> str:
        return f"ConnectionList({self._fds()})"


class ConnectionApi:
    """Mixin of :class:`~.base.Server`: what can be asked of and done to connections."""

    if TYPE_CHECKING:
        _worker: Worker | None
        _procs: ProcessModel | None
        _table: dict[int, Connection]
        _buffer_limit: int
        _last_error: int
        _settings: Settings
        _listeners: list[Listener]
        _tasks: set[Any]
        type: int
        worker_id: int

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
        """True while connection ``fd`` is open (in any worker)."""
        if self._conn(fd) is not None:
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
        conn = self._conn(fd)
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
        payload = data.encode() if isinstance(data, str) else bytes(data)
        if fd not in self._table and self._procs is not None:
            owner = self._procs.remote(fd, need_websocket=False)
            return owner >= 0 and self._procs.send(owner, msg.SEND, msg.pack_send(fd, payload))
        return self._send_local(fd, payload)

    def _send_local(self, fd: int, payload: bytes) -> bool:
        conn = self._conn(fd)
        if conn is None:
            return False
        if not conn.send_message(payload, None, self._buffer_limit):
            self._last_error = SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
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
        ``send_yield``); True at once for another worker's fd (its owner decides)."""
        conn = self._table.get(fd)
        if conn is None or conn.closed or not self._settings.get_value("send_yield"):
            return True
        if conn.queued_bytes() < self._buffer_limit:
            return True
        if await conn.wait_for_room(self._buffer_limit, timeout):
            return True
        self._last_error = (
            SWOOLE_ERROR_SESSION_NOT_EXIST if conn.closed else SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
        )
        return False

    def close(self, fd: int, reset: bool = False) -> bool:
        """Close connection ``fd`` (``reset=True``: drop it without flushing), in any worker."""
        if fd not in self._table and self._procs is not None:
            owner = self._procs.remote(fd, need_websocket=False)
            return owner >= 0 and self._procs.send(owner, msg.CLOSE, msg.pack_close(fd, reset))
        return self._close_local(fd, reset)

    def _close_local(self, fd: int, reset: bool) -> bool:
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
        return info

    getClientInfo = get_client_info

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
        return info

    def get_client_list(self, start_fd: int = 0, find_count: int = 10) -> list[int]:
        """Up to ``find_count`` (at most 100) open fds greater than ``start_fd``, ascending."""
        count = max(0, min(find_count, 100))
        return [fd for fd in self.connections if fd > start_fd][:count]

    getClientList = get_client_list

    def stats(self) -> dict[str, Any]:
        """Swoole's ``stats()`` keys that make sense for this server."""
        worker = self._worker
        if worker is None:
            raise ServerStateError("stats() needs a running server")
        if self._procs is not None:
            return self._procs_stats(worker)
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

    def _procs_stats(self, worker: Worker) -> dict[str, Any]:
        procs = self._procs
        assert procs is not None
        counters = procs.table.counters()
        busy = sum(procs.status.busy(i) for i in range(procs.worker_num, procs.count))
        return {
            "start_time": worker.start_time,
            **counters,
            "abort_count": worker.abort_count,
            "worker_num": procs.worker_num,
            "task_worker_num": procs.task_worker_num,
            "idle_worker_num": procs.worker_num,
            "tasking_num": busy,
            "task_idle_worker_num": procs.task_worker_num - busy,
            "request_count": sum(procs.status.requests(i) for i in range(procs.worker_num)),
            "worker_request_count": worker.request_count,
            "dispatch_count": worker.request_count,
            "timer_num": len(worker.timers),
            "coroutine_num": len(self._tasks),
            "event_loop": loop_name(worker.loop),
        }
