"""The state and helpers of ``Table`` (``table.py``): schema, sizes, locks, lookups, and the
row writing steps its methods share. Kept apart so each module stays small; see ``table.py``
for the design."""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import struct
import tempfile
import threading
import weakref
import zlib
from collections.abc import Mapping
from typing import Any

from ..exceptions import ServerStateError
from .layout import (
    ACT,
    CONFLICT_PROPORTION,
    GLOBAL_SPIN,
    HEADER,
    HEADER_SIZE,
    INT_MAX,
    INT_MIN,
    KEY_HEAD,
    KEY_HEAD_SIZE,
    KEY_SIZE,
    MAX_ROWS,
    NEXT,
    NEXT_ACTIVE,
    NXT,
    SEQ_NEXT_UPDATES,
    SLOT_SIZE,
    SPEEDUPS,
    SPIN,
    TYPE_FLOAT,
    TYPE_INT,
    TYPE_STRING,
    UPD,
    UPDATES,
    Column,
    SpinLocks,
    TableCore,
    Value,
    float32,
)

__all__ = ["RETRIES", "Key", "Row", "TableBase"]

log = logging.getLogger("pyswoole")

Row = dict[str, Value]
Key = str | bytes | int
RETRIES = 64  # lock-free read attempts before a reader takes the bucket lock


def _fork_reset(ref: weakref.ref[TableBase]) -> None:
    table = ref()
    if table is not None:
        table._tlock = threading.Lock()  # it may have been held by a thread that did not fork


