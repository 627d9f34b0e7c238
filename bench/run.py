"""Benchmark pyswoole against websockets, aiohttp, picows and a bare uvloop echo.

Run with the project's interpreter::

    .venv/bin/python bench/run.py                 # everything: every server and scenario, 3 reps
    .venv/bin/python bench/run.py --smoke         # seconds: tiny sizes, pyswoole + bare
    .venv/bin/python bench/run.py --servers picows,bare --scenarios A,C --reps 5
    .venv/bin/python bench/run.py --scenarios B,Bz,Gz,H,Bw,Ew --plot bench/results/p2.png

Prints markdown tables on stdout (progress goes to stderr), writes every raw number to
``bench/results/<timestamp>.json`` and, with ``--plot``, a bar chart normalised to pyswoole.
See bench/README.md for what each scenario measures.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import BenchError, plot, scale, wsload
from harness.cli import csv_list
from harness.contenders import (
    BENCH,
    CONTENDERS,
    Contender,
    local_python,
    peers_python,
    runtime_problem,
    server_command,
    server_env,
    swoole_version,
    versions,
)
from harness.features import (
    ActiveWindow,
    TlsFiles,
    make_certificate,
    missing,
    raise_nofile_for,
    wait_ready_tls,
    wsload_features,
)
from harness.openloop import H_PROBE, OWN, OpenLoopRates, Probe, annotate
from harness.processes import (
    Server,
    WaitMeter,
    free_port,
    pick_cpus,
    raise_nofile_limit,
    spawn_server,
    stop_server,
    tree_pids,
    tree_rss_kib,
    wait_ready,
)
from harness.report import RunResult, legend, notes, render, save
from harness.scenarios import (
    ACTIVE_RSS_METRIC,
    ALIASES,
    CLIENT_CPU_METRIC,
    CPU_METRIC,
    SCALE_PROCS,
    SCENARIOS,
    SMOKE,
    Scenario,
    Sizes,
    expand,
)

SMOKE_SERVERS = ["pyswoole", "bare"]
BASELINE_SETTLE = 0.3  # seconds between the readiness probe and the "before" RSS sample
BUSY_LOADAVG = 0.5  # 1-minute load average above which the machine is reported as busy
WSLOAD_SLACK = 20.0  # seconds on top of warmup + duration + ramp for wsload to finish


@dataclass
class Settings:
    contenders: list[Contender]
    scenarios: list[Scenario]
    sizes: Sizes
    duration: float
    warmup: float
    reps: int
    noisy_retries: int
    json_path: Path
    cpus: tuple[int, int] | None
    plot_path: Path | None = None
    h_reference: str | None = None  # --h-reference: a server, "own", None: the default
    unpinned: bool = False  # --scale-unpinned: F100kx's processes share every core
    busy_poll: bool = False  # --scale-busy-poll: F100kx's receivers never sleep in epoll


@dataclass
class Context:
    settings: Settings
    peers: str | None = None  # the peers venv's python
    peers_error: str = ""
    start_failures: dict[tuple[str, str], str] = field(default_factory=dict)
    features: set[str] = field(default_factory=set)  # of this wsload build
    tls: TlsFiles | None = None
    setup_errors: dict[str, str] = field(default_factory=dict)  # scenario key -> skip reason
    runtime_errors: dict[str, str] = field(default_factory=dict)  # contender -> skip reason
    open_loop: OpenLoopRates = field(init=False)  # H's offered rates

    def __post_init__(self) -> None:
        names = [c.name for c in self.settings.contenders]
        self.open_loop = OpenLoopRates(self.settings.h_reference, names)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--servers",
        type=csv_list(list(CONTENDERS)),
        help=f"comma-separated, from {','.join(CONTENDERS)} (default: all)",
    )
    parser.add_argument(
        "--scenarios",
        type=csv_list([*SCENARIOS, *ALIASES]),
        default=list(SCENARIOS),
        help=f"comma-separated, from {','.join(SCENARIOS)}; H = H50,H90 (default: all)",
    )
    parser.add_argument("--duration", type=float, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds per run (default 1)")
    parser.add_argument("--reps", type=int, help="repetitions per scenario (default 3)")
    parser.add_argument(
        "--noisy-retries",
        type=int,
        help="run a repetition again (up to N times) when other processes used the CPU "
        "meanwhile (default 1, smoke 0)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, 1 rep of 1 s, no warmup, pyswoole + bare unless --servers",
    )
    parser.add_argument(
        "--fanout-rate",
        type=int,
        help="G: messages/s the sender broadcasts (default 500, smoke 200)",
    )
    parser.add_argument(
        "--gz-rate",
        type=int,
        help="Gz: JSON messages/s the sender broadcasts (default 100, smoke 20)",
    )
    parser.add_argument(
        "--scale-conns",
        type=int,
        help="F100k: connections (default 100000, smoke 300); the file limit must allow them",
    )
    parser.add_argument(
        "--scale-procs",
        type=int,
        help="F100k across processes: N receive-only wsload processes and a pyswoole "
        "server with --scale-workers workers (the F100kx table; bench/README.md)",
    )
    parser.add_argument(
        "--scale-workers",
        type=int,
        help="--scale-procs: the server's worker_num (default 8)",
    )
    parser.add_argument(
        "--scale-unpinned",
        action="store_true",
        help="--scale-procs: no taskset, the server and wsload processes share every core",
    )
    parser.add_argument(
        "--scale-busy-poll",
        action="store_true",
        help="--scale-procs: the receivers poll (wsload --busy-poll), so that no send pays to"
        " wake one (see bench/wsload/README.md)",
    )
    parser.add_argument(
        "--h-reference",
        choices=[*CONTENDERS, OWN],
        metavar="SERVER",
        help="H50/H90: offer every server load x this server's B msgs/s (one of --servers); "
        "'own': each server its own B (default: picows if selected and its B ran, else "
        "the lowest B of the run)",
    )
    parser.add_argument("--json", type=Path, help="results file (default bench/results/…)")
    parser.add_argument(
        "--plot",
        type=Path,
        help="also draw the results as a bar chart (PNG), normalised to pyswoole = 1.0",
    )
    args = parser.parse_args(argv)
    reference = args.h_reference
    if reference not in (None, OWN) and reference not in server_names(args):
        parser.error(f"--h-reference {reference}: not among the servers of the run")
    return args


def server_names(args: argparse.Namespace) -> list[str]:
    return list(args.servers or (SMOKE_SERVERS if args.smoke else list(CONTENDERS)))


def settings_from(args: argparse.Namespace) -> Settings:
    smoke = bool(args.smoke)
    names = server_names(args)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    overrides = {
        "fanout_rate": args.fanout_rate,
        "deflate_rate": args.gz_rate,
        "scale_conns": args.scale_conns,
        "scale_procs": args.scale_procs,
        "scale_workers": args.scale_workers,
    }
    scenarios = expand(args.scenarios)
    if args.scale_procs:  # F100k runs across processes instead
        scenarios = [SCALE_PROCS if s.key == "F100k" else s for s in scenarios]
    return Settings(
        contenders=[CONTENDERS[name] for name in dict.fromkeys(names)],
        scenarios=scenarios,
        sizes=dataclasses.replace(
            SMOKE if smoke else Sizes(), **{k: v for k, v in overrides.items() if v is not None}
        ),
        duration=args.duration if args.duration is not None else (1.0 if smoke else 5.0),
        warmup=args.warmup if args.warmup is not None else (0.0 if smoke else 1.0),
        reps=max(1, args.reps if args.reps is not None else (1 if smoke else 3)),
        noisy_retries=max(
            0, args.noisy_retries if args.noisy_retries is not None else int(not smoke)
        ),
        json_path=args.json or BENCH / "results" / f"{stamp}.json",
        cpus=pick_cpus(),
        plot_path=args.plot,
        h_reference=args.h_reference,
        unpinned=args.scale_unpinned,
        busy_poll=args.scale_busy_poll,
    )


def not_runnable(ctx: Context, contender: Contender, scenario: Scenario) -> str:
    """ "" if the run can happen, else the cell's ``n/a: ...`` or ``skipped: ...`` text."""
    if scenario.compression and not contender.compression:
        return "n/a: no permessage-deflate"
    if scenario is SCALE_PROCS and contender.script != "pyswoole_server.py":
        return "n/a: --scale-procs needs a server with worker processes (pyswoole)"
    if reason := ctx.runtime_errors.get(contender.name):
        return reason
    return missing(scenario.needs, ctx.features) or ctx.setup_errors.get(scenario.key, "")


