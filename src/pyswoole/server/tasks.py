"""Tasks and messages between processes, the worker's side: ``task``, ``taskwait``,
``task_wait_multi``, ``task_co``, ``task_async``, ``finish``, ``send_message`` (mixed into
:class:`~.base.Server`) and the :class:`TaskDispatcher` that sends tasks and routes their
results. The task worker's side is :mod:`.task`.

What follows Swoole 6.2 (``ext-src/swoole_server.cc``: ``php_swoole_check_task_param``,
``Server::task``/``taskwait``/``taskWaitMulti``/``taskCo``; ``src/server/task_worker.cc``):

* ``task()`` returns the task id, or False -- with a warning logged -- when there are no
  task workers, ``dst_worker_id`` is not a task worker, it is called in a task worker, or
  the task cannot be queued (``get_last_error()`` is then ``SWOOLE_ERROR_TASK_DISPATCH_FAIL``).
  The same checks make ``taskwait``/``task_wait_multi``/``task_co``/``task_async`` return
  False.
* Data that cannot be pickled raises ``TypeError("task data must be picklable: ...")`` at
  the call, before anything is sent (PHP's ``serialize()`` throws for a Closure).
* ``task_wait_multi`` and ``task_co`` refuse 1024 tasks or more (False, warning: Swoole's
  SW_MAX_CONCURRENT_TASK).
* ``taskwait`` (blocking) and ``task_async`` return False after ``timeout``;
  ``task_wait_multi`` leaves out the indexes that timed out; ``task_co`` puts False at
  them. ``get_last_error()`` is then ``SWOOLE_ERROR_TASK_TIMEOUT``, the code Swoole logs
  when such a late result arrives ("task[%d] has expired"); Swoole itself leaves the poll or
  coroutine timeout code there.

Where pyswoole differs: a task that fails in its task worker (``on("task")`` raised, or
its result cannot be pickled) is reported back. ``taskwait`` & co raise
:class:`~pyswoole.exceptions.TaskError` at once instead of waiting for the timeout; a
``task()`` with ``finish_callback`` or ``on("finish")`` gets no call (there is no result)
but an error line in this worker's log naming the task id and the exception. In Swoole the
exception is a PHP fatal error that kills the task worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ..constants import (
    SWOOLE_ERROR_TASK_DISPATCH_FAIL,
    SWOOLE_ERROR_TASK_TIMEOUT,
    SWOOLE_TASK_CALLBACK,
    SWOOLE_TASK_COROUTINE,
    SWOOLE_TASK_NONBLOCK,
    SWOOLE_TASK_SERIALIZE,
    SWOOLE_TASK_WAITALL,
)
from ..exceptions import ConfigError, ServerStateError, TaskError
from ..process import messages as msg
from .threads import from_thread, get_ident

if TYPE_CHECKING:
    from .processes import ProcessModel
    from .settings import Settings

__all__ = ["TaskApi", "TaskDispatcher"]

log = logging.getLogger("pyswoole")

#: Swoole's SW_TASKWAIT_TIMEOUT: the default timeout of taskwait, taskWaitMulti and taskCo
TASKWAIT_TIMEOUT = 0.5
#: Swoole's SW_MAX_CONCURRENT_TASK: taskWaitMulti and taskCo refuse this many tasks or more
MAX_CONCURRENT_TASK = 1024


class TaskApi:
    """Mixin of :class:`~.base.Server`: tasks and messages to other workers."""

    if TYPE_CHECKING:
        _procs: ProcessModel | None
        _loop_thread: int
        _loop: asyncio.AbstractEventLoop | None
        _settings: Settings
        _started: bool

    def _need_procs(self, what: str) -> ProcessModel:
        if self._procs is None or self._procs.process_id < 0:
            raise ServerStateError(
                f"{what}() needs worker_num > 1 or task workers, called from a worker"
            )
        return self._procs

    def _dispatcher(self, what: str) -> TaskDispatcher | None:
        """The dispatcher of this worker; None (warning logged) without task workers."""
        if self._started and self._settings.get_value("task_worker_num") == 0:
            log.warning("%s(): task method can't be executed without task worker", what)
            return None
        return self._need_procs(what).tasks

    def send_message(self, message: Any, dst_worker_id: int) -> bool:
        """Deliver ``message`` (any picklable object) to ``on("pipeMessage")`` in another
        worker or task worker."""
        if self._loop_thread and get_ident() != self._loop_thread:
            return from_thread(
                self._loop, "send_message", self.send_message, message, dst_worker_id
            )
        procs = self._need_procs("send_message")
        if not 0 <= dst_worker_id < procs.count or dst_worker_id == procs.process_id:
            raise ConfigError(f"invalid dst_worker_id {dst_worker_id!r}")
        return procs.send(dst_worker_id, msg.PIPE, msg.encode_object(message))

    sendMessage = send_message

    def task(
        self,
        data: Any,
        dst_worker_id: int = -1,
        finish_callback: Callable[..., Any] | None = None,
    ) -> int | Literal[False]:
        """Run ``on("task")`` with ``data`` in a task worker; returns the task id (False if
        it cannot be sent). Its result reaches ``finish_callback(server, task_id, data)`` or
        ``on("finish")`` here."""
        if self._loop_thread and get_ident() != self._loop_thread:
            return from_thread(self._loop, "task", self.task, data, dst_worker_id, finish_callback)
        tasks = self._dispatcher("task")
        return False if tasks is None else tasks.task(data, dst_worker_id, finish_callback)

    def taskwait(
        self, data: Any, timeout: float = TASKWAIT_TIMEOUT, dst_worker_id: int = -1
    ) -> Any:
        """Run a task and block this worker until its result; False after ``timeout``.
        Raises :class:`~pyswoole.exceptions.TaskError` if the task failed."""
        tasks = self._dispatcher("taskwait")
        return False if tasks is None else tasks.taskwait(data, timeout, dst_worker_id)

    def task_wait_multi(
        self, tasks: Sequence[Any], timeout: float = TASKWAIT_TIMEOUT
    ) -> dict[int, Any] | Literal[False]:
        """Run several tasks, block until all results or ``timeout``: ``{index: result}``
        (the indexes that timed out are missing). Raises TaskError if one failed."""
        dispatcher = self._dispatcher("task_wait_multi")
        return False if dispatcher is None else dispatcher.task_wait_multi(list(tasks), timeout)

    taskWaitMulti = task_wait_multi

    async def task_co(
        self, tasks: Sequence[Any], timeout: float = TASKWAIT_TIMEOUT
    ) -> list[Any] | Literal[False]:
        """``await server.task_co([...])`` (Swoole's ``taskCo``): run several tasks without
        blocking the loop; the results by index, False where one timed out. Raises
        TaskError if one failed."""
        dispatcher = self._dispatcher("task_co")
        return False if dispatcher is None else await dispatcher.task_co(list(tasks), timeout)

    taskCo = task_co

    async def task_async(
        self, data: Any, timeout: float | None = None, dst_worker_id: int = -1
    ) -> Any:
        """``await server.task_async(data)``: the task's result, without blocking the loop;
        False after ``timeout`` seconds (None: wait as long as it takes). Raises TaskError
        if the task failed."""
        tasks = self._dispatcher("task_async")
        return False if tasks is None else await tasks.task_async(data, timeout, dst_worker_id)

    def finish(self, data: Any) -> bool:
        """In ``on("task")``: send ``data`` as the task's result now (True once sent)."""
        return self._need_procs("finish").finish(data)


def _flags(data: Any, flags: int) -> int:
    """Swoole's task flags: ``SERIALIZE`` unless the data is a string (PHP sends strings
    as they are; pyswoole pickles everything)."""
    return flags if isinstance(data, (str, bytes)) else flags | SWOOLE_TASK_SERIALIZE


def _too_many(tasks: list[Any]) -> bool:
    if len(tasks) >= MAX_CONCURRENT_TASK:
        log.warning("too many concurrent tasks")
        return True
    return False


def _encode(data: Any) -> bytes:
    try:
        return msg.encode_object(data)
    except Exception as exc:  # PicklingError, TypeError, AttributeError ...
        raise TypeError(f"task data must be picklable: {exc}") from exc


class TaskDispatcher:
    """A worker's tasks in flight: ids, finish callbacks, waiters, and where results go."""

    def __init__(self, procs: ProcessModel) -> None:
        self.procs = procs
        self.worker_num = procs.worker_num
        self.task_worker_num = procs.task_worker_num
        self._next_task_id = 0
        self._round_robin = 0
        self._finish_callbacks: dict[int, Callable[..., Any]] = {}
        self._futures: dict[int, asyncio.Future[Any]] = {}
        #: tasks whose waiter gave up (timeout or a sibling's failure): results dropped
        self._abandoned: set[int] = set()

    # -- sending --------------------------------------------------------------------------

    def _new_task_id(self) -> int:
        self._next_task_id += 1
        return self._next_task_id

    def destination(self, dst_worker_id: int) -> int:
        """The process id of the task worker to use; -1 (warning logged) where Swoole's
        ``php_swoole_check_task_param`` refuses."""
        if self.task_worker_num == 0:
            log.warning("task method can't be executed without task worker")
            return -1
        if dst_worker_id >= self.task_worker_num:
            log.warning("worker_id must be less than task_worker_num[%d]", self.task_worker_num)
            return -1
        if self.procs.server.taskworker:
            log.warning("Server->task() cannot use in the task-worker")
            return -1
        if dst_worker_id >= 0:
            return self.worker_num + dst_worker_id
        # the next idle task worker, round robin; all busy: plain round robin
        status = self.procs.status
        for step in range(self.task_worker_num):
            candidate = self.worker_num + (self._round_robin + step) % self.task_worker_num
            if not status.busy(candidate):
                self._round_robin = (candidate - self.worker_num + 1) % self.task_worker_num
                return candidate
        candidate = self.worker_num + self._round_robin
        self._round_robin = (self._round_robin + 1) % self.task_worker_num
        return candidate

    def _dispatch(self, dst: int, flags: int, payload: bytes) -> int:
        """Send a task; its id, or -1 if it cannot be queued (the error is set)."""
        task_id = self._new_task_id()
        body = msg.pack_task(task_id, self.procs.process_id, flags, time.time(), payload)
        queue = self.procs.counters.metrics  # (the task queue's depth: metrics.py)
        queue.task_sent(self.procs.process_id, len(body))
        if self.procs.send(dst, msg.TASK, body):
            return task_id
        queue.task_sent(self.procs.process_id, len(body), -1)
        self.procs.server._last_error = SWOOLE_ERROR_TASK_DISPATCH_FAIL
        log.warning("task %d: cannot be sent to task worker %d (queue full)", task_id, dst)
        return -1

    def task(
        self, data: Any, dst_worker_id: int, finish_callback: Callable[..., Any] | None
    ) -> int | Literal[False]:
        dst = self.destination(dst_worker_id)
        if dst < 0:
            return False
        payload = _encode(data)
        flags = SWOOLE_TASK_NONBLOCK | (SWOOLE_TASK_CALLBACK if finish_callback else 0)
        task_id = self._dispatch(dst, _flags(data, flags), payload)
        if task_id < 0:
            return False
        if finish_callback is not None:
            self._finish_callbacks[task_id] = finish_callback
        return task_id

    # -- blocking waits -------------------------------------------------------------------

    def taskwait(self, data: Any, timeout: float, dst_worker_id: int) -> Any:
        results = self._wait_blocking([data], timeout, dst_worker_id, 0)
        return False if results is False else results.get(0, False)

    def task_wait_multi(self, tasks: list[Any], timeout: float) -> dict[int, Any] | Literal[False]:
        if _too_many(tasks):
            return False
        return self._wait_blocking(tasks, timeout, -1, SWOOLE_TASK_WAITALL)

    def _wait_blocking(
        self, tasks: list[Any], timeout: float, dst_worker_id: int, flags: int
    ) -> dict[int, Any] | Literal[False]:
        """Send ``tasks`` and block until every result, a failure or ``timeout``."""
        if self.destination(dst_worker_id) < 0:
            return False
        payloads = [_encode(data) for data in tasks]  # TypeError before anything is sent
        results: dict[int, Any] = {}
        ids: dict[int, int] = {}  # task id -> index
        for index, (data, payload) in enumerate(zip(tasks, payloads, strict=True)):
            task_id = self._dispatch(self.destination(dst_worker_id), _flags(data, flags), payload)
            if task_id < 0:
                results[index] = False
            else:
                ids[task_id] = index
        if not ids:
            return False
        procs = self.procs
        assert procs.mailer is not None and procs.loop is not None
        deadline = time.monotonic() + timeout
        while ids:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            got = procs.mailer.recv_blocking(remaining)
            if got is None:
                break
            kind, src, body = got
            if kind in (msg.FINISH, msg.TASK_ERROR):
                task_id, data = msg.unpack_task_reply(body)
                if task_id in ids:
                    index = ids.pop(task_id)
                    outcome = self._outcome(kind, src, task_id, data)
                    if isinstance(outcome, TaskError):
                        self._abandoned.update(ids)
                        raise outcome
                    results[index] = outcome
                    continue
            # not ours: handle it once the loop runs again, in arrival order
            procs.loop.call_soon(procs.on_message, kind, src, body)
        if ids:
            procs.server._last_error = SWOOLE_ERROR_TASK_TIMEOUT
            self._abandoned.update(ids)
        return results

    # -- waits on the loop ----------------------------------------------------------------

    def _send_awaited(
        self, data: Any, payload: bytes, dst: int
    ) -> tuple[int, asyncio.Future[Any]] | None:
        flags = _flags(data, SWOOLE_TASK_NONBLOCK | SWOOLE_TASK_COROUTINE)
        task_id = self._dispatch(dst, flags, payload)
        if task_id < 0:
            return None
        assert self.procs.loop is not None
        future: asyncio.Future[Any] = self.procs.loop.create_future()
        self._futures[task_id] = future
        return task_id, future

    def _give_up(self, task_id: int, future: asyncio.Future[Any]) -> None:
        """The waiter is done: a result that has not arrived yet will be dropped."""
        if self._futures.pop(task_id, None) is not None:
            self._abandoned.add(task_id)
        if not future.done():
            future.cancel()

    async def task_async(self, data: Any, timeout: float | None, dst_worker_id: int) -> Any:
        dst = self.destination(dst_worker_id)
        if dst < 0:
            return False
        sent = self._send_awaited(data, _encode(data), dst)
        if sent is None:
            return False
        task_id, future = sent
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            self.procs.server._last_error = SWOOLE_ERROR_TASK_TIMEOUT
            return False
        finally:
            self._give_up(task_id, future)

    async def task_co(self, tasks: list[Any], timeout: float) -> list[Any] | Literal[False]:
        if _too_many(tasks) or self.destination(-1) < 0:
            return False
        payloads = [_encode(data) for data in tasks]  # TypeError before anything is sent
        sent = [
            self._send_awaited(data, payload, self.destination(-1))
            for data, payload in zip(tasks, payloads, strict=True)
        ]
        futures = [item[1] for item in sent if item is not None]
        if not futures:
            return False
        try:
            done, pending = await asyncio.wait(
                futures, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION
            )
            for future in done:
                error = future.exception()
                if error is not None:
                    raise error
            if pending:
                self.procs.server._last_error = SWOOLE_ERROR_TASK_TIMEOUT
            return [
                item[1].result() if item is not None and item[1] in done else False for item in sent
            ]
        finally:
            for item in sent:
                if item is not None:
                    self._give_up(*item)

    # -- results ----------------------------------------------------------------------------

    def _outcome(self, kind: int, src: int, task_id: int, data: bytes) -> Any:
        """The result in a FINISH, or the TaskError a TASK_ERROR (or an unpicklable
        result) stands for."""
        try:
            decoded = msg.decode_object(data)
        except Exception as exc:
            return TaskError(task_id, f"its result cannot be unpickled: {exc!r}", src)
        if kind == msg.FINISH:
            return decoded
        message, traceback = decoded
        return TaskError(task_id, message, src, traceback)

    def on_reply(self, kind: int, src: int, body: bytes) -> None:
        """A FINISH or TASK_ERROR from a task worker, on the loop."""
        task_id, data = msg.unpack_task_reply(body)
        if task_id in self._abandoned:
            self._abandoned.discard(task_id)
            log.warning("task[%d] has expired", task_id)
            return
        outcome = self._outcome(kind, src, task_id, data)
        future = self._futures.pop(task_id, None)
        if future is not None:
            if not future.done():
                if isinstance(outcome, TaskError):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
            return
        server = self.procs.server
        callback = self._finish_callbacks.pop(task_id, None)
        if isinstance(outcome, TaskError):
            log.error(
                "%s; no %s call%s",
                outcome,
                "finish_callback" if callback is not None else 'on("finish")',
                f"\n{outcome.traceback.rstrip()}" if outcome.traceback else "",
            )
        elif callback is not None:
            server._call(callback, server, task_id, outcome)
        else:
            server._call_event("finish", server, task_id, outcome)
