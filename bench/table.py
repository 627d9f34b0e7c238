"""Table.get / set / incr operations per second, from one process and from two at once, against
what a Python user would otherwise reach for to share state between processes: a
``multiprocessing.Manager().dict()`` and, when a ``redis-server`` binary and the ``redis``
package are installed, a local Redis (one connection per process; HGETALL / HSET / HINCRBY).

    .venv/bin/python bench/table.py                   # 2 s per measurement
    PYSWOOLE_NO_EXTENSIONS=1 .venv/bin/python bench/table.py
    .venv/bin/python bench/table.py --seconds 0.2     # quick look (the smoke test uses --smoke)

Issue 14's targets: per process, Table >= 20x the Manager dict and >= 5x local Redis. The
rows: 3 columns (int, string(32), float); ``get`` reads a whole row, ``set`` writes one,
``incr`` adds 1 to an int column (the Manager's incr is ``with lock: d[k] = d[k] + 1`` with a
Manager lock, the only atomic way there). Keys cycle over 1,000 rows.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from pyswoole import Table
from pyswoole.memory.table import SPEEDUPS

KEYS = [f"user:{i}" for i in range(1000)]
ROW = {"id": 42, "name": "a name of some length", "score": 3.25}
OPS = ("get", "set", "incr")
Op = Callable[[int], object]


def table_ops() -> dict[str, Op]:
    table = Table(4096)
    table.column("id", Table.TYPE_INT)
    table.column("name", Table.TYPE_STRING, 32)
    table.column("score", Table.TYPE_FLOAT)
    table.create()
    for key in KEYS:
        table.set(key, ROW)
    return {
        "get": lambda i: table.get(KEYS[i % 1000]),
        "set": lambda i: table.set(KEYS[i % 1000], ROW),
        "incr": lambda i: table.incr(KEYS[i % 1000], "id"),
    }


def manager_ops(manager: Any) -> dict[str, Op]:
    shared = manager.dict()
    lock = manager.Lock()
    for key in KEYS[:100]:
        shared[key] = dict(ROW)

    def incr(i: int) -> object:
        key = KEYS[i % 100]
        with lock:
            row = shared[key]
            row["id"] += 1
            shared[key] = row
        return row["id"]

    return {
        "get": lambda i: shared[KEYS[i % 100]],
        "set": lambda i: shared.__setitem__(KEYS[i % 100], ROW),
        "incr": incr,
    }


def redis_ops(port: int) -> Callable[[], dict[str, Op]]:
    def make() -> dict[str, Op]:
        import redis  # type: ignore[import-not-found,unused-ignore]

        client = redis.Redis(port=port)
        for key in KEYS:
            client.hset(key, mapping=ROW)
        return {
            "get": lambda i: client.hgetall(KEYS[i % 1000]),
            "set": lambda i: client.hset(KEYS[i % 1000], mapping=ROW),
            "incr": lambda i: client.hincrby(KEYS[i % 1000], "id", 1),
        }

    return make


def run_op(op: Op, seconds: float) -> float:
    """Operations per second of ``op`` over ``seconds``."""
    done = 0
    started = time.perf_counter()
    end = started + seconds
    while True:
        for i in range(done, done + 200):
            op(i)
        done += 200
        now = time.perf_counter()
        if now >= end:
            return done / (now - started)


def _child(make: Callable[[], dict[str, Op]] | None, ops: dict[str, Op] | None, name: str,
           seconds: float, start: Any, out: Any) -> None:  # fmt: skip
    chosen = (make() if make is not None else ops or {})[name]
    start.wait()
    out.put(run_op(chosen, seconds))


def measure(
    ops: dict[str, Op] | None, make: Callable[[], dict[str, Op]] | None, seconds: float
) -> dict[str, dict[str, float]]:
    """op -> {"1": ops/s in one process, "2": ops/s per process with two at once}."""
    ctx = mp.get_context("fork")
    result: dict[str, dict[str, float]] = {}
    for name in OPS:
        one = ops if ops is not None else make() if make is not None else {}
        single = run_op(one[name], seconds)
        start = ctx.Event()
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_child, args=(make, ops, name, seconds, start, out))
            for _ in range(2)
        ]
        for proc in procs:
            proc.start()
        time.sleep(0.05 if make is None else 0.3)  # let the children connect (Redis)
        start.set()
        rates = [out.get(timeout=seconds + 30) for _ in procs]
        for proc in procs:
            proc.join(30)
        result[name] = {"1": single, "2": sum(rates) / len(rates)}
    return result


def start_redis() -> tuple[subprocess.Popen[bytes], int] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    try:
        import redis  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="pyswoole-bench-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None


def fmt(rate: float) -> str:
    return f"{rate / 1000:.0f}k" if rate >= 10_000 else f"{rate / 1000:.1f}k"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--smoke", action="store_true", help="0.1 s windows, for the tests")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    seconds = 0.1 if args.smoke else args.seconds

    build = "compiled" if SPEEDUPS else "pure Python"
    print(f"Table benchmark ({build} build, {seconds:g} s per measurement, ops/s)\n")
    results: dict[str, Any] = {"build": build, "seconds": seconds}
    results["table"] = measure(table_ops(), None, seconds)
    with mp.get_context("fork").Manager() as manager:
        results["manager"] = measure(manager_ops(manager), None, seconds)
    redis_server = start_redis()
    if redis_server is None:
        results["redis"] = None
    else:
        proc, port = redis_server
        try:
            results["redis"] = measure(None, redis_ops(port), seconds)
        finally:
            proc.kill()
            proc.wait(10)

    header = "| operation | Table 1 proc | Table 2 procs (each)"
    header += " | Manager 1 proc | Manager 2 procs (each)"
    sep = "|---|---:|---:|---:|---:"
    if results["redis"]:
        header += " | Redis 1 proc | Redis 2 procs (each)"
        sep += "|---:|---:"
    header += " | Table / Manager | Table / Redis |"
    sep += "|---:|---:|"
    print(header)
    print(sep)
    for name in OPS:
        t, m, r = results["table"][name], results["manager"][name], results["redis"]
        cells = [fmt(t["1"]), fmt(t["2"]), fmt(m["1"]), fmt(m["2"])]
        if r:
            cells += [fmt(r[name]["1"]), fmt(r[name]["2"])]
        ratio_m = min(t["1"] / m["1"], t["2"] / m["2"])
        ratio_r = f"{min(t['1'] / r[name]['1'], t['2'] / r[name]['2']):.1f}x" if r else "n/a"
        print(f"| {name} | " + " | ".join(cells) + f" | {ratio_m:.1f}x | {ratio_r} |")
    print()
    print("ratios: the lower of the 1-process and 2-process ratios (per process)")
    if results["redis"] is None:
        print("redis: not available (no redis-server binary or no redis package)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
