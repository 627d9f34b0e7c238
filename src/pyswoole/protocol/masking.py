"""Masking in pure Python (RFC 6455 section 5.3): octet i of the payload XOR octet i MOD 4 of
the 4-byte masking key. Masking is its own inverse.

This is the reference and the fallback of the compiled ``_speedups.apply_mask`` (used when
pyswoole's C helpers are not built or ``PYSWOOLE_NO_EXTENSIONS=1``). Which way is fastest
depends on the size (measured with ``timeit`` on CPython 3.11 by ``bench/mask.py``):

* up to :data:`TRANSLATE_MIN` bytes, one big-integer XOR over the key repeated to the
  payload's length (``int.from_bytes``/``to_bytes`` cost about 0.6 ns per byte each, but the
  call overhead is the smallest);
* from there, four ``bytes.translate`` calls, one per key octet: the octets at positions
  ``i::4`` all meet the same key octet, so a 256-byte XOR table translates them at C speed
  (extended slices gather and scatter them): about 2-3 times the big-integer XOR's speed;
* from :data:`NUMPY_MIN` bytes, when NumPy can be imported (it is not a dependency: an
  application may have it), one vectorised XOR of 32-bit words: ten times faster again. NumPy
  is imported the first time a payload that large is masked (once, about 50 ms), never when
  pyswoole is imported.

Every variant returns ``bytes`` and accepts ``bytes``, ``bytearray`` or a contiguous
``memoryview``; the tests (tests/protocol/test_masking.py) check each against the definition.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

__all__ = ["NUMPY_MIN", "TRANSLATE_MIN", "apply_mask"]

#: from this many bytes ``bytes.translate`` beats the big-integer XOR
TRANSLATE_MIN = 1024
#: from this many bytes NumPy (if importable) beats ``bytes.translate``
NUMPY_MIN = 2048

_from_bytes = int.from_bytes
Buffer = bytes | bytearray | memoryview

# _XOR[k] is the translation table XORing every octet with k; built on first use (~0.5 ms).
_XOR: list[bytes] = []
# None until the first payload of NUMPY_MIN bytes; then the numpy module, or False.
_numpy: ModuleType | bool | None = None


def mask_bigint(data: Buffer, mask: bytes | bytearray | memoryview) -> bytes:
    """One big-integer XOR over the key repeated to ``len(data)`` (little-endian, so zero
    octets at either end are kept by ``to_bytes``' fixed length)."""
    n = len(data)
    if n == 0:
        return b""
    if n <= 4:
        return bytes([b ^ m for b, m in zip(data, mask, strict=False)])
    repeated = bytes(mask) * ((n >> 2) + 1)
    return (_from_bytes(data, "little") ^ _from_bytes(repeated[:n], "little")).to_bytes(n, "little")


def _tables() -> list[bytes]:
    if not _XOR:
        identity = _from_bytes(bytes(range(256)), "little")
        ones = _from_bytes(b"\x01" * 256, "little")
        _XOR.extend((identity ^ (ones * k)).to_bytes(256, "little") for k in range(256))
    return _XOR


def mask_translate(data: Buffer, mask: bytes | bytearray | memoryview) -> bytes:
    """Four ``translate`` calls, one per residue of the position modulo 4."""
    if type(data) is memoryview:
        data = data.tobytes()  # extended slices of a memoryview cannot be translated
    tables = _tables()
    m0, m1, m2, m3 = mask
    out = bytearray(len(data))
    out[0::4] = data[0::4].translate(tables[m0])
    out[1::4] = data[1::4].translate(tables[m1])
    out[2::4] = data[2::4].translate(tables[m2])
    out[3::4] = data[3::4].translate(tables[m3])
    return bytes(out)


def mask_numpy(data: Buffer, mask: bytes | bytearray | memoryview, np: Any) -> bytes:
    """One XOR of the payload's 32-bit words with the key read as a word (both in native
    byte order, so octet i still meets key octet i MOD 4); the last 0-3 octets by hand."""
    n = len(data)
    words = n >> 2
    out = bytearray(n)
    if words:
        np.bitwise_xor(
            np.frombuffer(data, dtype=np.uint32, count=words),
            np.frombuffer(bytes(mask), dtype=np.uint32)[0],
            out=np.frombuffer(out, dtype=np.uint32, count=words),
        )
    for i in range(words << 2, n):
        out[i] = data[i] ^ mask[i & 3]
    return bytes(out)


def _load_numpy() -> ModuleType | bool:
    global _numpy
    try:
        import numpy
    except ImportError:
        _numpy = False
    else:
        _numpy = numpy
    return _numpy


def apply_mask(data: Buffer, mask: bytes | bytearray) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (section 5.3), the fastest pure way
    for its size (see the module's docstring)."""
    n = len(data)
    if n < TRANSLATE_MIN:  # mask_bigint, inlined: small frames are the common case
        if n > 4:
            repeated = bytes(mask) * ((n >> 2) + 1)
            x = _from_bytes(data, "little") ^ _from_bytes(repeated[:n], "little")
            return x.to_bytes(n, "little")
        return bytes([b ^ m for b, m in zip(data, mask, strict=False)])
    if n >= NUMPY_MIN:
        np = _numpy
        if np is None:
            np = _load_numpy()
        if np:
            return mask_numpy(data, mask, np)
    return mask_translate(data, mask)
