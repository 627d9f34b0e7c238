"""F100k across processes (``bench/run.py --scale-procs N``): a pyswoole server with
``worker_num`` W (SWOOLE_BASE) and N receive-only wsload processes, so that no process holds
more sockets than a per-process file limit allows (20,000 on the development VM).

One run:

1. the server starts with ``--workers W --max-conn C --backlog B --stats`` (see
   bench/servers/pyswoole_server.py), pinned to the server core; the harness waits for a
   101, then samples the memory of its process tree (RSS and PSS, manager + workers);
2. N ``wsload fanout --receive-only --clock-monotonic`` processes start together (pinned
   to the client core), each with its share of the connections and its own ``-B`` source
   range (127.0.<i+1>.1-…); the harness waits for every ``ready`` line: **accept s** is
   from the first start to the last ``ready``;
3. memory is sampled again, with the sockets each server process holds (the spread of
   the accepts over the workers) and ``GET /stats`` (``len(server.connections)`` and one
   iteration over it, in the worker that took the request);
4. one more wsload, ``fanout --clock-monotonic -c 1 -r RATE``, is the only sender: each
   message it sends is broadcast by the worker that read it, to its own connections and,
   over the IPC, to every other worker's;
5. when the sender is done (and the last broadcast had time to arrive: DRAIN_PER_CONN) the
   receivers get SIGINT (by PID), close cleanly and print
   their JSON. Every receiver records, per broadcast (its CLOCK_MONOTONIC timestamp), the
   copies it got and the latest arrival; the harness merges them over the processes:
   **last arrival ms** of a broadcast = the max over the processes, **deliveries/s in a
   broadcast** = copies / that time. The table gives the median broadcast, and the
   slowest one's last arrival.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import queue
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness import BenchError
from harness.processes import (
    HOST,
    Server,
    cpu_seconds,
    descendants,
    last_line,
    pinned,
    tree_pids,
)
from harness.wsload import WSLOAD, pump

PER_ADDRESS = 2_000  # connections per -B source address (the port range gives ~28,000)
RECEIVER_SLACK = 60.0  # seconds on top of conns / READY_RATE for every receiver's "ready"
READY_RATE = 200.0  # connections/s assumed at worst while ramping (for the deadline only)
STOP_TIMEOUT = 60.0  # seconds for a receiver to close its connections after SIGINT
HOLD_S = 100_000  # receivers' -d: they run until the harness interrupts them
SETTLE = 0.5  # seconds between "all ready" and the memory sample
BACKLOG = 4096  # listen() backlog (net.core.somaxconn caps it)
STATS_TIMEOUT = 30.0  # seconds for GET /stats (iterating 100,000 fds)
# seconds between the sender's end and the receivers' SIGINT, so that the last broadcast
# (sent just before the sender closes) reaches everyone before 100,000 close handshakes
# compete with it: 0.5 s + 1 s per 25,000 connections (a broadcast took ~1 s per 100,000
# on one server core here), at most DRAIN_MAX
DRAIN_PER_CONN = 1 / 25_000
DRAIN_MAX = 5.0


@dataclass
class Memory:
    """KiB per server process: RSS (VmRSS) and PSS (smaps_rollup), and its open fds."""

    rss: dict[int, int] = field(default_factory=dict)
    pss: dict[int, int] = field(default_factory=dict)
    fds: dict[int, int] = field(default_factory=dict)

    @property
    def rss_kib(self) -> int:
        return sum(self.rss.values())

    @property
    def pss_kib(self) -> int:
        return sum(self.pss.values())


def status_kib(path: Path, key: str) -> int:
    """``key:`` of a /proc KiB listing (status, smaps_rollup); 0 if absent or gone."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def sample_memory(server: Server) -> Memory:
    """RSS, PSS and fd count of the server and every process it forked."""
    memory = Memory()
    for pid in tree_pids(server):
        proc = Path(f"/proc/{pid}")
        memory.rss[pid] = status_kib(proc / "status", "VmRSS:")
        memory.pss[pid] = status_kib(proc / "smaps_rollup", "Pss:")
        memory.fds[pid] = fd_count(pid)
    server.children.update(descendants(server.pid))
    return memory


def shares(conns: int, procs: int) -> list[tuple[int, str]]:
    """(connections, -B source range) per receiver process: the connections split evenly,
    process i binding 127.0.<i+1>.1 up to as many addresses as PER_ADDRESS needs."""
    base, extra = divmod(conns, procs)
    plan = []
    for i in range(procs):
        count = base + (1 if i < extra else 0)
        addresses = max(1, math.ceil(count / PER_ADDRESS))
        plan.append((count, f"127.0.{i + 1}.1-127.0.{i + 1}.{addresses}"))
    return plan