def prepare_scenarios(ctx: Context, workdir: Path) -> None:
    """What the selected scenarios need beyond wsload: a certificate, a file limit."""
    ctx.features = wsload_features(wsload.WSLOAD)
    selected = ctx.settings.scenarios
    for scenario in selected:
        if reason := missing(scenario.needs, ctx.features):
            progress(f"{scenario.key}: {reason} (bench/wsload/README.md)")
    tls = [s for s in selected if s.tls]
    if tls:
        try:
            ctx.tls = make_certificate(workdir)
        except BenchError as exc:
            ctx.setup_errors.update((s.key, f"skipped: {exc}") for s in tls)
    if "F100k" in {s.key for s in selected}:
        conns = SCENARIOS["F100k"].connections(ctx.settings.sizes)
        if reason := raise_nofile_for(conns):
            ctx.setup_errors["F100k"] = f"skipped: {reason}"
    if SCALE_PROCS in selected and (reason := scale_limits(ctx.settings.sizes)):
        ctx.setup_errors[SCALE_PROCS.key] = f"skipped: {reason}"


def scale_limits(sizes: Sizes) -> str:
    """ "" if each --scale-procs process fits under this process's file limit (which the
    servers and wsload inherit), else why not."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    per_client = -(-sizes.scale_conns // max(1, sizes.scale_procs)) + 64
    per_worker = -(-sizes.scale_conns // max(1, sizes.scale_workers)) + 1024
    if sizes.scale_procs < 1 or sizes.scale_workers < 1:
        return "--scale-procs and --scale-workers must be >= 1"
    if per_client > soft:
        return f"{per_client} fds per wsload process > the file limit {soft}: more --scale-procs"
    if per_worker > soft:
        return f"{per_worker} fds per worker > the file limit {soft}: more --scale-workers"
    return ""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare_runtimes(ctx: Context) -> None:
    """Contenders that are not Python (Swoole): whether their runtime is installed."""
    for contender in ctx.settings.contenders:
        if reason := runtime_problem(contender):
            ctx.runtime_errors[contender.name] = reason
            progress(f"{contender.name}: {reason}")


def prepare_peers(ctx: Context) -> None:
    """Create or reuse bench/.peers only when a peer server is selected."""
    if not any(c.peer for c in ctx.settings.contenders):
        return
    progress("peers venv: bench/.peers …")
    try:
        ctx.peers = str(peers_python())
    except BenchError as exc:
        ctx.peers_error = str(exc)
        progress(f"peers venv unavailable: {exc}")


def server_cpu(settings: Settings) -> int | None:
    return settings.cpus[0] if settings.cpus else None


def client_cpu(settings: Settings) -> int | None:
    return settings.cpus[1] if settings.cpus else None


def run_one(
    ctx: Context, contender: Contender, scenario: Scenario, rep: int, rate: int = 0
) -> RunResult:
    """Start a fresh server, measure one scenario once, stop the server."""
    result = RunResult(contender.name, scenario.key, rep)
    z, tls = scenario.compression, ctx.tls if scenario.tls else None
    variant = (contender.name, f"fanout={scenario.fanout} z={z} tls={tls is not None}")
    python = ctx.peers if contender.peer else local_python()
    if variant in ctx.start_failures or python is None:
        result.error = ctx.start_failures.get(variant) or ctx.peers_error
        return result
    started = time.monotonic()
    port = free_port()
    cmd = server_command(contender, python, port, scenario.fanout, z, tls)
    if scenario is SCALE_PROCS:
        cmd += scale_server_args(ctx.settings.sizes)
    try:
        cpu = (
            None if scenario is SCALE_PROCS and ctx.settings.unpinned else server_cpu(ctx.settings)
        )
        server = spawn_server(cmd, port, server_env(contender), cpu)
    except OSError as exc:
        result.error = ctx.start_failures[variant] = f"cannot start server: {exc}"
        return result
    try:
        try:
            (wait_ready_tls if tls else wait_ready)(server)
        except BenchError as exc:
            ctx.start_failures[variant] = str(exc)
            raise
        if scenario is SCALE_PROCS:
            measure_procs(ctx.settings, server, result)
        else:
            measure(ctx.settings, server, scenario, result, rate)
    except BenchError as exc:
        result.error = str(exc)
    except Exception as exc:  # one contender's failure must not stop the others
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.server_log_tail = server.log_tail()
        result.server_log_bytes = server.log_size()
        stop_server(server)
        result.seconds = round(time.monotonic() - started, 2)
    return result


def measure(
    settings: Settings, server: Server, scenario: Scenario, result: RunResult, rate: int = 0
) -> None:
    """Run wsload against ``server`` and fill ``result`` (values, or raise BenchError)."""
    scheme = "wss" if scenario.tls else "ws"
    args = [
        *scenario.wsload_args(settings.sizes, rate),
        *("-u", f"{scheme}://127.0.0.1:{server.port}/"),
        *("-d", str(settings.duration), "-w", str(settings.warmup)),
        "-q",
    ]
    conns = scenario.connections(settings.sizes)
    timeout = settings.warmup + settings.duration + WSLOAD_SLACK + conns / 200
    on_ready: Callable[[int], None] | None = None
    server_waits, client_waits = WaitMeter(), WaitMeter()
    server_waits.start(tree_pids(server))
    window = ActiveWindow(server, settings.warmup, settings.duration, scenario.rss_active)
    started = time.monotonic()
    if scenario.memory or scenario.rss_active:
        time.sleep(BASELINE_SETTLE)
        result.rss_before_kib = tree_rss_kib(server)
    if scenario.memory:
        # F100k's broadcasts start at "ready": sample before they can add buffers
        settle = 0.0 if scenario.fanout else min(1.0, settings.duration / 3)
        on_ready = rss_sampler(server, result, settle, window if scenario.fanout else None)
    elif scenario.fanout:
        on_ready = lambda ready: window.arm()  # noqa: E731 - the window starts at "ready"
    window.arm()
    try:
        result.wsload = wsload.run(args, timeout, client_cpu(settings), on_ready, client_waits)
    finally:
        window.finish()
    result.server_cpu_s = window.seconds
    result.rss_active_kib = window.rss_kib
    server_waits.sample(tree_pids(server))
    wall = time.monotonic() - started
    result.cpu_wait_pct = {
        "server": round(100 * server_waits.seconds() / wall, 1),
        "client": round(100 * client_waits.seconds() / wall, 1),
    }
    check_run(server, scenario, result)


def scale_server_args(sizes: Sizes) -> list[str]:
    """F100kx: W workers, room for every connection in max_conn (the shared table's size;
    default ulimit -n), a deep backlog, and GET /stats."""
    return [
        *("--workers", str(sizes.scale_workers), "--max-conn", str(sizes.scale_conns + 1024)),
        *("--backlog", str(scale.BACKLOG), "--stats"),
    ]


def measure_procs(settings: Settings, server: Server, result: RunResult) -> None:
    """F100kx (harness.scale): fill ``result``, or raise BenchError."""
    s = settings.sizes
    server_waits = WaitMeter()
    server_waits.start(tree_pids(server))
    started = time.monotonic()
    outcome = scale.measure_scale(
        server,
        s.scale_conns,
        s.scale_procs,
        s.scale_rate,
        s.message_size,
        settings.warmup,
        settings.duration,
        None if settings.unpinned else client_cpu(settings),
        busy_poll=settings.busy_poll,
    )
    server_waits.sample(tree_pids(server))
    wall = time.monotonic() - started
    result.wsload = outcome.detail
    # not cpu_wait_pct (the ‡ mark): W workers pinned to one core wait for each other, and
    # N wsload processes on the other core too; the figure stays in the JSON as a gauge
    result.wsload["server_cpu_wait_pct"] = round(100 * server_waits.seconds() / wall, 1)
    result.values = outcome.values
    result.rss_before_kib, result.rss_held_kib = outcome.rss_before_kib, outcome.rss_held_kib
    result.server_cpu_s = outcome.server_cpu_s
    if server.process.poll() is not None:
        raise BenchError(f"server died during the run ({server.process.returncode})")
    if "last_arrival_ms" not in result.values:
        raise BenchError(
            f"no broadcast reached every connection ({outcome.detail['broadcasts_seen']} seen)"
        )


def rss_sampler(
    server: Server, result: RunResult, settle: float, window: ActiveWindow | None = None
) -> Callable[[int], None]:
    """At ``ready``: sample the held RSS after ``settle`` s, then start ``window`` if given."""

    def sample(ready: int) -> None:
        time.sleep(settle)
        result.rss_held_kib = tree_rss_kib(server)
        if window is not None:
            window.arm()

    return sample


def check_run(server: Server, scenario: Scenario, result: RunResult) -> None:
    """Turn wsload's report into the scenario's values; BenchError if there are none."""
    report = result.wsload
    if report.get("exit_code") == 3:
        raise BenchError(f"no handshake completed ({error_summary(report)})")
    if server.process.poll() is not None:
        raise BenchError(f"server died during the run ({server.process.returncode})")
    if scenario.compression and not report.get("deflate"):
        raise BenchError("permessage-deflate was not negotiated")
    values = result.values
    derived = {
        "kib_per_conn": lambda: kib_per_conn(result),
        "accept_s": lambda: float(report.get("ramp_s", 0.0)),  # start to the last 101
        "last_arrival_ms": lambda: float(report.get("max_us", 0.0)) / 1000,
        "broadcast_deliveries_per_s": lambda: broadcast_rate(report),
        "established_receivers": lambda: float(report.get("established", 1)) - 1,  # - sender
        CLIENT_CPU_METRIC: lambda: float(report.get("cpu_pct", 0.0)),  # wsload's own window
    }
    for metric in scenario.metrics:
        get = derived.get(metric.field)
        values[metric.field] = get() if get else float(report.get(metric.field, 0.0))
    operations = float(report.get(scenario.rate_field, 0.0)) * float(report.get("duration", 0))
    cpu = result.server_cpu_s
    if cpu and operations > 0 and scenario.unit:  # 0: under one tick
        values[CPU_METRIC] = cpu / operations * 1e6
    if scenario.rss_active and result.rss_active_kib and result.rss_before_kib:
        established = max(1, int(report.get("established", 0)))
        values[ACTIVE_RSS_METRIC] = (result.rss_active_kib - result.rss_before_kib) / established
    # a memory delta may be ~0 (or below) legitimately; wsload's CPU % is only a gauge
    may_be_zero = ("kib_per_conn", ACTIVE_RSS_METRIC, CLIENT_CPU_METRIC)
    zero = [name for name, value in values.items() if value <= 0 and name not in may_be_zero]
    if zero:
        raise BenchError(f"{zero[0]} is 0 ({error_summary(report)})")


def broadcast_rate(report: dict[str, Any]) -> float:
    """Receivers / the longest send-to-arrival time (s): one broadcast's delivery rate."""
    longest = float(report.get("max_us", 0.0)) / 1e6
    return (float(report.get("established", 1)) - 1) / longest if longest > 0 else 0.0


