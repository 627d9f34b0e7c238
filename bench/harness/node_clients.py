"""What ``bench/cluster_bench.py`` drives besides the servers: the Node load client
(``bench/servers/socketio/client.js``, JSON lines over stdin/stdout), a throwaway
``redis-server``, the npm install of the Socket.IO contender, CPU samples of process groups
at the two ends of a measured window, and the latency histogram the clients report.

Every wait is bounded; only processes started here are signalled, by PID.
"""

from __future__ import annotations

import json
import math
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from harness import BenchError
from harness.processes import (
    Server,
    cpu_seconds,
    free_port,
    last_line,
    spawn_server,
    stop_server,
    tree_pids,
)

BENCH = Path(__file__).resolve().parent.parent
SOCKETIO = BENCH / "servers" / "socketio"
CLIENT_JS = SOCKETIO / "client.js"
NPM_TIMEOUT = 300.0
BUCKET_BASE = 1.01  # the clients' histogram: bucket b holds latencies in [1.01^b, 1.01^(b+1)) µs


class NodeClient:
    """One ``node client.js`` process: commands go to its stdin, events come from stdout."""

    def __init__(self, args: Sequence[str], name: str) -> None:
        self.name = name
        self.log: IO[bytes] = tempfile.TemporaryFile(prefix="bench-node-")  # noqa: SIM115
        self.process = subprocess.Popen(
            ["node", str(CLIENT_JS), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=SOCKETIO,
        )
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"event": "error", "error": f"bad line: {line[:200]!r}"})
        self.events.put(None)  # end of output

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        except OSError as exc:
            raise BenchError(f"{self.name}: {exc}; {self.stderr_tail()}") from exc

    def wait(self, event: str, timeout: float) -> dict[str, Any]:
        """The next event named ``event``; BenchError on an error event, exit or timeout."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                got = self.events.get(timeout=remaining)
            except queue.Empty:
                break
            if got is None:
                raise BenchError(f"{self.name} exited: {self.stderr_tail()}")
            if got.get("event") == "error":
                raise BenchError(f"{self.name}: {got.get('error')}")
            if got.get("event") == event:
                return got
        raise BenchError(f"{self.name}: no '{event}' within {timeout:.0f} s")

    def stderr_tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return last_line(self.log.read()[-4000:].decode("utf-8", "replace"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self.log.close()


def wait_all(clients: Iterable[NodeClient], event: str, timeout: float) -> list[dict[str, Any]]:
    """``event`` from every client, within ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    return [c.wait(event, max(0.01, deadline - time.monotonic())) for c in clients]


def node_available() -> str | None:
    """None if ``node`` runs here, else why not."""
    if shutil.which("node") is None:
        return "node is not installed"
    return None


def npm_install() -> str | None:
    """``npm ci`` into bench/servers/socketio/ (skipped while node_modules matches the lock).

    None when the Socket.IO contender is ready, else the reason it is not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm are not installed"
    lock = SOCKETIO / "package-lock.json"
    stamp = SOCKETIO / "node_modules" / ".bench-lock"
    wanted = lock.read_text()
    if stamp.exists() and stamp.read_text() == wanted:
        return None
    try:
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=SOCKETIO,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"npm ci failed: {exc}"
    if done.returncode != 0:
        return f"npm ci failed: {last_line(done.stderr)}"
    stamp.write_text(wanted)
    return None


def npm_versions() -> dict[str, str]:
    """Versions of node and of the Socket.IO contender's packages as installed."""
    try:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found: dict[str, str] = {"node": node.stdout.strip()}
    for name in ("socket.io", "@socket.io/redis-adapter", "redis", "socket.io-client", "ws"):
        try:
            meta = json.loads((SOCKETIO / "node_modules" / name / "package.json").read_text())
            found[name] = str(meta["version"])
        except (OSError, ValueError, KeyError):
            pass
    return found


# -- redis-server ---------------------------------------------------------------------------


def start_redis(cpu: int | None = None) -> Server:
    """A ``redis-server`` on a free port of 127.0.0.1, no persistence; waits until ready."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is not installed (Debian's redis-server package)")
    port = free_port()
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    cmd += ["--dir", tempfile.gettempdir()]  # (no file is written; if one were, not here)
    server = spawn_server(cmd, port, dict(os.environ), cpu)
    wait_output(server, "Ready to accept connections", 10.0)
    return server


def wait_output(server: Server, text: str, timeout: float) -> None:
    """Until ``text`` shows in the server's output; BenchError if it exits or time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.log.flush()
        server.log.seek(0)
        if text.encode() in server.log.read():
            return
        code = server.process.poll()
        if code is not None:
            raise BenchError(f"exited ({code}): {last_line(server.log_tail())}")
        time.sleep(0.05)
    stop_server(server)
    raise BenchError(f"no '{text}' within {timeout:.0f} s: {last_line(server.log_tail())}")


# -- CPU of process groups over a window ---------------------------------------------------


class GroupCpu:
    """CPU seconds (user + system) per named group of processes between ``mark('start')``
    and ``mark('end')``; a group is a callable that lists its PIDs at that moment."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.samples: dict[str, dict[str, float]] = {}

    def mark(self, end: str) -> None:
        self.samples[end] = {
            name: sum(cpu_seconds(pid) for pid in pids()) for name, pids in self.groups.items()
        }

    def at(self, delay: float, end: str) -> threading.Timer:
        timer = threading.Timer(delay, self.mark, (end,))
        timer.daemon = True
        timer.start()
        return timer

    def seconds(self) -> dict[str, float]:
        start, end = self.samples.get("start"), self.samples.get("end")
        if start is None or end is None:
            return {}
        return {name: end[name] - start[name] for name in self.groups}


def server_tree(server: Server) -> Callable[[], list[int]]:
    return lambda: tree_pids(server)


def client_pids(clients: Sequence[NodeClient]) -> Callable[[], list[int]]:
    return lambda: [c.process.pid for c in clients]


# -- latency histogram ---------------------------------------------------------------------


def merge_hists(hists: Iterable[dict[str, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for hist in hists:
        for bucket, count in hist.items():
            merged[int(bucket)] = merged.get(int(bucket), 0) + int(count)
    return merged


def percentile_ms(hist: dict[int, int], q: float) -> float | None:
    """The ``q`` quantile (0..1) in ms: the upper edge of the bucket that holds it (≤ 1 %
    above the true value); None for an empty histogram."""
    total = sum(hist.values())
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return float(BUCKET_BASE ** (bucket + 1) / 1000.0)
    return None
