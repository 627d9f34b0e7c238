"""Hostile clients: how well each server serves its other clients while one client attacks it.

Run with the project's interpreter (a benchmark, not a pass/fail test: the pass/fail
versions of these attacks are tests/integration/test_flow_control.py)::

    .venv/bin/python bench/hostile.py                       # 7 contenders x 4 attacks (~7 min)
    .venv/bin/python bench/hostile.py --smoke               # seconds: pyswoole only, tiny sizes
    .venv/bin/python bench/hostile.py --servers pyswoole,picows --attacks flood,ping

For each attack and contender, a fresh server starts pinned to CPU 0 exactly as
``bench/run.py`` starts it (``bench/harness``); the clients run on CPU 1, each role in its
own process (``bench/harness/attacks.py``). Attacks:

* ``flood``: one client sends 1 MiB binary messages as fast as the kernel takes them and
  never reads (the server echoes each one back);
* ``ping``: the same with 125-byte pings, never reading the pongs;
* ``http``: ``GET /http`` requests pipelined, never reading the answers (only servers that
  serve HTTP on the WebSocket port: pyswoole and aiohttp; "n/a" for the others);
* ``broadcast``: 10,000 receivers, of which 100 never read, and one sender at a fixed rate
  whose every message the server broadcasts to every connection (the servers' ``--fanout``).

During a fixed window (``--duration``, the attack running all along) it measures the
server's RSS growth over its idle RSS (peak and end, all its processes), its CPU, what the
attacker achieved (bytes the server accepted from it, whether the flood stalled, whether and
how the server closed it) and the service to the others: 10 clients doing one echo round
trip every 10 ms each on a fixed schedule (p50/p99/max latency, lost and late echoes), or,
for ``broadcast``, the delivery latency to a sample of healthy receivers and whether every
healthy receiver got every message. Prints one markdown table per attack (stdout; progress
on stderr) and writes the raw numbers to ``bench/results/hostile-<timestamp>.json``.
See bench/README.md, "Hostile clients". Exit code: 0 if every run produced its numbers,
1 if some failed (their cells say why), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness import BenchError
from harness.cli import csv_list
from harness.contenders import (
    BENCH,
    CONTENDERS,
    REPO,
    Contender,
    local_python,
    peers_python,
    server_command,
    server_env,
    versions,
)
from harness.processes import (
    CLOCK_TICKS,
    Server,
    WaitMeter,
    cpu_seconds,
    free_port,
    pick_cpus,
    pinned,
    raise_nofile_limit,
    rss_kib,
    spawn_server,
    stop_server,
    tree_pids,
    wait_ready,
)

ATTACKS_SCRIPT = BENCH / "harness" / "attacks.py"
SETTLE = 0.3  # seconds between the clients' "ready" and the idle RSS sample
GO_LEAD = 0.2  # seconds between "go" and the window's start
SAMPLE_EVERY = 0.1  # seconds between RSS samples in the window
TREE_EVERY = 1.0  # seconds between scans for the server's child processes
READY_TIMEOUT = 60.0  # seconds for a client process to connect (fleet: + 1 s per 500 conns)
RESULT_SLACK = 30.0  # seconds on top of grace + drain for a client's report
CLIENT_BOUND_PCT = 90.0  # a client process's CPU (% of its core) from which it may be the limit
LAG_BOUND_MS = 5.0  # the latency clients' p99 lateness on their own schedule that marks them
NOISY_PCT = 10.0  # % of a core other processes used during the window: noisy
PF_KTHREAD = 0x00200000  # /proc/<pid>/stat flags: a kernel thread
QUIET_WAIT = 120.0  # seconds to wait for a quiet machine before repeating a noisy run
BUSY_LOADAVG = 0.5
LOG_PROBLEMS = ("Traceback", "ERROR", "CRITICAL", "Exception", "exception")
HTTP_SCRIPTS = ("pyswoole_server.py", "aiohttp_server.py")  # serve GET /http with --http
BATCHES = 10  # broadcast: the fleet and the sample connect in this many turns each
MiB = 1024 * 1024


@dataclass(frozen=True)
class Row:
    """A table row: a contender from bench/harness/contenders.py, compression on or off."""

    label: str
    contender: str
    compression: bool = False


ROWS: dict[str, Row] = {
    r.label: r
    for r in (
        Row("pyswoole", "pyswoole"),
        Row("pyswoole-py", "pyswoole-py"),
        Row("pyswoole-w2", "pyswoole-w2"),
        Row("pyswoole+deflate", "pyswoole", True),
        Row("websockets", "websockets"),
        Row("aiohttp", "aiohttp"),
        Row("picows", "picows"),
    )
}


@dataclass(frozen=True)
class Attack:
    key: str
    title: str
    http: bool = False  # needs the server's HTTP route
    fanout: bool = False  # the server runs with --fanout


ATTACKS: dict[str, Attack] = {
    a.key: a
    for a in (
        Attack("flood", "1 MiB binary messages as fast as the kernel takes them, never reading"),
        Attack("ping", "125-byte pings as fast as the kernel takes them, never reading"),
        Attack("http", "GET requests pipelined, never reading the answers", http=True),
        Attack("broadcast", "broadcast to receivers of which some never read", fanout=True),
    )
}


@dataclass
class Settings:
    rows: list[Row]
    attacks: list[Attack]
    duration: float
    grace: float
    drain: float
    rss_cap_mib: float
    noisy_retries: int
    clients: int
    interval: float
    receivers: int
    stuck: int
    prefill_mib: float
    sample: int
    rate: float
    size: int
    json_path: Path
    cpus: tuple[int, int] | None
    smoke: bool


@dataclass
class RunRecord:
    """One (row, attack): everything measured, as saved in the JSON file."""

    row: str
    attack: str
    error: str = ""
    skipped: str = ""  # "n/a" when the attack does not apply to this server
    rss_base_kib: int | None = None  # broadcast: stuck receivers and sender connected
    rss_prefilled_kib: int | None = None  # broadcast: ... and the stuck ones filled
    rss_idle_kib: int | None = None  # clients connected, before the window
    rss_peak_kib: int | None = None
    rss_end_kib: int | None = None
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    capped_at_s: float | None = None  # the RSS cap stopped the attack
    server_cpu_s: float | None = None
    client_cpu_pct: dict[str, float] = field(default_factory=dict)
    cpu_wait_pct: dict[str, float] = field(default_factory=dict)  # runnable, CPU taken
    others_cpu_pct: float | None = None  # other processes' CPU in the window (% of a core)
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    server_log_tail: str = ""
    log_problems: list[str] = field(default_factory=list)  # until the window's end
    log_problems_after: list[str] = field(default_factory=list)  # as the clients left
    log_window_bytes: int | None = None  # the server's output until the window's end
    server_exit: int | None = None
    seconds: float = 0.0
    discarded: str = ""  # why the tables leave it out (it stays in the JSON)

    @property
    def ok(self) -> bool:
        return not self.error and not self.skipped


@dataclass
class Context:
    settings: Settings
    peers: str | None = None
    peers_error: str = ""


# -- client processes --------------------------------------------------------------------------


class ClientProc:
    """One role of bench/harness/attacks.py in its own process, pinned to the client core:
    lines from its stdout through a reader thread; ``go``/``stop`` to its stdin."""

    def __init__(self, name: str, args: Sequence[str], cpu: int | None) -> None:
        self.name = name
        self.errors: IO[bytes] = tempfile.TemporaryFile(prefix="bench-hostile-")  # noqa: SIM115
        cmd = [local_python(), str(ATTACKS_SCRIPT), *args]
        self.process = subprocess.Popen(
            pinned(cmd, cpu),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self.pump, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def next_line(self, deadline: float) -> str:
        """The next stdout line; BenchError at EOF or at ``deadline``."""
        remaining = deadline - time.monotonic()
        try:
            line = self.lines.get(timeout=max(0.0, remaining))
        except queue.Empty:
            raise BenchError(f"{self.name}: no answer in time") from None
        if line is None:
            self.lines.put(None)  # stays at EOF
            raise BenchError(f"{self.name} exited: {self.stderr_tail()}")
        return line

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(deadline)
            if line == "ready":
                return
            if line.startswith("{"):
                raise BenchError(f"{self.name}: {json.loads(line).get('error', line)}")

    def send(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.process.stdin is not None
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()

    def result(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(deadline)
            if line.startswith("{"):
                found: dict[str, Any] = json.loads(line)
                return found

    def stderr_tail(self) -> str:
        self.errors.seek(0)
        text = self.errors.read().decode("utf-8", "replace").strip()
        return text.splitlines()[-1][-300:] if text else "no output"

    def close(self) -> None:
        """Close its stdin (it stops), wait a little, then kill it by PID."""
        with contextlib.suppress(OSError, ValueError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(5.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5.0)
        self.errors.close()


# -- measuring the window ---------------------------------------------------------------------


class Sampler:
    """The server's RSS (its whole process tree) and CPU, the clients' CPU, and CPU waits."""

    def __init__(
        self, server: Server, clients: list[ClientProc], cpus: tuple[int, int] | None
    ) -> None:
        self.server = server
        self.clients = clients
        self.cpus = cpus
        self.pids = tree_pids(server)
        self.scanned = time.monotonic()

    def rss(self) -> int:
        if time.monotonic() - self.scanned >= TREE_EVERY:
            self.pids = tree_pids(self.server)
            self.scanned = time.monotonic()
        return sum(rss_kib(pid) for pid in self.pids)

    def server_cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def window(
        self, settings: Settings, start: float, record: RunRecord, on_cap: Callable[[], None]
    ) -> None:
        """Sample from ``start`` for the window's duration; fill ``record``."""
        idle = record.rss_idle_kib or 0
        end = start + settings.duration
        server_waits, client_waits = WaitMeter(), WaitMeter()
        wait_until(start)
        cpu0 = self.server_cpu()
        clients0 = {c.name: cpu_seconds(c.pid) for c in self.clients}
        ours = {*self.pids, *(c.pid for c in self.clients), os.getpid()}
        others0 = others_cpu(ours)
        server_waits.start(self.pids)
        client_waits.start([c.pid for c in self.clients])
        peak = 0
        now = start
        while now < end:
            rss = self.rss()
            peak = max(peak, rss)
            record.rss_samples.append((round(now - start, 2), rss))
            if record.capped_at_s is None and rss - idle > settings.rss_cap_mib * 1024:
                record.capped_at_s = round(now - start, 2)
                on_cap()
            wait_until(min(end, now + SAMPLE_EVERY))
            now = time.monotonic()
        server_cpu = self.server_cpu() - cpu0
        others = others_delta(others0, others_cpu(ours | set(self.pids)))
        record.server_cpu_s = round(server_cpu, 3)
        record.rss_end_kib = self.rss()
        record.rss_peak_kib = max(peak, record.rss_end_kib)
        wall = time.monotonic() - start
        record.client_cpu_pct = {
            c.name: round(100 * (cpu_seconds(c.pid) - clients0[c.name]) / wall, 1)
            for c in self.clients
        }
        server_waits.sample(self.pids)
        for client in self.clients:
            client_waits.sample([client.pid])
        record.cpu_wait_pct = {
            "server": round(100 * server_waits.seconds() / wall, 1),
            "clients": round(100 * client_waits.seconds() / wall, 1),
        }
        record.others_cpu_pct = round(100 * others / wall, 1)


