"""Masking throughput (RFC 6455 section 5.3) of each way in pyswoole.protocol.masking, the
pure dispatcher ``apply_mask`` and the compiled ``_speedups.apply_mask``, in MiB/s, with
``timeit`` (best of 7 runs). The thresholds ``TRANSLATE_MIN`` and ``NUMPY_MIN`` come from
these numbers. NumPy's row appears only where NumPy is importable.

    .venv/bin/python bench/mask.py [SIZE ...]
"""

from __future__ import annotations

import os
import sys
import timeit
from collections.abc import Callable
from typing import Any

from pyswoole.protocol import masking

SIZES = [16, 125, 512, 1024, 2048, 4096, 65536, 1 << 20]


def ways() -> list[tuple[str, Callable[[Any, Any], bytes]]]:
    found: list[tuple[str, Callable[[Any, Any], bytes]]] = [
        ("bigint", masking.mask_bigint),
        ("translate", masking.mask_translate),
    ]
    try:
        import numpy
    except ImportError:
        pass
    else:
        found.append(("numpy", lambda d, m: masking.mask_numpy(d, m, numpy)))
    found.append(("apply_mask", masking.apply_mask))
    try:
        from pyswoole.protocol import _speedups
    except ImportError:
        pass
    else:
        found.append(("compiled", _speedups.apply_mask))
    return found


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or SIZES
    mask = os.urandom(4)
    table = ways()
    print(f"{'bytes':>9} " + " ".join(f"{name:>11}" for name, _ in table) + "   (MiB/s)")
    for size in sizes:
        data = os.urandom(size)
        expected = table[0][1](data, mask)
        cells = []
        for _name, fn in table:
            assert fn(data, mask) == expected
            number = max(1, int(1e7 // (size + 200)))
            best = min(
                timeit.repeat(lambda fn=fn, data=data: fn(data, mask), number=number, repeat=7)
            )
            cells.append(f"{size * number / best / 2**20:11.0f}")
        print(f"{size:>9} " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
