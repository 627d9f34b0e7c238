"""Build and drive wsload (the C load generator vendored in ``bench/wsload/``).

wsload runs with ``-j``: its last stdout line is one JSON object. In idle and fanout mode it
first prints ``ready N`` once every connection is open; ``on_ready`` is called then (the
memory scenario samples the server's RSS there). Every wait is bounded by ``timeout``.
"""

from __future__ import annotations

import json
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from harness import BenchError
from harness.processes import WaitMeter, last_line, pinned

WSLOAD_DIR = Path(__file__).resolve().parent.parent / "wsload"
WSLOAD = WSLOAD_DIR / "wsload"
BUILD_TIMEOUT = 120.0  # seconds
EXIT_GRACE = 10.0  # seconds to wait for wsload after its stdout closed or the deadline
SAMPLE_PERIOD = 0.25  # seconds between samples of wsload's CPU wait

Report = dict[str, Any]


def build() -> Path:
    """``make -C bench/wsload``; raise BenchError with the compiler's last line on failure."""
    try:
        done = subprocess.run(
            ["make", "-s", "-C", str(WSLOAD_DIR)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"cannot build wsload: {exc}") from exc
    if done.returncode != 0 or not WSLOAD.exists():
        raise BenchError(f"cannot build wsload: {last_line(done.stderr or done.stdout)}")
    return WSLOAD


def run(
    args: Sequence[str],
    timeout: float,
    cpu: int | None,
    on_ready: Callable[[int], None] | None = None,
    waits: WaitMeter | None = None,
) -> Report:
    """Run wsload with ``args`` (``-j`` is added) and return its JSON report.

    ``waits``, if given, samples wsload's CPU wait while it runs.
    """
    with tempfile.TemporaryFile(prefix="bench-wsload-") as errors:
        process = subprocess.Popen(
            pinned([str(WSLOAD), *args, "-j"], cpu),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            lines = collect(process, time.monotonic() + timeout, on_ready, waits)
        finally:
            finish(process)
        return parse(lines, process.returncode, errors)


def collect(
    process: subprocess.Popen[str],
    deadline: float,
    on_ready: Callable[[int], None] | None,
    waits: WaitMeter | None,
) -> list[str]:
    """Stdout lines until EOF; ``on_ready`` at the ``ready N`` line. BenchError at deadline."""
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=pump, args=(process.stdout, lines), daemon=True).start()
    seen: list[str] = []
    while (remaining := deadline - time.monotonic()) > 0:
        if waits is not None:
            waits.sample([process.pid])
        try:
            line = lines.get(timeout=min(remaining, SAMPLE_PERIOD))
        except queue.Empty:
            continue
        if line is None:
            return seen
        seen.append(line)
        if on_ready is not None and line.startswith("ready "):
            on_ready(int(line.split()[1]))
    raise BenchError("wsload did not finish in time")


def pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    """Reader thread: move stdout lines into the queue, then None at EOF."""
    for line in stream:
        lines.put(line.strip())
    lines.put(None)


def finish(process: subprocess.Popen[str]) -> None:
    """Wait for wsload to exit; kill it (by PID) if it does not within EXIT_GRACE."""
    try:
        process.wait(EXIT_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(EXIT_GRACE)


def parse(lines: list[str], code: int | None, errors: IO[bytes]) -> Report:
    """The JSON report from wsload's last ``{`` line; BenchError if there is none."""
    for line in reversed(lines):
        if line.startswith("{"):
            report: Report = json.loads(line)
            report["exit_code"] = code
            return report
    errors.seek(0)
    message = last_line(errors.read().decode("utf-8", "replace"))
    raise BenchError(f"wsload exit {code}: {message}")
