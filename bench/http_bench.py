"""HTTP requests per second, side by side: pyswoole, uvicorn + httptools, aiohttp.web, socketify.

Two scenarios, each server answering on one core with wrk on the other (100 keep-alive
connections, 1 wrk thread):

* ``hello``: ``GET /``, a 13-byte ``text/plain`` answer from the application's own handler
  (pyswoole's ``on("request")``, a trivial ASGI app, an aiohttp handler, ``app.get``);
* ``static``: ``GET /static/site.css``, a 4 KiB file from the server's static file handler
  (pyswoole's ``enable_static_handler``, Starlette's ``StaticFiles`` under uvicorn, aiohttp's
  ``add_static``, socketify's ``app.static``).

Reported: requests/s, the server's CPU µs per request (user + system of its process tree over
wrk's measured run, divided by the requests wrk counted), and wrk's p50/p99 latency. Usage::

    .venv/bin/python bench/http_bench.py                      # everything, 3 reps of 5 s
    .venv/bin/python bench/http_bench.py --smoke --servers pyswoole
    .venv/bin/python bench/http_bench.py --servers pyswoole,socketify --reps 5

Named ``http_bench.py``, not ``http.py``: a script's folder comes first on ``sys.path``, and a
``bench/http.py`` would stand in for the standard library's ``http`` package.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BenchError
from harness.cli import csv_list
from harness.contenders import BENCH, REPO, local_python, peers_python, versions
from harness.processes import (
    HOST,
    Server,
    cpu_seconds,
    free_port,
    last_line,
    pick_cpus,
    pinned,
    raise_nofile_limit,
    run_delays,
    spawn_server,
    stop_server,
    tree_pids,
)

SERVERS = BENCH / "servers"
READY_TIMEOUT = 20.0  # seconds for a server to start answering GET /
WRK_SLACK = 15.0  # seconds on top of a wrk run's duration before it is killed
APT_TIMEOUT = 300.0  # seconds for apt-get install wrk
PIP_TIMEOUT = 300.0  # seconds for installing an optional peer (socketify)
STATIC_SIZE = 4096
STATIC_PATH = "/static/site.css"
NOISY_PCT = 10.0  # the server waited for its CPU this % of a run or more: someone else ran


@dataclass(frozen=True)
class HttpContender:
    name: str
    script: str
    peer: bool  # runs from bench/.peers
    packages: tuple[str, ...]  # distributions whose versions the JSON records
    env: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()
    optional: str = ""  # a package installed into the peers venv on demand (may fail)


CONTENDERS: dict[str, HttpContender] = {
    c.name: c
    for c in (
        HttpContender("pyswoole", "http_pyswoole.py", False, ("pyswoole", "uvloop", "httptools")),
        HttpContender(
            "pyswoole-py",
            "http_pyswoole.py",
            False,
            ("pyswoole", "uvloop", "httptools"),
            env=(("PYSWOOLE_NO_EXTENSIONS", "1"),),
        ),
        HttpContender(
            "uvicorn", "http_uvicorn.py", True, ("uvicorn", "httptools", "starlette", "uvloop")
        ),
        HttpContender("aiohttp", "http_aiohttp.py", True, ("aiohttp", "uvloop")),
        HttpContender("socketify", "http_socketify.py", True, ("socketify",), optional="socketify"),
    )
}
DEFAULT_SERVERS = ["pyswoole", "uvicorn", "aiohttp", "socketify"]
SMOKE_SERVERS = ["pyswoole"]
SCENARIOS = {"hello": "/", "static": STATIC_PATH}


@dataclass
class HttpRun:
    contender: str
    scenario: str
    rep: int
    error: str = ""
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    server_cpu_s: float | None = None
    cpu_us_per_req: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    non_2xx: int = 0
    cpu_wait_pct: float | None = None  # the server's run delay over the run (interference)
    socket_errors: str = ""
    wrk_output: str = ""
    server_tail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- setup ---------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """wrk's path; installs Debian's ``wrk`` package with apt-get when missing (as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BenchError("wrk is not installed (Debian: apt-get install -y wrk)")
    progress("wrk: apt-get install -y wrk …")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    done = None
    for cmd in (install, ["apt-get", "update", "-q"], install):  # update only if needed
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=APT_TIMEOUT, env=env, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BenchError(f"apt-get: {exc}") from exc
        found = shutil.which("wrk")
        if found:
            return found
    raise BenchError(f"cannot install wrk: {last_line(done.stderr) if done else ''}")


def ensure_optional(python: str, package: str) -> str:
    """'' if ``package`` imports in the peers venv (installing it with pip if needed), else why
    not: an optional peer that does not install only fills its own cells with the reason."""
    probe = [python, "-c", f"import {package}"]
    if subprocess.run(probe, capture_output=True, timeout=60, check=False).returncode == 0:
        return ""
    progress(f"peers venv: pip install {package} …")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", package]
    try:
        done = subprocess.run(pip, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{package} not installable: {exc}"
    if done.returncode != 0:
        return f"{package} not installable: {last_line(done.stderr)}"
    if subprocess.run(probe, capture_output=True, timeout=60, check=False).returncode != 0:
        return f"{package} installed but does not import"
    return ""


def make_root(directory: Path) -> Path:
    """The document root: ``static/site.css`` (STATIC_SIZE bytes of CSS) under it."""
    rule = b"body { color: #123456; margin: 0 auto; }\n"
    (directory / "static").mkdir()
    css = (rule * (STATIC_SIZE // len(rule) + 1))[:STATIC_SIZE]
    (directory / "static" / "site.css").write_bytes(css)
    return directory


# -- one server ---------------------------------------------------------------------------


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Status and body of one ``GET`` (Connection: close; the body is what follows the head)."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    if match is None:
        raise BenchError(f"not an HTTP answer: {data[:60]!r}")
    return int(match.group(1)), body


def wait_http(server: Server, root: Path) -> None:
    """Return once ``GET /`` and the static file are answered correctly (bounded)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            raise BenchError(f"server exited ({code}): {last_line(server.log_tail())}")
        try:
            status, body = http_get(server.port, "/")
        except OSError:
            time.sleep(0.05)
            continue
        if status != 200 or body != b"Hello, World!":
            raise BenchError(f"GET / answered {status} {body[:40]!r}")
        status, body = http_get(server.port, STATIC_PATH)
        if status != 200 or body != (root / "static" / "site.css").read_bytes():
            raise BenchError(f"GET {STATIC_PATH} answered {status}, {len(body)} bytes")
        return
    raise BenchError(f"no answer to GET / on port {server.port} within {READY_TIMEOUT:.0f} s")


def run_wrk(
    wrk: str, port: int, path: str, conns: int, seconds: float, cpu: int | None
) -> tuple[str, float]:
    """wrk's output and the seconds it ran."""
    cmd = [
        wrk,
        "-t1",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "5s",
        f"http://{HOST}:{port}{path}",
    ]
    started = time.monotonic()
    try:
        done = subprocess.run(
            pinned(cmd, cpu), capture_output=True, text=True, timeout=seconds + WRK_SLACK
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError("wrk did not finish") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk failed: {last_line(done.stderr or done.stdout)}")
    return done.stdout, time.monotonic() - started


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(output: str, run: HttpRun) -> None:
    """Fill ``run`` from wrk's report (requests, seconds, rate, latency, errors)."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if total is None:
        raise BenchError(f"no request count in wrk's output: {last_line(output)}")
    run.requests = int(total.group(1))
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[total.group(3)]
    run.seconds = float(total.group(2)) * scale
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    run.rps = float(rate.group(1)) if rate else run.requests / max(run.seconds, 1e-9)
    for label, attr in (("50%", "p50_ms"), ("99%", "p99_ms")):
        found = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if found:
            setattr(run, attr, float(found.group(1)) * _UNITS[found.group(2)])
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    run.non_2xx = int(non.group(1)) if non else 0
    errors = re.search(r"Socket errors: (.*)", output)
    run.socket_errors = errors.group(1).strip() if errors else ""


def measure_server(
    contender: HttpContender,
    python: str,
    wrk: str,
    root: Path,
    args: argparse.Namespace,
    cpus: tuple[int, int] | None,
    rep: int,
) -> list[HttpRun]:
    """Start one fresh server, run every scenario on it (warm-up, then measured), stop it."""
    runs = [HttpRun(contender.name, key, rep) for key in args.scenarios]
    port = free_port()
    cmd = [python, str(SERVERS / contender.script), "--port", str(port), "--root", str(root)]
    cmd.extend(contender.args)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("PYSWOOLE_NO_EXTENSIONS", None)
    env.update(contender.env)
    if not contender.peer:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p
        )
    try:
        server = spawn_server(cmd, port, env, cpus[0] if cpus else None)
    except OSError as exc:
        for run in runs:
            run.error = f"cannot start server: {exc}"
        return runs
    try:
        wait_http(server, root)
        client_cpu = cpus[1] if cpus else None
        for run in runs:
            path = SCENARIOS[run.scenario]
            try:
                if args.warmup > 0:
                    run_wrk(wrk, port, path, args.conns, args.warmup, client_cpu)
                pids = tree_pids(server)
                before = sum(cpu_seconds(pid) for pid in pids)
                waited = _delay_ns(pids)
                output, elapsed = run_wrk(wrk, port, path, args.conns, args.duration, client_cpu)
                after = sum(cpu_seconds(pid) for pid in pids)
                run.cpu_wait_pct = (_delay_ns(pids) - waited) / (elapsed * 1e9) * 100
                run.wrk_output = output
                parse_wrk(output, run)
                run.server_cpu_s = after - before
                if run.requests:
                    run.cpu_us_per_req = run.server_cpu_s / run.requests * 1e6
                if run.requests == 0 or run.non_2xx:
                    run.error = f"{run.non_2xx} non-2xx answers of {run.requests}"
            except BenchError as exc:
                run.error = str(exc)
            if server.process.poll() is not None:
                raise BenchError(f"server exited: {last_line(server.log_tail())}")
    except BenchError as exc:
        for run in runs:
            run.error = run.error or str(exc)
    finally:
        tail = server.log_tail()
        stop_server(server)
        for run in runs:
            run.server_tail = tail
    return runs


def _delay_ns(pids: list[int]) -> int:
    """Nanoseconds the threads of ``pids`` have waited for a CPU so far (schedstat)."""
    return sum(sum(run_delays(pid).values()) for pid in pids)


# -- report -------------------------------------------------------------------------------


def cell(values: list[float], fmt: str) -> str:
    if not values:
        return "error"
    middle = fmt.format(statistics.median(values))
    if len(values) == 1:
        return middle
    return f"{middle} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def render(runs: list[HttpRun], names: list[str], scenarios: list[str], conns: int) -> str:
    columns = []
    for key in scenarios:
        columns += [f"{key} req/s", f"{key} server µs/req", f"{key} p50/p99 ms"]
    lines = [
        f"HTTP/1.1 keep-alive, {conns} connections, wrk -t1 (client core) vs the server "
        "(server core); median (min-max) over the repetitions; * some repetitions failed; "
        f"‡ the server waited for its CPU >= {NOISY_PCT:.0f}% of a run (noisy)",
        "",
        f"| server | {' | '.join(columns)} |",
        "|---|" + "---:|" * len(columns),
    ]
    notes: list[str] = []
    for name in names:
        cells = []
        for key in scenarios:
            mine = [r for r in runs if r.contender == name and r.scenario == key]
            good = [r for r in mine if not r.error]
            bad = dict.fromkeys(r.error for r in mine if r.error)
            notes.extend(f"{name} {key}: {reason}" for reason in bad)
            if not good:
                reason = next(iter(bad), "not run")
                cells += [f"error: {reason[:60]}", "-", "-"]
                continue
            noisy = any((r.cpu_wait_pct or 0) >= NOISY_PCT for r in good)
            star = ("*" if bad else "") + ("‡" if noisy else "")
            cells.append(cell([r.rps for r in good], "{:.0f}") + star)
            cpu = [r.cpu_us_per_req for r in good if r.cpu_us_per_req is not None]
            cells.append(cell(cpu, "{:.1f}"))
            p50 = [r.p50_ms for r in good if r.p50_ms is not None]
            p99 = [r.p99_ms for r in good if r.p99_ms is not None]
            cells.append(
                f"{statistics.median(p50):.2f}/{statistics.median(p99):.2f}" if p50 and p99 else "-"
            )
        lines.append(f"| {name} | {' | '.join(cells)} |")
    if notes:
        lines += ["", "Notes:", *(f"- {n}" for n in notes)]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--servers",
        type=csv_list(list(CONTENDERS)),
        help=f"comma-separated, from {','.join(CONTENDERS)} "
        f"(default: {','.join(DEFAULT_SERVERS)}; smoke: pyswoole)",
    )
    parser.add_argument(
        "--scenarios", type=csv_list(list(SCENARIOS)), default=list(SCENARIOS), help="hello,static"
    )
    parser.add_argument("--duration", type=float, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds first (default 1)")
    parser.add_argument("--reps", type=int, help="repetitions (default 3)")
    parser.add_argument("--conns", type=int, help="keep-alive connections (default 100)")
    parser.add_argument("--smoke", action="store_true", help="1 s runs, 1 rep, 10 connections")
    parser.add_argument("--json", type=Path, help="results file (default bench/results/http-…)")
    args = parser.parse_args(argv)
    smoke = bool(args.smoke)
    args.servers = args.servers or (SMOKE_SERVERS if smoke else DEFAULT_SERVERS)
    args.duration = args.duration if args.duration is not None else (1.0 if smoke else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.0 if smoke else 1.0)
    args.reps = max(1, args.reps if args.reps is not None else (1 if smoke else 3))
    args.conns = args.conns if args.conns is not None else (10 if smoke else 100)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile_limit()
    cpus = pick_cpus()
    names = list(dict.fromkeys(args.servers))
    wrk = ensure_wrk()
    peers: str | None = None
    unavailable: dict[str, str] = {}
    if any(CONTENDERS[n].peer for n in names):
        progress("peers venv: bench/.peers …")
        try:
            peers = str(peers_python())
        except BenchError as exc:
            for name in names:
                if CONTENDERS[name].peer:
                    unavailable[name] = str(exc)
    for name in names:
        optional = CONTENDERS[name].optional
        if optional and peers is not None and name not in unavailable:
            reason = ensure_optional(peers, optional)
            if reason:
                unavailable[name] = reason
    runs: list[HttpRun] = []
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        root = make_root(Path(tmp))
        for rep in range(args.reps):  # repetition by repetition, as bench/run.py
            for name in names:
                contender = CONTENDERS[name]
                if name in unavailable:
                    runs.extend(
                        HttpRun(name, key, rep, error=unavailable[name]) for key in args.scenarios
                    )
                    continue
                python = peers if contender.peer else local_python()
                assert python is not None
                progress(f"rep {rep + 1}/{args.reps}: {name} …")
                runs.extend(measure_server(contender, python, wrk, root, args, cpus, rep))
    rendered = render(runs, names, args.scenarios, args.conns)
    print(rendered)
    versions_seen: dict[str, dict[str, str]] = {}
    for name in names:
        contender = CONTENDERS[name]
        python = peers if contender.peer else local_python()
        if python is not None:
            versions_seen[name] = versions(python, list(contender.packages))
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = args.json or BENCH / "results" / f"http-{stamp}.json"
    meta = {
        "argv": sys.argv,
        "platform": platform.platform(),
        "cpus": cpus,
        "loadavg": os.getloadavg(),
        "wrk": (wrk_version.stdout or wrk_version.stderr).strip().splitlines()[:1],
        "versions": versions_seen,
        "static_size": STATIC_SIZE,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "table": rendered, "runs": [asdict(r) for r in runs]}
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    progress(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
