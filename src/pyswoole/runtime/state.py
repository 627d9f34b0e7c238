"""What a worker's connections share, and the Python side of the compiled read path.

:class:`WorkerState` (``_fastpath.WorkerState`` when the compiled helpers are built, this
pure-Python twin otherwise) holds a worker's request count, the buffer the event loop reads
into, and the writes deferred while a read's callbacks run (``depth``/``deferred``: see
docs/architecture.md, decision 22). :func:`compiled_push` and :func:`compiled_broadcast` hand
the server layer the compiled common cases of ``push`` and ``broadcast``, or None.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from ..protocol.frames import SPEEDUPS

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "FASTPATH",
    "READ_BUFFER_SIZE",
    "WorkerState",
    "compiled_broadcast",
    "compiled_push",
    "flush_deferred",
    "new_worker_state",
]

log = logging.getLogger("pyswoole")

#: bytes the event loop reads at once into a worker's buffer (the compiled read path)
READ_BUFFER_SIZE = 256 * 1024

_fastpath: Any = None
if SPEEDUPS:  # PYSWOOLE_NO_EXTENSIONS=1 turns both compiled modules off
    try:
        from . import _fastpath
    except ImportError:  # pragma: no cover - built without its compiler
        _fastpath = None
#: True when connections read through the compiled path (``_fastpath.ConnectionBase``)
FASTPATH = _fastpath is not None


class WorkerState:
    """What a worker's connections share (``_fastpath.WorkerState`` with the helpers).

    ``request_count`` counts requests and messages handled; ``read_buffer`` is what the
    compiled read path reads into (None here). While a read's callbacks run (``depth`` > 0),
    a connection that gets a write is corked and listed in ``deferred``; when the outermost
    dispatch ends, :func:`flush_deferred` sends each one's writes at once -- a broadcast of
    every message of a read to many clients is one write per client. ``recv_bytes`` and
    ``send_bytes`` count the bytes read from and handed to the clients' sockets,
    ``response_count`` the messages queued for them (``stats()``), ``buffer_overflows`` the
    messages refused because the connection's output buffer was full (pyswoole.metrics).
    """

    __slots__ = (
        "buffer_overflows",
        "buffer_slack",
        "deferred",
        "depth",
        "read_buffer",
        "recv_bytes",
        "request_count",
        "response_count",
        "send_bytes",
    )

    def __init__(self, read_buffer_size: int = 0) -> None:  # (no buffer: nothing reads into it)
        self.request_count = 0
        self.recv_bytes = 0
        self.send_bytes = 0
        self.response_count = 0
        self.buffer_overflows = 0
        #: socket_buffer_size minus the high watermark (used by the compiled push only)
        self.buffer_slack = 0
        self.read_buffer: bytearray | None = None
        self.deferred: list[Connection] = []
        self.depth = 0


def _flush_deferred(state: WorkerState) -> None:
    """Write what every connection corked during the dispatch collected. One connection's
    failure does not keep the others' writes back: the first is raised after them all."""
    deferred = state.deferred
    conns = deferred[:]
    deferred.clear()
    error: BaseException | None = None
    for conn in conns:
        conn.corked = False
        try:
            conn._flush_out()
        except BaseException as exc:
            if error is None:
                error = exc
            else:
                log.error("deferred write to fd %d failed", conn.fd, exc_info=exc)
    if error is not None:
        raise error


flush_deferred: Callable[[WorkerState], None] = (
    _fastpath.flush_deferred if FASTPATH else _flush_deferred
)


def new_worker_state() -> WorkerState:
    """A worker's shared state: the compiled one (with its read buffer) when available."""
    if FASTPATH:
        return cast(WorkerState, _fastpath.WorkerState(READ_BUFFER_SIZE))
    return WorkerState()


def compiled_push(
    table: dict[int, Connection], limit: int, fallback: Callable[..., bool]
) -> Callable[..., bool] | None:
    """``push(fd, data, opcode, flags)`` with its common case compiled (a whole str as text
    or bytes as binary to an established, uncompressed connection in ``table``) and every
    other call handed to ``fallback``; None without the compiled path."""
    return None if _fastpath is None else _fastpath.Pusher(table, limit, fallback)


def compiled_broadcast() -> Callable[[Iterable[Any], bytes, int], tuple[int, list[Any]]] | None:
    """``broadcast_frame(conns, frame, limit) -> (sent, rest)``: queue an encoded,
    uncompressed frame on every open, established connection of ``conns`` as push() does;
    the connections that need Python (compression, sends off the loop) come back in
    ``rest``. None without the compiled path."""
    return None if _fastpath is None else cast(Any, _fastpath.broadcast_frame)
