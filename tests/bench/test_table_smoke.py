"""The Table benchmark runs end to end: ``bench/table.py --smoke`` (0.1 s windows).

Timing is not judged here (that is what the benchmark is for): only that every operation has
a row whose cells are numbers, that Redis is either measured or said to be unavailable, and
that the JSON file holds the same operations.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "table.py"
TIMEOUT = 60
RATE = re.compile(r"^\d+(\.\d)?k$")
RATIO = re.compile(r"^\d+(\.\d)?x$")


@pytest.mark.timeout(TIMEOUT + 10)
def test_table_bench_smoke(tmp_path: Path) -> None:
    results = tmp_path / "table.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--json", str(results)],
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
    header = rows.pop("operation")
    assert set(rows) == {"get", "set", "incr"}, done.stdout
    redis = "Redis 1 proc" in header
    assert redis or "redis: not available" in done.stdout
    for name, cells in rows.items():
        assert len(cells) == len(header), (name, cells)
        rates, ratios = cells[:-2], cells[-2:]
        assert all(RATE.match(c) for c in rates), (name, cells)
        assert RATIO.match(ratios[0]), (name, cells)
        assert RATIO.match(ratios[1]) if redis else ratios[1] == "n/a"
    document = json.loads(results.read_text())
    assert set(document["table"]) == set(document["manager"]) == {"get", "set", "incr"}
    assert all(v["1"] > 0 and v["2"] > 0 for v in document["table"].values())
