"""The "swoole" contender of bench/run.py: Swoole itself (bench/servers/swoole_server.php),
run where PHP and its extension are installed, every cell "skipped" with the reason where
not (this machine: Debian bookworm has no php-swoole, PECL is unreachable).

The detection runs against stand-in ``php`` executables on PATH (what ``php -r`` prints is
all it reads); the end-to-end run takes whatever this machine has and checks the matching
outcome: numbers with Swoole, the skip reason without it.
"""

from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path

import pytest
from benchrun import REPO, TIMEOUT, smoke_run

BENCH = REPO / "bench"

sys.path.insert(0, str(BENCH))
from harness.contenders import (  # noqa: E402
    CONTENDERS,
    runtime_problem,
    server_command,
    swoole_version,
)


def fake_php(directory: Path, prints: str, status: int = 0) -> None:
    """A ``php`` in ``directory`` that prints ``prints`` and exits with ``status``."""
    php = directory / "php"
    php.write_text(f"#!/bin/sh\nprintf '%s' '{prints}'\nexit {status}\n")
    php.chmod(php.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("prints", "status", "reason"),
    [
        ("6.2.1", 0, ""),
        ("", 0, "skipped: PHP's swoole extension is not loaded (pecl install swoole)"),
        ("6.2.1", 1, "skipped: PHP's swoole extension is not loaded (pecl install swoole)"),
        (None, 0, "skipped: no php (Swoole needs PHP and its extension: pecl install swoole)"),
    ],
    ids=["loaded", "no-extension", "php-fails", "no-php"],
)
def test_runtime_detection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prints: str | None, status: int, reason: str
) -> None:
    if prints is not None:
        fake_php(tmp_path, prints, status)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert runtime_problem(CONTENDERS["swoole"]) == reason
    assert swoole_version() == ("6.2.1" if reason == "" else "")
    assert runtime_problem(CONTENDERS["pyswoole"]) == ""  # Python contenders: never


def test_the_command_runs_php_with_the_usual_options() -> None:
    cmd = server_command(CONTENDERS["swoole"], sys.executable, 9501, True, True)
    assert cmd[0] == "php" and cmd[1] == str(BENCH / "servers" / "swoole_server.php")
    assert cmd[2:] == ["--port", "9501", "--fanout", "--compression"]
    assert (BENCH / "servers" / "swoole_server.php").is_file()


@pytest.mark.timeout(TIMEOUT + 30)
def test_a_run_with_swoole_or_the_reason_it_is_skipped(tmp_path: Path) -> None:
    done, results = smoke_run(tmp_path, "swoole", "A,Bz")
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads(results.read_text())
    runs = {r["scenario"]: r for r in document["runs"] if r["contender"] == "swoole"}
    assert set(runs) == {"A", "Bz"}
    version = document["meta"]["versions"]["swoole"]
    assert version == swoole_version()
    reason = runtime_problem(CONTENDERS["swoole"])
    if version:  # Swoole is installed: it ran like any other server
        assert reason == ""
        assert all(r["error"] == "" and r["values"] for r in runs.values()), runs
    else:  # the row says why, in every cell, and the run still succeeds
        assert reason.startswith("skipped: ")
        assert all(r["error"] == reason for r in runs.values()), runs
        assert re.search(rf"^A \(.*\): {re.escape(reason)}$", done.stdout, re.M), done.stdout
        assert reason in done.stderr