def kib_per_conn(result: RunResult) -> float:
    established = int(result.wsload.get("established", 0))
    if result.rss_held_kib is None or result.rss_before_kib is None or established <= 0:
        raise BenchError("no RSS sample while the connections were held")
    return (result.rss_held_kib - result.rss_before_kib) / established


def error_summary(report: dict[str, Any]) -> str:
    errors = {k: v for k, v in report.items() if k.startswith("err_") and v}
    return ", ".join(f"{k}={v}" for k, v in errors.items()) or "no errors reported"


def describe(result: RunResult) -> str:
    if result.error:
        return f"error: {result.error}"
    text = ", ".join(f"{name}={value:.1f}" for name, value in result.values.items())
    if result.noisy:
        waits = ", ".join(f"{k} {v:.0f}%" for k, v in result.cpu_wait_pct.items())
        text += f" (waited for a CPU: {waits})"
    if result.discarded:
        text += f": {result.discarded}"
    return text


def probe_b(ctx: Context, name: str, rep: int, results: list[RunResult]) -> None:
    """Measure B for ``name`` because an H rate needs it (kept in the JSON, not the table)."""
    probe = run_one(ctx, CONTENDERS[name], SCENARIOS["B"], rep)
    results.append(probe)
    progress(f"  {name} B ({H_PROBE}): {describe(probe)}")
    probe.discarded = H_PROBE


