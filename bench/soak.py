"""Soak test: hold thousands of WebSocket connections on a pyswoole server for minutes, with
echo traffic, numbered broadcasts, slow readers, reconnect churn and (optionally)
permessage-deflate, while sampling the server's RSS every second.

Run by hand with the project's interpreter (not a CI test; see bench/README.md, "Soak")::

    .venv/bin/python bench/soak.py                      # 10,000 connections, 10 minutes
    .venv/bin/python bench/soak.py --smoke              # 200 connections, 8 s
    .venv/bin/python bench/soak.py --compression --workers 2 --slow-readers 0

Prints a report on stdout (progress on stderr) ending with three verdict lines and writes
the raw samples to ``bench/results/soak-<timestamp>.json``. Exit code: 0 when every verdict
holds; else 1 (RSS not flat) | 2 (errors in the server's log) | 4 (messages to live clients
missing or wrong); 64 when the run itself failed (the server did not start...).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import BenchError
from harness.contenders import CONTENDERS, REPO, SERVERS, local_python, server_env, versions
from harness.processes import (
    Server,
    cpu_seconds,
    free_port,
    pick_cpus,
    raise_nofile_limit,
    spawn_server,
    stop_server,
    tree_pids,
    tree_rss_kib,
    wait_ready,
)
from harness.soak_client import ROLES, Client, Plan, Totals, source_addresses

BENCH = Path(__file__).resolve().parent
SAMPLE_EVERY = 1.0  # seconds between RSS samples
STATS_EVERY = 10.0  # seconds between GET /stats (smoke: 2)
STATS_TIMEOUT = 5.0  # seconds for one GET /stats
EXIT_RSS, EXIT_LOG, EXIT_DELIVERY, EXIT_FAILED = 1, 2, 4, 64
BUSY_LOADAVG = 0.5  # 1-minute load average above which the machine is reported as busy
LEVEL_LINE = re.compile(r"^\[\S+ \S+ \d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL)\] ?(.*)$")


@dataclass
class Settings:
    connections: int
    duration: float
    warmup: float
    workers: int
    compression: bool
    plan: Plan
    rss_threshold: float  # KiB/min
    socket_buffer_size: int
    settle: float  # seconds of RSS samples after every client closed
    stats_every: float
    json_path: Path
    src: Path
    label: str
    smoke: bool


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--connections", type=int, help="clients at once (default 10000, smoke 200)")
    add("--duration", type=float, help="seconds of load (default 600, smoke 8)")
    add("--warmup", type=float, help="seconds before the RSS slope counts (default 120, smoke 2)")
    add("--workers", type=int, default=1, help="the server's worker_num (default 1)")
    add("--compression", action="store_true", help="websocket_compression on the server")
    add(
        "--compressed-share",
        type=float,
        default=0.5,
        help="with --compression: share of the clients offering permessage-deflate (0.5)",
    )
    add("--slow-readers", type=float, default=0.01, help="share of slow readers (0.01)")
    add("--churn", type=float, default=0.1, help="share of reconnecting clients (0.1)")
    add("--resets", type=float, default=0.3, help="share of churn closes that are TCP resets")
    add("--echo-interval", type=float, help="mean seconds between a client's messages (8)")
    add(
        "--slow-send-rate",
        type=float,
        default=128.0,
        help="KiB/s each sending slow reader sends without reading (128; half of them send)",
    )
    add("--broadcast-rate", type=float, help="broadcasts per second in all (default 2)")
    add("--publishers", type=int, help="clients asking for broadcasts (default 4)")
    add("--ramp", type=float, default=2000.0, help="new connections per second at the start")
    add(
        "--rss-threshold",
        type=float,
        default=512.0,
        help="KiB/min: the largest RSS slope after the warm-up that counts as flat (512)",
    )
    add(
        "--socket-buffer-size",
        type=int,
        default=8 * 1024 * 1024,
        help="the server's socket_buffer_size (default 8 MiB, pyswoole's default)",
    )
    add("--end-timeout", type=float, help="seconds for the final phase (default 60, smoke 10)")
    add("--src", type=Path, default=REPO / "src", help="the pyswoole sources to run (src/)")
    add(
        "--label",
        default="",
        help="what --src is, for the report (e.g. 'export of commit abc1234')",
    )
    add("--seed", type=int, default=1, help="random seed of the load")
    add("--json", type=Path, help="raw results (default bench/results/soak-<timestamp>.json)")
    add("--smoke", action="store_true", help="200 connections for 8 s, busier per client")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    smoke = bool(args.smoke)

    def pick(value: Any, full: Any, small: Any) -> Any:
        return value if value is not None else (small if smoke else full)

    connections = int(pick(args.connections, 10000, 200))
    duration = float(pick(args.duration, 600.0, 8.0))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    plan = Plan(
        port=0,
        connections=connections,
        duration=duration,
        ramp=args.ramp,
        echo_interval=float(pick(args.echo_interval, 8.0, 1.0)),
        broadcast_rate=float(pick(args.broadcast_rate, 2.0, 10.0)),
        publishers=int(pick(args.publishers, 4, 2)),
        slow_share=args.slow_readers,
        slow_send_rate=args.slow_send_rate * 1024,
        churn_share=args.churn,
        reset_share=args.resets,
        compressed_share=args.compressed_share if args.compression else 0.0,
        end_timeout=float(pick(args.end_timeout, 60.0, 10.0)),
        sources=source_addresses(connections),
        seed=args.seed,
    )
    if smoke:
        plan.lifetime = (0.5, 3.0)
        plan.reconnect_delay = (0.02, 0.3)
        plan.trickle_every = 1.0
    return Settings(
        connections=connections,
        duration=duration,
        warmup=float(pick(args.warmup, 120.0, 2.0)),
        workers=max(1, args.workers),
        compression=bool(args.compression),
        plan=plan,
        rss_threshold=args.rss_threshold,
        socket_buffer_size=args.socket_buffer_size,
        settle=1.0 if smoke else 3.0,
        stats_every=2.0 if smoke else STATS_EVERY,
        json_path=args.json or BENCH / "results" / f"soak-{stamp}.json",
        src=args.src.resolve(),
        label=args.label,
        smoke=smoke,
    )


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- sampling -------------------------------------------------------------------------------


@dataclass
class Samples:
    """What the sampler thread collects; times are monotonic seconds."""

    rss: list[dict[str, Any]] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)


class Sampler(threading.Thread):
    """Every second: the RSS of the server's process tree (VmRSS, children included), its
    CPU seconds and the clients' counters; every few seconds the server's ``/stats``.
    Stops when told, or after ``limit`` seconds at most."""

    def __init__(self, server: Server, client: Client, samples: Samples, settings: Settings):
        super().__init__(name="soak-sampler", daemon=True)
        self.server = server
        self.client = client
        self.samples = samples
        self.stats_every = settings.stats_every
        self.limit = settings.duration + settings.plan.end_timeout + 120
        self.halt = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        next_stats = started
        for _ in range(int(self.limit / SAMPLE_EVERY) + 1):
            self.sample()
            now = time.monotonic()
            if now >= next_stats:
                stats = fetch_stats(self.server.port)
                if stats is not None:
                    self.samples.stats.append({"t": time.monotonic(), **stats})
                next_stats = now + self.stats_every
            if self.halt.wait(SAMPLE_EVERY):
                break

    def sample(self) -> None:
        pids = tree_pids(self.server)
        totals = self.client.totals
        self.samples.rss.append(
            {
                "t": time.monotonic(),
                "rss_kib": tree_rss_kib(self.server),
                "cpu_s": round(sum(cpu_seconds(pid) for pid in pids), 2),
                "processes": len(pids),
                "live": len(self.client.live),
                "cycles": totals.cycles,
                "messages_sent": totals.messages_sent,
                "broadcasts_received": totals.broadcasts_received,
            }
        )

    def stop(self) -> None:
        self.halt.set()
        self.join(STATS_TIMEOUT + 2)


def fetch_stats(port: int, path: str = "/stats") -> dict[str, Any] | None:
    """The server's counters (``GET /stats``), or None if it does not answer in time."""
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}{path}", timeout=STATS_TIMEOUT
        ) as answer:
            found: dict[str, Any] = json.loads(answer.read())
            return found
    except (OSError, ValueError):
        return None


