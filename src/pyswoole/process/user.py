"""``Process``: Swoole's ``Swoole\\Process`` -- a forked child running a callback, with a
pipe to its parent -- on its own or added to a server (``server.add_process``).

Swoole 6.2 is the reference (ext-src/swoole_process.cc and the ``Process`` stub):

* ``Process(callback, redirect_stdin_and_stdout=False, pipe_type=SOCK_DGRAM,
  enable_coroutine=False)`` creates the pipe at once (a socketpair: ``pipe_type`` 1 is a
  stream, 2 datagrams, 0 none), so every process forked later -- a server's workers too --
  can ``write()`` to the child, which ``read()``\\ s it (Swoole's ``addProcess`` example);
  with ``redirect_stdin_and_stdout`` the child's stdin and stdout are its end of the pipe
  (a stream).
* ``start()`` forks and returns the child's pid (False if it cannot); the child calls
  ``callback(process)`` and exits 0 when it returns, or with ``exit(status)``'s status.
  After a plain callback returns, the child's event loop runs as long as timers are
  pending (``Timer.tick``, ``server.tick``), as Swoole's process runs its reactor; an
  ``async def`` callback runs on that loop. An exception is logged and the child exits 1.
* ``wait(blocking=True)`` (static) reaps any child: ``{"pid", "code", "signal"}`` or False;
  ``kill(pid, signo=SIGTERM)`` (static; ``signo`` 0 tests that the process exists);
  ``signal(signo, callback)`` (static; ``callback(signo)``, None removes it); ``alarm``
  (``setitimer``, periodic as Swoole's), ``daemon``, ``set_affinity``; ``name(title)``
  sets the process name (``setproctitle`` when installed, else the kernel's 15-byte comm).
* ``pid`` is the child's pid (0 before ``start``), ``id`` its id in a server (-1 alone),
  ``pipe`` the fd of this side's end.

A server supervises added processes like workers (:mod:`pyswoole.server.processes`): the
manager starts them, restarts one that exits (after a second if it lived less than one),
does not restart them on ``reload()`` (as Swoole), and stops them with the server (SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal as _signal
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

__all__ = ["Process"]

log = logging.getLogger("pyswoole")

_PR_SET_NAME = 15


class Process:
    """A child process running ``callback(process)`` (Swoole's ``Swoole\\Process``)."""

    PIPE_MASTER = 1
    PIPE_WORKER = 2
    PIPE_READ = 3
    PIPE_WRITE = 4

    def __init__(
        self,
        callback: Callable[..., Any],
        redirect_stdin_and_stdout: bool = False,
        pipe_type: int = 2,
        enable_coroutine: bool = False,
    ) -> None:
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        if pipe_type not in (0, 1, 2):
            raise ValueError("pipe_type must be 0 (none), 1 (SOCK_STREAM) or 2 (SOCK_DGRAM)")
        self.callback = callback
        self.redirect_stdin_and_stdout = redirect_stdin_and_stdout
        if redirect_stdin_and_stdout:
            pipe_type = 1  # Swoole: redirection needs a stream
        self.pipe_type = pipe_type
        self.enable_coroutine = enable_coroutine
        self.pid = 0
        #: the process id in a server (``worker_num + task_worker_num + index``); -1 alone
        self.id = -1
        self._master: socket.socket | None = None
        self._worker: socket.socket | None = None
        if pipe_type:
            kind = socket.SOCK_STREAM if pipe_type == 1 else socket.SOCK_DGRAM
            self._master, self._worker = socket.socketpair(socket.AF_UNIX, kind)
        self._child_pid = 0  # os.getpid() of the child, set in the child

    # -- the pipe -----------------------------------------------------------------------------

    def _end(self) -> socket.socket | None:
        """This side's end: the child's in the child, the parent's everywhere else."""
        if self._child_pid and self._child_pid == os.getpid():
            return self._worker
        return self._master

    @property
    def pipe(self) -> int:
        """The file descriptor of this side of the process's pipe; -1 without a pipe."""
        end = self._end()
        return -1 if end is None else end.fileno()

    def write(self, data: str | bytes) -> int | bool:
        """Write to the other side of the pipe; the bytes written, False on failure."""
        end = self._end()
        if end is None:
            return False
        payload = data.encode() if isinstance(data, str) else bytes(data)
        try:
            if self.pipe_type == 1:
                end.sendall(payload)
                return len(payload)
            return end.send(payload)
        except OSError as exc:
            log.warning("Process.write: %s", exc)
            return False

    def read(self, size: int = 8192) -> bytes | bool:
        """Read from the pipe (blocks until data comes); b"" at EOF, False on failure."""
        end = self._end()
        if end is None:
            return False
        try:
            return end.recv(size)
        except OSError as exc:
            log.warning("Process.read: %s", exc)
            return False

    def close(self, which: int = 0) -> bool:
        """Close this side's pipe (``which`` 0: both directions, PIPE_READ/PIPE_WRITE: one)."""
        end = self._end()
        if end is None:
            return False
        if which == self.PIPE_READ:
            end.shutdown(socket.SHUT_RD)
        elif which == self.PIPE_WRITE:
            end.shutdown(socket.SHUT_WR)
        else:
            end.close()
        return True

    # -- starting -------------------------------------------------------------------------

    def start(self) -> int | bool:
        """Fork; in the child run the callback and exit. The child's pid, False on failure."""
        if self.pid and self._child_pid != os.getpid() and _alive(self.pid):
            log.warning("Process.start: the process %d is already running", self.pid)
            return False
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            log.warning("Process.start: fork failed: %s", exc)
            return False
        if pid == 0:
            self.run_child()
        self.pid = pid
        return pid

    def run_child(
        self,
        on_loop: Callable[[asyncio.AbstractEventLoop], None] | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> NoReturn:
        """In the forked child: run the callback (then the loop while timers are pending)
        and exit with its status. ``on_loop`` is given the child's loop before the
        callback runs (a server attaches its IPC there); ``on_exit`` runs before exit."""
        from ..runtime.loop import new_event_loop  # the child's loop (uvloop if present)
        from ..server.timer import run_timers, user_timers

        self._child_pid = self.pid = os.getpid()
        code = 0
        if self.redirect_stdin_and_stdout and self._worker is not None:
            os.dup2(self._worker.fileno(), 0)
            os.dup2(self._worker.fileno(), 1)
            # print()/input() too, whatever sys.stdout/stdin were replaced with
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.stdin = open(0, closefd=False)  # noqa: SIM115
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        timers = user_timers(loop)
        try:
            if on_loop is not None:
                on_loop(loop)
            result = _call_with_arity(self.callback, self)
            if asyncio.iscoroutine(result):
                loop.run_until_complete(result)
            loop.run_until_complete(run_timers(timers))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            log.exception("process %d (pid %d): its callback raised", self.id, os.getpid())
            code = 1
        finally:
            with contextlib.suppress(BaseException):
                if on_exit is not None:
                    on_exit()
            with contextlib.suppress(BaseException):
                sys.stdout.flush()
                sys.stderr.flush()
        os._exit(code)

    def exit(self, status: int = 0) -> NoReturn:
        """End the process with ``status`` (Swoole's ``exit``): raises SystemExit, which the
        child turns into its exit status."""
        raise SystemExit(status)

    # -- static helpers, as Swoole's ------------------------------------------------------

    @staticmethod
    def wait(blocking: bool = True) -> dict[str, int] | bool:
        """Reap a child: ``{"pid", "code", "signal"}``; False when there is none (or, not
        blocking, none has exited)."""
        try:
            pid, status = os.waitpid(-1, 0 if blocking else os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return False
        code = os.waitstatus_to_exitcode(status)
        return {"pid": pid, "code": max(code, 0), "signal": -code if code < 0 else 0}

    @staticmethod
    def kill(pid: int, signo: int = _signal.SIGTERM) -> bool:
        """Send ``signo`` to ``pid`` (0 only checks that it exists); False if it cannot."""
        try:
            os.kill(pid, signo)
        except OSError:
            return False
        return True

    @staticmethod
    def signal(signo: int, callback: Callable[..., Any] | None = None) -> bool:
        """Call ``callback(signo)`` when ``signo`` arrives (None: back to the default). On a
        running event loop of the main thread the handler runs on the loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        try:
            if loop is not None:
                if callback is None:
                    loop.remove_signal_handler(signo)
                else:
                    loop.add_signal_handler(signo, _call_with_arity, callback, signo)
                return True
            if callback is None:
                _signal.signal(signo, _signal.SIG_DFL)
            else:
                handler = callback
                _signal.signal(signo, lambda num, frame: _call_with_arity(handler, num))
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("Process.signal(%d): %s", signo, exc)
            return False
        return True

    @staticmethod
    def alarm(usec: int, type: int = 0) -> bool:
        """A periodic SIGALRM (``type`` 0), SIGVTALRM (1) or SIGPROF (2) every ``usec``
        microseconds; ``usec`` <= 0 stops it (Swoole's ``alarm``, ``setitimer``)."""
        which = (_signal.ITIMER_REAL, _signal.ITIMER_VIRTUAL, _signal.ITIMER_PROF)
        if type not in (0, 1, 2):
            return False
        seconds = max(usec, 0) / 1_000_000
        _signal.setitimer(which[type], seconds, seconds)
        return True

    @staticmethod
    def daemon(nochdir: bool = True, noclose: bool = True) -> bool:
        """Detach from the terminal (daemon(3)): fork, the parent exits, a new session;
        ``nochdir=False`` goes to /, ``noclose=False`` sends stdio to /dev/null."""
        if os.fork() > 0:
            os._exit(0)
        os.setsid()
        if not nochdir:
            os.chdir("/")
        if not noclose:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
        return True

    @staticmethod
    def set_affinity(cpus: Iterable[int]) -> bool:
        """Pin the calling process to ``cpus`` (``sched_setaffinity``); False where the
        system refuses or lacks it (Swoole's ``Process::setAffinity``)."""
        try:
            os.sched_setaffinity(0, list(cpus))
        except (OSError, AttributeError):
            return False
        return True

    setAffinity = set_affinity

    def name(self, title: str) -> bool:
        """Name this process as ``ps`` shows it (Swoole's ``name``/``cli_set_process_title``)."""
        try:
            import setproctitle  # type: ignore[import-not-found,unused-ignore]

            setproctitle.setproctitle(title)
            return True
        except ImportError:
            pass
        libc_name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(libc_name, use_errno=True)
            return bool(libc.prctl(_PR_SET_NAME, title.encode()[:15], 0, 0, 0) == 0)
        except (OSError, AttributeError):
            return False

    def __repr__(self) -> str:
        return f"<Process id={self.id} pid={self.pid}>"


def _call_with_arity(callback: Callable[..., Any], *args: Any) -> Any:
    from ..server.events import cut_arguments

    return cut_arguments(callback, len(args))(*args)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