def others_cpu(ours: set[int]) -> dict[int, tuple[str, float]]:
    """pid -> (start time, CPU seconds) of every user-space process but ``ours``; the CPU
    time includes the children it has reaped (a test suite's short-lived subprocesses).
    Kernel threads are left out: ksoftirqd and the like mostly carry our own traffic."""
    found: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[6]) & PF_KTHREAD:
            continue
        ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        found[int(entry.name)] = (fields[19], ticks / CLOCK_TICKS)
    return found


def others_delta(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> float:
    """CPU seconds other processes used between two :func:`others_cpu` snapshots. A process
    gone in between is taken off at its earlier CPU time: what it had used by then comes back
    in its parent's reaped-children time, and must not count as used in between."""
    total = 0.0
    for pid, (started, cpu) in after.items():
        old = before.get(pid)
        total += cpu - old[1] if old is not None and old[0] == started else cpu
    for pid, (started, cpu) in before.items():
        new = after.get(pid)
        if new is None or new[0] != started:
            total -= cpu
    return max(0.0, total)


def wait_quiet(limit: float = QUIET_WAIT, step: float = 2.0) -> float:
    """Before a noisy run is repeated: wait (at most ``limit`` seconds) until the other
    processes use less than NOISY_PCT of a core over ``step`` seconds. Returns the wait."""
    began = time.monotonic()
    ours = {os.getpid()}
    while time.monotonic() - began < limit:
        before = others_cpu(ours)
        time.sleep(step)
        if 100 * others_delta(before, others_cpu(ours)) / step < NOISY_PCT:
            break
    return time.monotonic() - began


def wait_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        time.sleep(delay)


# -- one run -----------------------------------------------------------------------------------


def serves_http(contender: Contender) -> bool:
    return contender.script in HTTP_SCRIPTS


def common_args(settings: Settings, port: int) -> list[str]:
    return [
        *("--port", str(port)),
        *("--duration", str(settings.duration)),
        *("--grace", str(settings.grace)),
        *("--drain", str(settings.drain)),
    ]


def client_roles(settings: Settings, row: Row, attack: Attack, port: int) -> list[ClientProc]:
    """Start the attack's client processes (they connect meanwhile)."""
    cpu = settings.cpus[1] if settings.cpus else None
    base = common_args(settings, port) + (["--deflate"] if row.compression else [])
    if attack.fanout:
        expect = math.ceil(settings.rate * settings.duration - 1e-9)
        healthy = settings.receivers - settings.stuck - settings.sample
        shape = ["--rate", str(settings.rate), "--size", str(settings.size)]
        shape += ["--batches", str(BATCHES)]
        return [
            ClientProc(
                "sample",
                [
                    *("sample", *base, *shape),
                    *("--receivers", str(settings.sample), "--expect", str(expect)),
                ],
                cpu,
            ),
            ClientProc(
                "fleet",
                [
                    *("fleet", *base, *shape),
                    *("--receivers", str(healthy), "--stuck", str(settings.stuck)),
                    *("--prefill", str(int(settings.prefill_mib * MiB))),
                ],
                cpu,
            ),
        ]
    latency = ["--clients", str(settings.clients), "--interval", str(settings.interval)]
    return [
        ClientProc("latency", ["latency", *base, *latency], cpu),
        ClientProc("attacker", [attack.key, *base], cpu),
    ]


def take_turns(
    clients: list[ClientProc], sampler: Sampler, record: RunRecord, timeout: float
) -> None:
    """The broadcast's setup: the fleet connects the stuck receivers and the sender (RSS
    sampled), fills the stuck ones (RSS sampled), then the fleet and the sample connect their
    healthy receivers in turns, BATCHES times, so the sample is spread over the server's
    connections."""
    sample, fleet = clients
    deadline = time.monotonic() + timeout
    for label in ("stuck", "prefilled"):
        line = fleet.next_line(deadline)
        if line != label:
            raise BenchError(f"fleet: {line[:200]}")
        time.sleep(SETTLE)
        if label == "stuck":
            record.rss_base_kib = sampler.rss()
        else:
            record.rss_prefilled_kib = sampler.rss()
        fleet.send("next")
    for index in range(BATCHES):
        for proc, other in ((fleet, sample), (sample, fleet)):
            line = proc.next_line(deadline)
            if line != f"batch {index}":
                raise BenchError(f"{proc.name}: {line[:200]}")
            other.send("next")


def run_one(ctx: Context, row: Row, attack: Attack) -> RunRecord:
    """A fresh server, its clients, one measured window; the server stopped by PID."""
    s = ctx.settings
    record = RunRecord(row.label, attack.key)
    contender = CONTENDERS[row.contender]
    if attack.http and not serves_http(contender):
        record.skipped = "n/a"
        return record
    python = ctx.peers if contender.peer else local_python()
    if python is None:
        record.error = ctx.peers_error or "no interpreter"
        return record
    started = time.monotonic()
    port = free_port()
    cmd = server_command(contender, python, port, attack.fanout, row.compression)
    if attack.http:
        cmd.append("--http")
    try:
        server = spawn_server(cmd, port, server_env(contender), s.cpus[0] if s.cpus else None)
    except OSError as exc:
        record.error = f"cannot start server: {exc}"
        return record
    clients: list[ClientProc] = []
    try:
        wait_ready(server)
        clients = client_roles(s, row, attack, port)
        sampler = Sampler(server, clients, s.cpus)
        if attack.fanout:
            take_turns(clients, sampler, record, READY_TIMEOUT + s.receivers / 500)
        for client in clients:
            client.wait_ready(READY_TIMEOUT + s.receivers / 500)
        measure(s, server, sampler, record)
    except BenchError as exc:
        record.error = str(exc)
    except Exception as exc:  # one contender's failure must not stop the others
        record.error = f"{type(exc).__name__}: {exc}"
    finally:
        for client in clients:
            client.close()
        record.server_exit = server.process.poll()
        record.server_log_tail = server.log_tail(lines=8, limit=2000)
        logged = server.log_size()
        if record.log_window_bytes is None:  # the window was not reached: all of it counts
            record.log_problems = log_problems(server, 0, logged)
        else:
            record.log_problems_after = log_problems(server, record.log_window_bytes, logged)
        stop_server(server)
        record.seconds = round(time.monotonic() - started, 2)
    return record


def measure(settings: Settings, server: Server, sampler: Sampler, rec: RunRecord) -> None:
    clients = sampler.clients
    time.sleep(SETTLE)
    rec.rss_idle_kib = sampler.rss()
    start = time.monotonic() + GO_LEAD
    for client in clients:
        client.send(f"go {start!r}")

    def cap() -> None:
        for client in clients:
            if client.name in ("attacker", "fleet"):
                client.send("stop")

    sampler.window(settings, start, rec, cap)
    rec.log_window_bytes = server.log_size()
    rec.log_problems = log_problems(server, 0, rec.log_window_bytes)
    timeout = settings.grace + settings.drain + RESULT_SLACK
    for client in clients:
        rec.clients[client.name] = client.result(timeout)
    if server.process.poll() is not None:
        raise BenchError(f"server died during the run ({server.process.returncode})")
    failed = [f"{n}: {r['error']}" for n, r in rec.clients.items() if "error" in r]
    if failed:
        raise BenchError("; ".join(failed))


def log_problems(server: Server, begin: int, end: int, limit: int = 5) -> list[str]:
    """Lines of the server's output between offsets ``begin`` and ``end`` that look like
    errors (the first few, then how many more)."""
    server.log.flush()
    server.log.seek(begin)
    text = server.log.read(min(end - begin, 8 * MiB)).decode("utf-8", "replace")
    found = [line.strip() for line in text.splitlines() if any(w in line for w in LOG_PROBLEMS)]
    return found[:limit] + ([f"... {len(found) - limit} more"] if len(found) > limit else [])


# -- the tables ----------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def mib_delta(record: RunRecord, kib: int | None) -> str:
    if kib is None or record.rss_idle_kib is None:
        return "-"
    return fmt((kib - record.rss_idle_kib) / 1024)


def noisy(record: RunRecord) -> bool:
    return (record.others_cpu_pct or 0.0) >= NOISY_PCT


def ended_cell(ended: str) -> str:
    """How the server ended the attacker's connection: a close code, reset, EOF, or no."""
    return "no" if ended in ("", "open") else ended


def stalled_cell(attacker: dict[str, Any], record: RunRecord) -> str:
    if record.capped_at_s is not None:
        return f"capped {record.capped_at_s:.1f} s"
    if attacker.get("send_error"):
        return "closed"
    if attacker.get("stalled"):
        at = attacker["last_progress_s"]
        return f"yes, at {at:.2f} s" if at < 1 else f"yes, at {at:.1f} s"
    return "no"


def latency_cells(report: dict[str, Any], marks: str) -> list[str]:
    lat = report.get("latency_ms") or {}
    return [fmt(lat.get(p), 2) + (marks if lat else "") for p in ("p50", "p99", "max")]


def client_cell(record: RunRecord, names: Sequence[str]) -> str:
    return " / ".join(fmt(record.client_cpu_pct.get(n), 0) for n in names)


def echo_row(record: RunRecord) -> list[str]:
    latency = record.clients.get("latency", {})
    attacker = record.clients.get("attacker", {})
    lag = (latency.get("send_lag_ms") or {}).get("p99", 0.0)
    bound = record.client_cpu_pct.get("latency", 0.0) >= CLIENT_BOUND_PCT or lag > LAG_BOUND_MS
    marks = (" †" if bound else "") + (" ‡" if noisy(record) else "")
    return [
        mib_delta(record, record.rss_peak_kib),
        mib_delta(record, record.rss_end_kib),
        fmt(attacker.get("accepted_bytes", 0) / MiB),
        stalled_cell(attacker, record),
        ended_cell(attacker.get("ended", "")),
        *latency_cells(latency, marks),
        str(latency.get("lost", "-")),
        str(latency.get("late", "-")),
        fmt(record.server_cpu_s, 2),
        client_cell(record, ("latency", "attacker")),
    ]


def broadcast_row(record: RunRecord) -> list[str]:
    fleet = record.clients.get("fleet", {})
    sample = record.clients.get("sample", {})
    bound = record.client_cpu_pct.get("fleet", 0.0) >= CLIENT_BOUND_PCT
    marks = (" †" if bound else "") + (" ‡" if noisy(record) else "")
    sent_n = int(fleet.get("sent", 0))
    got, anomalies = sample.get("receiver_counts", []), sample.get("receiver_anomalies", [])
    counts = list(zip(got, anomalies, strict=True))
    healthy = fleet.get("healthy", 0) + len(counts)
    complete = fleet.get("healthy_complete", 0)
    complete += sum(1 for count, anomalies in counts if count == sent_n and not anomalies)
    missing = fleet.get("missing", 0) + sum(max(0, sent_n - count) for count, _ in counts)
    got_all = f"{complete}/{healthy}" if sent_n else "- (none sent)"
    stuck = fleet.get("stuck_ended", {})
    closed = {k: v for k, v in stuck.items() if k != "open"}
    stuck_cell = ", ".join(f"{v} {k}" for k, v in sorted(closed.items())) or "no"
    sent = f"{fleet.get('sent', '-')}"
    if fleet.get("skipped"):
        sent += f" ({fleet['skipped']} skipped)"
    held = "-"
    if record.rss_prefilled_kib is not None and record.rss_base_kib is not None:
        held = fmt((record.rss_prefilled_kib - record.rss_base_kib) / 1024)
        if fleet.get("prefill_copies", 0) < fleet.get("prefill_messages", 0):
            held += f" ({fleet.get('prefill_copies', 0)}/{fleet['prefill_messages']} sent)"
    return [
        held,
        mib_delta(record, record.rss_peak_kib),
        mib_delta(record, record.rss_end_kib),
        stuck_cell,
        *latency_cells(sample, marks),
        got_all,
        str(missing),
        str(sample.get("late", "-")),
        sent,
        fmt(record.server_cpu_s, 2),
        client_cell(record, ("fleet", "sample")),
    ]


ECHO_HEADER = [
    "RSS +MiB peak",
    "RSS +MiB end",
    "attacker MiB accepted",
    "flood stalled",
    "attacker closed",
    "echo p50 ms",
    "echo p99 ms",
    "echo max ms",
    "lost",
    "late",
    "server CPU s",
    "client CPU % (lat / att)",
]
BROADCAST_HEADER = [
    "RSS +MiB to fill stuck",
    "RSS +MiB peak",
    "RSS +MiB end",
    "stuck closed",
    "delivery p50 ms",
    "delivery p99 ms",
    "delivery max ms",
    "healthy got all",
    "missing",
    "late",
    "sent",
    "server CPU s",
    "client CPU % (fleet / sample)",
]


def short(reason: str, limit: int = 40) -> str:
    reason = reason.replace("|", "/").replace("\n", " ").strip()
    return reason if len(reason) <= limit else reason[: limit - 3].rstrip() + "..."


def table(settings: Settings, attack: Attack, records: list[RunRecord]) -> str:
    header = BROADCAST_HEADER if attack.fanout else ECHO_HEADER
    lines = [
        f"**{attack.key}**: {attack_description(settings, attack)}",
        "",
        "| server | " + " | ".join(header) + " |",
        "|---|" + "---:|" * len(header),
    ]
    for row in settings.rows:
        record = next((r for r in records if r.row == row.label and r.attack == attack.key), None)
        if record is None:
            continue
        if record.skipped:
            cells = [record.skipped] * len(header)
        elif record.error:
            cells = ["error: " + short(record.error)] + ["-"] * (len(header) - 1)
        else:
            cells = broadcast_row(record) if attack.fanout else echo_row(record)
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def attack_description(settings: Settings, attack: Attack) -> str:
    window = f"{settings.duration:g} s window"
    if attack.fanout:
        return (
            f"{settings.receivers:,} receivers ({settings.stuck} never read, first filled with "
            f"{settings.prefill_mib:g} MiB of broadcasts each), 1 sender at {settings.rate:g} "
            f"msgs/s of {settings.size:,} B, {window}"
        )
    others = f"{settings.clients} echo clients x 1 msg / {settings.interval * 1000:g} ms, {window}"
    return f"{attack.title}; {others}"


def legend(settings: Settings) -> str:
    return (
        "RSS: the server's processes over their idle RSS (every client connected, before the "
        "window); attacker MiB accepted: what the kernel took from the attacker in the "
        "window; flood stalled: the server stopped reading it (time of its last accepted "
        "byte); capped: the server's RSS grew past --rss-cap, so the attack was stopped "
        "there; attacker closed: what the attacker found when it read afterwards (close "
        "code, reset, EOF; no = still open); lost: no answer "
        f"{settings.grace:g} s after the window; late: answered after > 1 s; broadcast: "
        "RSS +MiB to fill stuck: the growth while the stuck receivers were filled, before the "
        "others connected ((n/m sent): the server broadcast only n of the m fill messages); "
        "delivery: from the send to a timed receiver; healthy got all: receivers that got "
        "every message once, in order; "
        f"† a client process used >= {CLIENT_BOUND_PCT:.0f}% of its core or ran > "
        f"{LAG_BOUND_MS:g} ms behind its schedule (the client may be the limit); ‡ other "
        "processes (not the server, its clients or kernel threads) used >= "
        f"{NOISY_PCT:.0f}% of a core during the window (noisy)"
    )


def notes(records: list[RunRecord]) -> list[str]:
    found = []
    for r in records:
        if r.error:
            found.append(f"{r.row} {r.attack}: {r.error}")
        if r.log_problems:
            found.append(f"{r.row} {r.attack}: server log: {' / '.join(r.log_problems)}")
        if r.log_problems_after:
            found.append(
                f"{r.row} {r.attack}: server log after the window, as the clients left: "
                + " / ".join(r.log_problems_after[:2])
                + (f" ({len(r.log_problems_after)} lines)" if len(r.log_problems_after) > 2 else "")
            )
        latency = r.clients.get("latency", {})
        if latency.get("ended"):
            found.append(f"{r.row} {r.attack}: latency clients ended: {latency['ended']}")
        for name in ("fleet", "sample"):
            report = r.clients.get(name, {})
            if report.get("connect_errors"):
                found.append(
                    f"{r.row} {r.attack}: {name} connect errors: {report['connect_errors']}"
                )
            if report.get("healthy_ended"):
                found.append(
                    f"{r.row} {r.attack}: {report['healthy_ended']} healthy {name} receivers "
                    "were disconnected"
                )
            if report.get("out_of_order"):
                found.append(f"{r.row} {r.attack}: {name}: {report['out_of_order']} out of order")
    return found


# -- settings, metadata, main --------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--servers", type=csv_list(list(ROWS)), help=f"from {','.join(ROWS)} (default: all)")
    add("--attacks", type=csv_list(list(ATTACKS)), help=f"from {','.join(ATTACKS)} (all)")
    add("--duration", type=float, help="measured seconds per run (default 10, smoke 1)")
    add("--grace", type=float, help="seconds after the window for late answers (1.2)")
    add("--drain", type=float, help="seconds the attacker reads afterwards (2, smoke 0.5)")
    add("--rss-cap", type=float, default=2048.0, help="MiB of RSS growth that stops an attack")
    add(
        "--noisy-retries",
        type=int,
        help="run again (up to N times, after waiting up to 2 min for a quiet machine) when "
        "other processes used >= 10%% of a core in the window (default 2, smoke 0)",
    )
    add("--receivers", type=int, help="broadcast: receivers in all (10000, smoke 300)")
    add("--stuck", type=int, help="broadcast: receivers that never read (100, smoke 5)")
    add("--prefill", type=float, help="broadcast: MiB sent to fill the stuck ones (10, smoke 1)")
    add("--sample", type=int, help="broadcast: timed healthy receivers (100, smoke 20)")
    add("--rate", type=float, help="broadcast: messages/s from the sender (5, smoke 10)")
    add("--size", type=int, default=8192, help="broadcast: message bytes (8192)")
    add("--smoke", action="store_true", help="pyswoole only, 1 s windows, 300 receivers")
    add("--json", type=Path, help="results file (default bench/results/hostile-<time>.json)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    smoke = bool(args.smoke)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")

    def pick(value: Any, full: Any, small: Any) -> Any:
        return value if value is not None else (small if smoke else full)

    names = args.servers or (["pyswoole"] if smoke else list(ROWS))
    settings = Settings(
        rows=[ROWS[n] for n in dict.fromkeys(names)],
        attacks=[ATTACKS[k] for k in dict.fromkeys(args.attacks or list(ATTACKS))],
        duration=pick(args.duration, 10.0, 1.0),
        grace=pick(args.grace, 1.2, 0.5),
        drain=pick(args.drain, 2.0, 0.5),
        rss_cap_mib=args.rss_cap,
        noisy_retries=max(0, pick(args.noisy_retries, 2, 0)),
        clients=10,
        interval=0.01,
        receivers=pick(args.receivers, 10_000, 300),
        stuck=pick(args.stuck, 100, 5),
        prefill_mib=pick(args.prefill, 10.0, 1.0),
        sample=pick(args.sample, 100, 20),
        rate=pick(args.rate, 5.0, 10.0),
        size=max(20, args.size),
        json_path=args.json or BENCH / "results" / f"hostile-{stamp}.json",
        cpus=pick_cpus(),
        smoke=smoke,
    )
    if settings.stuck + settings.sample >= settings.receivers:
        raise SystemExit("--receivers must exceed --stuck + --sample")
    return settings


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def git_commit() -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty", "--abbrev=7"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def metadata(ctx: Context, argv: Sequence[str], nofile: int) -> dict[str, Any]:
    s = ctx.settings
    settings = {k: v for k, v in dataclasses.asdict(s).items() if k not in ("rows", "attacks")}
    settings["json_path"] = str(s.json_path)
    return {
        "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "command": [sys.executable, *sys.argv[:1], *argv],
        "commit": git_commit(),
        "rows": [dataclasses.asdict(r) for r in s.rows],
        "attacks": {a.key: a.title for a in s.attacks},
        "settings": settings,
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "nofile_limit": nofile,
        "loadavg_at_start": os.getloadavg(),
        "versions": {
            "local": versions(local_python(), ["pyswoole", "uvloop", "httptools"]),
            "peers": versions(ctx.peers, ["websockets", "aiohttp", "picows", "uvloop"])
            if ctx.peers
            else {},
        },
        "peers_error": ctx.peers_error,
    }


def describe(record: RunRecord) -> str:
    if record.skipped:
        return record.skipped
    if record.error:
        return f"error: {record.error}"
    peak = mib_delta(record, record.rss_peak_kib)
    latency = record.clients.get("latency") or record.clients.get("sample") or {}
    p99 = (latency.get("latency_ms") or {}).get("p99")
    return f"RSS +{peak} MiB, p99 {fmt(p99, 2)} ms, {record.seconds:.0f} s"


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ctx = Context(settings_from(parse_args(argv)))
    s = ctx.settings
    nofile = raise_nofile_limit()
    if s.cpus is None:
        progress("warning: fewer than 2 usable CPUs or no taskset: running unpinned")
    else:
        os.sched_setaffinity(0, {s.cpus[1]})  # this process samples from the client core
    if os.getloadavg()[0] > BUSY_LOADAVG:
        progress(f"warning: load average {os.getloadavg()[0]:.2f}: the machine is not idle")
    if any(CONTENDERS[r.contender].peer for r in s.rows):
        progress("peers venv: bench/.peers …")
        try:
            ctx.peers = str(peers_python())
        except BenchError as exc:
            ctx.peers_error = str(exc)
            progress(f"peers venv unavailable: {exc}")
    meta = metadata(ctx, argv, nofile)
    records: list[RunRecord] = []
    plan = [(a, r) for a in s.attacks for r in s.rows]
    for index, (attack, row) in enumerate(plan, 1):
        for attempt in range(s.noisy_retries + 1):
            record = run_one(ctx, row, attack)
            records.append(record)
            retry = record.ok and noisy(record) and attempt < s.noisy_retries
            record.discarded = "noisy, run again" if retry else ""
            progress(
                f"[{index}/{len(plan)}] {attack.key} {row.label}: {describe(record)}"
                + (f" (others used {record.others_cpu_pct:.0f}% of a core: again)" if retry else "")
            )
            if not retry:
                break
            wait_quiet()
    kept = [r for r in records if not r.discarded]
    rendered = "\n\n".join(table(s, attack, kept) for attack in s.attacks)
    footnotes = [legend(s), *notes(kept)]
    print(rendered)
    print()
    print("\n".join(f"- {line}" for line in footnotes))
    meta["notes"] = footnotes
    meta["loadavg_at_end"] = os.getloadavg()
    s.json_path.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "tables": rendered, "runs": [dataclasses.asdict(r) for r in records]}
    s.json_path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    progress(f"raw results: {s.json_path}")
    return 1 if any(r.error for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
