"""Server processes: spawn pinned to a core, wait until they answer a WebSocket upgrade,
read the RSS of their process tree, stop them by PID.

Every wait here is bounded. Only processes this harness spawned are signalled, by PID.
"""

from __future__ import annotations

import base64
import contextlib
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from harness import BenchError

HOST = "127.0.0.1"
READY_TIMEOUT = 20.0  # seconds for a server to import, bind and answer its first upgrade
STOP_GRACE = 3.0  # seconds between SIGTERM and SIGKILL
PROBE_TIMEOUT = 2.0  # seconds for one readiness probe


def raise_nofile_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pick_cpus() -> tuple[int, int] | None:
    """(server core, client core): the first two cores we may use, or None if fewer."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return None
    return cpus[0], cpus[1]


def pinned(cmd: Sequence[str], cpu: int | None) -> list[str]:
    """``cmd`` run through ``taskset -c CPU`` (which execs it: the PID stays the same)."""
    return list(cmd) if cpu is None else ["taskset", "-c", str(cpu), *cmd]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A spawned server: its process, its port, and its combined stdout/stderr log."""

    process: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]
    children: dict[int, str] = field(default_factory=dict)  # pid -> start time (/proc stat)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 5, limit: int = 1000) -> str:
        """The last lines the server printed (for error cells and the JSON file)."""
        self.log.flush()
        size = self.log.seek(0, os.SEEK_END)
        self.log.seek(max(0, size - 16384))
        text = self.log.read().decode("utf-8", "replace")
        return "\n".join(text.strip().splitlines()[-lines:])[-limit:]

    def log_size(self) -> int:
        return self.log.seek(0, os.SEEK_END)


def spawn_server(cmd: Sequence[str], port: int, env: dict[str, str], cpu: int | None) -> Server:
    """Start a server; its output goes to an anonymous temporary file."""
    log = tempfile.TemporaryFile(prefix="bench-server-")  # noqa: SIM115 - closed by stop_server
    try:
        process = subprocess.Popen(
            pinned(cmd, cpu),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    except OSError:
        log.close()
        raise
    return Server(process, port, log)


def wait_ready(
    server: Server, timeout: float = READY_TIMEOUT, context: ssl.SSLContext | None = None
) -> None:
    """Return once the server answers an upgrade with 101 (through TLS with ``context``);
    raise BenchError otherwise."""
    over = " over TLS" if context is not None else ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            raise BenchError(f"server exited ({code}): {last_line(server.log_tail())}")
        try:
            status = probe(server.port, context)
        except OSError:  # ssl.SSLError is an OSError
            time.sleep(0.05)
            continue
        if not status.startswith("HTTP/1.1 101"):
            raise BenchError(f"upgrade{over} refused: {status[:60] or 'no answer'}")
        return
    raise BenchError(f"no 101{over} on port {server.port} within {timeout:.0f} s")


def probe(port: int, context: ssl.SSLContext | None = None) -> str:
    """One WebSocket upgrade and close handshake (through TLS with ``context``); the status
    line the server answered."""
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection((HOST, port), timeout=PROBE_TIMEOUT))
        if context is not None:
            sock = stack.enter_context(context.wrap_socket(sock, server_hostname=HOST))
        key = base64.b64encode(os.urandom(16))
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (HOST.encode(), port, key)
        )
        head = read_until(sock, b"\r\n\r\n", 16384)
        status = head.split(b"\r\n", 1)[0].decode("latin-1")
        if status.startswith("HTTP/1.1 101"):
            close_politely(sock)
        return status


def read_until(sock: socket.socket, marker: bytes, limit: int) -> bytes:
    """Read until ``marker``, EOF or ``limit`` bytes (the socket's timeout bounds each read)."""
    data = b""
    while marker not in data and len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def close_politely(sock: socket.socket) -> None:
    """Send a masked close frame (code 1000) and wait briefly for the server's answer."""
    mask = os.urandom(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate((1000).to_bytes(2, "big")))
    sock.sendall(b"\x88\x82" + mask + payload)
    with contextlib.suppress(OSError):
        read_until(sock, b"\x88", 64)


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1].strip() if lines else "no output"