# -- the run --------------------------------------------------------------------------------


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def start_server(settings: Settings, cpu: int | None) -> Server:
    port = free_port()
    cmd = [
        local_python(),
        str(SERVERS / "soak_server.py"),
        *("--port", str(port)),
        *("--workers", str(settings.workers)),
        *("--socket-buffer-size", str(settings.socket_buffer_size)),
    ]
    if settings.compression:
        cmd.append("--compression")
    env = server_env(CONTENDERS["pyswoole"])
    env["PYTHONPATH"] = os.pathsep.join(
        [str(settings.src), *(p for p in env["PYTHONPATH"].split(os.pathsep) if p)]
    )
    server = spawn_server(cmd, port, env, cpu)
    try:
        wait_ready(server)
    except BaseException:
        stop_server(server)
        raise
    return server


@dataclass
class Outcome:
    totals: Totals
    samples: Samples
    final_stats: dict[str, Any] | None
    log: str
    client_cpu_s: float
    wall_s: float
    lag_p99_ms: float  # after the warm-up, before the final phase
    lag_max_ms: float  # the whole run
    lags: list[tuple[float, float]]
    gc_max_ms: float
    cpus: tuple[int, int] | None
    loadavg_at_start: tuple[float, float, float]
    trims: list[dict[str, Any]]
    rss_trimmed_kib: int
    server_exit: int | None
    roles: dict[str, int]


