"""Helpers for testing your own pyswoole application with real clients.

Two ways to run the server under test, both on a free port of 127.0.0.1:

- :func:`running` starts a server object **in a background thread** of the test process
  (as ``start()`` runs it, minus the signal handlers only the main thread may install) and
  records every callback the server calls (:class:`LiveServer`): a test can wait until
  ``message`` ran and look at its arguments. Build the server with port ``0``. Only the events
  of this process are seen: a server with ``worker_num > 1``, task workers or
  ``SWOOLE_PROCESS`` runs some callbacks in forked processes — test those with
  :func:`running_app`.
- :func:`running_app` runs ``module:attribute`` **in a subprocess** through the CLI
  (``python -m pyswoole MODULE:ATTR --port 0 ...``: every mode and process count), reads the
  port from the startup line, and lets the test wait for output lines (:class:`LiveApp`).

Both connect real clients: ``connect()`` (the ``websockets`` library's asyncio client),
``connect_sync()`` (its blocking client) and ``request()`` (HTTP through ``http.client``).
``websockets`` is not a dependency of pyswoole: install it with your test tools.

A pytest test::

    from pyswoole import WebSocketServer
    from pyswoole.testing import running

    def make_server() -> WebSocketServer:
        server = WebSocketServer("127.0.0.1", 0)

        @server.on("message")
        def on_message(server, frame):
            server.push(frame.fd, frame.data.upper())

        return server

    def test_echo_upper() -> None:
        with running(make_server()) as live:
            with live.connect_sync() as ws:
                ws.send("hi")
                assert ws.recv(timeout=5) == "HI"
            (call,) = live.wait_for("message")
            assert call.args[1].data == "hi"  # (server, frame): Swoole's arguments

Only the events that have a callback are recorded (registering one can change what the server
does: a ``handshake`` callback replaces the built-in handshake).

The same program as a subprocess (``app.py`` holding ``server = make_server()``)::

    from pyswoole.testing import running_app

    def test_app_in_four_workers() -> None:
        with running_app("app:server", "--workers", "4", cwd="src") as app:
            with app.connect_sync() as ws:
                ws.send("hi")
                assert ws.recv(timeout=5) == "HI"
"""

from __future__ import annotations

import contextlib
import http.client
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runtime.listener import Listener
    from .server.base import Server

__all__ = ["Call", "LiveApp", "LiveServer", "running", "running_app"]

#: how long starting, stopping and each wait may take by default (seconds)
TIMEOUT = 10.0


@dataclass
class Call:
    """One callback the server called: the event's canonical name (``"message"``,
    ``"workerStart"``...), the arguments Swoole passes for it (``(server, frame)``...), what
    the callback returned (for ``async def``: what its coroutine returned) or the exception
    it raised, and the port (``host:port``) whose callback it was."""

    event: str
    args: tuple[Any, ...]
    result: Any = None
    error: BaseException | None = None
    port: str = ""
    #: set once the callback returned (an ``async def`` one: once its coroutine finished)
    done: threading.Event = field(default_factory=threading.Event, repr=False)


