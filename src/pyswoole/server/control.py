"""Worker- and connection-control methods of the server (mixed into :class:`~.base.Server`):
``stop``, ``pause``/``resume``/``confirm``, ``protect``, ``heartbeat``, ``sendwait``, the
``get_worker_*``/``get_manager_pid``/``get_master_pid`` queries, and the per-process
counters ``stats()`` adds up across processes.

Swoole 6.2 is the reference (ext-src/swoole_server.cc; the IDE helper's notes on 6.2.2):

* ``stop(worker_id=-1)`` stops one worker -- the current one by default -- gracefully; the
  manager starts a replacement. Another worker is sent SIGTERM. With one process (no
  manager: SWOOLE_BASE, ``worker_num=1``, no task workers) stopping the only worker ends
  the server, as it does in Swoole. 6.1 dropped the second argument (``wait_event``); it
  is accepted here and ignored (``reload_async`` semantics are the graceful stop's).
* ``pause``/``resume`` stop and restart reading a connection; ``confirm`` is ``resume`` (one
  implementation in Swoole) for ``enable_delay_receive``, where a new connection is not
  read until confirmed. All three, and ``protect``, work on any worker's fd: the owner is
  asked over IPC (Swoole shares the connection table; in SWOOLE_PROCESS mode it sends the
  reactor a ``PAUSE_RECV``/``RESUME_RECV`` event).
* ``heartbeat(if_close_connection=False)``: the idle check now; returns the idle fds. The
  published stub says ``true`` by default but Swoole's code parses an omitted argument as
  false (swoole_server.cc ``heartbeat``: ``zend_bool close_connection = 0``), so the
  default here is False. False when ``heartbeat_check_interval`` is not set.

Every fd-taking method refuses an fd that is not an int (``"1"``, ``1.0``, ``None``,
``True``) with a TypeError naming the argument (:func:`check_fd`), instead of answering
"no such session".
"""

from __future__ import annotations

import mmap
import os
import signal
import struct
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..constants import (
    SWOOLE_PROCESS,
    SWOOLE_WORKER_BUSY,
    SWOOLE_WORKER_EXIT,
    SWOOLE_WORKER_IDLE,
)
from ..exceptions import ServerStateError
from ..metrics import MetricsBlock
from ..process import messages as msg
from ..runtime.flow import PAUSE_USER
from .threads import from_thread, get_ident

if TYPE_CHECKING:
    import asyncio

    from ..runtime.connection import Connection
    from ..runtime.worker import Worker
    from .processes import ProcessModel
    from .settings import Settings

__all__ = ["PeakSet", "ProcessCounters", "ServerControl", "check_fd"]

#: how often a worker publishes its counters to the shared slots (seconds)
PUBLISH_INTERVAL = 0.5
#: a worker whose loop has not beaten for this long is inside a callback: BUSY
BUSY_AFTER = 2.0


def check_fd(fd: object, name: str = "fd") -> int:
    """``fd`` if it is an int (a connection's session id); else TypeError naming ``name``.

    Swoole's methods take ``int $fd`` and PHP refuses what is not one (and ``bool``
    is no int here either): a str, float or None is the caller's bug, not a session that
    does not exist.
    """
    if type(fd) is int:
        return fd
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(f"{name} must be an int (a connection's fd), not {type(fd).__name__}")
    return int(fd)


# state, (pad), recv_bytes, send_bytes, response_count
_SLOT = struct.Struct("<iiQQQ")
_FD = struct.Struct("<q")


