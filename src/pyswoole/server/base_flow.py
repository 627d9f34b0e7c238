"""Output flow control of a SWOOLE_BASE worker's connections across workers (issue 11).

With ``worker_num`` > 1 any worker, task worker or user process may push to any fd: a push
to an fd another worker owns travels over IPC to that owner, which writes it or refuses it
at ``socket_buffer_size``. The pusher cannot see the owner's buffer, so the owner publishes
its connections' output state in the shared connection table (``process/table.py``),
exactly as the SWOOLE_PROCESS master does (``process_mode.MasterApp``), and only when it
changes -- nothing per message:

* ``FLOW_FULL`` past ``buffer_high_watermark`` until it has drained to
  ``buffer_low_watermark`` (``runtime/flow.py``: the worker's ``on_buffer`` hook);
* ``FLOW_OVERFLOW`` from the first push or send refused at ``socket_buffer_size`` (the
  owner's own or one that came over IPC) until the drain (Swoole's ``conn->overflow``,
  set in ``Server::send_to_connection`` and cleared as its buffer empties);
* ``send_queued_bytes`` as of each of these changes.

Other processes read them: ``push``/``send``/``broadcast`` to an OVERFLOW fd return False
(``SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW``) without IPC (``ProcessModel.remote``),
``get_client_info`` reports ``send_queued_bytes``/``buffer_full``, and ``push_async``
polls the table while the fd is FULL or OVERFLOW, then sends PUSH_YIELD.

A push that arrives over IPC and is refused here (:meth:`BaseFlow.refused`) was sent
before its sender could see the mark: it is queued anyway up to one IPC window past
``socket_buffer_size`` (the window of ``process_mode``), so that nothing a sender was told
True for is lost; past that it is dropped with one warning per fd until the fd drains.
A PUSH_YIELD (a ``push_async`` that waited for room) is always queued.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..constants import SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
from ..runtime.connection import Connection
from .process_mode import (
    IPC_HIGH_WATER,
    IPC_READ_SLACK,
    keep_or_drop,
    mark_overflow,
    publish_flow,
)

if TYPE_CHECKING:
    from ..runtime.worker import Worker
    from .base import Server
    from .processes import ProcessModel

__all__ = ["BaseFlow"]


class BaseFlow:
    """The owner side, in one SWOOLE_BASE worker (see the module doc)."""

    __slots__ = ("_overflow", "_prune_at", "_user", "ipc_window", "procs", "server", "worker")

    def __init__(self, server: Server, procs: ProcessModel, worker: Worker) -> None:
        self.server = server
        self.procs = procs
        self.worker = worker
        #: fd -> whether a drop was logged, while it overflows (FLOW_OVERFLOW in the table)
        self._overflow: dict[int, bool] = {}
        self._prune_at = 64
        #: what one sender may have in flight to this worker when it marks an fd: the
        #: inbox's kernel buffer and as much again as the SWOOLE_PROCESS master allows
        window = max((procs.inboxes[i].send_buffer for i in range(procs.worker_num)), default=0)
        self.ipc_window = window + IPC_HIGH_WATER + IPC_READ_SLACK
        #: the application's bufferFull/bufferEmpty (server/base.py), called after the table
        self._user: Callable[[Connection, bool], None] | None = worker.on_buffer
        worker.on_buffer = self.buffer_changed

    def buffer_changed(self, conn: Connection, full: bool) -> None:
        """``worker.on_buffer``: ``conn`` passed the high watermark or drained to the low
        one. The state goes to the shared table; a drained connection no longer
        overflows."""
        publish_flow(self.procs.table, self._overflow, conn, full)
        if self._user is not None:
            self._user(conn, full)

    def overflowed(self, conn: Connection) -> None:
        """A push or send to ``conn`` was refused (``socket_buffer_size`` bytes queued):
        FLOW_OVERFLOW until it has drained (:meth:`buffer_changed`). It is made full if
        it was not yet (a high watermark above the limit, or a corked queue), so that the
        drain is noticed."""
        fd = conn.fd
        overflow = self._overflow
        if fd in overflow or conn.closed:
            return
        if len(overflow) >= self._prune_at:  # (connections that closed while overflowing)
            alive = self.worker.connections
            for gone in [f for f in overflow if f not in alive]:
                del overflow[gone]
            self._prune_at = max(64, 2 * len(overflow))
        mark_overflow(self.procs.table, overflow, conn, conn.queued_bytes(), self.worker.loop)

    def refused(
        self, src: int, fd: int, yielded: bool, data: bytes, opcode: int, flags: int
    ) -> None:
        """A push (``opcode`` >= 0) or send (-1) from process ``src`` was refused here. It
        was sent before ``src`` could see the mark: marked now, it is queued up to
        :attr:`ipc_window` past ``socket_buffer_size``; past that it is dropped with a
        warning, once per fd until it drains (Swoole warns "output buffer overflow" at
        each refusal). A ``push_async`` (``yielded``) waited for room: always queued."""
        server = self.server
        if server._last_error != SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW:
            return  # (the connection is gone or closing: nothing to keep)
        conn = self.worker.connections.get(fd)
        if conn is None or conn.closed:
            return
        self.overflowed(conn)
        queued = conn.queued_bytes()
        cap = server._buffer_limit + self.ipc_window
        keep_or_drop(server, conn, self._overflow, src, queued, cap, yielded, data, opcode, flags)
