"""The multi-process server (``worker_num`` > 1 or task workers), Swoole's SWOOLE_BASE model.

The process that calls ``start()`` binds the listening sockets, creates the shared
connection table (:mod:`pyswoole.process.table`), the per-process status slots and one IPC
inbox per process, then becomes the manager (:mod:`pyswoole.process.manager`) and forks:

* workers ``0..worker_num-1`` — each accepts on the shared sockets and owns its
  connections; a push to an fd another worker owns goes over IPC to the owner, which
  publishes each change of its connections' output state in the shared table, so that
  others refuse to push to an overflowing fd themselves (:mod:`.base_flow`);
* task workers ``worker_num..`` — run ``on("task")`` and send results back;
* user processes ``worker_num + task_worker_num..`` (``server.add_process``) — run their
  :class:`~pyswoole.process.user.Process` callback on a loop of their own; their pushes,
  broadcasts, ``send_message`` and ``disconnect`` go over IPC to the owning worker (in
  SWOOLE_PROCESS mode to the master), exactly as a worker's push to another worker's fd.

Everything a worker knows about other workers' connections comes from the shared table, so
``exist``, ``connections``, ``get_client_info`` and ``stats`` need no IPC.

With ``SWOOLE_PROCESS`` a master process (id ``count``) keeps the sockets and every
connection instead and forks the manager; its workers run callbacks for the events it
forwards (:mod:`.process_mode`: the ``MasterApp`` in the master, ``WorkerEvents`` in the
workers, where the forwarded connection events -- not the master's barriers and buffer
notices -- count toward ``max_request``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from ..constants import (
    SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW,
    SWOOLE_ERROR_SESSION_NOT_EXIST,
    SWOOLE_ERROR_WEBSOCKET_UNCONNECTED,
    SWOOLE_PROCESS,
    WEBSOCKET_STATUS_ACTIVE,
)
from ..exceptions import ServerStateError
from ..process import messages as msg
from ..process.ipc import Inbox, Mailer
from ..process.manager import EXIT_BOOT_ERROR, EXIT_OK, Manager, freeze_for_fork
from ..process.status import ProcessStatus
from ..process.table import FLOW_OVERFLOW, ConnectionRecord, ConnectionTable
from ..runtime.worker import raise_nofile_limit
from .base_flow import BaseFlow
from .control import ProcessCounters
from .dispatch import WorkerLoad
from .process_certs import verifies_peers
from .process_mode import MasterApp, WorkerEvents
from .task import TaskWorker
from .tasks import TaskDispatcher

if TYPE_CHECKING:
    from .base import Server

__all__ = ["ProcessModel"]

log = logging.getLogger("pyswoole")

HEARTBEAT_INTERVAL = 1.0


class ProcessModel:
    """The multi-process state of one server, present in the manager and every child."""

    def __init__(self, server: Server) -> None:
        get = server._settings.get_value
        self.server = server
        self.worker_num: int = get("worker_num")
        self.task_worker_num: int = get("task_worker_num")
        self.count = self.worker_num + self.task_worker_num
        #: user processes (server.add_process): ids ``count..count+user_count-1``
        self.user_processes = list(server._user_processes)
        self.user_count = len(self.user_processes)
        for index, process in enumerate(self.user_processes):
            process.id = self.count + index  # (settings may have changed since add_process)
        self.max_request: int = get("max_request")
        #: SWOOLE_PROCESS: the master (process id ``count``) owns every connection
        self.process_mode = server.mode == SWOOLE_PROCESS
        self.master_id = self.count + self.user_count
        raise_nofile_limit()
        self.table = ConnectionTable(get("max_conn"))
        self.status = ProcessStatus(self.master_id)
        #: bytes, responses and worker states for stats() (+1: the SWOOLE_PROCESS master)
        self.counters = ProcessCounters(self.master_id + 1, self.table.capacity)
        self.inboxes = [Inbox(i) for i in range(self.master_id + (1 if self.process_mode else 0))]
        #: SWOOLE_PROCESS: events each worker has handled (dispatch_mode 3/7 reads it)
        self.load = WorkerLoad(self.worker_num) if self.process_mode else None
        self.manager = Manager(
            worker_num=self.worker_num,
            task_worker_num=self.task_worker_num,
            spawn=self._child,
            status=self.status,
            max_wait_time=get("max_wait_time"),
            worker_timeout=get("worker_timeout"),
            on_worker_error=self._on_worker_error,
            on_child_exit=self._on_child_exit,
            user_process_num=self.user_count,
        )
        self.manager.on_before_reload = self._before_reload
        self.manager.on_after_reload = lambda: server._call_event("afterReload", server)
        self.manager.on_before_shutdown = lambda: server._call_event("beforeShutdown", server)
        self.manager_pid = os.getpid()
        self.master_pid = os.getpid()
        self.process_id = -1  # -1 in the manager
        self.master_app: MasterApp | None = None
        #: a SWOOLE_BASE worker: its connections' output state in the table (.base_flow)
        self.base_flow: BaseFlow | None = None
        self.events: WorkerEvents | None = None
        self.mailer: Mailer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        #: tasks sent from this process (:mod:`.tasks`), and in a task worker its loop
        self.tasks = TaskDispatcher(self)
        self.task_worker: TaskWorker | None = None

    # -- manager ------------------------------------------------------------------------------

    def run(self) -> int:
        """Run the manager (and in SWOOLE_PROCESS mode the master) until shutdown; returns
        the exit code."""
        server = self.server
        server.manager_pid = self.manager_pid
        server.worker_id = -1
        try:
            if self.process_mode:
                code = self._run_master()
            else:
                code = self.manager.run(on_started=self._on_manager_started)
        finally:
            server._call_event("managerStop", server)
            server._call_event("shutdown", server)
            self.table.close()
            for inbox in self.inboxes:
                inbox.close()
        return code

    def _on_manager_started(self) -> None:
        if not self.process_mode:
            self.server._call_event("start", self.server)
        self.server._call_event("managerStart", self.server)

    # -- SWOOLE_PROCESS master ------------------------------------------------------------------

    def _run_master(self) -> int:
        """Fork the manager (which forks the workers), then serve every connection here."""
        server = self.server
        freeze_for_fork()
        pid = os.fork()
        if pid == 0:  # the manager
            code = 1
            try:
                self.manager_pid = os.getpid()
                server.manager_pid = self.manager_pid
                self.manager.stop_on_sigint = False  # (the master's SIGTERM stops it)
                code = self.manager.run(on_started=self._on_manager_started)
            except BaseException:
                log.exception("manager crashed")
            finally:
                os._exit(code)
        self.manager_pid = pid
        server.manager_pid = pid
        self.process_id = self.master_id
        self.mailer = Mailer(self.master_id, self.inboxes)
        worker = server._build_worker(self.master_id)
        worker.shared = self.table
        self.loop = worker.loop
        self.master_app = MasterApp(server, self, worker)
        worker.app = self.master_app
        mailer = self.mailer
        loop = worker.loop

        def watch_manager() -> None:
            # (uvloop keeps SIGCHLD for itself: look once a second instead)
            try:
                done, _ = os.waitpid(self.manager_pid, os.WNOHANG)
            except ChildProcessError:
                done = self.manager_pid
            if done:
                # (not an error while this master stops too: a terminal's Ctrl-C reaches
                # the whole process group, and the manager stops its workers on it)
                if not worker.stopping:
                    log.error("the manager exited: stopping")
                    worker.stop()
            elif not worker.stopping:
                loop.call_later(HEARTBEAT_INTERVAL, watch_manager)

        def on_start() -> None:
            # the workers' replies: one write per client per wakeup
            mailer.attach(loop, self.on_message, (worker.begin_batch, worker.end_batch))
            loop.call_later(HEARTBEAT_INTERVAL, watch_manager)
            loop.add_signal_handler(signal.SIGUSR1, self._master_reload)
            loop.add_signal_handler(signal.SIGUSR2, os.kill, self.manager_pid, signal.SIGUSR2)
            server._call_event("start", server)
            server.ready.set()

        def on_stop() -> None:
            server.ready.clear()
            mailer.detach()

        try:
            worker.run(on_start=on_start, on_stop=on_stop)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.manager_pid, signal.SIGTERM)
            code = self._wait_manager()
        return code

    def _before_reload(self) -> None:
        """In the manager, before the workers are replaced: SWOOLE_BASE's TLS certificates
        are re-read here (the workers it forks inherit them: no worker needs to read the
        key, which a dropped ``user`` or a ``chroot`` may forbid); then beforeReload."""
        server = self.server
        if not self.process_mode:
            server._reload_tls()
        server._call_event("beforeReload", server)

    def _master_reload(self) -> None:
        """SIGUSR1 at the master: re-read its TLS certificates (it keeps the sockets), then
        the manager replaces the workers."""
        self.server._reload_tls()
        os.kill(self.manager_pid, signal.SIGUSR1)

    def _wait_manager(self) -> int:
        """Wait (bounded) for the manager and its workers to stop; KILL it if it will not."""
        deadline = time.monotonic() + self.manager.max_wait_time + 8.0
        while time.monotonic() < deadline:
            try:
                pid, status = os.waitpid(self.manager_pid, os.WNOHANG)
            except ChildProcessError:
                return 0
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.manager_pid, signal.SIGKILL)
        return 1

    def _on_worker_error(self, process_id: int, pid: int, code: int, sig: int) -> None:
        self.server._call_event("workerError", self.server, process_id, pid, code, sig)

    def _on_child_exit(self, process_id: int) -> None:
        """A child is gone: its connections are gone with it (killed workers never
        unregistered them), and a task worker is no longer busy."""
        released = self.table.release_owner(process_id)
        if released:
            log.info("worker %d exited holding %d connections: released", process_id, released)
        self.status.set_busy(process_id, False)

    def shutdown(self) -> None:
        """From the manager: stop; from a child: ask the manager (SWOOLE_PROCESS: the
        master, which stops the manager) to stop."""
        if self.process_mode:
            if self.process_id == self.master_id and self.server._worker is not None:
                self.server._worker.stop()
            else:
                os.kill(self.master_pid, signal.SIGTERM)
        elif self.process_id < 0:
            self.manager.shutdown()
        else:
            os.kill(self.manager_pid, signal.SIGTERM)

    def reload(self, only_task_workers: bool) -> bool:
        if self.process_mode and not only_task_workers and os.getpid() != self.manager_pid:
            os.kill(self.master_pid, signal.SIGUSR1)  # (the master re-reads its certificates)
        elif self.process_id < 0:
            self.manager.reload(only_task_workers)
        else:
            os.kill(self.manager_pid, signal.SIGUSR2 if only_task_workers else signal.SIGUSR1)
        return True

    # -- children -----------------------------------------------------------------------------

    def is_task_worker(self, process_id: int) -> bool:
        return bool(self.worker_num <= process_id < self.count)

    def _child(self, process_id: int) -> NoReturn:
        server = self.server
        self.process_id = process_id
        server.worker_id = process_id
        server.worker_pid = os.getpid()
        server.taskworker = self.is_task_worker(process_id)
        self.mailer = Mailer(process_id, self.inboxes)
        try:
            if process_id >= self.count:
                self._run_user_process(process_id)
            if server.taskworker:
                self._run_task_worker(process_id)
            else:
                self._run_worker(process_id)
        except BaseException:
            log.exception("worker %d crashed", process_id)
            os._exit(EXIT_BOOT_ERROR if not self.status.requests(process_id) else 1)
        with contextlib.suppress(Exception):
            self.mailer.flush(1.0)
        os._exit(EXIT_OK)

    def _heartbeat(self, process_id: int, stop: Callable[[], None]) -> Callable[[], None]:
        """A loop timer that proves liveness, syncs activity times, applies max_request."""
        assert self.loop is not None
        loop = self.loop
        last_sync = time.monotonic()

        def beat() -> None:
            nonlocal last_sync
            self.status.beat(process_id)
            worker = self.server._worker
            if worker is not None and not self.is_task_worker(process_id):
                now = time.monotonic()
                worker.sync_activity(last_sync)
                last_sync = now
                total = worker.request_count
                self.status.add_requests(process_id, total - self.status.requests(process_id))
                if self.max_request and total >= self.max_request and not worker.stopping:
                    log.info(
                        "worker %d reached max_request=%d: restarting", process_id, self.max_request
                    )
                    stop()
                    return
            loop.call_later(HEARTBEAT_INTERVAL, beat)

        return beat

    def _run_worker(self, process_id: int) -> None:
        """A worker's event loop. In SWOOLE_BASE it accepts on the shared sockets and owns
        its connections; a SWOOLE_PROCESS worker has no sockets and runs callbacks for the
        master's events (timers and tasks work the same in both)."""
        server = self.server
        server._enter_worker_process(process_id)
        if self.process_mode:
            worker = server._build_worker(process_id, listeners=[])
            self.events = WorkerEvents(server, self)
            # Stopping (reload): take no new events — they stay in this worker's inbox for
            # its replacement — and finish the callbacks already running.
            assert self.mailer is not None
            worker.on_stopping = self.mailer.stop_reading
        else:
            worker = server._build_worker(process_id)
            worker.shared = self.table
            self.base_flow = BaseFlow(server, self, worker)
        self.loop = worker.loop
        assert self.mailer is not None
        mailer = self.mailer

        def on_start() -> None:
            # pushes and broadcasts from other workers: one write per client per wakeup
            mailer.attach(worker.loop, self.on_message, (worker.begin_batch, worker.end_batch))
            if self.events is not None and verifies_peers(server):  # (process_certs.py)
                mailer.send(self.master_id, msg.CERTS, msg.pack_fd(process_id))
            self.status.beat(process_id)
            worker.loop.call_later(HEARTBEAT_INTERVAL, self._heartbeat(process_id, worker.stop))
            server._call_event("workerStart", server, process_id)
            server.ready.set()

        def on_stop() -> None:
            server.ready.clear()
            server._call_event("workerExit", server, process_id)
            server._call_event("workerStop", server, process_id)
            mailer.detach()

        worker.run(on_start=on_start, on_stop=on_stop)

    def _run_task_worker(self, process_id: int) -> None:
        """A task worker's loop: :class:`~.task.TaskWorker`."""
        self.server._enter_worker_process(process_id)
        self.task_worker = TaskWorker(self, process_id)
        self.task_worker.run()

    def _run_user_process(self, process_id: int) -> None:
        """A user process (``server.add_process``): its callback, then its loop while timers
        are pending; its IPC (pushes to other processes' fds, messages) on that loop."""
        server = self.server
        server._enter_worker_process(process_id)
        process = self.user_processes[process_id - self.count]
        process.id = process_id
        assert self.mailer is not None
        mailer = self.mailer

        def on_loop(loop: asyncio.AbstractEventLoop) -> None:
            self.loop = loop
            server._loop_thread = threading.get_ident()
            server._loop = loop
            mailer.attach(loop, self.on_message)
            self.status.beat(process_id)

        def on_exit() -> None:
            mailer.flush(1.0)
            mailer.detach()

        process.run_child(on_loop=on_loop, on_exit=on_exit)

    # -- IPC in workers -----------------------------------------------------------------------

    def send(self, dst: int, kind: int, body: bytes) -> bool:
        mailer = self.mailer
        if mailer is None:
            raise ServerStateError("IPC needs a running worker")
        return mailer.send(dst, kind, body)

    def on_message(self, kind: int, src: int, body: bytes) -> None:
        """A message from another process, in a worker."""
        server = self.server
        try:
            if kind >= msg.EV_CONNECT:
                if self.events is not None and self.events.on_event(kind, body):
                    if (
                        kind <= msg.EV_REQUEST or kind == msg.EV_RECEIVE or kind == msg.EV_PORT
                    ) and server._worker is not None:
                        server._worker.request_count += 1  # counts toward max_request
                    return
                if self.master_app is not None and self.master_app.on_reply(kind, body):
                    return
            if kind == msg.PUSH or kind == msg.PUSH_YIELD:
                fd, opcode, flags, data = msg.unpack_push(body)
                app = self.master_app
                if server._push_local(fd, data, opcode, flags):  # type: ignore[attr-defined]
                    if app is not None:  # SWOOLE_PROCESS: answers what fd sent (refused())
                        received = app.received
                        left = received.get(fd)
                        if left:
                            received[fd] = left - len(data) if left > len(data) else 0
                else:  # over socket_buffer_size (MasterApp.refused, BaseFlow.refused)
                    refuser = app or self.base_flow
                    if refuser is not None:
                        refuser.refused(src, fd, kind == msg.PUSH_YIELD, data, opcode, flags)
            elif kind == msg.BROADCAST:
                opcode, flags, fds, data = msg.unpack_broadcast(body)
                server._broadcast_local(data, fds, opcode, flags)  # type: ignore[attr-defined]
            elif kind == msg.DISCONNECT:
                fd, code, reason = msg.unpack_disconnect(body)
                server._disconnect_local(fd, code, reason)  # type: ignore[attr-defined]
            elif kind == msg.CLOSE:
                fd, reset = msg.unpack_close(body)
                server._close_local(fd, reset)
            elif kind == msg.SEND:
                fd, data = msg.unpack_send(body)
                app = self.master_app
                if server._send_local(fd, data):
                    if app is not None:  # (as PUSH)
                        received = app.received
                        left = received.get(fd)
                        if left:
                            received[fd] = left - len(data) if left > len(data) else 0
                else:
                    refuser = app or self.base_flow
                    if refuser is not None:
                        refuser.refused(src, fd, False, data, -1, 0)
            elif kind == msg.CONTROL:
                server._control_local(*msg.unpack_control(body))
            elif kind == msg.TOPIC:
                server._topic_ipc(src, body)  # type: ignore[attr-defined]
            elif kind == msg.PIPE:
                server._call_event("pipeMessage", server, src, msg.decode_object(body))
            elif kind == msg.FINISH or kind == msg.TASK_ERROR:
                self.tasks.on_reply(kind, src, body)
            else:
                log.warning(
                    "worker %d: unexpected IPC message kind %d from %d", self.process_id, kind, src
                )
        except Exception:
            log.exception("handling IPC message %d from process %d failed", kind, src)

    # -- remote connection operations --------------------------------------------------------

    def record(self, fd: int) -> ConnectionRecord | None:
        return self.table.get(fd) if isinstance(fd, int) else None

    def remote(self, fd: int, need_websocket: bool, need_room: bool = False) -> int:
        """The owner of ``fd`` if another worker has it; else -1 with the error set.
        ``need_room`` (a push or send): -1 too while the owner has marked the connection
        overflowing (``FLOW_OVERFLOW``: Swoole's worker-side ``conn->overflow`` check)."""
        rec = self.record(fd)
        if rec is None or rec.owner == self.process_id:
            self.server._last_error = SWOOLE_ERROR_SESSION_NOT_EXIST
            return -1
        if need_websocket and rec.status != WEBSOCKET_STATUS_ACTIVE:
            self.server._last_error = SWOOLE_ERROR_WEBSOCKET_UNCONNECTED
            return -1
        if need_room and rec.flow & FLOW_OVERFLOW:
            self.server._last_error = SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
            worker = self.server._worker
            if worker is not None:  # refused here as the owner would: counted (metrics)
                worker.state.buffer_overflows += 1
            return -1
        return rec.owner

    def other_workers(self) -> list[int]:
        """Where a broadcast must go besides here: the master in SWOOLE_PROCESS mode."""
        if self.process_mode:
            return [] if self.process_id == self.master_id else [self.master_id]
        return [i for i in range(self.worker_num) if i != self.process_id]

    # -- tasks (the rest is in .tasks and .task) -----------------------------------------------

    def finish(self, data: Any) -> bool:
        """``server.finish(data)`` in a task callback: send the result now."""
        if self.task_worker is None:
            raise ServerStateError("finish() must be called from a task callback")
        return self.task_worker.finish(data)
