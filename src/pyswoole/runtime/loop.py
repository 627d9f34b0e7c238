"""Event loop selection: uvloop when importable, else the standard asyncio loop.

``PYSWOOLE_LOOP=asyncio`` forces the standard loop (to compare, or to debug).
"""

from __future__ import annotations

import asyncio
import os
import signal

__all__ = ["loop_name", "new_event_loop", "stop_signals"]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the best available kind."""
    if os.environ.get("PYSWOOLE_LOOP", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``"uvloop"`` or ``"asyncio"``, for logs and stats."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def stop_signals() -> tuple[int, ...]:
    """The signals that stop this process gracefully: SIGINT and SIGTERM, or only SIGTERM
    when SIGINT is ignored -- as in a manager's children (``process/manager.py``): a
    terminal's Ctrl-C reaches the whole process group, and the manager's SIGTERM is the
    one stop; taking the SIGINT too would make that SIGTERM a second signal (stop at
    once, no drain). An inherited SIG_IGN is kept, as CPython keeps it for KeyboardInterrupt."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return (signal.SIGTERM,)
    return (signal.SIGINT, signal.SIGTERM)
