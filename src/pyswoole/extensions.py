"""Which compiled helpers this installation runs, and the one line saying when it has none.

pyswoole ships three optional C extensions (``protocol/_speedups``: masking and text frames;
``runtime/_fastpath``: the connection read and write path; ``memory/_memory``: atomics and
table row locks). pyproject.toml builds them as setuptools ``optional`` extensions: where no
C compiler exists (an sdist installed with ``CC=false``, a slim container) the build skips
them and the install still succeeds, and each module falls back to its pure-Python twin (same
behaviour, slower). ``PYSWOOLE_NO_EXTENSIONS=1`` forces that fallback on purpose.

:func:`fallback_line` is what ``Server.start()`` logs (one WARNING on the ``pyswoole``
logger, next to the startup line) when a helper is missing without that variable: a user
who installed from source without a compiler learns it once, not by measuring.
"""

from __future__ import annotations

import os

__all__ = ["compiled", "fallback_line"]


def compiled() -> dict[str, bool]:
    """``{"protocol._speedups": True, ...}``: which compiled helpers are in use."""
    from .memory import layout
    from .protocol import frames
    from .runtime import state

    return {
        "protocol._speedups": frames.SPEEDUPS,
        "runtime._fastpath": state.FASTPATH,
        "memory._memory": layout.SPEEDUPS,
    }


def fallback_line() -> str | None:
    """One line naming the compiled helpers that are missing, or None when all are in use
    or ``PYSWOOLE_NO_EXTENSIONS`` turned them off on purpose."""
    if os.environ.get("PYSWOOLE_NO_EXTENSIONS"):
        return None
    missing = [name for name, present in compiled().items() if not present]
    if not missing:
        return None
    return (
        f"pyswoole: pure-Python fallback in use: compiled helpers not built ({', '.join(missing)};"
        " no C compiler when pyswoole was installed?): same behaviour, slower; reinstall"
        " with a C compiler for speed"
    )
