"""Swoole's memory modules: ``Table``, ``Atomic`` (and ``Atomic.Long``), ``Lock``.

Each lives in memory shared by the processes forked after it is made: create them before
``server.start()`` and every worker, task worker and user process sees the same one.
"""

from .atomic import Atomic, AtomicLong
from .lock import Lock
from .table import Table

__all__ = ["Atomic", "AtomicLong", "Lock", "Table"]
