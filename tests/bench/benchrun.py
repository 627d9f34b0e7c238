"""``bench/run.py --smoke`` as the harness tests run it: one call, its JSON results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run.py"
TIMEOUT = 120  # seconds for a whole smoke run


def smoke_run(
    tmp_path: Path, servers: str, scenarios: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run ``bench/run.py --smoke`` for ``servers`` and ``scenarios`` (comma-separated);
    the finished process and the path of its JSON results."""
    results = tmp_path / "results.json"
    done = subprocess.run(
        [
            *(sys.executable, str(RUN), "--smoke", "--servers", servers),
            *("--scenarios", scenarios, "--json", str(results)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return done, results
