"""The HTTP benchmark runs end to end: ``bench/http_bench.py --smoke`` against pyswoole.

Only pyswoole (compiled and pure Python) is selected, so the peers venv is not needed; wrk
is (Debian's package, installed by ``scripts/setup --test``; elsewhere this test skips without
it rather than run apt-get). Timing is not judged here: only that every cell is a number,
that the static file and the handler both answered, and that the JSON holds the runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "http_bench.py"
TIMEOUT = 90
NUMBER = re.compile(r"^\d+(\.\d+)?(/\d+(\.\d+)?)?‡?$")  # ‡: a noisy machine


@pytest.mark.timeout(TIMEOUT + 10)
@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
def test_http_bench_smoke(tmp_path: Path) -> None:
    results = tmp_path / "http.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--smoke",
            "--servers",
            "pyswoole,pyswoole-py",
            "--json",
            str(results),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    rows = {}
    for line in done.stdout.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    header = rows.pop("server")
    assert header[0] == "hello req/s" and header[3] == "static req/s", header
    assert set(rows) == {"pyswoole", "pyswoole-py"}, done.stdout
    for name, cells in rows.items():
        assert len(cells) == len(header), (name, cells)
        assert all(NUMBER.match(c) for c in cells), (name, cells, done.stdout)
    document = json.loads(results.read_text())
    runs = document["runs"]
    assert {(r["contender"], r["scenario"]) for r in runs} == {
        (name, key) for name in rows for key in ("hello", "static")
    }
    for run in runs:
        assert run["error"] == "" and run["requests"] > 0 and run["non_2xx"] == 0, run
        assert run["server_cpu_s"] is not None and run["server_cpu_s"] > 0, run
