"""The manager: forks the workers and task workers, watches them, replaces them.

Theory of operation (after gunicorn's arbiter)
----------------------------------------------
Signal handlers only enqueue the signal and wake the main loop through a pipe; the loop
dispatches to ``_handle_<name>``. The loop wakes at least once a second to reap children
and check heartbeats:

* a child that exits while the server runs is replaced (``workerError`` fires for an
  abnormal exit); one that exits with :data:`EXIT_BOOT_ERROR` shortly after starting means
  the program cannot run, so the manager stops instead of crash-looping;
* a worker whose event loop has not beaten for ``worker_timeout`` seconds is stuck: it gets
  SIGKILL and is replaced;
* SIGUSR1 (or ``reload()``) restarts the workers one at a time, SIGUSR2 only the task
  workers: TERM, wait up to ``max_wait_time``, KILL, spawn the next generation;
* SIGTERM/SIGINT stop everything: TERM to every child (each shuts down gracefully, clients
  get 1001), wait up to ``max_wait_time``, then KILL what is left.

User processes (``server.add_process``, ids after the task workers) are children like the
others, except: no heartbeat (``worker_timeout`` does not apply), no boot-error stop, not
restarted by a reload (as Swoole), and one that lived less than :data:`RESPAWN_DELAY` is
restarted only that much later (no crash loop).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import os
import select
import signal
import time
from collections import deque
from collections.abc import Callable
from typing import NoReturn

from .status import ProcessStatus

__all__ = ["EXIT_BOOT_ERROR", "EXIT_OK", "Manager", "freeze_for_fork"]

log = logging.getLogger("pyswoole")

EXIT_OK = 0
#: a child that could not start (e.g. an exception in workerStart): do not respawn it
EXIT_BOOT_ERROR = 3
#: a boot error within this many seconds of starting stops the server
BOOT_GRACE = 5.0
#: a user process that exits sooner than this after starting is restarted this much later
RESPAWN_DELAY = 1.0

_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGCHLD,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGHUP,
)


def freeze_for_fork() -> None:
    """Call right before a fork whose child runs on without exec (a worker, the manager).

    What the child inherits stays shared with this process (copy-on-write) only while
    nothing writes to it, and a collector writes to the GC header of every object it
    examines: without this, each worker ends up with a private copy of the heap it was
    forked with (measured: 8 idle workers, 7 MB more PSS after two seconds of echo; 0.36
    KiB more per connection with 2 workers at 15,000). Frozen objects are never examined
    again (Python's ``gc.freeze`` documentation); garbage is collected first so that none
    is frozen with them.
    """
    gc.collect()
    gc.freeze()


class Manager:
    """Supervise ``worker_num + task_worker_num`` child processes."""

    def __init__(
        self,
        *,
        worker_num: int,
        task_worker_num: int,
        spawn: Callable[[int], NoReturn],
        status: ProcessStatus,
        max_wait_time: float = 3.0,
        worker_timeout: float = 0.0,
        on_worker_error: Callable[[int, int, int, int], None] | None = None,
        on_child_exit: Callable[[int], None] | None = None,
        user_process_num: int = 0,
    ) -> None:
        self.worker_num = worker_num
        self.task_worker_num = task_worker_num
        self.user_process_num = user_process_num
        #: user process id -> monotonic time of its delayed restart
        self._respawn_at: dict[int, float] = {}
        self.spawn_child = spawn
        self.status = status
        self.max_wait_time = max_wait_time
        self.worker_timeout = worker_timeout
        self.on_worker_error = on_worker_error
        self.on_child_exit = on_child_exit
        self.children: dict[int, int] = {}  # pid -> process id
        self.started_at: dict[int, float] = {}  # process id -> monotonic start
        self.stopping = False
        self.exit_code = 0
        self._signals: deque[int] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._reload_queue: deque[int] = deque()
        self._reloading: int | None = None  # pid being replaced
        self._reload_deadline = 0.0
        self._killed_stuck: set[int] = set()
        self._shutdown_deadline = 0.0
        #: Swoole's beforeReload/afterReload (around one reload of every process asked)
        #: and beforeShutdown, called in this process
        self.on_before_reload: Callable[[], None] | None = None
        self.on_after_reload: Callable[[], None] | None = None
        self.on_before_shutdown: Callable[[], None] | None = None
        self._in_reload = False
        #: False for a SWOOLE_PROCESS manager: the master takes a terminal's Ctrl-C, drains
        #: its connections (the workers still answering), then sends this process SIGTERM;
        #: taking the group's SIGINT too made that SIGTERM a second signal, which the
        #: workers are told as "stop at once"
        self.stop_on_sigint = True

    # -- children ---------------------------------------------------------------------------

    @property
    def process_count(self) -> int:
        return self.worker_num + self.task_worker_num

    def is_task_worker(self, process_id: int) -> bool:
        return self.worker_num <= process_id < self.process_count

    def is_user_process(self, process_id: int) -> bool:
        return process_id >= self.process_count

    def spawn(self, process_id: int) -> int:
        """Fork a child for ``process_id``; in the child, never return."""
        freeze_for_fork()
        pid = os.fork()
        if pid == 0:
            try:
                self._in_child()
                self.spawn_child(process_id)
            except BaseException:
                log.exception("worker %d failed to start", process_id)
            os._exit(EXIT_BOOT_ERROR)
        self.children[pid] = process_id
        self.started_at[process_id] = time.monotonic()
        self.status.started(process_id, pid)
        return pid

    def _in_child(self) -> None:
        for sig in _SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        # A terminal's Ctrl-C reaches every process of the group: the manager turns it into
        # SIGTERM for each child (the graceful stop); a child that took the SIGINT as well
        # would see that SIGTERM as a second signal and stop at once, without draining.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.set_wakeup_fd(-1)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def pid_of(self, process_id: int) -> int | None:
        for pid, pid_process in self.children.items():
            if pid_process == process_id:
                return pid
        return None

    # -- main loop ----------------------------------------------------------------------------

    def run(self, on_started: Callable[[], None] | None = None) -> int:
        """Spawn every child and supervise them until shutdown; returns an exit code."""
        for sig in _SIGNALS:
            signal.signal(sig, self._enqueue)
        if not self.stop_on_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        try:
            for process_id in range(self.process_count + self.user_process_num):
                self.spawn(process_id)
            if on_started is not None:
                on_started()
            while self.children or not self.stopping:
                self._wait(1.0)
                while self._signals:
                    self._dispatch(self._signals.popleft())
                self._reap()
                self._respawn_due()
                self._check_heartbeats()
                self._advance_reload()
                if self.stopping:
                    self._escalate()
        finally:
            signal.set_wakeup_fd(-1)
            for sig in _SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            os.close(self._wake_r)
            os.close(self._wake_w)
        return self.exit_code

    def _enqueue(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _wait(self, timeout: float) -> None:
        try:
            ready, _, _ = select.select([self._wake_r], [], [], timeout)
        except InterruptedError:
            return
        if ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 4096):
                    pass

    def _dispatch(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            return  # reaped below
        if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.shutdown()
        elif signum == signal.SIGUSR1:
            self.reload()
        elif signum == signal.SIGUSR2:
            self.reload(only_task_workers=True)
        elif signum == signal.SIGHUP:
            self.reload()

    # -- reaping and supervision ----------------------------------------------------------------

    def _reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if pid == 0:
                return
            process_id = self.children.pop(pid, None)
            if process_id is None:
                continue
            self._child_exited(pid, process_id, wait_status)

    def _child_exited(self, pid: int, process_id: int, wait_status: int) -> None:
        exit_code = os.waitstatus_to_exitcode(wait_status)
        sig = -exit_code if exit_code < 0 else 0
        code = exit_code if exit_code >= 0 else 0
        if self.on_child_exit is not None:
            try:
                self.on_child_exit(process_id)
            except Exception:
                log.exception("cleaning up after worker %d failed", process_id)
        planned = pid == self._reloading or self.stopping
        if pid == self._reloading:
            self._reloading = None
        abnormal = sig != 0 or code != EXIT_OK
        if abnormal and not planned:
            what = "user process" if self.is_user_process(process_id) else "worker"
            log.warning(
                "%s %d (pid %d) exited: code %d, signal %d", what, process_id, pid, code, sig
            )
            if self.on_worker_error is not None:
                try:
                    self.on_worker_error(process_id, pid, code, sig)
                except Exception:
                    log.exception("exception in workerError callback")
        if self.stopping:
            return
        lived = time.monotonic() - self.started_at.get(process_id, 0.0)
        if self.is_user_process(process_id):
            if lived < RESPAWN_DELAY:
                self._respawn_at[process_id] = time.monotonic() + RESPAWN_DELAY
            else:
                self.spawn(process_id)
            return
        if code == EXIT_BOOT_ERROR and lived < BOOT_GRACE and pid not in self._killed_stuck:
            log.error("worker %d could not start; shutting down", process_id)
            self.exit_code = EXIT_BOOT_ERROR
            self.shutdown()
            return
        self._killed_stuck.discard(pid)
        self.spawn(process_id)

    def _respawn_due(self) -> None:
        """Restart the user processes whose delayed restart is due."""
        if not self._respawn_at:
            return
        now = time.monotonic()
        for process_id, when in list(self._respawn_at.items()):
            if self.stopping:
                self._respawn_at.clear()
                return
            if when <= now:
                del self._respawn_at[process_id]
                self.spawn(process_id)

    def _check_heartbeats(self) -> None:
        if self.worker_timeout <= 0 or self.stopping:
            return
        for pid, process_id in list(self.children.items()):
            if pid in self._killed_stuck or self.is_user_process(process_id):
                continue
            if self.status.heartbeat_age(process_id) > self.worker_timeout:
                log.error(
                    "worker %d (pid %d) is stuck (no heartbeat for %.1f s): killing it",
                    process_id,
                    pid,
                    self.status.heartbeat_age(process_id),
                )
                self._killed_stuck.add(pid)
                self._kill(pid, signal.SIGKILL)

    # -- reload and shutdown ------------------------------------------------------------------

    def reload(self, only_task_workers: bool = False) -> None:
        """Restart workers one at a time (only task workers if asked)."""
        if self.stopping:
            return
        ids = (
            range(self.worker_num, self.process_count)
            if only_task_workers
            else range(self.process_count)
        )
        if not self._in_reload:
            self._in_reload = True
            _hook(self.on_before_reload, "beforeReload")
        for process_id in ids:
            if process_id not in self._reload_queue:
                self._reload_queue.append(process_id)

    def _advance_reload(self) -> None:
        if self.stopping:
            return
        if self._reloading is not None:
            if time.monotonic() > self._reload_deadline:
                self._kill(self._reloading, signal.SIGKILL)
            return
        while self._reload_queue:
            process_id = self._reload_queue.popleft()
            pid = self.pid_of(process_id)
            if pid is None:
                continue
            self._reloading = pid
            # the worker itself waits up to max_wait_time for callbacks in flight
            self._reload_deadline = time.monotonic() + self.max_wait_time + 2.0
            self._kill(pid, signal.SIGTERM)
            return
        if self._in_reload:
            self._in_reload = False
            _hook(self.on_after_reload, "afterReload")

    def shutdown(self) -> None:
        """Stop every child gracefully; KILL them after ``max_wait_time``. Called again
        while stopping (a second SIGTERM/SIGINT): the children are told again, which makes
        them stop at once, and are killed if still there a second later."""
        if self.stopping:
            self._shutdown_deadline = min(self._shutdown_deadline, time.monotonic() + 1.0)
            for pid in list(self.children):
                self._kill(pid, signal.SIGTERM)
            return
        _hook(self.on_before_shutdown, "beforeShutdown")
        self.stopping = True
        self._reload_queue.clear()
        # each child shuts down gracefully within max_wait_time (drain, closing
        # handshakes, callbacks in flight: runtime/worker.py), well within this bound
        self._shutdown_deadline = time.monotonic() + self.max_wait_time + 5.0
        for pid in list(self.children):
            self._kill(pid, signal.SIGTERM)

    def _escalate(self) -> None:
        if self.children and time.monotonic() > self._shutdown_deadline:
            for pid in list(self.children):
                log.warning("pid %d did not stop in time: killing it", pid)
                self._kill(pid, signal.SIGKILL)
            self._shutdown_deadline = time.monotonic() + 5.0

    @staticmethod
    def _kill(pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _hook(callback: Callable[[], None] | None, name: str) -> None:
    """Call a lifecycle hook; its failure is logged, never the manager's."""
    if callback is None:
        return
    try:
        callback()
    except Exception:
        log.exception("%s callback failed", name)