def plan_runs(ctx: Context) -> tuple[list[tuple[int, Contender, Scenario]], list[RunResult]]:
    """(rep, contender, scenario) in run order, and a result for each scenario that cannot
    run (n/a, wsload too old: once, with the reason). Repetition by repetition; within one,
    every contender's H runs come after every contender's other scenarios, so the B the
    shared H rate is based on has run before the first H."""
    s = ctx.settings
    plan = []
    unrunnable: list[RunResult] = []
    order = [
        (contender, scenario)
        for h_pass in (False, True)
        for contender in s.contenders
        for scenario in s.scenarios
        if bool(scenario.load) == h_pass
    ]
    for rep in range(s.reps):
        for contender, scenario in order:
            reason = not_runnable(ctx, contender, scenario)
            if not reason:
                plan.append((rep, contender, scenario))
            elif rep == 0:
                unrunnable.append(RunResult(contender.name, scenario.key, rep, error=reason))
    return plan, unrunnable


def h_rate(
    ctx: Context,
    contender: Contender,
    scenario: Scenario,
    rep: int,
    results: list[RunResult],
    probe: Probe | None = None,
) -> int:
    """wsload's ``-r`` for ``scenario`` (0 unless H); B probes (``probe_b`` unless
    ``probe``) go into ``results``."""
    if not scenario.load:
        return 0
    if probe is None:
        probe = lambda name: probe_b(ctx, name, rep, results)  # noqa: E731
    return ctx.open_loop.rate(scenario, contender.name, results, probe)


