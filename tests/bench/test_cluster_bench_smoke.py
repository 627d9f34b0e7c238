"""The cluster benchmark runs end to end: ``bench/cluster_bench.py --smoke``, pyswoole only.

Part X: a real ``redis-server`` on a free port, two pyswoole nodes with the ``cluster``
setting on it, 20 receivers split over both nodes (the Node load client's built-in
WebSocket client, ``--ws-client raw``: node is needed, npm is not), one publisher on node 1.
Part P: one node with 4 workers, ``publish``, ``broadcast(data, fds)`` and ``broadcast(data)``
to the same 20 receivers.
Timing is not judged (that is the benchmark's job): every receiver must get every message
the publisher sent, once and in order, and every number the report needs must be there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "cluster_bench.py"
SMOKE = [sys.executable, str(BENCH), "--smoke", "--contenders", "pyswoole", "--ws-client", "raw"]
TIMEOUT = 90  # seconds: the smoke run takes ~10 (4 runs of a 1.3 s window, start and stop)


def check_run(run: dict[str, Any]) -> None:
    assert "error" not in run, run
    receivers = run["receivers"]
    assert receivers == 20
    assert run["sent"] > 0
    assert run["window_deliveries"] > 0
    assert run["deliveries_per_s"] > 0
    assert run["drained"] is True, run
    # every receiver got every message the publisher sent, in order, exactly once
    assert run["receivers_complete"] == receivers, run
    assert run["min_count"] == run["max_count"] == run["sent"], run
    assert run["out_of_order"] == 0
    assert run["closed_early"] == 0
    assert run["p50_ms"] is not None and run["p99_ms"] is not None
    assert 0 < run["p50_ms"] <= run["p99_ms"]


@pytest.mark.timeout(TIMEOUT + 30)
def test_cluster_bench_smoke(tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.fail("node is missing: the benchmark's load client runs on Node.js")
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing: run scripts/setup --test (Debian's redis-server)")
    results = tmp_path / "cluster.json"
    done = subprocess.run(
        [*SMOKE, "--json", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(results.read_text())

    (cross,) = data["X"]
    assert cross["contender"] == "pyswoole"
    check_run(cross)
    assert set(cross["cpu_pct"]) == {"node1", "node2", "redis", "clients", "publisher"}

    by_delivery = {run["deliver"]: run for run in data["P"]}
    assert set(by_delivery) == {"publish", "broadcast", "broadcast-all"}
    for run in by_delivery.values():
        check_run(run)
        # measured (a tiny smoke load may use less than one 10 ms clock tick: 0 is possible)
        assert run["server_us_per_delivery"] is not None
        assert run["server_us_per_delivery"] >= 0

    assert "| pyswoole | 20 | 400 |" in done.stdout, done.stdout
    for delivery in ("publish", "broadcast", "broadcast-all"):
        assert f"| {delivery} | error" not in done.stdout, done.stdout
    assert "publish / broadcast server CPU per delivery:" in done.stdout, done.stdout
    assert "publish / broadcast-all server CPU per delivery:" in done.stdout, done.stdout
