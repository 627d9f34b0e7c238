"""``pyswoole --reload``: run the server in a child process, restart it when code changes.

The reloading process imports nothing of the application: it runs ``python -m pyswoole``
with the same arguments (less ``--reload``/``--reload-dir``) in a session of its own,
watches the directories with ``watchfiles`` (its ``PythonFilter``: ``.py`` files, not
``__pycache__``, ``.git`` or virtualenvs) and, on a change, stops the child gracefully
(SIGTERM: Swoole's shutdown, WebSocket clients get 1001), waits for it to release the port,
and starts a new one. A child that fails (a syntax error while editing) is started again at
the next change; one that stops by itself with exit code 0 (``shutdown()``) ends the
reloader. SIGINT/SIGTERM to the reloader stop the child and the reloader.

In SWOOLE_PROCESS mode a change is a ``reload()`` instead (SIGUSR1 to the master), so the
connections, which the master holds, stay open. The new workers are forks of a manager that
imported the old code (Swoole's limit too: only files loaded in ``onWorkerStart`` are
reloaded), so each one, at its start, imports the application again and takes its
callbacks (:func:`install_code_reload`): the modules under the watched directories are
imported afresh, and the module-level ``Server``, ``Table``, ``Atomic`` and ``Lock`` objects
of the old modules are kept (the new code's globals point at them: shared state survives).
An application holding such objects elsewhere (in a closure, in an object a factory made)
would get new, unshared ones from a new import: it is restarted instead, as in SWOOLE_BASE.
What a reload cannot change (settings, listeners, the set of events the master forwards)
needs a restart: edit with the server stopped, or restart it by hand. A new module that
fails to import is logged and the running code stays.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Server

__all__ = ["STOP_TIMEOUT", "child_arguments", "install_code_reload", "supervise"]

log = logging.getLogger("pyswoole")

#: seconds a child may take to stop before its process group is killed
STOP_TIMEOUT = 15.0
#: how often the watcher wakes to notice a child that ended, milliseconds
_POLL_MS = 200
#: the environment variable naming the reloader's state directory (in the child)
STATE_ENV = "PYSWOOLE_RELOAD_STATE"
#: the file there counting code changes (a worker compares it with its master's start)
GENERATION = "generation"


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
    """The server process: ``python -m pyswoole ...`` in a session of its own; it writes
    ``process`` to ``<state>/mode`` when it runs in SWOOLE_PROCESS mode."""

    def __init__(self, argv: list[str], state: Path) -> None:
        self.state = state
        (state / "mode").unlink(missing_ok=True)
        env = {**os.environ, STATE_ENV: str(state)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyswoole", *argv], start_new_session=True, env=env
        )

    def poll(self) -> int | None:
        return self.proc.poll()

    def reloadable(self) -> bool:
        """Running in SWOOLE_PROCESS mode (a ``reload()`` keeps its connections)."""
        try:
            return self.poll() is None and (self.state / "mode").read_text() == "process"
        except OSError:
            return False

    def reload(self) -> None:
        """Bump the code generation the new workers compare, then SIGUSR1 the master."""
        generation = self.state / GENERATION
        count = int(generation.read_text()) + 1 if generation.exists() else 1
        generation.write_text(str(count))
        os.kill(self.proc.pid, signal.SIGUSR1)

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
    state = Path(tempfile.mkdtemp(prefix="pyswoole-reload-"))
    (state / "dirs").write_text("\n".join(str(p) for p in paths))
    child: _Child | None = None
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
            if child is None:  # the watcher is up (its first wake): no edit is missed now
                _say(f"watching {', '.join(str(p) for p in paths)} for changes (--reload)")
                child = _Child(child_argv, state)
                continue
            if not changes:
                if child.poll() == 0:
                    break  # the server stopped itself (shutdown())
                continue
            names = sorted({os.path.relpath(path, os.getcwd()) for _, path in changes})
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            if child.reloadable():
                _say(f"{shown} changed: reloading the workers (SWOOLE_PROCESS keeps connections)")
                child.reload()
                continue
            _say(f"{shown} changed: restarting")
            child.stop()
            child = _Child(child_argv, state)
    finally:
        code = 0 if child is None else child.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(state, ignore_errors=True)
    return 0 if stop.is_set() else code


# -- in the server (the child) -----------------------------------------------------------------


def install_code_reload(server: Server, spec: str, factory_kwargs: dict[str, Any] | None) -> None:
    """In the reloader's child: tell the reloader the mode and, in SWOOLE_PROCESS mode, make
    each worker that starts after a code change take the new code (see the module doc)."""
    from .constants import SWOOLE_PROCESS
    from .server.events import cut_arguments

    state = os.environ.get(STATE_ENV)
    if not state or server.mode != SWOOLE_PROCESS:
        return
    state_dir = Path(state)
    roots = (state_dir / "dirs").read_text().splitlines()
    if not _state_is_global(spec.partition(":")[0], roots):
        _say(
            "the application holds Table/Atomic/Lock objects that are not module globals "
            "(a new import could not keep them): a change restarts the server"
        )
        return
    (state_dir / "mode").write_text("process")
    started = _generation(state_dir)
    previous = server.get_callback("workerStart")
    original = None if previous is None else cut_arguments(previous, 2)

    def on_worker_start(srv: Server, worker_id: int) -> Any:
        callback = original
        if _generation(state_dir) != started:
            fresh = _swap_code(srv, spec, factory_kwargs, roots)
            if fresh is not None:
                callback = fresh
        return None if callback is None else callback(srv, worker_id)

    server.on("workerStart", on_worker_start)


def _memory_types() -> tuple[type[Any], ...]:
    from .memory import Atomic, Lock, Table

    return (Table, Atomic, Lock)


def _app_modules(module_name: str, roots: list[str]) -> dict[str, Any]:
    return {
        name: module
        for name, module in list(sys.modules.items())
        if _under(name, getattr(module, "__file__", None), roots) or name == module_name
    }


def _state_is_global(module_name: str, roots: list[str]) -> bool:
    """Whether every live ``Table``/``Atomic``/``Lock`` is a module global of the
    application (a new import can then be pointed at them; one held in a closure or an
    object, as a factory's, cannot)."""
    import gc

    kinds = _memory_types()
    held = {
        id(value)
        for module in _app_modules(module_name, roots).values()
        for value in vars(module).values()
        if isinstance(value, kinds)
    }
    return all(id(obj) in held for obj in gc.get_objects() if isinstance(obj, kinds))


def _generation(state: Path) -> str:
    try:
        return (state / GENERATION).read_text()
    except OSError:
        return "0"


def _swap_code(
    server: Server, spec: str, factory_kwargs: dict[str, Any] | None, roots: list[str]
) -> Any:
    """Import the application afresh and give ``server`` its callbacks; returns the new
    ``workerStart`` callback (cut to two arguments), or None."""
    from .server import Server as ServerClass
    from .server.events import cut_arguments

    kept_types: tuple[type[Any], ...] = (ServerClass, *_memory_types())
    module_name, _, attr = spec.partition(":")
    old = _app_modules(module_name, roots)
    for name in old:
        del sys.modules[name]
    try:
        value: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            value = getattr(value, part)
        fresh = value(**factory_kwargs) if factory_kwargs is not None else value
        if not isinstance(fresh, ServerClass):
            raise TypeError(f"{spec} is no longer a pyswoole server")
    except Exception:
        log.exception("reload: importing %s failed: the workers keep the running code", spec)
        for name, module in old.items():
            sys.modules[name] = module
        return None
    for name, module in old.items():  # shared state stays: the new globals point at it
        new = sys.modules.get(name)
        if new is None or new is module:
            continue
        for key, kept in vars(module).items():
            if isinstance(kept, kept_types) and type(vars(new).get(key)) is type(kept):
                setattr(new, key, kept)
    callbacks = {k: v for k, v in fresh._callbacks.items() if k != "workerStart"}
    raw = {k: v for k, v in fresh._raw_callbacks.items() if k != "workerStart"}
    server._callbacks.update(callbacks)
    server._raw_callbacks.update(raw)
    log.info("reload: worker %d runs the new code of %s", server.worker_id, spec)
    start = fresh._raw_callbacks.get("workerStart")
    return None if start is None else cut_arguments(start, 2)


def _under(name: str, path: str | None, roots: list[str]) -> bool:
    """An application module: its file is under a watched directory (pyswoole itself and
    installed packages never are, even when the watched directory holds them)."""
    if not path or name == "__main__" or name == "pyswoole" or name.startswith("pyswoole."):
        return False
    resolved = os.path.realpath(path)
    if "site-packages" in resolved.split(os.sep):
        return False
    return any(resolved.startswith(root + os.sep) for root in roots)
