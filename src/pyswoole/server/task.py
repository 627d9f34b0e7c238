"""The task worker: runs ``on("task")`` for the tasks workers send it, and :class:`Task`.

Swoole 6.2's behaviour this follows (``src/server/task_worker.cc``, and
``php_swoole_server_onTask``/``Server::finish``/``Task::finish`` in
``ext-src/swoole_server.cc``):

* ``task_enable_coroutine`` off: ``on("task")`` is called as ``(server, task_id,
  src_worker_id, data)``; on (or ``task_use_object``/``task_object``): as ``(server,
  task)`` with a :class:`Task` (``id``, ``worker_id`` -- the worker that sent it --,
  ``flags``, ``data``, ``dispatch_time``, ``finish()``). With ``task_enable_coroutine``
  ``server.finish()`` is refused ("please use Task->finish instead"): with tasks running
  side by side it could not know which task it answers. An ``async def`` callback is
  awaited on the task worker's loop, whatever the settings, and several run at once
  (Swoole runs each onTask in its own coroutine with ``task_enable_coroutine``; pyswoole
  never blocks the loop for one).
* A result that is not None -- returned, or given to ``finish()`` -- goes back to the
  worker that sent the task. ``finish()`` returns True once the result is sent.
* ``task_max_request``: the task worker counts each task when its callback has returned
  (for an ``async def``, when it was started, as Swoole counts a coroutine task when onTask
  yields) and, at the limit, stops reading its inbox, lets the tasks it runs finish and
  exits; the manager starts a replacement (``onWorkerStop``, no ``onWorkerError``). The
  tasks waiting in the inbox -- a socket created before the fork -- are the replacement's.

Where pyswoole differs:

* An exception in ``on("task")``, or a result that cannot be pickled, is logged here with
  its traceback and reported to the worker that sent the task (``TASK_ERROR``: ``taskwait``
  & co raise :class:`~pyswoole.exceptions.TaskError`, the finish path logs it); the task
  worker carries on. In Swoole it is a PHP fatal error: the task worker dies, the caller
  waits for its timeout.
* With ``task_enable_coroutine`` Swoole drops what the coroutine returns ("the coroutine
  has no return value"); a Python coroutine has one, and it is the task's result as in the
  classic mode.
* A second ``finish()`` for the same task is refused (False, warning): Swoole would send a
  second result that no waiter expects.
* The inbox is read in batches: tasks already read when ``task_max_request`` is reached
  are handed back to the inbox (sent to it again) rather than run, so the count is exact,
  but they may then run after tasks sent later (Swoole promises no order between tasks).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..exceptions import ServerStateError
from ..metrics import task_metrics
from ..process import messages as msg
from ..runtime.loop import new_event_loop, stop_signals

if TYPE_CHECKING:
    from ..process.ipc import Mailer
    from .processes import ProcessModel

__all__ = ["Task", "TaskWorker"]

log = logging.getLogger("pyswoole")

#: The task whose callback is running (an ``async def`` one keeps it across its awaits:
#: asyncio copies the context into the task it creates for the coroutine).
_current: contextvars.ContextVar[Task | None] = contextvars.ContextVar(
    "pyswoole_current_task", default=None
)

#: Bound on reading the rest of a message half read when the task worker recycles.
PARTIAL_READ_TIMEOUT = 1.0


class Task:
    """``Swoole\\Server\\Task``: a task as ``on("task")`` receives it with
    ``task_enable_coroutine``."""

    __slots__ = ("_runner", "data", "dispatch_time", "finished", "flags", "id", "worker_id")

    def __init__(
        self,
        runner: TaskWorker,
        task_id: int,
        worker_id: int,
        flags: int,
        dispatch_time: float,
        data: Any = None,
    ) -> None:
        self._runner = runner
        #: the task id (what ``task()`` returned in the worker that sent it)
        self.id = task_id
        #: the worker that sent the task (where the result goes)
        self.worker_id = worker_id
        #: Swoole's ``SWOOLE_TASK_*`` flags: how the task was sent (NONBLOCK for task(),
        #: CALLBACK with a finish callback, WAITALL for task_wait_multi, COROUTINE for
        #: task_co/task_async, SERIALIZE unless the data is a string)
        self.flags = flags
        #: when it was sent (``time.time()`` in the worker)
        self.dispatch_time = dispatch_time
        self.data = data
        #: whether a result (or failure) has been sent
        self.finished = False

    def finish(self, data: Any) -> bool:
        """Send ``data`` as this task's result now; True once sent. Raises TypeError if
        ``data`` cannot be pickled."""
        return self._runner.reply(self, data)

    def __repr__(self) -> str:
        return f"<Task id={self.id} worker_id={self.worker_id} flags={self.flags}>"


class TaskWorker:
    """The loop of one task worker process."""

    def __init__(self, procs: ProcessModel, process_id: int) -> None:
        get = procs.server._settings.get_value
        self.procs = procs
        self.server = procs.server
        self.process_id = process_id
        self.coroutine: bool = get("task_enable_coroutine")
        #: on("task") gets a Task: task_enable_coroutine, or task_use_object (task_object)
        self.task_object: bool = self.coroutine or get("task_use_object")
        self.max_request: int = get("task_max_request")
        self.max_wait_time: float = get("max_wait_time")
        self.callback: Callable[..., Any] = self.server._callbacks["task"]
        self.loop = new_event_loop()
        self.stopped = asyncio.Event()
        #: tasks whose callback has not completed (async ones run side by side)
        self.running = 0
        #: tasks counted toward ``task_max_request``
        self.handled = 0
        #: ``task_max_request`` reached: not reading, exiting once idle
        self.recycling = False
        self._exiting = False
        self._draining = False
        self._stash: list[bytes] = []
        self._coroutines: set[asyncio.Task[None]] = set()
        #: the ``metrics`` setting: task durations (pyswoole/metrics.py), else None
        self.metrics = task_metrics(self.server, procs.counters.metrics, process_id)

    @property
    def mailer(self) -> Mailer:
        assert self.procs.mailer is not None
        return self.procs.mailer

    # -- the process ------------------------------------------------------------------------

    def run(self) -> None:
        from .processes import HEARTBEAT_INTERVAL

        loop = self.loop
        asyncio.set_event_loop(loop)
        procs, server, process_id = self.procs, self.server, self.process_id
        procs.loop = loop
        mailer = self.mailer
        for sig in stop_signals():  # (SIGTERM only under a manager: see stop_signals)
            loop.add_signal_handler(sig, self.stop)

        async def main() -> None:
            mailer.attach(loop, self.on_message)
            procs.status.beat(process_id)
            loop.call_later(HEARTBEAT_INTERVAL, procs._heartbeat(process_id, self.stop))
            server._call_event("workerStart", server, process_id)
            await self.stopped.wait()
            # take no new tasks (they stay in the inbox for the next task worker) and let
            # the running ones finish (reload, shutdown: within max_wait_time)
            mailer.stop_reading()
            if self._coroutines:
                _, late = await asyncio.wait(set(self._coroutines), timeout=self.max_wait_time)
                for coroutine in late:
                    coroutine.cancel()
                if late:
                    await asyncio.wait(late, timeout=1.0)
            self._hand_back()
            server._call_event("workerStop", server, process_id)
            mailer.detach()

        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    def stop(self) -> None:
        self.stopped.set()

    # -- tasks ----------------------------------------------------------------------------------

    def on_message(self, kind: int, src: int, body: bytes) -> None:
        """A message in the task worker's inbox: a task or a pipe message."""
        server = self.server
        if kind == msg.PIPE:
            server._call_event("pipeMessage", server, src, msg.decode_object(body))
            return
        if kind != msg.TASK:
            log.warning("task worker %d: unexpected IPC message kind %d", self.process_id, kind)
            return
        if self.recycling and not self._draining:
            self._stash.append(body)  # read after task_max_request: the next worker's
            return
        task_id, src, flags, dispatch_time, payload = msg.unpack_task(body)
        self.procs.counters.metrics.task_started(self.process_id, len(body))  # (queue depth)
        task = Task(self, task_id, src, flags, dispatch_time)
        self._started()
        try:
            task.data = msg.decode_object(payload)
        except Exception as exc:
            self._fail(task, TypeError(f"task data cannot be unpickled: {exc!r}"))
            self._done(task)
            self._count()
            return
        token = _current.set(task)
        try:
            if self.task_object:
                result = self.callback(server, task)
            else:
                result = self.callback(server, task_id, src, task.data)
            if inspect.isawaitable(result):
                coroutine = self.loop.create_task(self._await(task, result))
                self._coroutines.add(coroutine)
                coroutine.add_done_callback(self._coroutines.discard)
            else:
                self._complete(task, result)
        except Exception as exc:
            self._fail(task, exc)
            self._done(task)
        finally:
            _current.reset(token)
        self._count()

    async def _await(self, task: Task, awaitable: Any) -> None:
        try:
            result = await awaitable
        except asyncio.CancelledError:
            self._fail(task, RuntimeError("the task worker stopped before the task completed"))
            self._done(task)
            raise
        except Exception as exc:
            self._fail(task, exc)
            self._done(task)
            return
        self._complete(task, result)

    def _complete(self, task: Task, result: Any) -> None:
        """The callback returned ``result``: the task's result unless finish() sent one."""
        try:
            if result is not None and not task.finished:
                self.reply(task, result)
        except Exception as exc:
            self._fail(task, exc)
        finally:
            self._done(task)

    def reply(self, task: Task, data: Any) -> bool:
        """``finish(data)``: send the result to the worker that sent the task."""
        if task.finished:
            log.warning("task %d: finish() was already called; this result is dropped", task.id)
            return False
        try:
            payload = msg.encode_object(data)
        except Exception as exc:
            raise TypeError(f"task result must be picklable: {exc}") from exc
        task.finished = True
        return self.procs.send(task.worker_id, msg.FINISH, msg.pack_task_reply(task.id, payload))

    def finish(self, data: Any) -> bool:
        """``server.finish(data)`` in ``on("task")``."""
        if self.coroutine:
            raise ServerStateError(
                "please use Task.finish() instead of server.finish() when "
                "task_enable_coroutine is enabled"
            )
        task = _current.get()
        if task is None:
            raise ServerStateError("finish() must be called from a task callback")
        return self.reply(task, data)

    def _fail(self, task: Task, exc: BaseException) -> None:
        """The task failed: log it here, and tell its worker (unless it has its result)."""
        log.error(
            "task %d from worker %d failed in task worker %d",
            task.id,
            task.worker_id,
            self.process_id,
            exc_info=exc,
        )
        if task.finished:
            return
        task.finished = True
        message = f"{type(exc).__name__}: {exc}"
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        body = msg.pack_task_reply(task.id, msg.encode_object((message, text)))
        self.procs.send(task.worker_id, msg.TASK_ERROR, body)

    # -- busy, counting, task_max_request ------------------------------------------------

    def _started(self) -> None:
        self.running += 1
        self.procs.status.set_busy(self.process_id, True)

    def _done(self, task: Task) -> None:
        self.running -= 1
        if self.metrics is not None:
            self.metrics.task_done(task.dispatch_time)
        if not self.running:
            self.procs.status.set_busy(self.process_id, False)
            if self.recycling:
                self._exit_when_idle()

    def _count(self) -> None:
        """One more task toward ``task_max_request`` (Swoole: ``request_count++`` after
        onTask returned, in ``TaskWorker_onPipeReceive``)."""
        self.handled += 1
        self.procs.status.add_requests(self.process_id)
        if self.max_request and self.handled >= self.max_request and not self.recycling:
            log.info(
                "task worker %d reached task_max_request=%d: restarting",
                self.process_id,
                self.max_request,
            )
            self.recycling = True
            self.mailer.stop_reading()
            if not self.running:
                self._exit_when_idle()

    def _hand_back(self) -> None:
        """Recycling: put the tasks read after the limit back into the inbox, for the next
        task worker (the order among them and later tasks may change). One that cannot be
        queued at all runs here."""
        stash, self._stash = self._stash, []
        mailer = self.mailer
        me = self.process_id
        for index, body in enumerate(stash):
            if not mailer.send(me, msg.TASK, body):
                self._run_here(stash[index:])
                return
        if me in mailer.queued and self.recycling:
            # The kernel did not take it all: only a reader of this inbox makes room, so
            # keep reading (the copies come back here) and recycle after the next task.
            log.warning("task worker %d: inbox full, recycling postponed", me)
            self.recycling = False
            mailer.detach()
            mailer.attach(self.loop, self.on_message)

    def _run_here(self, bodies: list[bytes]) -> None:
        self._draining = True
        try:
            for body in bodies:
                self.on_message(msg.TASK, -1, body)
        finally:
            self._draining = False

    def _exit_when_idle(self) -> None:
        if not self._exiting:
            self._exiting = True
            self.loop.call_soon(self._exit)

    def _exit(self) -> None:
        """Idle after ``task_max_request``: complete a message half read (its other chunks
        would be lost to the next reader), hand the tasks read too many back, stop."""
        self._exiting = False
        if not self.recycling or self.running:
            return
        mailer = self.mailer
        deadline = time.monotonic() + PARTIAL_READ_TIMEOUT
        while mailer.reassembler.pending():
            remaining = deadline - time.monotonic()
            got = mailer.recv_blocking(remaining) if remaining > 0 else None
            if got is None:
                log.warning("task worker %d: a message was cut by the restart", self.process_id)
                break
            kind, src, body = got
            if kind == msg.TASK:
                self._stash.append(body)
            else:
                self.on_message(kind, src, body)
        self._hand_back()
        if self.recycling and not self.running:
            self.stop()
