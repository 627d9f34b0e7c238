"""``pyswoole --reload``: run the server in a child process, restart it when code changes.

The reloading process imports nothing of the application: it runs ``python -m pyswoole``
with the same arguments (less ``--reload``/``--reload-dir``) in a session of its own,
watches the directories with ``watchfiles`` (its ``PythonFilter``: ``.py`` files, not
``__pycache__``, ``.git`` or virtualenvs) and, on a change, stops the child gracefully
(SIGTERM: Swoole's shutdown, WebSocket clients get 1001), waits for it to release the port,
and starts a new one. A child that fails (a syntax error while editing) is started again at
the next change; one that stops by itself with exit code 0 (``shutdown()``) ends the
reloader. SIGINT/SIGTERM to the reloader stop the child and the reloader.

This is a restart in every process mode, uvicorn's model: Swoole's ``reload()`` would keep
the connections in SWOOLE_PROCESS mode, but its workers are forks of a manager that
imported the old code, so they would run it again (Swoole has the same limit: only files
loaded in ``onWorkerStart`` are reloaded).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["STOP_TIMEOUT", "child_arguments", "supervise"]

log = logging.getLogger("pyswoole.reload")

#: seconds a child may take to stop before its process group is killed
STOP_TIMEOUT = 15.0
#: how often the watcher wakes to notice a child that ended, milliseconds
_POLL_MS = 500


def child_arguments(argv: Sequence[str]) -> list[str]:
    """``argv`` less ``--reload`` and ``--reload-dir DIR`` (or ``--reload-dir=DIR``)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--reload" or arg.startswith("--reload-dir="):
            continue
        elif arg == "--reload-dir":
            skip = True
        else:
            out.append(arg)
    return out


def _say(message: str) -> None:
    print(f"pyswoole: {message}", file=sys.stderr, flush=True)


class _Child:
    """The server process: ``python -m pyswoole ...`` in a session of its own."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyswoole", *argv], start_new_session=True
        )

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self) -> int:
        """SIGTERM, a bounded wait, then SIGKILL to its whole process group (workers)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.wait()


def supervise(argv: Sequence[str], dirs: Sequence[str]) -> int:
    """Run the server from ``argv`` and restart it on changes under ``dirs``; returns the
    exit code (the child's last one, 0 when stopped by a signal)."""
    try:
        import watchfiles
    except ImportError:
        from .cli import CliError

        raise CliError(
            "--reload needs the watchfiles package: pip install 'pyswoole[reload]'"
        ) from None
    from .cli import CliError

    paths = [Path(d).resolve() for d in dirs]
    for path in paths:
        if not path.is_dir():
            raise CliError(f"--reload-dir {path}: not a directory")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    child_argv = child_arguments(argv)
    _say(f"watching {', '.join(str(p) for p in paths)} for changes (--reload)")
    child = _Child(child_argv)
    code = 0
    try:
        changes: Any
        for changes in watchfiles.watch(
            *paths,
            watch_filter=watchfiles.PythonFilter(),
            stop_event=stop,
            yield_on_timeout=True,
            rust_timeout=_POLL_MS,
            raise_interrupt=False,
        ):
            if not changes:
                if child.poll() == 0:
                    break  # the server stopped itself (shutdown())
                continue
            names = sorted({os.path.relpath(path, os.getcwd()) for _, path in changes})
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            _say(f"{shown} changed: restarting")
            child.stop()
            child = _Child(child_argv)
    finally:
        code = child.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stop.is_set() else code