def run_all(ctx: Context) -> list[RunResult]:
    """Every repetition of every (contender, scenario) in :func:`plan_runs`' order; a
    scenario that cannot run (n/a, wsload too old) gets one result with the reason instead."""
    s = ctx.settings
    plan, results = plan_runs(ctx)
    for index, (rep, contender, scenario) in enumerate(plan, 1):
        for attempt in range(s.noisy_retries + 1):
            try:
                rate = h_rate(ctx, contender, scenario, rep, results)
            except BenchError as exc:
                results.append(RunResult(contender.name, scenario.key, rep, error=str(exc)))
                break
            result = run_one(ctx, contender, scenario, rep, rate)
            result.offered_rate = rate
            retry = result.ok and result.noisy and attempt < s.noisy_retries
            result.discarded = "noisy, run again" if retry else ""
            results.append(result)
            progress(
                f"[{index}/{len(plan)}] {contender.name} {scenario.key} rep {rep + 1}: "
                f"{describe(result)}"
            )
            if not retry:
                break
    return results


def metadata(ctx: Context, argv: list[str], nofile: int) -> dict[str, Any]:
    s = ctx.settings
    local = ["pyswoole", "uvloop", "httptools"]
    peers = ["websockets", "aiohttp", "picows", "uvloop", "aiofastnet"]
    return {
        "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "command": [sys.executable, *sys.argv[:1], *argv],
        "servers": [c.name for c in s.contenders],
        "scenarios": {sc.key: sc.title for sc in s.scenarios},
        "sizes": dataclasses.asdict(s.sizes),
        "duration_s": s.duration,
        "warmup_s": s.warmup,
        "reps": s.reps,
        "noisy_retries": s.noisy_retries,
        "cpus": {"server": server_cpu(s), "client": client_cpu(s)},
        "scale_unpinned": s.unpinned,
        "scale_busy_poll": s.busy_poll,
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "nofile_limit": nofile,
        "wsload_features": sorted(ctx.features),
        "loadavg_at_start": os.getloadavg(),
        "versions": {
            "local": versions(local_python(), local),
            "peers": versions(ctx.peers, peers) if ctx.peers else {},
            "swoole": swoole_version() if any(c.runtime == "php" for c in s.contenders) else "",
        },
        "peers_error": ctx.peers_error,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ctx = Context(settings_from(parse_args(argv)))
    if ctx.settings.plot_path and (reason := plot.unavailable()):
        progress(f"error: --plot: {reason}")
        return 2
    nofile = raise_nofile_limit()
    if ctx.settings.cpus is None:
        progress("warning: fewer than 2 usable CPUs or no taskset: running unpinned")
    if os.getloadavg()[0] > BUSY_LOADAVG:
        progress(f"warning: load average {os.getloadavg()[0]:.2f}: the machine is not idle")
    try:
        wsload.build()
    except BenchError as exc:
        progress(f"error: {exc}")
        return 1
    prepare_peers(ctx)
    prepare_runtimes(ctx)
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as workdir:
        prepare_scenarios(ctx, Path(workdir))
        meta = metadata(ctx, argv, nofile)
        results = run_all(ctx)
    over = annotate(results)
    kept = [r for r in results if not r.discarded]
    rows = [c.name for c in ctx.settings.contenders]
    h_title = ctx.open_loop.title(ctx.settings.scenarios)
    rendered = render(rows, ctx.settings.scenarios, kept, {"latency": h_title})
    footnotes = [legend(), *notes(rows, kept), *over]
    print(rendered)
    print()
    print("\n".join(f"- {line}" for line in footnotes))
    meta["notes"] = footnotes
    if any(s.load for s in ctx.settings.scenarios):
        meta["open_loop"] = ctx.open_loop.summary(ctx.settings.scenarios, results)
    meta["loadavg_at_end"] = os.getloadavg()
    save(ctx.settings.json_path, meta, results, rendered)
    progress(f"raw results: {ctx.settings.json_path}")
    if ctx.settings.plot_path:
        plot.draw(ctx.settings.plot_path, rows, ctx.settings.scenarios, kept)
        progress(f"chart: {ctx.settings.plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
