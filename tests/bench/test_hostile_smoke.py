"""The hostile-clients benchmark runs end to end: ``bench/hostile.py --smoke``.

pyswoole only (the peers venv is not touched), 1 s windows, 300 broadcast receivers: every
attack (flood, ping flood, HTTP pipelining, broadcast with stuck receivers) runs once
against a fresh server, with its latency clients. Timing is not judged here (that is what
the benchmark is for, and the pass/fail versions of the attacks are
tests/integration/test_flow_control.py): only that each attack's table has a pyswoole row
whose measured cells are numbers, that the JSON file is written and the exit code is 0.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOSTILE = REPO / "bench" / "hostile.py"
TIMEOUT = 60  # seconds: the smoke run takes ~12 (4 runs of a 1 s window, start and stop)
ATTACKS = ("flood", "ping", "http", "broadcast")
NUMBER = re.compile(r"^-?\d+(\.\d+)?( [†‡])*$")
#: the cells that must be numbers, by the first word of their column header
NUMERIC = {"RSS", "attacker", "echo", "delivery", "lost", "missing", "late", "sent", "server"}


def tables(stdout: str) -> dict[str, dict[str, dict[str, str]]]:
    """attack -> server -> {column header: cell}, from the markdown tables of ``stdout``."""
    found: dict[str, dict[str, dict[str, str]]] = {}
    attack = ""
    header: list[str] = []
    for line in stdout.splitlines():
        heading = re.match(r"^\*\*(\w+)\*\*:", line)
        if heading:
            attack = heading.group(1)
            found[attack] = {}
            header = []
        elif line.startswith("|") and not line.startswith("|---") and attack:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] == "server":
                header = cells[1:]
            else:
                found[attack][cells[0]] = dict(zip(header, cells[1:], strict=True))
    return found


@pytest.mark.timeout(TIMEOUT + 10)
def test_hostile_smoke(tmp_path: Path) -> None:
    results = tmp_path / "hostile.json"
    done = subprocess.run(
        [sys.executable, str(HOSTILE), "--smoke", "--json", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
    found = tables(done.stdout)
    assert set(found) == set(ATTACKS), done.stdout
    for attack in ATTACKS:
        row = found[attack].get("pyswoole")
        assert row is not None, f"{attack}: no pyswoole row\n{done.stdout}"
        checked = 0
        for column, cell in row.items():
            if column.split()[0] in NUMERIC and column != "attacker closed":
                assert NUMBER.match(cell), f"{attack} / {column}: {cell!r}\n{done.stderr[-2000:]}"
                checked += 1
        assert checked >= 8, row
    document = json.loads(results.read_text())
    runs = document["runs"]
    assert sorted(r["attack"] for r in runs) == sorted(ATTACKS)
    assert all(not r["error"] for r in runs), [r["error"] for r in runs]
    assert "peers venv" not in done.stderr  # pyswoole only: bench/.peers is not touched
