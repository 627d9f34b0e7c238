"""The memory layout of a ``Table`` and the conversions of values into it (``table.py`` is the
table itself).

One anonymous shared ``mmap``::

    header (64 bytes): row_num, insert_count, delete_count, conflict_count,
                       conflict_max_level, free_head, free_count (7 x 64-bit),
                       then the table-wide spinlock word and owner pid
    slots: size bucket slots, then size * conflict_proportion pool slots, each
        slot header (32 bytes): seq u32 (bucket's sequence number), next i32 (chained slot,
            0 = none: slot 0 is a bucket, never chained), updates u64 (bucket's update
            count), active u8 (which copy readers use), spinlock word u32 and owner pid i32
        two copies of the row image: key length u8, key-is-bytes u8, key (63 bytes), 7 pad,
            then the columns in order: int ``q``, float ``d``, string ``I`` length (high bit:
            the value was bytes) + capacity bytes

Every offset the table uses is 4-aligned, as the compiled spinlocks need.
"""

from __future__ import annotations

import logging
import os
import struct
from typing import Any

__all__ = [
    "KEY_HEAD_SIZE",
    "SLOT_SIZE",
    "SPEEDUPS",
    "Column",
    "SpinLocks",
    "TableCore",
    "Value",
    "float32",
]

log = logging.getLogger("pyswoole")

SpinLocks: Any = None
TableCore: Any = None
#: True when the compiled helper is in use (PYSWOOLE_NO_EXTENSIONS=1 disables it)
SPEEDUPS = False
if not os.environ.get("PYSWOOLE_NO_EXTENSIONS"):
    try:
        from ._memory import SpinLocks, TableCore
    except ImportError:  # not built: fcntl record locks, Python hot paths
        pass
    else:
        SPEEDUPS = True

Value = int | float | str | bytes

TYPE_INT = 1  # TableColumn::TYPE_INT
TYPE_FLOAT = 2
TYPE_STRING = 3

KEY_SIZE = 64  # SW_TABLE_KEY_SIZE: a key is at most 63 bytes
CONFLICT_PROPORTION = 0.2  # SW_TABLE_CONFLICT_PROPORTION
MAX_ROWS = 0x80000000
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
STR_BYTES = 0x80000000  # high bit of a string length: the value was set as bytes
STR_LEN = 0x7FFFFFFF

HEADER = struct.Struct("<QQQQQqQ")
HEADER_SIZE = 64
GLOBAL_SPIN = 56
SLOT_SIZE = 32
SEQ = struct.Struct("<I")  # at slot + 0
NEXT = struct.Struct("<i")  # at slot + NXT
NXT = 4
UPD = 8
ACT = 16
SPIN = 20
NEXT_ACTIVE = struct.Struct("<i8xB")  # at slot + NXT: next, active
SEQ_NEXT_UPDATES = struct.Struct("<IiQ")  # at slot + 0
UPDATES = struct.Struct("<Q")  # at slot + UPD
KEY_HEAD = "BB63s7x"
KEY_HEAD_SIZE = 72


def float32(value: float) -> float:
    """``value`` as the C ``float`` Swoole keeps ``conflict_proportion`` in."""
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def cut_utf8(raw: bytes, limit: int) -> bytes:
    """``raw`` (UTF-8) cut to at most ``limit`` bytes without splitting a character."""
    while limit > 0 and (raw[limit] & 0xC0) == 0x80:
        limit -= 1
    return raw[:limit]


def wrap_long(value: int) -> int:
    """``value`` as a C ``long`` after overflow (two's complement wrap)."""
    return ((value - INT_MIN) & 0xFFFFFFFFFFFFFFFF) + INT_MIN


class Column:
    """One column: its type, width in the row, place in the image and in the unpacked tuple."""

    __slots__ = ("capacity", "index", "name", "offset", "reader", "size", "type")

    def __init__(self, name: str, type_: int, size: int, index: int, offset: int) -> None:
        self.name = name
        self.type = type_
        self.size = size  # bytes in the row: 8, or 4 (length) + capacity for a string
        self.capacity = size - 4 if type_ == TYPE_STRING else 0
        self.index = index  # position in the unpacked image tuple
        self.offset = offset  # from the start of the image
        if type_ == TYPE_INT:
            self.reader = struct.Struct("<q")
        elif type_ == TYPE_FLOAT:
            self.reader = struct.Struct("<d")
        else:
            self.reader = struct.Struct(f"<I{self.capacity}s")

    @property
    def format(self) -> str:
        if self.type == TYPE_INT:
            return "q"
        if self.type == TYPE_FLOAT:
            return "d"
        return f"I{self.capacity}s"

    def zero(self) -> tuple[Any, ...]:
        if self.type == TYPE_STRING:
            return (0, b"")
        return (0.0,) if self.type == TYPE_FLOAT else (0,)

    def convert(self, item: Any, key: bytes, logged: set[str]) -> tuple[Any, ...]:
        """``item`` as this column stores it, as Swoole's ``zval_get_long/double/string``
        would make it (None is zero or empty); a string longer than the column is cut with a
        warning (once per column and process; Swoole warns each time)."""
        if self.type == TYPE_INT:
            number = 0 if item is None else int(item)
            if not INT_MIN <= number <= INT_MAX:
                raise ValueError(f"column[{self.name}]: {number} does not fit a 64-bit int")
            return (number,)
        if self.type == TYPE_FLOAT:
            return (0.0 if item is None else float(item),)
        flag = 0
        if isinstance(item, (bytes, bytearray, memoryview)):
            data = bytes(item)
            flag = STR_BYTES
        elif isinstance(item, str):
            data = item.encode()
        else:
            data = b"" if item is None else str(item).encode()
        if len(data) > self.capacity:
            if self.name not in logged:
                logged.add(self.name)
                log.warning(
                    "Table: [key=%s,field=%s] string value is too long, cut to %d bytes",
                    key.decode("utf-8", "replace"),
                    self.name,
                    self.capacity,
                )
            data = data[: self.capacity] if flag else cut_utf8(data, self.capacity)
        return (len(data) | flag, data)

    def decode(self, length: int, data: bytes) -> str | bytes:
        """A string column's value: bytes if it was set as bytes, else str."""
        data = data[: length & STR_LEN]
        return data if length & STR_BYTES else data.decode("utf-8", "replace")