class TableBase:
    """What ``Table`` is made of; ``Table`` adds the public reads and writes."""

    TYPE_INT = TYPE_INT
    TYPE_FLOAT = TYPE_FLOAT
    TYPE_STRING = TYPE_STRING

    __slots__ = (
        "__weakref__",
        "_columns",
        "_conflict_rows",
        "_core",
        "_created",
        "_data",
        "_fd",
        "_full_logged",
        "_image",
        "_image_size",
        "_lock_file",
        "_mask",
        "_mem",
        "_names",
        "_slot_size",
        "_spin",
        "_strings",
        "_tlock",
        "_too_long_logged",
        "_zero",
        "conflict_proportion",
        "size",
    )

    def __init__(self, size: int, conflict_proportion: float = CONFLICT_PROPORTION) -> None:
        """``size`` rows, rounded up to a power of two (64 at least, 2**31 at most) as
        ``Table::make`` does; ``conflict_proportion`` clamped to 0.2..1.0."""
        if size < 1:
            raise ValueError("table size must be >= 1")
        rows = MAX_ROWS
        if size < MAX_ROWS:
            rows = 64
            while rows < size:
                rows <<= 1
        conflict_proportion = min(1.0, max(CONFLICT_PROPORTION, float(conflict_proportion)))
        self.size = rows
        self.conflict_proportion = conflict_proportion
        self._mask = rows - 1
        # Table::calc_memory_size: row_num = size * (1 + conflict_proportion), a C float
        self._conflict_rows = max(0, int(rows * (1.0 + float32(conflict_proportion))) - rows)
        self._columns: dict[str, Column] = {}
        self._names: tuple[str, ...] = ()
        self._strings = False
        self._created = False
        self._tlock = threading.Lock()
        self._full_logged = False
        self._too_long_logged: set[str] = set()
        self._image_size = KEY_HEAD_SIZE
        self._slot_size = SLOT_SIZE + 2 * KEY_HEAD_SIZE
        self._spin: Any = None
        self._core: Any = None

    # -- schema -------------------------------------------------------------------------------

    def column(self, name: str, type: int, size: int = 0) -> bool:
        """Add a column before ``create()``: ``TYPE_INT`` (8 bytes), ``TYPE_FLOAT`` (double) or
        ``TYPE_STRING`` of ``size`` bytes, rounded up to a multiple of 8 as Swoole does."""
        if self._created:
            raise ServerStateError("unable to add column after table has been created")
        if type not in (TYPE_INT, TYPE_FLOAT, TYPE_STRING):
            raise ValueError(f"unknown column type {type!r}")
        if name in self._columns:
            raise ValueError(f"column[{name}] already exists")
        width = 8
        if type == TYPE_STRING:
            if size < 1:
                raise ValueError("the length of string type values has to be more than zero")
            width = 4 + ((size + 7) & ~7)  # TableStringLength + SW_MEM_ALIGNED_SIZE(size)
        cols = self._columns.values()
        index = 3 + sum(2 if c.type == TYPE_STRING else 1 for c in cols)
        offset = KEY_HEAD_SIZE + sum(c.size for c in cols)
        self._columns[name] = Column(name, type, width, index, offset)
        return True

    def create(self) -> bool:
        """Allocate the shared memory; call it before the server starts (before fork)."""
        if self._created:
            raise ServerStateError("the table has already been created")
        cols = list(self._columns.values())
        data = "".join(c.format for c in cols)
        self._image = struct.Struct("<" + KEY_HEAD + data)
        self._data = struct.Struct("<" + data)
        self._image_size = (self._image.size + 3) & ~3
        self._slot_size = SLOT_SIZE + 2 * self._image_size
        self._names = tuple(c.name for c in cols)
        self._strings = any(c.type == TYPE_STRING for c in cols)
        self._zero = (0, 0, b"", *(v for c in cols for v in c.zero()))
        slots = self.size + self._conflict_rows
        self._mem = mem = mmap.mmap(-1, HEADER_SIZE + slots * self._slot_size)
        # the pool: every conflict slot on the free list, chained through `next`
        for slot in range(self.size, slots):
            at = HEADER_SIZE + slot * self._slot_size + NXT
            NEXT.pack_into(mem, at, slot + 1 if slot + 1 < slots else 0)
        free_head = self.size if self._conflict_rows else 0
        HEADER.pack_into(mem, 0, 0, 0, 0, 0, 0, free_head, self._conflict_rows)
        self._lock_file = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the table
        self._fd = self._lock_file.fileno()
        if SPEEDUPS:
            self._spin = SpinLocks(mem)
            columns = [(c.name, c.type, c.offset, c.capacity) for c in cols]
            self._core = TableCore(
                mem, self.size, self._conflict_rows, self._image_size, self._slot_size,
                columns, self._forced,
            )  # fmt: skip
        self._created = True
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _fork_reset(ref))
        return True

    def destroy(self) -> bool:
        """Release the memory (in this process; other processes keep their mapping)."""
        if not self._created:
            return False
        self._created = False
        self._spin = self._core = None  # they release their views of the buffer
        self._mem.close()
        self._lock_file.close()
        return True

    # -- sizes --------------------------------------------------------------------------------

    def get_size(self) -> int:
        """The number of buckets: ``size`` rounded up to a power of two (``getSize``)."""
        return self.size

    @property
    def memory_size(self) -> int:
        """Bytes of shared memory the table uses (or will use once created)."""
        if self._created:
            return len(self._mem)
        width = (KEY_HEAD_SIZE + sum(c.size for c in self._columns.values()) + 3) & ~3
        return HEADER_SIZE + (self.size + self._conflict_rows) * (SLOT_SIZE + 2 * width)

    def get_memory_size(self) -> int:
        """The bytes of shared memory the table takes (``memory_size``)."""
        return self.memory_size

    getSize = get_size
    getMemorySize = get_memory_size

    def count(self) -> int:
        """Rows in the table, from every process."""
        self._check()
        return int(HEADER.unpack_from(self._mem, 0)[0])

    def __len__(self) -> int:
        return self.count()

    def stats(self) -> dict[str, int]:
        """Swoole's ``Table::stats()``: num, conflict_count, conflict_max_level, insert_count,
        update_count, delete_count, available_slice_num, total_slice_num."""
        self._check()
        num, inserted, deleted, conflicts, level, _, free = HEADER.unpack_from(self._mem, 0)
        mem, ss = self._mem, self._slot_size
        at = HEADER_SIZE + UPD
        updated = sum(UPDATES.unpack_from(mem, at + i * ss)[0] for i in range(self.size))
        return {
            "num": num,
            "conflict_count": conflicts,
            "conflict_max_level": level,
            "insert_count": inserted,
            "update_count": updated,
            "delete_count": deleted,
            "available_slice_num": free,
            "total_slice_num": self._conflict_rows,
        }

    # -- helpers ------------------------------------------------------------------------------

    def _check(self) -> None:
        if not self._created:
            raise ServerStateError("table is not created or has been destroyed")

    def _key(self, key: Key) -> bytes | None:
        """The key's bytes, or None (logged) where Swoole refuses it: empty, or 64 bytes or
        more (``table_check_key_length``, ext-src/swoole_table.cc)."""
        if not self._created:
            self._check()
        if isinstance(key, str):
            raw = key.encode()
        elif isinstance(key, (bytes, bytearray, memoryview)):
            raw = bytes(key)
        elif isinstance(key, int) and not isinstance(key, bool):
            raw = str(key).encode()  # PHP turns an int key into its decimal string
        else:
            raise TypeError(f"table keys are str or bytes, not {type(key).__name__}")
        if not raw:
            log.warning("Table: key must not be empty")
            return None
        if len(raw) >= KEY_SIZE:
            log.warning("Table: key length exceeds the limit of %d bytes", KEY_SIZE - 1)
            return None
        return raw

    def _forced(self, how: int, what: str) -> None:
        if how == 1:
            log.warning("Table: the process holding %s no longer exists, force unlock", what)
        else:
            log.warning("Table: %s held for more than 2 s, timeout, force unlock", what)

    def _lock(self, head: int) -> None:
        if self._spin is not None:
            how = self._spin.acquire(head + SPIN)
            if how:
                self._forced(how, f"row lock {(head - HEADER_SIZE) // self._slot_size}")
            return
        self._tlock.acquire()
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, (head - HEADER_SIZE) // self._slot_size + 1)
        except BaseException:
            self._tlock.release()
            raise

    def _unlock(self, head: int) -> None:
        if self._spin is not None:
            self._spin.release(head + SPIN)
            return
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, (head - HEADER_SIZE) // self._slot_size + 1)
        finally:
            self._tlock.release()

    def _global_lock(self) -> None:
        if self._spin is not None:
            how = self._spin.acquire(GLOBAL_SPIN)
            if how:
                self._forced(how, "the table lock")
        else:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, 0)

    def _global_unlock(self) -> None:
        if self._spin is not None:
            self._spin.release(GLOBAL_SPIN)
        else:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, 0)

    def _head(self, raw: bytes) -> int:
        return HEADER_SIZE + (zlib.crc32(raw) & self._mask) * self._slot_size

    def _find(self, head: int, raw: bytes) -> int:
        """The offset of the slot holding ``raw`` in the bucket at ``head``, or -1."""
        mem, n, isz = self._mem, len(raw), self._image_size
        at = head
        for _ in range(self._conflict_rows + 1):
            nxt, active = NEXT_ACTIVE.unpack_from(mem, at + NXT)
            img = at + SLOT_SIZE + active * isz
            if mem[img] == n and mem[img + 2 : img + 2 + n] == raw:
                return at
            if not nxt:
                break
            at = HEADER_SIZE + nxt * self._slot_size
        return -1

    def _image_at(self, slot: int) -> int:
        return slot + SLOT_SIZE + self._mem[slot + ACT] * self._image_size

    def _row(self, img: int) -> Row:
        values = self._data.unpack_from(self._mem, img + KEY_HEAD_SIZE)
        if not self._strings:
            return dict(zip(self._names, values, strict=True))
        return self._decode(values, 0)

    def _decode(self, values: tuple[Any, ...], base: int) -> Row:
        """A row dict from unpacked values (``base``: where the first column starts)."""
        out: Row = {}
        for col in self._columns.values():
            i = col.index - 3 + base
            if col.type == TYPE_STRING:
                out[col.name] = col.decode(values[i], values[i + 1])
            else:
                out[col.name] = values[i]
        return out

    def _field(self, img: int, col: Column) -> Value:
        if col.type == TYPE_STRING:
            return col.decode(*col.reader.unpack_from(self._mem, img + col.offset))
        value: Value = col.reader.unpack_from(self._mem, img + col.offset)[0]
        return value

    # -- row writing steps (under the bucket lock) --------------------------------------------

    def _convert(self, raw: bytes, value: Mapping[str, Any]) -> list[tuple[int, Any]]:
        """(tuple index, stored value) for each known column of ``value``; other names are
        skipped, as Swoole skips them. Done before locking, as Swoole converts first."""
        out: list[tuple[int, Any]] = []
        cols = self._columns
        for name, item in value.items():
            col = cols.get(name)
            if col is None:
                continue
            kind = col.type
            if (kind == TYPE_INT and type(item) is int and INT_MIN <= item <= INT_MAX) or (
                kind == TYPE_FLOAT and type(item) is float
            ):
                out.append((col.index, item))
            else:
                stored = col.convert(item, raw, self._too_long_logged)
                out.append((col.index, stored[0]))
                if kind == TYPE_STRING:
                    out.append((col.index + 1, stored[1]))
        return out

    def _write(self, slot: int, values: tuple[Any, ...] | list[Any]) -> None:
        """Fill the copy readers do not use, then flip to it (one byte)."""
        mem = self._mem
        active = mem[slot + ACT] ^ 1
        self._image.pack_into(mem, slot + SLOT_SIZE + active * self._image_size, *values)
        mem[slot + ACT] = active

    def _bump(self, head: int, updated: int) -> None:
        """The end of a write to the bucket: its sequence number (readers retry) and its
        update count."""
        seq, nxt, updates = SEQ_NEXT_UPDATES.unpack_from(self._mem, head)
        SEQ_NEXT_UPDATES.pack_into(self._mem, head, (seq + 1) & 0xFFFFFFFF, nxt, updates + updated)

    def _place(self, head: int, values: list[Any]) -> int:
        """Store a new row (``values``: its whole image) in the bucket at ``head``: in the
        bucket's own slot if free, else in a pool slot chained at the end, written before it
        is linked. Returns the slot, or -1 if the pool is empty (the table is full)."""
        mem = self._mem
        self._global_lock()
        try:
            header = list(HEADER.unpack_from(mem, 0))
            if not mem[self._image_at(head)]:
                slot = head
            else:
                free = header[5]
                if not free:
                    return -1
                last, level = head, 1
                for _ in range(self._conflict_rows + 1):
                    nxt = NEXT.unpack_from(mem, last + NXT)[0]
                    if not nxt:
                        break
                    last, level = HEADER_SIZE + nxt * self._slot_size, level + 1
                slot = HEADER_SIZE + free * self._slot_size
                header[5] = NEXT.unpack_from(mem, slot + NXT)[0]
                header[6] -= 1
                header[3] += 1
                header[4] = max(header[4], level)
            header[0] += 1
            header[1] += 1
            HEADER.pack_into(mem, 0, *header)
        finally:
            self._global_unlock()
        if slot != head:
            NEXT.pack_into(mem, slot + NXT, 0)
        self._write(slot, values)
        if slot != head:
            NEXT.pack_into(mem, last + NXT, free)  # the row becomes reachable only now
        return slot

    def _full(self, raw: bytes) -> None:
        if not self._full_logged:
            self._full_logged = True
            log.warning(
                "Table: failed to set('%s'), unable to allocate memory (full: %d bucket rows "
                "and %d conflict rows; logged once)",
                raw.decode("utf-8", "replace"),
                self.size,
                self._conflict_rows,
            )
