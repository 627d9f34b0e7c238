"""A multi-process test server as a subprocess, and WebSocket clients for it.

Shared by ``test_processes.py`` (SWOOLE_BASE) and ``test_process_mode.py`` (SWOOLE_PROCESS):
the program runs in a new session (it forks; the pytest process never does), its stdout is a
stream of event lines (``READY``, ``workerStart``, ``close`` ...) read by a thread, and tests
wait for lines instead of sleeping. Teardown: SIGTERM, a bounded wait, then SIGKILL to the
process group the test created. Clients sort JSON replies from other messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import ROOT

START_TIMEOUT = 15.0
REPLY_TIMEOUT = 10.0
EVENT_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0


class LineReader:
    """The lines of a subprocess's stream, collected by a thread, waited for by pattern."""

    def _collect(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _context(self) -> str:
        """More to say when a line does not come (the program's stderr...)."""
        return ""

    def mark(self) -> int:
        """The index of the next line: wait for lines after this point."""
        with self._cond:
            return len(self.lines)

    def _find(self, pattern: str, timeout: float, start: int) -> re.Match[str]:
        """The first line at index >= ``start`` matching ``pattern`` (whole line), waiting
        at most ``timeout`` seconds; AssertionError if it does not come."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            index = start
            while True:
                while index < len(self.lines):
                    match = regex.fullmatch(self.lines[index])
                    if match:
                        return match
                    index += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._eof:
                    tail = self.lines[start:][-30:]
                    raise AssertionError(
                        f"no line matching {pattern!r} within {timeout} s "
                        f"(stream closed: {self._eof}); lines since the mark: {tail}"
                        f"{self._context()}"
                    )
                self._cond.wait(remaining)


class ServerProcess(LineReader):
    """A test server program in its own session; its stdout lines collected by a thread."""

    def __init__(self, program: Path, tmp_path: Path, *args: str) -> None:
        self.tmp_path = tmp_path
        self.stderr_path = tmp_path / f"stderr-{uuid.uuid4().hex[:8]}.txt"
        with self.stderr_path.open("w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, str(program), "--port", "0", *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=ROOT,
                start_new_session=True,
            )
        self.pgid = self.proc.pid  # start_new_session: the program leads its own group
        assert self.proc.stdout is not None
        self._collect(self.proc.stdout)
        self.port = 0
        self.manager_pid = 0

    def _context(self) -> str:
        return f"; stderr: {self.stderr()[-2000:]}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_line(self, pattern: str, timeout: float, start: int = 0) -> re.Match[str]:
        """The first line at index >= ``start`` matching ``pattern`` (whole line)."""
        return self._find(pattern, timeout, start)

    async def expect(self, pattern: str, timeout: float = EVENT_TIMEOUT, start: int = 0) -> Any:
        """``wait_line`` without blocking the event loop (clients keep being served)."""
        return await asyncio.to_thread(self.wait_line, pattern, timeout, start)

    def matching(self, pattern: str, start: int = 0) -> list[re.Match[str]]:
        regex = re.compile(pattern)
        with self._cond:
            found = [regex.fullmatch(line) for line in self.lines[start:]]
        return [m for m in found if m]

    def pids(self) -> dict[int, int]:
        """process id -> pid of its latest workerStart."""
        return {int(m[1]): int(m[2]) for m in self.matching(r"workerStart (\d+) (\d+) \w+")}

    def wait_ready(self, process_count: int, manager_line: bool = False) -> None:
        """``READY <port>``, (``managerStart <pid>``,) then every process's workerStart."""
        self.port = int(self.wait_line(r"READY (\d+)", START_TIMEOUT)[1])
        if manager_line:
            self.manager_pid = int(self.wait_line(r"managerStart (\d+)", START_TIMEOUT)[1])
        for process_id in range(process_count):
            self.wait_line(rf"workerStart {process_id} \d+ \w+", START_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM the program, wait (bounded), then SIGKILL whatever is left of the group."""
        try:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(STOP_TIMEOUT)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signal.SIGKILL)
            if self.proc.poll() is None:
                self.proc.wait(STOP_TIMEOUT)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_gone(pids: list[int], timeout: float = EVENT_TIMEOUT) -> list[int]:
    """Poll (no event exists for another process's child exiting) until the pids are gone;
    returns those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if pid_alive(pid)]
    while alive and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # polling interval, not an ordering assumption
        alive = [pid for pid in alive if pid_alive(pid)]
    return alive


class Disconnected(Exception):
    """The connection closed while a reply or message was awaited."""


class Progress:
    """Replies counted per client, with a way to wait for a condition on the clients that
    wakes at every reply instead of polling."""

    def __init__(self) -> None:
        self.count: Counter[Client] = Counter()
        self._changed = asyncio.Event()

    def advance(self, client: Client | None = None) -> None:
        if client is not None:
            self.count[client] += 1
        self._changed.set()

    async def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self._changed.clear()
            remaining = deadline - time.monotonic()
            counts = f": {dict(self.count)}" if self.count else ""
            assert remaining > 0, f"timed out waiting for {what}{counts}"
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


class Client:
    """A WebSocket client whose reader task sorts JSON replies from other messages."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.replies: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.messages: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())
        self.worker = -1
        self.pid = 0
        self.fd = 0

    @classmethod
    async def connect(cls, port: int, path: str = "/", **headers: str) -> Client:
        ws = await websockets.connect(
            f"ws://127.0.0.1:{port}{path}",
            ping_interval=None,
            open_timeout=REPLY_TIMEOUT,
            close_timeout=5,
            compression=None,
            additional_headers=headers or None,
        )
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                text = message if isinstance(message, str) else message.decode()
                if text.startswith("{"):
                    self.replies.put_nowait(json.loads(text))
                else:
                    self.messages.put_nowait(text)
        except ConnectionClosed:
            pass
        finally:
            self.replies.put_nowait(None)
            self.messages.put_nowait(None)
            self.closed.set()

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code  # type: ignore[no-any-return]

    @property
    def local_port(self) -> int:
        return int(self.ws.transport.get_extra_info("sockname")[1])

    async def send(self, text: str) -> None:
        try:
            await self.ws.send(text)
        except ConnectionClosed as exc:
            raise Disconnected(f"fd {self.fd}: {exc}") from exc

    async def reply(self, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        got = await asyncio.wait_for(self.replies.get(), timeout)
        if got is None:
            self.replies.put_nowait(None)
            raise Disconnected(f"fd {self.fd} closed with code {self.close_code}")
        return got

    async def message(self, timeout: float = REPLY_TIMEOUT) -> str:
        got = await asyncio.wait_for(self.messages.get(), timeout)
        if got is None:
            self.messages.put_nowait(None)
            raise Disconnected(f"fd {self.fd} closed with code {self.close_code}")
        return got

    async def request(self, text: str, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        await self.send(text)
        answer = await self.reply(timeout)
        command = text.partition(":")[0]
        assert answer.get("re") == command, f"fd {self.fd}: {text!r} got {answer}"
        return answer

    async def echo(self, text: str, timeout: float = REPLY_TIMEOUT) -> None:
        await self.send(f"e:{text}")
        got = await self.message(timeout)
        assert got == f"e:{text}", f"fd {self.fd}: echo of {text!r} came back as {got!r}"

    async def identify(self) -> Client:
        who = await self.request("whoami")
        self.worker, self.pid, self.fd = who["worker"], who["pid"], who["fd"]
        return self

    async def wait_closed(self, timeout: float = EVENT_TIMEOUT) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.reader, 5)

    def __repr__(self) -> str:
        return f"<Client fd={self.fd} worker={self.worker} pid={self.pid}>"


@contextlib.asynccontextmanager
async def client_pool() -> AsyncIterator[list[Client]]:
    """Clients a test opened; closed (bounded) when it ends."""
    pool: list[Client] = []
    try:
        yield pool
    finally:
        try:
            await asyncio.wait_for(asyncio.gather(*(c.close() for c in pool)), 15)
        except asyncio.TimeoutError:
            for c in pool:
                c.ws.transport.abort()
                c.reader.cancel()


async def connect(server: ServerProcess, pool: list[Client]) -> Client:
    client = await Client.connect(server.port)
    pool.append(client)
    return await client.identify()


async def connect_many(server: ServerProcess, pool: list[Client], n: int) -> list[Client]:
    return list(await asyncio.gather(*(connect(server, pool) for _ in range(n))))


def fd_list(clients: list[Client]) -> str:
    return ",".join(str(c.fd) for c in clients)


@contextlib.asynccontextmanager
async def started(
    program: Path, tmp_path: Path, *args: str, processes: int, manager_line: bool = False
) -> AsyncIterator[ServerProcess]:
    """Run ``program`` with ``args``; yield once ``processes`` processes have started; stop
    it (bounded) afterwards."""
    server = ServerProcess(program, tmp_path, *args)
    try:
        await asyncio.to_thread(server.wait_ready, processes, manager_line)
        yield server
    finally:
        await asyncio.to_thread(server.stop)


def option(args: tuple[str, ...], name: str, default: str) -> str:
    """The value of ``name`` in a program's command line, else ``default``."""
    return args[args.index(name) + 1] if name in args else default
