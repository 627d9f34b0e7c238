"""The benchmark harness runs end to end: ``bench/run.py --smoke`` against pyswoole and
the bare server.

Only servers from the project's own venv are selected, so the test needs nothing beyond it
and a C compiler for wsload; the peers venv is not created. It builds wsload, runs every
scenario of the main table (A-G) once at tiny sizes and checks the printed markdown table.
Timing is not judged here (that is what the benchmark itself is for): only that every cell
is a number. The Performance II scenarios are tests/bench/test_run_scenarios.py's.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from benchrun import TIMEOUT, smoke_run

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
@pytest.mark.parametrize("server", ["pyswoole", "bare"])
def test_smoke(tmp_path: Path, server: str) -> None:
    done, results = smoke_run(tmp_path, server, "A,B,C,D,E,F,G")
    assert done.returncode == 0, done.stderr[-2000:]
    main, marker, per_op = done.stdout.partition("Server CPU (user + system, µs) per operation")
    assert marker, done.stdout
    for text, columns in (
        (main, ["A", "A", "B", "C", "D", "E", "F", "G"]),
        (per_op, ["B", "C", "D", "E", "G"]),
    ):
        rows = table_rows(text)
        header = rows.get("server")
        assert header is not None, done.stdout
        assert [h.split()[0] for h in header] == columns
        assert server in rows, done.stdout
        for column, value in zip(header, rows[server], strict=True):
            match = NUMBER.match(value)
            assert match is not None, f"{column}: {value!r}\n{done.stderr[-2000:]}"
            assert float(match.group()) > 0, f"{column}: {value!r}"
    assert results.exists()
    assert "peers venv" not in done.stderr  # no peer selected: bench/.peers is not touched