def run(settings: Settings, cpus: tuple[int, int] | None) -> Outcome:
    loadavg = os.getloadavg()
    server = start_server(settings, cpus[0] if cpus else None)
    settings.plan.port = server.port
    progress(f"server pid {server.pid} on port {server.port}")
    if cpus is not None:
        os.sched_setaffinity(0, {cpus[1]})  # the load (this process) on the other core
    client = Client(settings.plan)
    samples = Samples()
    sampler = Sampler(server, client, samples, settings)
    log_fd = os.dup(server.log.fileno())  # the log outlives stop_server's close
    loop = new_loop()
    times = os.times()
    started = time.monotonic()

    def phase(name: str) -> None:
        samples.phases[name] = time.monotonic()
        progress(f"{datetime.datetime.now():%H:%M:%S} phase: {name}")

    try:
        sampler.start()
        time.sleep(min(2.0, settings.settle))  # RSS before any client
        totals = loop.run_until_complete(client.run(phase))
        phase("closed")
        time.sleep(settings.settle)  # RSS once every client is gone
        final_stats = fetch_stats(server.port)
        samples.phases["trim"] = time.monotonic()  # (no progress line: not a phase of load)
        trims = trim(server.port, settings.workers)
        time.sleep(0.5)
        rss_trimmed = tree_rss_kib(server)
    finally:
        sampler.stop()
        loop.close()
        server_exit = server.process.poll()
        stop_server(server)
        with os.fdopen(log_fd, "rb") as log_file:
            log_file.seek(0)
            log = log_file.read().decode("utf-8", "replace")
    after = os.times()
    steady = [lag for t, lag in client.lags if settings.warmup <= t < settings.duration]
    lags = sorted(steady) or [0.0]
    return Outcome(
        totals=totals,
        samples=samples,
        final_stats=final_stats,
        log=log,
        client_cpu_s=(after.user - times.user) + (after.system - times.system),
        wall_s=time.monotonic() - started,
        lag_p99_ms=1000 * lags[min(len(lags) - 1, int(0.99 * len(lags)))],
        lag_max_ms=1000 * client.lag_max,
        lags=client.lags,
        gc_max_ms=1000 * max((pause for _, pause in client.gc_pauses), default=0.0),
        cpus=cpus,
        loadavg_at_start=loadavg,
        trims=trims,
        rss_trimmed_kib=rss_trimmed,
        server_exit=server_exit,
        roles={role: sum(s.role == role for s in client.specs) for role in ROLES},
    )


def trim(port: int, workers: int) -> list[dict[str, Any]]:
    """``GET /trim`` until every worker answered (each request lands on some worker), at
    most 4 tries per worker: their garbage collected and free memory returned."""
    answers: dict[int, dict[str, Any]] = {}
    for _ in range(4 * workers):
        answer = fetch_stats(port, "/trim")
        if answer is not None:
            answers[int(answer.get("pid", 0))] = answer
        if len(answers) >= workers:
            break
    return list(answers.values())


