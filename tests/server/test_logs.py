"""The log settings: Swoole's date format, microseconds and dated rotation files."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pyswoole.server.logs import DatedFileHandler, _Formatter


def record(message: str, created: float) -> logging.LogRecord:
    rec = logging.LogRecord("pyswoole", logging.WARNING, __file__, 1, message, None, None)
    rec.created = created
    return rec


def test_date_format_and_microseconds() -> None:
    created = time.mktime((2026, 12, 5, 7, 30, 1, 0, 0, -1)) + 0.25
    plain = _Formatter("%d/%m %H:%M", microseconds=False).format(record("x", created))
    assert plain.startswith("[05/12 07:30 ")
    micro = _Formatter("%H:%M:%S", microseconds=True).format(record("x", created))
    assert micro.startswith("[07:30:01<.250000> ")


def test_rotation_writes_to_dated_files_and_switches_with_the_clock(tmp_path: Path) -> None:
    now = [time.mktime((2026, 12, 5, 23, 59, 0, 0, 0, -1))]
    handler = DatedFileHandler(str(tmp_path / "server.log"), "%Y%m%d", clock=lambda: now[0])
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.emit(record("before midnight", now[0]))
    now[0] += 120
    handler.emit(record("after midnight", now[0]))
    handler.close()
    assert (tmp_path / "server.log.20261205").read_text() == "before midnight\n"
    assert (tmp_path / "server.log.20261206").read_text() == "after midnight\n"
    assert not (tmp_path / "server.log").exists()