class ProcessCounters:
    """Counters each process publishes to shared memory (one slot per process id, written
    only by its owner; created before forking): its worker state (``SWOOLE_WORKER_*``)
    and the bytes and responses it sent and received. ``stats()`` in any process adds
    them up. A worker counts in plain ints on its hot path and publishes every
    :data:`PUBLISH_INTERVAL` seconds (and when it stops), so the totals lag by at most
    that much for other workers' traffic.

    It also holds which fds are protected (``protect(fd)``), one 8-byte slot per
    connection-table slot (``fd % capacity``, as the shared connection table), written by
    the fd's owner, so that ``heartbeat()`` in any process skips them."""

    def __init__(self, count: int, capacity: int = 0) -> None:
        self.count = count
        #: when the server started (created at start(), before forking: every process
        #: reports the same ``stats()["start_time"]``, as Swoole's ``gs->start_time``)
        self.start_time = int(time.time())
        self.capacity = capacity
        self._protected_at = max(1, count) * _SLOT.size
        self._mem = mmap.mmap(-1, self._protected_at + max(1, capacity) * _FD.size)
        #: the ``metrics`` setting's per-process counts (pyswoole/metrics.py)
        self.metrics = MetricsBlock(count)

    def publish(
        self, process_id: int, state: int, recv_bytes: int, send_bytes: int, responses: int
    ) -> None:
        if 0 <= process_id < self.count:
            _SLOT.pack_into(
                self._mem, process_id * _SLOT.size, state, 0, recv_bytes, send_bytes, responses
            )

    def read(self, process_id: int) -> tuple[int, int, int, int]:
        """``(state, recv_bytes, send_bytes, responses)`` of ``process_id``."""
        state, _, recv, sent, responses = _SLOT.unpack_from(self._mem, process_id * _SLOT.size)
        return state, recv, sent, responses

    def totals(self, skip: int = -1) -> tuple[int, int, int]:
        """``(recv_bytes, send_bytes, responses)`` summed over every process but ``skip``."""
        recv = sent = responses = 0
        for i in range(self.count):
            if i != skip:
                _, r, s, n = self.read(i)
                recv += r
                sent += s
                responses += n
        return recv, sent, responses

    def set_protected(self, fd: int, value: bool) -> None:
        if self.capacity and fd > 0:
            at = self._protected_at + (fd % self.capacity) * _FD.size
            _FD.pack_into(self._mem, at, fd if value else 0)

    def is_protected(self, fd: int) -> bool:
        if not self.capacity or fd <= 0:
            return False
        at = self._protected_at + (fd % self.capacity) * _FD.size
        return bool(_FD.unpack_from(self._mem, at)[0] == fd)

    def close(self) -> None:
        self._mem.close()
        self.metrics.close()


class PeakSet(set[Any]):
    """The server's set of running ``async def`` callbacks, remembering the most it held
    (``stats()["coroutine_peek_num"]``)."""

    def __init__(self, items: Iterable[Any] = ()) -> None:
        super().__init__(items)
        self.peak = len(self)

    def add(self, item: Any) -> None:
        super().add(item)
        if len(self) > self.peak:
            self.peak = len(self)