# -- the log ----------------------------------------------------------------------------------


def log_errors(log: str) -> tuple[int, list[str]]:
    """Lines of the server's output at WARNING or above, tracebacks, and any line neither
    pyswoole's logging nor the soak server printed (Python prints WARNING+ records of
    loggers without handlers bare). Returns (count, the first few, with repeats counted)."""
    events: dict[str, int] = {}
    in_event = False
    for line in log.splitlines():
        match = LEVEL_LINE.match(line)
        if match is not None:
            in_event = match.group(1) in ("WARNING", "ERROR", "CRITICAL")
            if in_event:
                key = re.sub(r"\d+", "N", f"{match.group(1)} {match.group(2)}")[:160]
                events[key] = events.get(key, 0) + 1
            continue
        if line.startswith("Traceback"):
            in_event = True
            events["Traceback"] = events.get("Traceback", 0) + 1
            continue
        if in_event or not line.strip() or line.startswith('{"soak_stats_worker"'):
            continue
        key = "unexpected output: " + re.sub(r"\d+", "N", line.strip())[:140]
        events[key] = events.get(key, 0) + 1
    total = sum(events.values())
    shown = [f"{count} x {text}" for text, count in list(events.items())[:10]]
    return total, shown


# -- the report -------------------------------------------------------------------------------


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute; None under 2 points."""
    if len(points) < 2:
        return None
    xs = [p[0] / 60 for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return head + (" (src/ has uncommitted changes)" if dirty else "")


def build_report(settings: Settings, out: Outcome) -> tuple[list[str], dict[str, Any], int]:
    """The printed report, its numbers (for the JSON) and the exit code."""
    t = out.totals
    plan = settings.plan
    phases = out.samples.phases
    t0 = phases.get("load", out.samples.rss[0]["t"] if out.samples.rss else 0.0)
    t_end = phases.get("end", t0 + settings.duration)
    rss = [(s["t"] - t0, float(s["rss_kib"])) for s in out.samples.rss]
    before = [v for x, v in rss if x < 0]
    load_end = min(t_end - t0, settings.duration)
    during = [(x, v) for x, v in rss if 0 <= x < load_end]
    closed, trimmed = phases.get("closed", float("inf")) - t0, phases.get("trim", 0.0) - t0
    after = [v for x, v in rss if closed <= x < trimmed]
    window = [(x, v) for x, v in during if x >= settings.warmup]
    slope = slope_per_minute(window)
    lines: list[str] = []
    add = lines.append
    numbers: dict[str, Any] = {}

    compression = (
        f"on ({plan.compressed_share:.0%} of the clients offer it)"
        if settings.compression
        else "off"
    )
    add(
        f"Soak: {settings.connections} connections for {settings.duration:.0f} s "
        f"(warm-up {settings.warmup:.0f} s), worker_num {settings.workers}, compression "
        f"{compression}"
    )
    roles = ", ".join(f"{count} {role}" for role, count in out.roles.items())
    add(
        f"  clients: {roles}; slow readers {plan.slow_share:.1%}, churn {plan.churn_share:.0%} "
        f"(lifetime {plan.lifetime[0]:g}-{plan.lifetime[1]:g} s, {plan.reset_share:.0%} resets), "
        f"{plan.publishers} publishers at {plan.broadcast_rate:g} broadcasts/s, echo every "
        f"{plan.echo_interval:g} s per client, {plan.min_size}-{plan.max_size} B, "
        f"{plan.fragment_share:.0%} fragmented; {len(plan.sources)} source address(es)"
    )
    pinning = f"server on CPU {out.cpus[0]}, load on CPU {out.cpus[1]}" if out.cpus else "unpinned"
    add(f"  {pinning}; load average at the start {out.loadavg_at_start[0]:.2f}")
    if settings.src == (REPO / "src").resolve():
        add(f"  pyswoole: the working tree's src/, commit {git_commit()}")
    else:
        add(
            f"  pyswoole: {settings.src} ({settings.label or 'no --label'}; repo at {git_commit()})"
        )
    add("")

    # RSS per minute
    add("Server RSS (KiB, all its processes), per minute of load:")
    add("")
    add("| minute | min | median | max | open (server) |")
    add("|---:|---:|---:|---:|---:|")
    stats_points = [(s["t"] - t0, s) for s in out.samples.stats]
    per_minute: list[dict[str, Any]] = []
    minutes = max(1, int((load_end + 59.999) // 60))
    for minute in range(minutes):
        values = [v for x, v in during if minute * 60 <= x < (minute + 1) * 60]
        if not values:
            continue
        opens = [
            s["total"]["open_now"] for x, s in stats_points if minute * 60 <= x < (minute + 1) * 60
        ]
        row = {
            "minute": minute + 1,
            "min": min(values),
            "median": statistics.median(values),
            "max": max(values),
            "open": max(opens) if opens else None,
        }
        per_minute.append(row)
        add(
            f"| {minute + 1} | {row['min']:.0f} | {row['median']:.0f} | {row['max']:.0f} | "
            f"{row['open'] if row['open'] is not None else '-'} |"
        )
    if after:
        add(
            f"| after close | {min(after):.0f} | {statistics.median(after):.0f} | "
            f"{max(after):.0f} | 0 |"
        )
    add("")
    numbers["rss_per_minute"] = per_minute
    numbers["rss_before_kib"] = max(before) if before else None
    numbers["rss_end_of_load_kib"] = during[-1][1] if during else None
    numbers["rss_after_close_kib"] = statistics.median(after) if after else None
    numbers["rss_after_trim_kib"] = out.rss_trimmed_kib
    numbers["trims"] = out.trims
    collected = sum(int(t.get("gc_collected", 0)) for t in out.trims)
    add(
        f"RSS before the clients: {fmt(numbers['rss_before_kib'], '.0f')} KiB; at the end of "
        f"the load: {fmt(numbers['rss_end_of_load_kib'], '.0f')} KiB; after every client "
        f"closed: {fmt(numbers['rss_after_close_kib'], '.0f')} KiB; after gc.collect() "
        f"({collected} objects) and malloc_trim(0) in {len(out.trims)} of "
        f"{settings.workers} worker(s): {out.rss_trimmed_kib} KiB (the rest is memory in use)"
    )

    # slope and per-cause
    cycles_window = [
        (s["t"] - t0, s["cycles"])
        for s in out.samples.rss
        if settings.warmup <= s["t"] - t0 < load_end
    ]
    per_cycle = None
    cycle_rate = None
    if len(cycles_window) >= 2 and cycles_window[-1][0] > cycles_window[0][0]:
        cycle_rate = (
            (cycles_window[-1][1] - cycles_window[0][1])
            / (cycles_window[-1][0] - cycles_window[0][0])
            * 60
        )
        if slope is not None and cycle_rate > 0:
            per_cycle = slope / cycle_rate
    window_stats = [(x, s["total"]) for x, s in stats_points if settings.warmup <= x < load_end]
    slow_slope = slope_per_minute([(x, s["slow_queued_bytes"] / 1024) for x, s in window_stats])
    queued = [(x, s["queued_bytes"] / 1024) for x, s in window_stats]
    queued_slope = slope_per_minute(queued)
    numbers.update(
        slope_kib_per_min=slope,
        cycles_per_min=cycle_rate,
        kib_per_cycle=per_cycle,
        slow_queue_slope_kib_per_min=slow_slope,
        all_queues_slope_kib_per_min=queued_slope,
    )
    if slope is None:
        add(f"RSS slope after the warm-up: not enough samples (warm-up {settings.warmup:g} s)")
    else:
        add(
            f"RSS slope after the warm-up: {slope:+.1f} KiB/min over {len(window)} samples; "
            f"{fmt(cycle_rate, '.0f')} connections cycled per minute, so "
            f"{fmt(per_cycle, '+.3f')} KiB per connection cycled"
        )
        add(
            f"  per cause: the slow readers' send queues grew {fmt(slow_slope, '+.1f')} KiB/min, "
            f"every client's send queues {fmt(queued_slope, '+.1f')} KiB/min (sampled "
            f"every 10 s on the server); RSS less those queues: "
            f"{fmt(None if queued_slope is None else slope - queued_slope, '+.1f')} KiB/min"
        )
        slow_now = window_stats[-1][1]["slow_queued_bytes"] / 1024 if window_stats else 0.0
        bound = out.roles.get("slow", 0) * settings.socket_buffer_size / 1024
        if slow_slope is not None and slow_slope > 0 and bound > slow_now:
            add(
                f"  the slow readers' queues hold {slow_now / 1024:.0f} MiB; socket_buffer_size "
                f"bounds them at {bound / 1024:.0f} MiB ({out.roles.get('slow', 0)} x "
                f"{settings.socket_buffer_size / 2**20:g} MiB), "
                f"{(bound - slow_now) / slow_slope:.0f} min away at this rate"
            )
    add("")

    # traffic
    server_total = (out.final_stats or {}).get("total", {})
    add(
        f"Connections: {t.connects} opened, {t.cycles} cycled by the churners; closes: "
        f"{t.closes_bye} with !bye + close handshake, {t.closes_plain} close handshake only, "
        f"{t.closes_reset} TCP resets; connect failures: {t.connect_failures or 'none'}"
    )
    add(
        f"Messages: {t.messages_sent} sent ({t.bytes_sent / 2**20:.0f} MiB; "
        f"{t.fragmented_sent} fragmented, {t.compressed_sent} compressed, {t.pings_sent} pings "
        f"between fragments, {t.pongs_received} pongs back); {t.echoes_received} echoes received, "
        f"{t.echoes_checked} checked exact and in order by reading clients; "
        f"{t.echo_lost_at_reset} in flight at a reset; server: {server_total.get('echo_pushed')} "
        f"echoes pushed, {server_total.get('echo_push_failed')} refused (buffer full)"
    )
    add(
        f"Broadcasts: {server_total.get('broadcasts')} sent by the server "
        f"({t.pub_requests} requested); reading clients: {t.broadcasts_delivered} delivered of "
        f"{t.broadcasts_expected} expected ({t.broadcast_dropped_by_server} dropped by the "
        f"server for them, not expected); all clients received {t.broadcasts_received} "
        f"(+{t.broadcasts_early} numbered before their welcome); server: "
        f"{server_total.get('broadcast_queued')} deliveries queued, "
        f"{server_total.get('broadcast_dropped')} skipped for full send buffers (worker 0's "
        f"clients)"
    )
    add("")

    # slow readers
    add(f"Slow readers ({len(t.slow)}):")
    fates: dict[str, int] = {}
    for fate in t.slow:
        key = f"{fate['kind']}{' + sending' if fate['sends'] else ''}: {fate['outcome']}"
        fates[key] = fates.get(key, 0) + 1
    for key, count in sorted(fates.items()):
        add(f"  {count} x {key}")
    drained = [f["read_total"] for f in t.slow if "read_total" in f]
    if drained:
        add(
            f"  bytes read per slow reader in all: median {statistics.median(drained) / 1024:.0f} "
            f"KiB, max {max(drained) / 1024:.0f} KiB (drain at the end: max "
            f"{max(f.get('drain_s', 0) for f in t.slow):.1f} s)"
        )
    add("")

    # the two processes
    rss_cpu = [s["cpu_s"] for s in out.samples.rss]
    server_cpu = (rss_cpu[-1] - rss_cpu[0]) if len(rss_cpu) >= 2 else 0.0
    numbers["server_cpu_s"] = server_cpu
    numbers["client_cpu_s"] = out.client_cpu_s
    add(
        f"CPU: server {server_cpu:.1f} s ({100 * server_cpu / max(out.wall_s, 1e-9):.0f}% of one "
        f"core), load generator {out.client_cpu_s:.1f} s "
        f"({100 * out.client_cpu_s / max(out.wall_s, 1e-9):.0f}%); the load's loop lag after "
        f"the warm-up: p99 {out.lag_p99_ms:.0f} ms (max {out.lag_max_ms:.0f} ms over the whole "
        f"run, ramp and final phase included; longest garbage collection {out.gc_max_ms:.0f} ms)"
    )

    # log
    error_count, shown = log_errors(out.log)
    add(f"Server log: {len(out.log.splitlines())} lines, {error_count} at WARNING or above")
    for line in shown:
        add(f"  {line}")
    if out.server_exit is not None:
        add(f"  the server had exited ({out.server_exit}) before the end")
        error_count += 1
    if t.problems:
        add(f"Problems the clients saw ({t.problem_count}, first {len(t.problems)}):")
        for problem in t.problems:
            add(f"  {problem}")
    add("")

    # verdicts
    flat = slope is not None and slope <= settings.rss_threshold
    clean = error_count == 0
    missing = t.missing
    anomalies = t.delivery_anomalies
    checked = t.echoes_checked + t.broadcasts_delivered
    delivered = missing == 0 and anomalies == 0 and checked > 0
    detail = f"{missing} missing"
    if anomalies:
        detail += (
            f"; {t.broadcast_duplicate} duplicated/out of order, "
            f"{t.broadcast_corrupt + t.echo_corrupt} corrupt, {t.ack_timeouts} !ack timeouts, "
            f"{sum(t.unexpected_closes.values())} closed by the server, "
            f"{t.protocol_errors} protocol errors, "
            f"{sum(t.connect_failures.values())} failed connects, "
            f"{t.client_exceptions} load generator errors"
        )
    if checked == 0:
        detail += "; nothing was checked: the run did not happen"
    add(
        f"RSS flat after warm-up: {'yes' if flat else 'no'} "
        f"(slope {fmt(slope, '.1f')} KiB/min, threshold {settings.rss_threshold:g})"
    )
    add(f"no errors in log: {'yes' if clean else 'no'}")
    add(f"every message to a live client delivered: {'yes' if delivered else 'no'} ({detail})")
    code = (0 if flat else EXIT_RSS) | (0 if clean else EXIT_LOG)
    code |= 0 if delivered else EXIT_DELIVERY
    numbers["verdicts"] = {
        "rss_flat": flat,
        "log_clean": clean,
        "log_errors": error_count,
        "delivered": delivered,
        "missing": missing,
        "anomalies": anomalies,
    }
    return lines, numbers, code


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def save(
    path: Path, settings: Settings, out: Outcome, numbers: dict[str, Any], argv: list[str]
) -> None:
    t0 = out.samples.phases.get("load", 0.0)
    payload = {
        "meta": {
            "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "command": [sys.executable, *sys.argv[:1], *argv],
            "commit": git_commit(),
            "src": str(settings.src),
            "settings": {
                k: v for k, v in dataclasses.asdict(settings).items() if k not in ("plan",)
            },
            "plan": dataclasses.asdict(settings.plan),
            "versions": versions(local_python(), ["pyswoole", "uvloop", "httptools"]),
            "nproc": os.cpu_count(),
            "cpus": {"server": out.cpus[0], "load": out.cpus[1]} if out.cpus else None,
            "loadavg_at_start": out.loadavg_at_start,
            "loadavg_at_end": os.getloadavg(),
        },
        "phases": {k: round(v - t0, 3) for k, v in out.samples.phases.items()},
        "samples": [{**s, "t": round(s["t"] - t0, 3)} for s in out.samples.rss],
        "server_stats": [{**s, "t": round(s["t"] - t0, 3)} for s in out.samples.stats],
        "final_server_stats": out.final_stats,
        "clients": dataclasses.asdict(out.totals),
        "report": numbers,
        "client_loop_lag_s": [(round(t, 1), round(lag, 4)) for t, lag in out.lags],
        "server_log_tail": out.log.splitlines()[-50:],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    settings = settings_from(parse_args(argv))
    nofile = raise_nofile_limit()
    if nofile < settings.connections + 256:
        progress(f"error: RLIMIT_NOFILE is {nofile}, too low for {settings.connections} clients")
        return EXIT_FAILED
    cpus = pick_cpus()
    if cpus is None:
        progress("warning: fewer than 2 usable CPUs or no taskset: running unpinned")
    if os.getloadavg()[0] > BUSY_LOADAVG:
        progress(f"warning: load average {os.getloadavg()[0]:.2f}: the machine is not idle")
    try:
        out = run(settings, cpus)
    except BenchError as exc:
        progress(f"error: {exc}")
        return EXIT_FAILED
    lines, numbers, code = build_report(settings, out)
    print("\n".join(lines), flush=True)
    save(settings.json_path, settings, out, numbers, argv)
    progress(f"raw samples: {settings.json_path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
