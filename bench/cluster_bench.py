"""Cross-node fanout and publish-vs-broadcast benchmark (issue 16), in one run:

* **X, cross-node fanout**: one ``redis-server`` (free port, no persistence), two nodes of
  a contender, ``--receivers`` receivers spread over both nodes, one topic/room, one
  publisher on node 1 at a fixed rate. pyswoole: two ``bench/servers/cluster_pyswoole.py``
  processes with the ``cluster`` setting on that Redis (``subscribe`` on open,
  ``publish`` per message). Socket.IO: two ``bench/servers/socketio/server.js`` processes
  with ``@socket.io/redis-adapter`` (``join`` on connection, ``io.to(room).emit``). The
  rate climbs through ``--rates`` until a contender saturates (then it stops for it).
* **P, publish vs broadcast**: one pyswoole node with ``worker_num=4``, no cluster, the same
  receivers and rate, delivering with ``publish(topic, data)``, with ``broadcast(data,
  fds)`` to the same fds, or with ``broadcast(data)`` to every connection (the publisher
  gets a copy too): the server's CPU per delivered message of each, and the ratios.

Both sides are driven by the same Node client (``bench/servers/socketio/client.js``):
socket.io-client for Socket.IO; for pyswoole the ``ws`` package (what socket.io-client
uses under Node) or, with ``--ws-client raw`` or without ``npm``, a minimal client on
Node's ``net``. Deliveries/s count the messages that arrive in the measured window (after
``--warmup``); latency is arrival minus the send time carried in each payload (one
CLOCK_MONOTONIC for every process). See bench/README.md, section "Cluster".

    .venv/bin/python bench/cluster_bench.py                  # both parts, both contenders
    .venv/bin/python bench/cluster_bench.py --smoke          # seconds: tiny sizes
    .venv/bin/python bench/cluster_bench.py --parts P --reps 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import BenchError
from harness.cli import csv_list
from harness.node_clients import (
    SOCKETIO,
    GroupCpu,
    NodeClient,
    client_pids,
    merge_hists,
    node_available,
    npm_install,
    npm_versions,
    percentile_ms,
    server_tree,
    start_redis,
    wait_all,
    wait_output,
)
from harness.processes import (
    Server,
    free_port,
    raise_nofile_limit,
    spawn_server,
    stop_server,
    wait_ready,
)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SERVERS = BENCH / "servers"
RESULTS = BENCH / "results"
CONTENDERS = ("pyswoole", "socketio")
PARTS = ("X", "P")
ROOM = "bench"
DELIVERIES = ("publish", "broadcast", "broadcast-all")  # part P, cluster_pyswoole --deliver
SATURATED = 0.95  # a run delivering less than this share of the offered load is saturated
SATURATED_P99_MS = 1000.0  # ... or whose p99 latency is above this


@dataclass(frozen=True)
class Settings:
    receivers: int
    clients: int
    rates: list[int]
    warmup: float
    duration: float
    drain: float  # seconds to wait, after the last send, for every receiver to get it
    size: int
    node_workers: int  # worker_num of each pyswoole node in part X
    pb_receivers: int
    pb_rate: int
    pb_workers: int
    reps: int
    ws_client: str  # raw | ws


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- servers ---------------------------------------------------------------------------------


def start_nodes(
    contender: str, count: int, redis_url: str, workers: int, deliver: str = "publish"
) -> list[Server]:
    """``count`` nodes of ``contender``, each its own process tree, ready to take clients."""
    nodes: list[Server] = []
    try:
        for i in range(count):
            port = free_port()
            if contender == "pyswoole":
                env = dict(os.environ, PYTHONUNBUFFERED="1")  # PYSWOOLE_NO_EXTENSIONS too
                path = [str(REPO / "src"), str(SERVERS), env.get("PYTHONPATH", "")]
                env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
                cmd = [sys.executable, str(SERVERS / "cluster_pyswoole.py"), "--port", str(port)]
                cmd += ["--workers", str(workers), "--node", f"n{i + 1}", "--deliver", deliver]
                if redis_url:
                    cmd += ["--redis", redis_url]
                node = spawn_server(cmd, port, env, None)
                nodes.append(node)
                wait_ready(node)
            else:
                cmd = ["node", str(SOCKETIO / "server.js"), "--port", str(port)]
                cmd += ["--redis", redis_url, "--node", f"n{i + 1}"]
                node = spawn_server(cmd, port, dict(os.environ), None)
                nodes.append(node)
                wait_output(node, "on port", 20.0)
    except BaseException:
        for node in nodes:
            stop_server(node)
        raise
    return nodes


def urls(contender: str, nodes: list[Server]) -> tuple[list[str], str]:
    """(receiver URLs, one per node; the publisher's URL on node 1)."""
    if contender == "pyswoole":
        base = [f"ws://127.0.0.1:{n.port}" for n in nodes]
        return [f"{b}/t/{ROOM}" for b in base], f"{base[0]}/pub/{ROOM}"
    base = [f"http://127.0.0.1:{n.port}" for n in nodes]
    return base, base[0]


# -- one run ---------------------------------------------------------------------------------


def run_fanout(
    contender: str,
    nodes: list[Server],
    redis: Server | None,
    receivers: int,
    rate: int,
    s: Settings,
) -> dict[str, Any]:
    """Receivers on every node, the publisher on node 1, ``rate`` messages/s for warmup +
    duration seconds; what the receivers counted in the window, and everyone's CPU."""
    proto = s.ws_client if contender == "pyswoole" else "sio"
    receiver_urls, publisher_url = urls(contender, nodes)
    per_client = [receivers // s.clients + (i < receivers % s.clients) for i in range(s.clients)]
    clients: list[NodeClient] = []
    publisher: NodeClient | None = None
    try:
        for i, n in enumerate(c for c in per_client if c):
            args = ["recv", "--proto", proto, "--urls", ",".join(receiver_urls)]
            args += ["--count", str(n), "--room", ROOM]
            clients.append(NodeClient(args, f"receivers {i + 1}"))
        wait_all(clients, "open", 30.0 + receivers / 20)
        args = ["pub", "--proto", proto, "--url", publisher_url, "--room", ROOM]
        publisher = NodeClient([*args, "--size", str(s.size)], "publisher")
        publisher.wait("open", 20.0)
        publisher.send({"cmd": "sync"})
        wait_all(clients, "synced", 20.0)

        groups = {f"node{i + 1}": server_tree(node) for i, node in enumerate(nodes)}
        if redis is not None:
            groups["redis"] = server_tree(redis)
        groups["clients"] = client_pids(clients)
        groups["publisher"] = client_pids([publisher])
        per_process = GroupCpu({c.name: client_pids([c]) for c in clients})
        cpu = GroupCpu(groups)
        start = time.monotonic_ns() + int(s.warmup * 1e9)
        end = start + int(s.duration * 1e9)
        for client in clients:
            client.send({"cmd": "window", "start": start, "end": end})
        delay = (start - time.monotonic_ns()) / 1e9
        timers = [cpu.at(delay, "start"), per_process.at(delay, "start")]
        timers += [cpu.at(delay + s.duration, "end"), per_process.at(delay + s.duration, "end")]
        publisher.send({"cmd": "go", "rate": rate, "seconds": s.warmup + s.duration})
        done = publisher.wait("done", s.warmup + s.duration + 30.0)
        for timer in timers:
            timer.join(5.0)
        for client in clients:
            client.send({"cmd": "expect", "n": done["sent"]})
        drained = True
        try:
            wait_all(clients, "complete", s.drain)
        except BenchError:
            drained = False
        for client in clients:
            client.send({"cmd": "report"})
        reports = wait_all(clients, "report", 30.0)
    finally:
        for client in [*clients, *([publisher] if publisher else [])]:
            client.stop()
    return summarise(contender, receivers, rate, s, done, drained, reports, cpu, per_process)


def summarise(
    contender: str,
    receivers: int,
    rate: int,
    s: Settings,
    done: dict[str, Any],
    drained: bool,
    reports: list[dict[str, Any]],
    cpu: GroupCpu,
    per_process: GroupCpu,
) -> dict[str, Any]:
    hist = merge_hists(r["hist"] for r in reports)
    window = sum(int(r["window_deliveries"]) for r in reports)
    seconds = cpu.seconds()
    client_cpu = per_process.seconds()
    return {
        "contender": contender,
        "receivers": receivers,
        "rate": rate,
        "offered_per_s": rate * receivers,
        "sent": done["sent"],
        "publisher_max_lag_ms": round(float(done["max_lag_ms"]), 2),
        "deliveries_per_s": window / s.duration,
        "window_deliveries": window,
        "p50_ms": percentile_ms(hist, 0.50),
        "p99_ms": percentile_ms(hist, 0.99),
        "max_ms": max((float(r["max_latency_us"]) for r in reports), default=0.0) / 1000,
        "drained": drained,
        "receivers_complete": sum(int(r["complete"]) for r in reports),
        "min_count": min(int(r["min_count"]) for r in reports),
        "max_count": max(int(r["max_count"]) for r in reports),
        "out_of_order": sum(int(r["out_of_order"]) for r in reports),
        "closed_early": sum(int(r["closed_early"]) for r in reports),
        "cpu_pct": {k: round(v / s.duration * 100, 1) for k, v in seconds.items()},
        "total_cpu_pct": round(sum(seconds.values()) / s.duration * 100, 1),
        "nodes_us_per_delivery": per_delivery(
            sum(v for k, v in seconds.items() if k.startswith("node")), window
        ),
        "clients_us_per_delivery": per_delivery(seconds.get("clients"), window),
        "client_cpu_pct_max": round(max(client_cpu.values(), default=0) / s.duration * 100, 1),
        "clients": len(reports),
        "client": s.ws_client if contender == "pyswoole" else "socket.io-client",
    }


def per_delivery(cpu_s: float | None, deliveries: int) -> float | None:
    """CPU µs per delivery (None without a CPU sample or a delivery)."""
    return None if cpu_s is None or not deliveries else cpu_s / deliveries * 1e6


def saturated(result: dict[str, Any]) -> bool:
    if "error" in result:
        return True
    p99 = result["p99_ms"]
    short = result["deliveries_per_s"] < SATURATED * result["offered_per_s"]
    return short or p99 is None or p99 > SATURATED_P99_MS


def cross_node(contender: str, rate: int, s: Settings) -> dict[str, Any]:
    """One part-X run: a fresh Redis and two fresh nodes."""
    redis = start_redis()
    try:
        url = f"redis://127.0.0.1:{redis.port}/0"
        workers = s.node_workers
        nodes = start_nodes(contender, 2, url, workers)
        try:
            return run_fanout(contender, nodes, redis, s.receivers, rate, s)
        finally:
            for node in nodes:
                stop_server(node)
    finally:
        stop_server(redis)


def one_node(deliver: str, s: Settings) -> dict[str, Any]:
    """One part-P run: a fresh pyswoole node with ``pb_workers`` workers, no cluster."""
    nodes = start_nodes("pyswoole", 1, "", s.pb_workers, deliver)
    try:
        result = run_fanout("pyswoole", nodes, None, s.pb_receivers, s.pb_rate, s)
    finally:
        stop_server(nodes[0])
    result["deliver"] = deliver
    result["server_us_per_delivery"] = result["nodes_us_per_delivery"]
    return result


def attempt(label: str, run: Any, *args: Any) -> dict[str, Any]:
    log(f"  {label} ...")
    try:
        result: dict[str, Any] = run(*args)
    except BenchError as exc:
        log(f"  {label}: error: {exc}")
        return {"error": str(exc)}
    log(
        f"  {label}: {result['deliveries_per_s']:,.0f} deliveries/s of "
        f"{result['offered_per_s']:,} offered, p50 {fmt(result['p50_ms'])} ms, "
        f"p99 {fmt(result['p99_ms'])} ms, cpu {result['cpu_pct']}"
    )
    return result


# -- the parts -------------------------------------------------------------------------------


def part_x(contenders: list[str], s: Settings) -> list[dict[str, Any]]:
    """Every rate for every contender, interleaved, until each saturates."""
    results: list[dict[str, Any]] = []
    active = list(contenders)
    for rate in s.rates:
        for contender in list(active):
            result = attempt(f"X {contender} @ {rate} msgs/s", cross_node, contender, rate, s)
            result.setdefault("contender", contender)
            result.setdefault("rate", rate)
            result.setdefault("offered_per_s", rate * s.receivers)
            results.append(result)
            if saturated(result):
                active.remove(contender)
        if not active:
            break
    return results


def part_p(s: Settings) -> list[dict[str, Any]]:
    """publish and the broadcasts in turn, ``reps`` times each."""
    results: list[dict[str, Any]] = []
    for rep in range(s.reps):
        for deliver in DELIVERIES:
            result = attempt(f"P {deliver} rep {rep + 1}", one_node, deliver, s)
            result.setdefault("deliver", deliver)
            results.append(result)
    return results


# -- report ----------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 1000 else f"{value:.{digits}f}"


def x_table(results: list[dict[str, Any]], contenders: list[str], s: Settings) -> list[str]:
    out = [
        f"**X: cross-node fanout** ({s.receivers:,} receivers over 2 nodes, 1 publisher on "
        f"node 1, {s.size} B, {s.duration:g} s window after {s.warmup:g} s)",
        "",
        "| contender | msgs/s | offered deliveries/s | deliveries/s | p50 ms | p99 ms | max ms "
        "| got all | CPU % node1 / node2 / redis | receivers' CPU % (max 1 process) "
        "| all CPU % | nodes µs / delivery | receivers µs / delivery |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            out.append(
                f"| {r['contender']} | {r['rate']} | {r['offered_per_s']:,} | error: "
                f"{r['error'][:80]} | | | | | | | | | |"
            )
            continue
        cpu = r["cpu_pct"]
        mark = " ✗" if saturated(r) else ""
        out.append(
            f"| {r['contender']} | {r['rate']} | {r['offered_per_s']:,} | "
            f"{r['deliveries_per_s']:,.0f}{mark} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | "
            f"{fmt(r['max_ms'])} | {r['receivers_complete']}/{r['receivers']} | "
            f"{cpu.get('node1', 0):.0f} / {cpu.get('node2', 0):.0f} / "
            f"{cpu.get('redis', 0):.0f} | {cpu.get('clients', 0):.0f} "
            f"({r['client_cpu_pct_max']:.0f}) | {r['total_cpu_pct']:.0f} | "
            f"{fmt(r['nodes_us_per_delivery'])} | {fmt(r['clients_us_per_delivery'])} |"
        )
    out += ["", *x_summary(results, contenders)]
    return out


def x_summary(results: list[dict[str, Any]], contenders: list[str]) -> list[str]:
    ok = [r for r in results if "error" not in r]
    lines: list[str] = []
    best: dict[str, dict[str, Any]] = {}
    for contender in contenders:
        mine = [r for r in ok if r["contender"] == contender]
        if not mine:
            continue
        best[contender] = max(mine, key=lambda r: r["deliveries_per_s"])
        first_sat = next((r for r in mine if saturated(r)), None)
        sat = f"saturates at {first_sat['rate']} msgs/s" if first_sat else "never saturated"
        top = best[contender]
        lines.append(
            f"- {contender}: max {top['deliveries_per_s']:,.0f} deliveries/s "
            f"(at {top['rate']} msgs/s, p99 {fmt(top['p99_ms'])} ms); {sat}"
        )
    if len(best) == 2:
        a, b = best["pyswoole"], best["socketio"]
        lines.append(
            f"- max deliveries/s, pyswoole / Socket.IO: "
            f"{a['deliveries_per_s'] / max(b['deliveries_per_s'], 1e-9):.2f}x"
        )
        rates = {r["rate"] for r in ok if r["contender"] == "socketio"}
        for rate in sorted(rates):
            pair = {r["contender"]: r for r in ok if r["rate"] == rate}
            if len(pair) == 2:
                p, q = pair["pyswoole"], pair["socketio"]
                times = p["deliveries_per_s"] / max(q["deliveries_per_s"], 1e-9)
                lines.append(
                    f"- at {rate} msgs/s: pyswoole / Socket.IO deliveries/s {times:.2f}x, "
                    f"p99 {fmt(p['p99_ms'])} vs {fmt(q['p99_ms'])} ms"
                )
    return lines


def p_table(results: list[dict[str, Any]], s: Settings) -> list[str]:
    out = [
        f"**P: publish vs broadcast** (one pyswoole node, worker_num={s.pb_workers}, "
        f"{s.pb_receivers:,} receivers, {s.pb_rate} msgs/s, {s.reps} reps)",
        "",
        "| delivery | server CPU µs per delivery | deliveries/s | p50 ms | p99 ms | got all |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    medians: dict[str, float] = {}
    for deliver in DELIVERIES:
        mine = [r for r in results if r.get("deliver") == deliver and "error" not in r]
        costs = [r["server_us_per_delivery"] for r in mine]
        costs = [c for c in costs if c is not None]
        if not mine or not costs:
            out.append(f"| {deliver} | error | | | | |")
            continue
        medians[deliver] = statistics.median(costs)
        rates = [r["deliveries_per_s"] for r in mine]
        p99 = [r["p99_ms"] for r in mine if r["p99_ms"] is not None]
        p50 = [r["p50_ms"] for r in mine if r["p50_ms"] is not None]
        complete = sum(r["receivers_complete"] for r in mine)
        total = sum(r["receivers"] for r in mine)
        out.append(
            f"| {deliver} | {medians[deliver]:.3f} ({min(costs):.3f}-{max(costs):.3f}) | "
            f"{statistics.median(rates):,.0f} | {fmt(statistics.median(p50) if p50 else None)} | "
            f"{fmt(statistics.median(p99) if p99 else None)} | {complete}/{total} |"
        )
    out.append("")
    for baseline, what in (
        ("broadcast", "broadcast(data, fds)"),
        ("broadcast-all", "broadcast(data)"),
    ):
        if "publish" in medians and baseline in medians:
            base = medians[baseline]
            ratio = f"{medians['publish'] / base:.2f}" if base else "n/a (no CPU tick measured)"
            out.append(
                f"- publish / {baseline} server CPU per delivery: {ratio} "
                f"(publish(topic, data) against {what}; target ≤ 1.2)"
            )
    return out


def python_versions() -> dict[str, str]:
    """The Python side's versions, redis-server's and the commit measured."""
    import importlib.metadata as metadata
    import platform
    import subprocess

    found = {"python": platform.python_version()}
    for name in ("pyswoole", "uvloop", "redis"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[f"py:{name}"] = metadata.version(name)
    for key, cmd in (
        ("redis-server", ["redis-server", "--version"]),
        ("commit", ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    ):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        found[key] = out.strip()
    return found


# -- main ------------------------------------------------------------------------------------

FULL: dict[str, Any] = {
    "receivers": 1000,
    "clients": 4,
    "rates": [25, 50, 100, 150, 200, 300, 400, 600],
    "warmup": 2.0,
    "duration": 5.0,
    "drain": 3.0,
    "pb_receivers": 1000,
    "pb_rate": 50,
    "reps": 3,
}
SMOKE: dict[str, Any] = {
    "receivers": 20,
    "clients": 1,
    "rates": [20],
    "warmup": 0.3,
    "duration": 1.0,
    "drain": 10.0,
    "pb_receivers": 20,
    "pb_rate": 20,
    "reps": 1,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--contenders", type=csv_list(CONTENDERS), default=list(CONTENDERS))
    parser.add_argument("--parts", type=csv_list(PARTS), default=list(PARTS))
    parser.add_argument("--receivers", type=int, help="part X receivers (1000)")
    parser.add_argument("--clients", type=int, help="receiver client processes (4)")
    parser.add_argument(
        "--rates",
        type=lambda t: [int(x) for x in t.split(",")],
        help="part X publisher rates, msgs/s (25,50,100,150,200,300,400,600)",
    )
    parser.add_argument("--warmup", type=float)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--drain", type=float, help="seconds to wait for stragglers (3)")
    parser.add_argument("--size", type=int, default=32, help="payload bytes (>= 27)")
    parser.add_argument("--node-workers", type=int, default=1, help="X: worker_num per node")
    parser.add_argument("--pb-receivers", type=int, help="part P receivers (1000)")
    parser.add_argument("--pb-rate", type=int, help="part P msgs/s (50)")
    parser.add_argument("--pb-workers", type=int, default=4)
    parser.add_argument("--reps", type=int, help="part P repetitions (3)")
    parser.add_argument(
        "--ws-client",
        choices=("auto", "raw", "ws"),
        default="auto",
        help="pyswoole's client: ws package (auto when installed) or raw",
    )
    parser.add_argument("--json", type=Path, help="raw results (bench/results/cluster-*.json)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = SMOKE if args.smoke else FULL
    value = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in base.items()}
    raise_nofile_limit()
    problem = node_available()
    if problem:
        log(f"cluster_bench: {problem}: the Node load client needs it")
        return 2
    contenders = list(args.contenders)
    npm_problem = npm_install() if ("socketio" in contenders or args.ws_client == "ws") else None
    if npm_problem and "socketio" in contenders:
        log(f"cluster_bench: skipping Socket.IO: {npm_problem}")
        contenders.remove("socketio")
    ws_client = args.ws_client
    if ws_client == "auto":
        ws_client = "ws" if (SOCKETIO / "node_modules" / "ws").is_dir() else "raw"
    if ws_client == "ws" and npm_problem:
        log(f"cluster_bench: --ws-client ws needs npm: {npm_problem}")
        return 2
    s = Settings(
        **value,
        size=max(27, args.size),
        node_workers=args.node_workers,
        pb_workers=args.pb_workers,
        ws_client=ws_client,
    )
    meta = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": sys.argv,
        "loadavg_at_start": os.getloadavg(),
        "settings": s.__dict__,
        "versions": {**python_versions(), **npm_versions()},
        "cpus": len(os.sched_getaffinity(0)),
        "pyswoole_no_extensions": os.environ.get("PYSWOOLE_NO_EXTENSIONS", ""),
    }
    log(f"cluster_bench: contenders {contenders}, parts {args.parts}, pyswoole client {ws_client}")
    x = part_x(contenders, s) if "X" in args.parts and contenders else []
    p = part_p(s) if "P" in args.parts and "pyswoole" in args.contenders else []
    meta["loadavg_at_end"] = os.getloadavg()
    lines: list[str] = []
    if x:
        lines += [*x_table(x, contenders, s), ""]
    if p:
        lines += [*p_table(p, s), ""]
    lines.append(
        "✗: saturated (delivered < 95 % of the offered load, or p99 > 1 s); got all: receivers "
        "that got every message sent (after the drain wait); CPU %: of one core, over the window"
    )
    print("\n".join(lines))
    path = args.json or RESULTS / f"cluster-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "X": x, "P": p}, indent=1))
    log(f"cluster_bench: results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