class Wsload:
    """One wsload process whose stdout lines arrive on a queue (``ready N``, the JSON)."""

    def __init__(self, args: list[str], cpu: int | None) -> None:
        self.errors: IO[bytes] = tempfile.TemporaryFile(prefix="bench-wsload-")  # noqa: SIM115
        self.process = subprocess.Popen(
            pinned([str(WSLOAD), *args, "-j", "-q"], cpu),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
        )
        assert self.process.stdout is not None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.ready: int | None = None
        self.ready_at = 0.0
        self.eof = False
        threading.Thread(target=pump, args=(self.process.stdout, self.lines), daemon=True).start()

    def poll(self, timeout: float) -> None:
        """Take the lines that arrived within ``timeout`` s (notes ``ready`` and EOF)."""
        try:
            line = self.lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return
        while line is not None:
            self.seen.append(line)
            if line.startswith("ready ") and self.ready is None:
                self.ready, self.ready_at = int(line.split()[1]), time.monotonic()
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return
        self.eof = True

    def wait_eof(self, deadline: float) -> None:
        while not self.eof and time.monotonic() < deadline:
            self.poll(min(0.25, deadline - time.monotonic()))

    def interrupt(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def report(self) -> dict[str, Any]:
        """The JSON line; BenchError with wsload's last stderr line if there is none."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        for line in reversed(self.seen):
            if line.startswith("{"):
                report: dict[str, Any] = json.loads(line)
                report["exit_code"] = self.process.returncode
                return report
        self.errors.seek(0)
        message = last_line(self.errors.read().decode("utf-8", "replace"))
        raise BenchError(f"wsload exit {self.process.returncode}: {message}")

    def stop(self) -> None:
        """Kill (by PID) if still running, and close the files."""
        if self.process.poll() is None:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        self.errors.close()


def server_stats(port: int) -> dict[str, Any]:
    """GET /stats from the bench server (``--stats``): {} if it does not answer."""
    connection = http.client.HTTPConnection(HOST, port, timeout=STATS_TIMEOUT)
    try:
        connection.request("GET", "/stats")
        body = connection.getresponse().read()
        stats: dict[str, Any] = json.loads(body)
        return stats
    except (OSError, ValueError, http.client.HTTPException):
        return {}
    finally:
        connection.close()


def merge_broadcasts(reports: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per broadcast (timestamp), over every process: copies and the latest arrival."""
    merged: dict[int, list[float]] = {}
    for report in reports:
        for ts, count, max_us in report.get("broadcasts", []):
            entry = merged.setdefault(int(ts), [0.0, 0.0])
            entry[0] += count
            entry[1] = max(entry[1], float(max_us))
    return [
        {"ts": ts, "copies": copies, "last_us": last}
        for ts, (copies, last) in sorted(merged.items())
    ]


@dataclass
class ScaleOutcome:
    """What one cross-process run measured (the caller turns it into table values)."""

    values: dict[str, float] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)  # goes to RunResult.wsload
    rss_before_kib: int = 0
    rss_held_kib: int = 0
    server_cpu_s: float | None = None


def measure_scale(
    server: Server,
    conns: int,
    procs: int,
    rate: int,
    size: int,
    warmup: float,
    duration: float,
    cpu: int | None,
    settle: Callable[[float], None] = time.sleep,
    busy_poll: bool = False,
) -> ScaleOutcome:
    """Steps 1-5 of the module docstring against a started, ready ``server``;
    ``busy_poll``: the receivers run with ``--busy-poll`` (bench/wsload/README.md)."""
    outcome = ScaleOutcome()
    url = f"ws://{HOST}:{server.port}/"
    settle(SETTLE)
    before = sample_memory(server)
    receivers: list[Wsload] = []
    sender: Wsload | None = None
    try:
        started = time.monotonic()
        for count, sources in shares(conns, procs):
            args = [
                *("fanout", "--receive-only", "--clock-monotonic"),
                *(("--busy-poll",) if busy_poll else ()),
                *("-c", str(count), "-B", sources, "-u", url),
                *("-d", str(HOLD_S), "-w", "0", "-T", "30"),
            ]
            receivers.append(Wsload(args, cpu))
        deadline = started + RECEIVER_SLACK + conns / READY_RATE
        while any(r.ready is None and not r.eof for r in receivers):
            if time.monotonic() > deadline:
                raise BenchError("receivers not ready in time")
            for receiver in receivers:
                if receiver.ready is None and not receiver.eof:
                    receiver.poll(0.05)
        if any(r.ready is None for r in receivers):
            failed = next(r for r in receivers if r.ready is None)
            failed.wait_eof(time.monotonic() + 5)
            raise BenchError(f"a receiver process ended early: {failed.report()}")
        accept_s = max(r.ready_at for r in receivers) - started
        settle(SETTLE)
        held = sample_memory(server)
        stats = server_stats(server.port)
        cpu_before = sum(cpu_seconds(pid) for pid in tree_pids(server))
        sender = Wsload(
            [
                *("fanout", "--clock-monotonic", "-c", "1", "-u", url),
                *("-r", str(rate), "-s", str(size)),
                *("-d", str(duration), "-w", str(warmup), "-T", "30"),
            ],
            cpu,
        )
        sender.wait_eof(time.monotonic() + warmup + duration + RECEIVER_SLACK)
        cpu_after = sum(cpu_seconds(pid) for pid in tree_pids(server))
        sent = sender.report()
        settle(min(DRAIN_MAX, 0.5 + conns * DRAIN_PER_CONN))
        for receiver in receivers:
            receiver.interrupt()
        stop_by = time.monotonic() + STOP_TIMEOUT
        for receiver in receivers:
            receiver.wait_eof(stop_by)
        reports = [r.report() for r in receivers]
    finally:
        for process in [*receivers, *([sender] if sender else [])]:
            process.stop()
    broadcasts = merge_broadcasts([*reports, sent])
    summarise(outcome, before, held, reports, sent, broadcasts, accept_s, stats)
    outcome.server_cpu_s = cpu_after - cpu_before
    deliveries = sum(b["copies"] for b in broadcasts)
    if deliveries > 0 and outcome.server_cpu_s > 0:
        outcome.values["server_cpu_us"] = outcome.server_cpu_s / deliveries * 1e6
    return outcome


