"""The benchmark harness runs end to end: ``bench/run.py --smoke`` against the bare server.

Only the bare uvloop server is selected, so the test needs nothing beyond the project's own
venv (uvloop) and a C compiler for wsload; the peers venv is not created. It builds wsload,
runs every scenario once at tiny sizes and checks the printed markdown table.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run.py"
TIMEOUT = 120  # seconds for the whole smoke run
NUMBER = re.compile(r"^\d+(\.\d+)?\b")


def table_rows(stdout: str) -> dict[str, list[str]]:
    """Markdown table rows of ``stdout``: server label -> its cells (header row included)."""
    rows: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.timeout(TIMEOUT + 30)
def test_smoke_bare(tmp_path: Path) -> None:
    results = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--servers", "bare", "--json", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = table_rows(done.stdout)
    header = rows.get("server")
    assert header is not None, done.stdout
    assert [h.split()[0] for h in header] == ["A", "A", "B", "C", "D", "E", "F", "G"]
    assert "bare" in rows, done.stdout
    for column, value in zip(header, rows["bare"], strict=True):
        match = NUMBER.match(value)
        assert match is not None, f"{column}: {value!r}\n{done.stderr[-2000:]}"
        assert float(match.group()) > 0, f"{column}: {value!r}"
    assert results.exists()
    assert "peers venv" not in done.stderr  # no peer selected: bench/.peers is not touched