def proc_stats() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) for every process in /proc."""
    stats: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        stats[int(entry.name)] = (int(fields[1]), fields[19])  # ppid, starttime
    return stats


def descendants(pid: int) -> dict[int, str]:
    """All live descendants of ``pid`` with their start times (to recognise them later)."""
    stats = proc_stats()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, (parent, _) in stats.items() if parent in frontier} - found
        found |= frontier
    return {child: stats[child][1] for child in found}


def rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB (0 if it is gone or has no RSS line)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(server: Server) -> int:
    """RSS of the server and every process it forked, summed (KiB)."""
    current = descendants(server.pid)
    server.children.update(current)
    return rss_kib(server.pid) + sum(rss_kib(child) for child in current)


def stop_server(server: Server) -> None:
    """SIGTERM, then SIGKILL after STOP_GRACE; then SIGKILL to any child it left behind."""
    server.children.update(descendants(server.pid))
    try:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(STOP_GRACE)
    finally:
        kill_leftovers(server.children)
        server.log.close()


def kill_leftovers(children: dict[int, str]) -> None:
    """SIGKILL the children we saw that still run: same PID *and* same start time."""
    alive = proc_stats()
    for pid, started in children.items():
        if pid in alive and alive[pid][1] == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def run_delays(pid: int) -> dict[int, int]:
    """Per thread of ``pid``: nanoseconds it spent runnable but waiting for a CPU.

    The second field of /proc/<pid>/task/<tid>/schedstat. On a core pinned for one process,
    this grows only when something else runs there: the direct measure of interference.
    """
    delays: dict[int, int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return delays
    for tid in tids:
        try:
            delays[int(tid)] = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return delays


@dataclass
class WaitMeter:
    """CPU wait (run delay) of a set of processes between ``start`` and the last ``sample``.

    Threads first seen after ``start`` count from zero, so a meter never started measures
    a process from its birth (wsload). Sample a short-lived process while it still runs.
    """

    base: dict[tuple[int, int], int] = field(default_factory=dict)
    last: dict[tuple[int, int], int] = field(default_factory=dict)

    def start(self, pids: Iterable[int]) -> None:
        for pid in pids:
            for tid, delay in run_delays(pid).items():
                self.base[pid, tid] = self.last[pid, tid] = delay

    def sample(self, pids: Iterable[int]) -> None:
        for pid in pids:
            for tid, delay in run_delays(pid).items():
                self.last[pid, tid] = delay

    def seconds(self) -> float:
        return sum(v - self.base.get(k, 0) for k, v in self.last.items()) / 1e9


def tree_pids(server: Server) -> list[int]:
    return [server.pid, *descendants(server.pid)]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds one process has used (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


class CpuWindow:
    """The server's CPU seconds (user + system, its whole process tree) over wsload's
    measured window, which begins ``warmup`` seconds after wsload starts (or after its
    ``ready`` line, in the modes that print one) and lasts ``duration`` seconds.

    Two timers read /proc at the window's ends; ``seconds`` is None if either was missed.
    The resolution is one clock tick (10 ms) per end, under 1% of a 2 s window at full load.
    """

    def __init__(self, server: Server, warmup: float, duration: float) -> None:
        self.server = server
        self.warmup = warmup
        self.duration = duration
        self.samples: dict[str, float] = {}
        self.timers: list[threading.Timer] = []

    def arm(self) -> None:
        """(Re)start the window: it begins ``warmup`` seconds from now."""
        self.cancel()
        self.samples.clear()
        self.timers = [
            threading.Timer(self.warmup, self._sample, ("start",)),
            threading.Timer(self.warmup + self.duration, self._sample, ("end",)),
        ]
        for timer in self.timers:
            timer.daemon = True
            timer.start()

    def cancel(self) -> None:
        for timer in self.timers:
            timer.cancel()

    def finish(self, grace: float = 2.0) -> None:
        """After wsload exited: let a late end sample happen (bounded), then stop."""
        for timer in self.timers:
            timer.join(grace)
        self.cancel()

    def _sample(self, end: str) -> None:
        self.samples[end] = sum(cpu_seconds(pid) for pid in tree_pids(self.server))

    @property
    def seconds(self) -> float | None:
        if "start" not in self.samples or "end" not in self.samples:
            return None
        return self.samples["end"] - self.samples["start"]