def summarise(
    outcome: ScaleOutcome,
    before: Memory,
    held: Memory,
    reports: list[dict[str, Any]],
    sent: dict[str, Any],
    broadcasts: list[dict[str, float]],
    accept_s: float,
    stats: dict[str, Any],
) -> None:
    """Fill ``outcome`` from the samples and the wsload reports."""
    established = sum(int(r.get("established", 0)) for r in reports)
    established += max(0, int(sent.get("established", 0)) - 1)  # the sender's receiver
    if established <= 0:
        raise BenchError("no connection was established")
    per_worker = {
        pid: held.fds[pid] - before.fds.get(pid, 0) for pid in held.fds if pid in before.fds
    }
    workers = [n for n in per_worker.values() if n > 0]
    values = outcome.values
    values["established"] = established
    values["accept_s"] = accept_s
    values["kib_per_conn"] = (held.rss_kib - before.rss_kib) / established
    values["pss_kib_per_conn"] = (held.pss_kib - before.pss_kib) / established
    if workers:
        values["worker_conns_min"] = min(workers)
        values["worker_conns_max"] = max(workers)
    # every receiver, allowing for the sender's own receiver, whose process may end before
    # the last broadcast arrives (the receive-only processes run until interrupted)
    complete = [b for b in broadcasts if b["copies"] >= established - 1 and b["last_us"] > 0]
    if complete:
        lasts = [b["last_us"] / 1000 for b in complete]
        values["last_arrival_ms"] = statistics.median(lasts)
        values["last_arrival_max_ms"] = max(lasts)
        values["broadcast_deliveries_per_s"] = statistics.median(
            b["copies"] / (b["last_us"] / 1e6) for b in complete
        )
    values["broadcasts_complete"] = len(complete)
    if stats:
        values["server_connections"] = float(stats.get("connections", 0))
        values["iter_ms"] = float(stats.get("iter_s", 0.0)) * 1000
    outcome.rss_before_kib, outcome.rss_held_kib = before.rss_kib, held.rss_kib
    errors: dict[str, int] = {}
    for report in [*reports, sent]:
        for name, value in report.items():
            if name.startswith("err_") and isinstance(value, int) and value:
                errors[name] = errors.get(name, 0) + value
    outcome.detail = {
        "mode": "scale-procs",
        "cpu_pct": sum(float(r.get("cpu_pct", 0.0)) for r in reports),
        **errors,
        "broadcasts": broadcasts,
        "broadcasts_seen": len(broadcasts),
        "server_stats": stats,
        "memory_before": {"rss": before.rss, "pss": before.pss, "fds": before.fds},
        "memory_held": {"rss": held.rss, "pss": held.pss, "fds": held.fds},
        "conns_per_process": per_worker,
        # RSS / PSS growth over the sockets each worker took (the manager holds none)
        "kib_per_conn_per_process": {
            pid: {
                "rss": round((held.rss[pid] - before.rss.get(pid, 0)) / n, 3),
                "pss": round((held.pss[pid] - before.pss.get(pid, 0)) / n, 3),
            }
            for pid, n in per_worker.items()
            if n > 0
        },
        "receivers": [strip(r) for r in reports],
        "sender": strip(sent),
    }


def strip(report: dict[str, Any]) -> dict[str, Any]:
    """A wsload report without its per-broadcast list (merged into ``broadcasts``)."""
    return {k: v for k, v in report.items() if k != "broadcasts"}
