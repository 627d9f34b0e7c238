"""``Swoole\\Table``: a fixed-size hash table of typed rows in memory shared by forked processes.

Created (``create()``) before the server forks, a table is read and written by every worker,
task worker and user process without IPC, as Swoole's is (swoole-src ``src/memory/table.cc``,
``include/swoole_table.h``, ``ext-src/swoole_table.cc``). Swoole's shape is kept: ``size`` is
rounded up to a power of two (at least 64) and gives that many hash buckets, each with one row
in place; keys whose bucket is taken chain into a pool of ``size * conflict_proportion`` extra
rows (proportion clamped to 0.2..1.0), and when the pool is empty ``set`` fails even if some
buckets are free, as in Swoole. A key is 1 to 63 bytes (``SW_TABLE_KEY_SIZE`` 64); an int
column is a signed 64-bit C ``long``, a float column a C ``double``, a string column holds its
``size`` rounded up to 8 bytes (``SW_MEM_ALIGNED_SIZE``) and longer values are cut with a
warning. ``get_size()``, ``count()`` and ``stats()`` report what Swoole reports. The layout is
in ``layout.py``.

Safety across processes, and against a process killed in the middle of a write:

* A writer holds its bucket's lock. With the compiled helper (``_memory.c``) it is Swoole's row
  lock (``TableRow::lock``): a spinlock word and the owner's pid in the bucket's slot; a waiter
  takes it over when the owner process no longer exists or after 2 s, and logs it. In pure
  Python it is a POSIX record lock (``fcntl``) on byte ``bucket + 1`` of an unlinked file, plus
  the table's thread lock in its own process; the kernel drops the record lock of a process
  that dies. Either way a worker killed with SIGKILL never leaves a bucket locked.
* Every row keeps two copies of its image (key and values). A writer fills the copy readers do
  not use, then flips a one-byte index: a write killed half-way only ever touched the unused
  copy, so a row is always the old one or the new one, never a mix.
* Readers take no lock: every write to a bucket bumps the bucket's sequence number when it is
  done; a reader retries if it changed while it walked the bucket (a seqlock), and after
  ``RETRIES`` tries takes the bucket lock. A slot freed by ``delete`` goes back to the pool
  only after the bump, so a reader still walking it notices.
* Row counts and the pool's free list change under a table-wide lock (spinlock or byte 0),
  taken only when a row is added or removed, always after the bucket lock.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator, Mapping
from typing import Any, overload

from ..exceptions import SwooleError
from .layout import (
    ACT,
    HEADER,
    HEADER_SIZE,
    INT_MAX,
    INT_MIN,
    KEY_SIZE,
    NEXT,
    NEXT_ACTIVE,
    NXT,
    SEQ,
    SLOT_SIZE,
    SPEEDUPS,
    TYPE_FLOAT,
    TYPE_INT,
    TYPE_STRING,
    Value,
    wrap_long,
)
from .table_base import RETRIES, Key, Row, TableBase

__all__ = ["SPEEDUPS", "Row", "Table"]

log = logging.getLogger("pyswoole")


class Table(TableBase):
    """A shared-memory table of rows with typed columns (``Swoole\\Table``)."""

    __slots__ = ()

    # -- reads (lock-free) --------------------------------------------------------------------

    @overload
    def get(self, key: Key, field: None = None) -> Row | None: ...
    @overload
    def get(self, key: Key, field: str) -> Value | None: ...

    def get(self, key: Key, field: str | None = None) -> Row | Value | None:
        """The row (a dict) or one ``field`` of it; None where Swoole returns false (no such
        row, no such column, refused key)."""
        core = self._core
        if core is not None:
            result: Row | Value | None = core.get(key, field)
            if result is not NotImplemented:
                return result
        return self._get(key, field)

    def _get(self, key: Key, field: str | None) -> Row | Value | None:
        raw = key.encode() if type(key) is str and self._created else None
        if raw is None or not 0 < len(raw) < KEY_SIZE:
            raw = self._key(key)
            if raw is None:
                return None
        col = None
        if field is not None:
            col = self._columns.get(field)
            if col is None:
                return None
        mem = self._mem
        head = HEADER_SIZE + (zlib.crc32(raw) & self._mask) * self._slot_size
        for _ in range(RETRIES):
            seq = SEQ.unpack_from(mem, head)[0]
            slot = self._find(head, raw)
            result: Row | Value | None = None
            if slot >= 0:
                img = slot + SLOT_SIZE + mem[slot + ACT] * self._image_size
                result = self._row(img) if col is None else self._field(img, col)
            if SEQ.unpack_from(mem, head)[0] == seq:
                return result
        self._lock(head)  # writers keep changing this bucket: read under its lock
        try:
            slot = self._find(head, raw)
            if slot < 0:
                return None
            img = self._image_at(slot)
            return self._row(img) if col is None else self._field(img, col)
        finally:
            self._unlock(head)

    def exists(self, key: Key) -> bool:
        """Whether the row exists (``exist`` is Swoole's alias)."""
        core = self._core
        if core is not None:
            found = core.exists(key)
            if found is not NotImplemented:
                return bool(found)
        raw = self._key(key)
        if raw is None:
            return False
        mem = self._mem
        head = self._head(raw)
        for _ in range(RETRIES):
            seq = SEQ.unpack_from(mem, head)[0]
            found = self._find(head, raw) >= 0
            if SEQ.unpack_from(mem, head)[0] == seq:
                return found
        self._lock(head)
        try:
            return self._find(head, raw) >= 0
        finally:
            self._unlock(head)

    exist = exists

    def __contains__(self, key: object) -> bool:
        if isinstance(key, bool) or not isinstance(key, (str, bytes, int)):
            return False
        return self.exists(key)

    def __getitem__(self, key: Key) -> Row:
        row = self.get(key)
        if row is None:
            raise KeyError(key)
        return row

    def _bucket_rows(self, head: int) -> list[tuple[str | bytes, Row]]:
        mem, isz = self._mem, self._image_size
        for attempt in range(RETRIES + 1):
            locked = attempt == RETRIES
            if locked:
                self._lock(head)
            try:
                seq = SEQ.unpack_from(mem, head)[0]
                rows: list[tuple[str | bytes, Row]] = []
                at = head
                for _ in range(self._conflict_rows + 1):
                    nxt, active = NEXT_ACTIVE.unpack_from(mem, at + NXT)
                    img = at + SLOT_SIZE + active * isz
                    if 0 < mem[img] < KEY_SIZE:
                        values = self._image.unpack_from(mem, img)
                        key = values[2][: values[0]]
                        name = key if values[1] else key.decode("utf-8", "replace")
                        rows.append((name, self._decode(values, 3)))
                    if not nxt:
                        break
                    at = HEADER_SIZE + nxt * self._slot_size
                if locked or SEQ.unpack_from(mem, head)[0] == seq:
                    return rows
            finally:
                if locked:
                    self._unlock(head)
        return []  # not reached: the last attempt is made under the lock

    def items(self) -> Iterator[tuple[str | bytes, Row]]:
        """Every (key, row), bucket by bucket as Swoole's iterator walks them. Each row is read
        whole; the walk is not a snapshot of the table (rows may come and go meanwhile)."""
        self._check()
        mem, ss, isz = self._mem, self._slot_size, self._image_size
        for bucket in range(self.size):
            head = HEADER_SIZE + bucket * ss
            if mem[head + SLOT_SIZE + mem[head + ACT] * isz]:
                yield from self._bucket_rows(head)
            # else: an empty bucket slot has no chain either (delete refills it from the chain)

    def __iter__(self) -> Iterator[tuple[str | bytes, Row]]:
        return self.items()

    def keys(self) -> list[str | bytes]:
        """The keys of the rows, as ``dict.keys()`` would list them."""
        return [key for key, _ in self.items()]

    # -- writes (under the bucket lock) -------------------------------------------------------

    def set(self, key: Key, value: Mapping[str, Any]) -> bool:
        """Write the columns in ``value``: a new row starts from zero/empty values, an existing
        one keeps the columns not given. False if the key is refused or the table is full."""
        core = self._core
        if core is not None:
            done = core.set(key, value)
            if done is not NotImplemented:
                return bool(done)
        return self._set(key, value)

    def _set(self, key: Key, value: Mapping[str, Any]) -> bool:
        raw = key.encode() if type(key) is str and self._created else None
        if raw is None or not 0 < len(raw) < KEY_SIZE:
            raw = self._key(key)
            if raw is None:
                return False
        updates = self._convert(raw, value)
        mem = self._mem
        head = HEADER_SIZE + (zlib.crc32(raw) & self._mask) * self._slot_size
        self._lock(head)
        try:
            slot = self._find(head, raw)
            if slot >= 0:
                values = list(self._image.unpack_from(mem, self._image_at(slot)))
                for index, item in updates:
                    values[index] = item
                self._write(slot, values)
                self._bump(head, 1)
                return True
            values = list(self._zero)
            values[0] = len(raw)
            values[1] = 0 if isinstance(key, (str, int)) else 1
            values[2] = raw
            for index, item in updates:
                values[index] = item
            if self._place(head, values) < 0:
                self._full(raw)
                return False
            self._bump(head, 0)
            return True
        finally:
            self._unlock(head)

    def __setitem__(self, key: Key, value: Mapping[str, Any]) -> None:
        if not self.set(key, value):
            raise SwooleError(f"unable to set({key!r}): the key is refused or the table is full")

    def _step(self, key: Key, column: str, by: float, sign: int) -> int | float:
        core = self._core
        if core is not None:
            new: int | float = core.step(key, column, by, sign)
            if new is not NotImplemented:
                return new
        self._check()
        col = self._columns.get(column)
        if col is None:
            raise KeyError(f"column[{column}] does not exist")
        if col.type == TYPE_STRING:
            raise TypeError(f"can't execute '{'incr' if sign > 0 else 'decr'}' on a string column")
        raw = key.encode() if type(key) is str else None
        if raw is None or not 0 < len(raw) < KEY_SIZE:
            raw = self._key(key)
            if raw is None:
                return False
        step = float(by) * sign if col.type == TYPE_FLOAT else int(by) * sign
        mem, isz = self._mem, self._image_size
        head = HEADER_SIZE + (zlib.crc32(raw) & self._mask) * self._slot_size
        self._lock(head)
        try:
            slot = self._find(head, raw)
            if slot >= 0:
                active = mem[slot + ACT]
                src = slot + SLOT_SIZE + active * isz
                new = col.reader.unpack_from(mem, src + col.offset)[0] + step
                if col.type == TYPE_INT and not INT_MIN <= new <= INT_MAX:
                    new = wrap_long(int(new))  # a C long wraps
                dst = slot + SLOT_SIZE + (active ^ 1) * isz
                mem[dst : dst + isz] = mem[src : src + isz]
                col.reader.pack_into(mem, dst + col.offset, new)
                mem[slot + ACT] = active ^ 1
                self._bump(head, 1)
                return new
            new = wrap_long(int(step)) if col.type == TYPE_INT else step
            values = list(self._zero)
            values[0] = len(raw)
            values[1] = 0 if isinstance(key, (str, int)) else 1
            values[2] = raw
            values[col.index] = new
            if self._place(head, values) < 0:
                self._full(raw)
                return False
            self._bump(head, 0)
            return new
        finally:
            self._unlock(head)

    def incr(self, key: Key, column: str, by: float = 1) -> int | float:
        """Add ``by`` to an int or float column atomically across processes and return the
        new value; a missing row is first created with zero values, as Swoole does. False if
        the key is refused or the table is full (Swoole's false)."""
        return self._step(key, column, by, 1)

    def decr(self, key: Key, column: str, by: float = 1) -> int | float:
        """``incr`` by ``-by``."""
        return self._step(key, column, by, -1)

    def delete(self, key: Key) -> bool:
        """Remove the row; False if there was none (``del`` in Swoole; ``del_`` here)."""
        raw = self._key(key)
        if raw is None:
            return False
        mem, isz, ss = self._mem, self._image_size, self._slot_size
        head = self._head(raw)
        self._lock(head)
        try:
            slot = self._find(head, raw)
            if slot < 0:
                return False
            nxt = NEXT.unpack_from(mem, slot + NXT)[0]
            freed = 0
            if slot == head:
                inactive = mem[head + ACT] ^ 1
                dst = head + SLOT_SIZE + inactive * isz
                if not nxt:
                    mem[dst] = 0  # an empty image
                else:  # as Swoole: the first chained row moves into the bucket's slot
                    second = HEADER_SIZE + nxt * ss
                    src = self._image_at(second)
                    mem[dst : dst + isz] = mem[src : src + isz]
                    freed = nxt
                mem[head + ACT] = inactive
                if freed:
                    NEXT.pack_into(mem, head + NXT, NEXT.unpack_from(mem, second + NXT)[0])
            else:
                prev = head
                while NEXT.unpack_from(mem, prev + NXT)[0] != (slot - HEADER_SIZE) // ss:
                    prev = HEADER_SIZE + NEXT.unpack_from(mem, prev + NXT)[0] * ss
                NEXT.pack_into(mem, prev + NXT, nxt)
                freed = (slot - HEADER_SIZE) // ss
            self._bump(head, 0)
            # the counters, and the freed slot back to the pool only after the bump
            self._global_lock()
            try:
                header = list(HEADER.unpack_from(mem, 0))
                header[0] -= 1
                header[2] += 1
                if freed:
                    NEXT.pack_into(mem, HEADER_SIZE + freed * ss + NXT, header[5])
                    header[5] = freed
                    header[6] += 1
                HEADER.pack_into(mem, 0, *header)
            finally:
                self._global_unlock()
            return True
        finally:
            self._unlock(head)

    del_ = delete

    def __delitem__(self, key: Key) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def __repr__(self) -> str:
        state = f"{self.count()} rows" if self._created else "not created"
        return f"<Table size={self.size} columns={list(self._columns)} {state}>"