class ServerControl:
    """Mixin of :class:`~.base.Server`: worker and connection control (see the module)."""

    if TYPE_CHECKING:
        _worker: Worker | None
        _loop_thread: int
        _loop: asyncio.AbstractEventLoop | None
        _procs: ProcessModel | None
        _table: dict[int, Connection]
        _last_error: int
        _settings: Settings
        _tasks: set[Any]
        worker_id: int
        worker_pid: int
        master_pid: int
        manager_pid: int
        taskworker: bool
        mode: int

        def _conn(self, fd: int) -> Connection | None: ...

        def send(self, fd: int, data: str | bytes) -> bool: ...

    # -- stopping a worker ------------------------------------------------------------------

    def stop(self, worker_id: int = -1, wait_event: bool = False) -> bool:
        """Stop worker ``worker_id`` (the current one by default) gracefully; the manager
        starts a replacement. With one process there is no manager: the server stops, as
        Swoole's does. False if ``worker_id`` is not a worker. ``wait_event`` is accepted
        for code written for Swoole < 6.1 and ignored (the stop is always graceful).
        Use ``shutdown()`` to stop the whole server."""
        if isinstance(worker_id, bool) or not isinstance(worker_id, int):
            raise TypeError(f"worker_id must be an int, not {type(worker_id).__name__}")
        procs = self._procs
        if procs is None:  # one process: worker 0 is the server
            worker = self._worker
            if worker is None or not worker.running or worker_id not in (-1, 0):
                return False
            worker.stop()
            return True
        own = procs.process_id
        target = own if worker_id < 0 else worker_id
        if target == own and 0 <= own < procs.count:
            worker = self._worker
            if worker is not None and not self.taskworker:
                worker.stop()  # from the loop: the current callback finishes first
                self._publish_counters()
            else:  # a task worker: its loop stops on SIGTERM
                os.kill(os.getpid(), signal.SIGTERM)
            return True
        if not 0 <= target < procs.count:
            return False
        pid = procs.status.pid(target)
        if pid <= 0:
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    # -- reading a connection: pause / resume / confirm, protect ----------------------------

    def pause(self, fd: int) -> bool:
        """Stop reading connection ``fd`` (its data waits in the kernel; Swoole's
        ``pause``); False if it does not exist."""
        return self._control(check_fd(fd), msg.CONTROL_PAUSE)

    def resume(self, fd: int) -> bool:
        """Read connection ``fd`` again after ``pause(fd)``; False if it does not exist."""
        return self._control(check_fd(fd), msg.CONTROL_RESUME)

    def confirm(self, fd: int) -> bool:
        """With ``enable_delay_receive``, start reading a new connection (typically from
        ``on("connect")``): Swoole's ``confirm``, the same operation as ``resume``."""
        return self._control(check_fd(fd), msg.CONTROL_RESUME)

    def protect(self, fd: int, value: bool = True) -> bool:
        """Exempt connection ``fd`` from the heartbeat's idle check (``value=False``: no
        longer); False if it does not exist."""
        return self._control(check_fd(fd), msg.CONTROL_PROTECT if value else msg.CONTROL_UNPROTECT)

    def _control(self, fd: int, op: int) -> bool:
        if self._loop_thread and get_ident() != self._loop_thread:
            return from_thread(self._loop, "pause/resume/protect", self._control, fd, op)
        if fd not in self._table and self._procs is not None:
            owner = self._procs.remote(fd, need_websocket=False)
            return owner >= 0 and self._procs.send(owner, msg.CONTROL, msg.pack_control(fd, op))
        return self._control_local(fd, op)

    def _control_local(self, fd: int, op: int) -> bool:
        """Apply a pause/resume/protect to a connection of this process."""
        conn = self._conn(fd)
        if conn is None:
            return False
        if op == msg.CONTROL_PAUSE:
            conn._block_reading(PAUSE_USER)
        elif op == msg.CONTROL_RESUME:
            conn._unblock_reading(PAUSE_USER)
        elif op == msg.CONTROL_PROTECT or op == msg.CONTROL_UNPROTECT:
            protect = op == msg.CONTROL_PROTECT
            if protect:
                conn.worker.protected.add(fd)
            else:
                conn.worker.protected.discard(fd)
            if self._procs is not None:  # heartbeat() in other processes reads it
                self._procs.counters.set_protected(fd, protect)
        elif op == msg.CONTROL_CLOSE_IDLE:
            conn.worker.close_idle(conn)
        return True

    # -- heartbeat ---------------------------------------------------------------------------

    def heartbeat(self, if_close_connection: bool = False) -> list[int] | bool:
        """Run the idle check now, over every connection of the server (as Swoole's
        ``foreach_connection``): the fds, ascending, of those that sent nothing for
        ``heartbeat_idle_time`` seconds, protected ones excepted; closed too if
        ``if_close_connection`` (as the periodic check closes them; another process's by
        its owner, over IPC). False when ``heartbeat_check_interval`` is not set, as in
        Swoole. Another process's connections are judged by the shared table's last
        receive time, which their owner refreshes every second at most."""
        if self._loop_thread and get_ident() != self._loop_thread:
            return from_thread(self._loop, "heartbeat", self.heartbeat, if_close_connection)
        worker = self._worker
        if worker is None or not worker.running:
            raise ServerStateError("heartbeat() needs a running server: call it from a callback")
        if worker.heartbeat_check_interval <= 0:
            return False
        idle = worker.idle_connections()
        fds = {conn.fd for conn in idle}
        remote: list[tuple[int, int]] = []
        procs = self._procs
        if procs is not None:
            limit = time.time() - worker.heartbeat_idle_time
            own = procs.process_id
            for fd in procs.table.fds():
                if fd in worker.connections or procs.counters.is_protected(fd):
                    continue
                rec = procs.table.get(fd)
                if rec is not None and rec.owner != own and rec.last_recv < limit:
                    remote.append((fd, rec.owner))
                    fds.add(fd)
        if if_close_connection:
            for conn in idle:
                worker.close_idle(conn)
            if procs is not None:
                for fd, owner in remote:
                    procs.send(owner, msg.CONTROL, msg.pack_control(fd, msg.CONTROL_CLOSE_IDLE))
        return sorted(fds)

    # -- sendwait ----------------------------------------------------------------------------

    def sendwait(self, fd: int, data: str | bytes) -> bool:
        """Swoole's blocking ``sendwait`` (SWOOLE_BASE only; refused in SWOOLE_PROCESS mode
        and task workers). An event loop never blocks here: the bytes are queued like
        ``send()`` -- flow control bounds what a slow client can hold -- and
        ``await server.send_async(fd, data)`` is the way to wait for room."""
        fd = check_fd(fd)
        if self.taskworker or self.mode == SWOOLE_PROCESS:
            return False
        return self.send(fd, data)

    # -- workers and processes --------------------------------------------------------------

    def get_worker_id(self) -> int | bool:
        """The id of the current worker, task worker or user process; False elsewhere (the
        manager, the SWOOLE_PROCESS master)."""
        procs = self._procs
        if self.worker_id < 0 or (procs is not None and self.worker_id >= procs.master_id):
            return False
        return self.worker_id

    getWorkerId = get_worker_id

    def get_worker_pid(self, worker_id: int = -1) -> int | bool:
        """The pid of worker ``worker_id`` (the current one by default); False if there is
        no such worker."""
        procs = self._procs
        if worker_id < 0:
            if procs is not None and not 0 <= procs.process_id < procs.count:
                return False  # the manager (or the SWOOLE_PROCESS master)
            return os.getpid() if self.worker_id >= 0 else False
        if procs is None:
            return os.getpid() if worker_id == 0 and self._worker is not None else False
        if worker_id >= procs.count:
            return False
        pid = procs.status.pid(worker_id)
        return pid if pid > 0 else False

    getWorkerPid = get_worker_pid

    def get_manager_pid(self) -> int:
        """The manager's pid; 0 when there is none (one process), as in Swoole."""
        return self.manager_pid if self._procs is not None else 0

    getManagerPid = get_manager_pid

    def get_master_pid(self) -> int:
        """The pid of the process that started the server (0 before ``start()``)."""
        return self.master_pid

    getMasterPid = get_master_pid

    def get_worker_status(self, worker_id: int = -1) -> int | bool:
        """``SWOOLE_WORKER_BUSY``, ``SWOOLE_WORKER_IDLE`` or ``SWOOLE_WORKER_EXIT`` for worker
        ``worker_id`` (the current one by default); False if there is no such worker.

        The current worker is running the caller's code, so it is BUSY (EXIT once it is
        stopping). Another worker is EXIT while it stops or is gone, BUSY while its loop is
        held by a callback (no loop heartbeat for :data:`BUSY_AFTER` seconds; a task
        worker: while it runs a task), else IDLE.
        """
        procs = self._procs
        own = self.worker_id if procs is None else procs.process_id
        if worker_id < 0 or worker_id == own:
            worker = self._worker
            if own < 0 or (procs is not None and own >= procs.count):
                return False
            if worker is not None and worker.stopping:
                return SWOOLE_WORKER_EXIT
            return SWOOLE_WORKER_BUSY
        if procs is None or worker_id >= procs.count:
            return False
        return self._remote_status(procs, worker_id)

    getWorkerStatus = get_worker_status

    def _remote_status(self, procs: ProcessModel, process_id: int) -> int:
        pid = procs.status.pid(process_id)
        counters = procs.counters
        if pid <= 0 or not _alive(pid) or counters.read(process_id)[0] == SWOOLE_WORKER_EXIT:
            return SWOOLE_WORKER_EXIT
        if procs.is_task_worker(process_id):
            return SWOOLE_WORKER_BUSY if procs.status.busy(process_id) else SWOOLE_WORKER_IDLE
        if procs.status.heartbeat_age(process_id) > BUSY_AFTER:
            return SWOOLE_WORKER_BUSY
        return SWOOLE_WORKER_IDLE

    def _idle_worker_num(self) -> int:
        """Event workers that are IDLE now (the current one is not: it runs the caller)."""
        procs = self._procs
        if procs is None:
            return 0
        return sum(
            1
            for i in range(procs.worker_num)
            if i != procs.process_id and self._remote_status(procs, i) == SWOOLE_WORKER_IDLE
        )

    # -- counters -----------------------------------------------------------------------------

    def _control_configure(self, worker: Worker) -> None:
        """A worker was built (``Server._configure_worker``): ``enable_delay_receive``;
        in a multi-process server, publish this process's counters periodically."""
        worker.delay_receive = bool(self._settings.get_value("enable_delay_receive"))
        if not isinstance(self._tasks, PeakSet):
            self._tasks = PeakSet(self._tasks)
        procs = self._procs
        if procs is None:
            return
        # The slot outlives the process: a replacement goes on from its predecessor's
        # counts (the totals are the server's, not the process's).
        _, recv, sent, responses = procs.counters.read(procs.process_id)
        state: Any = worker.state
        if hasattr(state, "recv_bytes"):
            state.recv_bytes, state.send_bytes, state.response_count = recv, sent, responses
        self._publish_counters()
        loop = worker.loop
        # The SWOOLE_PROCESS master has every connection: its last receive times go to the
        # shared table for heartbeat() and get_client_info() in the workers (a SWOOLE_BASE
        # worker's own heartbeat timer does that for its connections).
        master = procs.process_mode and procs.process_id == procs.master_id
        synced = time.monotonic()

        def tick() -> None:
            nonlocal synced
            self._publish_counters()
            if master:
                now = time.monotonic()
                worker.sync_activity(synced)
                synced = now
            loop.call_later(PUBLISH_INTERVAL, tick)

        loop.call_later(PUBLISH_INTERVAL, tick)

    def _publish_counters(self) -> None:
        procs = self._procs
        worker = self._worker
        if procs is None or worker is None:
            return
        state = worker.state
        procs.counters.publish(
            procs.process_id,
            SWOOLE_WORKER_EXIT if worker.stopping else SWOOLE_WORKER_IDLE,
            getattr(state, "recv_bytes", 0),
            getattr(state, "send_bytes", 0),
            getattr(state, "response_count", 0),
        )

    def _byte_totals(self) -> tuple[int, int, int, int, int]:
        """``(total_recv, total_send, responses, worker_responses, worker_concurrency)``:
        every process's published counters plus this one's live values."""
        worker = self._worker
        state: Any = None if worker is None else worker.state
        recv = int(getattr(state, "recv_bytes", 0))
        sent = int(getattr(state, "send_bytes", 0))
        responses = int(getattr(state, "response_count", 0))
        total_recv, total_sent, total_responses = recv, sent, responses
        procs = self._procs
        if procs is not None:
            r, s, n = procs.counters.totals(skip=procs.process_id)
            total_recv += r
            total_sent += s
            total_responses += n
        return total_recv, total_sent, total_responses, responses, len(self._tasks)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