class _Recorder:
    """The calls, shared by the server's thread (appends) and the test's (waits)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.changed = threading.Condition()

    def wrap(
        self, event: str, listener: Listener, callback: Callable[..., Any]
    ) -> Callable[..., Any]:
        """``callback`` (an adapted one: Swoole's full argument list) that records its calls.
        An awaitable result becomes a coroutine that records when it is done."""

        def recorded(*args: Any) -> Any:
            call = Call(event, args, port=f"{listener.host}:{listener.port}")
            try:
                result = callback(*args)
            except BaseException as exc:
                call.error = exc
                self._finish(call)
                raise
            if hasattr(result, "__await__"):
                return self._track(call, result)
            call.result = result
            self._finish(call)
            return result

        return recorded

    async def _track(self, call: Call, awaitable: Any) -> Any:
        try:
            call.result = await awaitable
            return call.result
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            self._finish(call)

    def _finish(self, call: Call) -> None:
        with self.changed:
            self.calls.append(call)
            call.done.set()
            self.changed.notify_all()


class _Clients:
    """``url()``, ``connect()``, ``connect_sync()``, ``request()`` for a running server."""

    host = "127.0.0.1"
    port = 0

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        """``ws://127.0.0.1:PORT/path`` (``scheme="http"`` for an HTTP URL)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{path}"

    def connect(self, path: str = "/", **kwargs: Any) -> Any:
        """A ``websockets`` asyncio client (``async with live.connect() as ws:``);
        ``kwargs`` go to ``websockets.connect`` (``subprotocols``, ``additional_headers``,
        ``max_size``...). No keepalive pings unless asked, so a test's timing is its own."""
        from websockets.asyncio.client import connect

        kwargs.setdefault("ping_interval", None)
        kwargs.setdefault("close_timeout", TIMEOUT)
        kwargs.setdefault("open_timeout", TIMEOUT)
        return connect(self.url(path), **kwargs)

    def connect_sync(self, path: str = "/", **kwargs: Any) -> Any:
        """A ``websockets`` blocking client (``with live.connect_sync() as ws:``;
        ``ws.recv(timeout=5)``), for tests that are not ``async``."""
        from websockets.sync.client import connect

        kwargs.setdefault("close_timeout", TIMEOUT)
        kwargs.setdefault("open_timeout", TIMEOUT)
        return connect(self.url(path), **kwargs)

    def request(
        self,
        method: str,
        path: str = "/",
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT,
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request on a new connection: ``(status, headers, body)``; the header
        names are lowercase (a repeated header: the last one)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            data = response.read()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                data,
            )
        finally:
            conn.close()


class LiveServer(_Clients):
    """A server running in a thread of this process (what :func:`running` yields)."""

    def __init__(self, server: Server, recorder: _Recorder) -> None:
        self.server = server
        self._recorder = recorder
        #: the port the main listener bound (``server.port``)
        self.port = server.port
        host = server._listeners[0].host
        if host not in ("", "0.0.0.0", "::"):  # a wildcard: 127.0.0.1 reaches it
            self.host = host

    def calls(self, event: str | None = None) -> list[Call]:
        """The finished calls so far, in order (of ``event`` only, by any spelling)."""
        name = _canonical(event)
        with self._recorder.changed:
            return [c for c in self._recorder.calls if name is None or c.event == name]

    def wait_for(self, event: str, count: int = 1, timeout: float = TIMEOUT) -> list[Call]:
        """Block until ``event``'s callback has finished ``count`` times (in all); return those
        calls. ``AssertionError`` after ``timeout`` seconds, naming what was seen instead.

        In an ``async`` test, use :meth:`wait_for_async` (this would block the test's event
        loop, and with it a client that must answer the server)."""
        name = _canonical(event)
        deadline = time.monotonic() + timeout
        with self._recorder.changed:
            while True:
                found = [c for c in self._recorder.calls if c.event == name]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [c.event for c in self._recorder.calls]
                    raise AssertionError(
                        f"on({name!r}) ran {len(found)} time(s), not {count}, within"
                        f" {timeout} s; calls seen: {seen}"
                    )
                self._recorder.changed.wait(left)

    async def wait_for_async(
        self, event: str, count: int = 1, timeout: float = TIMEOUT
    ) -> list[Call]:
        """:meth:`wait_for` for ``async`` tests (waits in a thread: the test's loop runs on)."""
        import asyncio

        return await asyncio.to_thread(self.wait_for, event, count, timeout)


def _canonical(event: str | None) -> str | None:
    from .server.events import canonical_event

    return None if event is None else canonical_event(event)


@contextlib.contextmanager
def running(server: Server, timeout: float = TIMEOUT) -> Iterator[LiveServer]:
    """Start ``server`` in a background thread, wait until it serves, yield a
    :class:`LiveServer`; shut it down (``server.shutdown()``) and join the thread after.

    Every callback registered so far (the server's and its ports') is recorded; register
    them before calling this. An exception ``start()`` raises (a bind error, a bad setting)
    is raised here; a server that does not stop within ``timeout`` is an AssertionError.
    """
    recorder = _Recorder()
    _record(server, recorder)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.start()
        except BaseException as exc:  # raised in the test's thread below
            errors.append(exc)

    thread = threading.Thread(target=target, name="pyswoole-testing-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.ready.wait(0.05):  # bounded: the thread ends or the deadline passes
        if errors or not thread.is_alive() or time.monotonic() > deadline:
            break
    if errors:
        thread.join(timeout)
        raise errors[0]
    if not server.ready.is_set():
        server.shutdown()
        thread.join(timeout)
        raise AssertionError(f"the server did not start within {timeout} s")
    try:
        yield LiveServer(server, recorder)
    finally:
        server.shutdown()
        thread.join(timeout)
        if thread.is_alive():
            raise AssertionError(f"the server did not stop within {timeout} s")
        if errors:
            raise errors[0]


def _record(server: Server, recorder: _Recorder) -> None:
    """Wrap the adapted callbacks (what the server calls) of the server and of its other
    ports; the user's functions (``get_callback``) stay as registered."""
    main = server._listeners[0]
    server._callbacks.update(
        {name: recorder.wrap(name, main, cb) for name, cb in server._callbacks.items()}
    )
    for port in server._ports[1:]:
        listener = port._listener
        port._callbacks.update(
            {name: recorder.wrap(name, listener, cb) for name, cb in port._callbacks.items()}
        )


class LiveApp(_Clients):
    """An application running in a subprocess (what :func:`running_app` yields)."""

    def __init__(self, proc: subprocess.Popen[str], port: int, lines: queue.Queue[str]) -> None:
        self.proc = proc
        self.port = port
        self._lines = lines
        #: every line the process wrote so far (stdout and stderr merged), as read
        self.output: list[str] = []

    def wait_for_line(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """Read output lines until one matches the regular expression ``pattern`` (searched,
        not anchored); return the match. AssertionError after ``timeout`` seconds or if the
        process ends first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line == "":
                raise AssertionError(
                    f"the process ended ({self.proc.wait()}) before a line matching {pattern!r}"
                )
            self.output.append(line)
            found = regex.search(line)
            if found:
                return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = TIMEOUT) -> int:
        """Send ``sig`` and wait for the exit code; SIGKILL to the process group (its
        workers too) if it has not exited within ``timeout``."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        return self.proc.returncode


@contextlib.contextmanager
def running_app(
    app: str,
    *args: str,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Iterator[LiveApp]:
    """Run ``python -m pyswoole APP --host 127.0.0.1 --port 0 *args`` (``APP`` is
    ``module:attribute``, imported from ``cwd``) in a new session; yield a :class:`LiveApp`
    once the startup line names the port; stop it with SIGTERM after (SIGKILL to its process
    group if it hangs). ``env`` is added to this process's environment."""
    command = [sys.executable, "-m", "pyswoole", app, "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(
        [*command, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put("")  # the end

    threading.Thread(target=read, name="pyswoole-testing-output", daemon=True).start()
    live = LiveApp(proc, 0, lines)
    try:
        try:
            found = live.wait_for_line(r"pyswoole serving \w+://127\.0\.0\.1:(\d+)", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; output:\n{''.join(live.output)}") from None
        live.port = int(found.group(1))
        yield live
    finally:
        live.stop(timeout=timeout)
        if proc.stdout is not None:
            proc.stdout.close()
