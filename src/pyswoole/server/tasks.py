"""Tasks and messages between processes: ``task``, ``taskwait``, ``task_wait_multi``,
``task_async``, ``finish``, ``send_message`` (mixed into :class:`~.base.Server`).

All of them need the multi-process model (``worker_num`` > 1 or task workers): the work is
done by :class:`~.processes.ProcessModel`; this is the Swoole-named surface over it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError, ServerStateError
from ..process import messages as msg

if TYPE_CHECKING:
    from .processes import ProcessModel

__all__ = ["TaskApi"]


class TaskApi:
    """Mixin of :class:`~.base.Server`: tasks and messages to other workers."""

    if TYPE_CHECKING:
        _procs: ProcessModel | None

    def _need_procs(self, what: str) -> ProcessModel:
        if self._procs is None or self._procs.process_id < 0:
            raise ServerStateError(
                f"{what}() needs worker_num > 1 or task workers, called from a worker"
            )
        return self._procs

    def send_message(self, message: Any, dst_worker_id: int) -> bool:
        """Deliver ``message`` (any picklable object) to ``on("pipeMessage")`` in another
        worker or task worker."""
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
    ) -> int:
        """Run ``on("task")`` with ``data`` in a task worker; returns the task id. Its result
        reaches ``finish_callback(server, task_id, data)`` or ``on("finish")`` here."""
        return self._need_procs("task").task(data, dst_worker_id, finish_callback)

    def taskwait(self, data: Any, timeout: float = 0.5, dst_worker_id: int = -1) -> Any:
        """Run a task and block this worker until its result; False after ``timeout``."""
        return self._need_procs("taskwait").taskwait(data, timeout, dst_worker_id)

    def task_wait_multi(self, tasks: list[Any], timeout: float = 0.5) -> dict[int, Any]:
        """Run several tasks, block until all results or ``timeout``: ``{index: result}``."""
        return self._need_procs("task_wait_multi").task_wait_multi(list(tasks), timeout)

    taskWaitMulti = task_wait_multi

    async def task_async(
        self, data: Any, timeout: float | None = None, dst_worker_id: int = -1
    ) -> Any:
        """``await server.task_async(data)``: the task's result, without blocking the loop;
        False after ``timeout`` seconds (None: wait as long as it takes)."""
        return await self._need_procs("task_async").task_async(data, timeout, dst_worker_id)

    def finish(self, data: Any) -> bool:
        """In ``on("task")``: send ``data`` as the task's result now."""
        return self._need_procs("finish").finish(data)
