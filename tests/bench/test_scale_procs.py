"""bench/run.py --scale-procs (F100k across processes, bench/harness/scale.py) at a small
scale: a pyswoole server with worker_num 2 and 3 receive-only wsload processes of 100
connections each, one sender, broadcasts merged over the processes.

Numbers are judged for consistency, not speed: every connection established and seen by the
server (its ``len(server.connections)`` and the sockets its workers hold), each complete
broadcast counted once per connection, memory samples present.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
RUN = BENCH / "run.py"
TIMEOUT = 60  # seconds for the whole run (about 3 s here)
PROCS, PER_PROC, WORKERS = 3, 100, 2

sys.path.insert(0, str(BENCH))
from harness.features import wsload_features  # noqa: E402
from harness.scale import merge_broadcasts, shares  # noqa: E402
from harness.wsload import WSLOAD, build  # noqa: E402


@pytest.fixture(scope="module", params=[False, True], ids=["sleeping", "busy-poll"])
def document(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, Any]:
    """One run; the second with --scale-busy-poll (receivers never asleep in epoll)."""
    build()
    if "clock_monotonic" not in wsload_features(WSLOAD):
        pytest.skip("wsload lacks --clock-monotonic/--receive-only")
    results = tmp_path_factory.mktemp("scale") / "scale.json"
    done = subprocess.run(
        [
            *(sys.executable, str(RUN), "--smoke", "--servers", "pyswoole,bare"),
            *("--scenarios", "F100k", "--scale-procs", str(PROCS)),
            *("--scale-workers", str(WORKERS), "--scale-conns", str(PROCS * PER_PROC)),
            *("--duration", "0.6", "--json", str(results)),
            *(("--scale-busy-poll",) if request.param else ()),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded: dict[str, Any] = json.loads(results.read_text())
    loaded["stdout"] = done.stdout
    loaded["busy_poll"] = request.param
    return loaded


def test_connections_across_processes(document: dict[str, Any]) -> None:
    [run] = [r for r in document["runs"] if r["contender"] == "pyswoole"]
    assert run["scenario"] == "F100kx" and run["error"] == "", run["server_log_tail"]
    values, detail = run["values"], run["wsload"]
    total = PROCS * PER_PROC
    # the receive-only processes' connections plus the sender process's one receiver
    assert values["established"] == total + 1
    assert [r["established"] for r in detail["receivers"]] == [PER_PROC] * PROCS
    assert all(r["receive_only"] and r["sent"] == 0 for r in detail["receivers"])
    busy = document["busy_poll"]
    assert document["meta"]["scale_busy_poll"] is busy
    assert [r["busy_poll"] for r in detail["receivers"]] == [busy] * PROCS
    assert detail["sender"]["busy_poll"] is False
    assert sorted(r["src_addrs"] for r in detail["receivers"]) == [1] * PROCS
    # the server's view: every receiver (+ the /stats request itself) in the shared table,
    # and their sockets spread over the WORKERS worker processes
    assert values["server_connections"] >= total
    assert values["iter_ms"] > 0
    spread = [n for n in detail["conns_per_process"].values() if n > 0]
    assert len(spread) == WORKERS and sum(spread) >= total
    assert values["worker_conns_max"] == max(spread)
    assert run["rss_held_kib"] > run["rss_before_kib"] > 0
    assert values["pss_kib_per_conn"] > 0 and values["kib_per_conn"] > 0


def test_broadcasts_merged_over_processes(document: dict[str, Any]) -> None:
    [run] = [r for r in document["runs"] if r["contender"] == "pyswoole"]
    values, detail = run["values"], run["wsload"]
    sent = detail["sender"]["sent"]
    assert sent >= 1 and len(detail["broadcasts"]) == sent
    complete = [b for b in detail["broadcasts"] if b["copies"] >= PROCS * PER_PROC]
    assert values["broadcasts_complete"] == len(complete) >= 1
    assert 0 < values["last_arrival_ms"] <= values["last_arrival_max_ms"] < 5_000
    assert values["broadcast_deliveries_per_s"] > 0
    assert "F100kx deliveries/s in a broadcast" in document["stdout"]


def test_other_servers_not_applicable(document: dict[str, Any]) -> None:
    [run] = [r for r in document["runs"] if r["contender"] == "bare"]
    assert run["error"].startswith("n/a: --scale-procs needs a server with worker processes")


def test_shares_and_merge() -> None:
    """The split (each process its own 127.0.<i+1>.x range, 2,000 per address) and the
    merge (copies summed, the latest arrival kept) without any process."""
    assert shares(100_000, 7)[0] == (14_286, "127.0.1.1-127.0.1.8")
    assert sum(n for n, _ in shares(100_000, 7)) == 100_000
    assert shares(5, 2) == [(3, "127.0.1.1-127.0.1.1"), (2, "127.0.2.1-127.0.2.1")]
    merged = merge_broadcasts(
        [{"broadcasts": [[7, 10, 5.0], [9, 10, 1.0]]}, {"broadcasts": [[7, 4, 8.0]]}, {}]
    )
    assert merged == [
        {"ts": 7, "copies": 14.0, "last_us": 8.0},
        {"ts": 9, "copies": 10.0, "last_us": 1.0},
    ]
