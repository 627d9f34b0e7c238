"""Swoole's constants: the module's literal ``__all__`` is complete, and names type-check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyswoole
from pyswoole import constants

ROOT = Path(__file__).resolve().parent.parent


def test_all_lists_every_constant_once() -> None:
    public = {name for name in vars(constants) if name.startswith(("SWOOLE_", "WEBSOCKET_"))}
    assert sorted(constants.__all__) == sorted(public)
    assert len(constants.__all__) == len(set(constants.__all__))


def test_the_package_reexports_every_constant() -> None:
    for name in constants.__all__:
        assert name in pyswoole.__all__
        assert getattr(pyswoole, name) == getattr(constants, name)


def test_values_are_swooles() -> None:
    """A sample checked against Swoole 6's headers (swoole_server.h, swoole_error.h)."""
    assert (pyswoole.SWOOLE_BASE, pyswoole.SWOOLE_PROCESS, pyswoole.SWOOLE_THREAD) == (1, 2, 3)
    assert (pyswoole.SWOOLE_LOG_DEBUG, pyswoole.SWOOLE_LOG_WARNING, pyswoole.SWOOLE_LOG_NONE) == (
        0,
        4,
        6,
    )
    assert pyswoole.SWOOLE_DISPATCH_UIDMOD == 5 and pyswoole.SWOOLE_DISPATCH_CO_CONN_LB == 8
    assert (pyswoole.SWOOLE_WORKER_BUSY, pyswoole.SWOOLE_WORKER_IDLE) == (1, 2)
    assert pyswoole.SWOOLE_SSL == 512 and pyswoole.SWOOLE_SSL_TLSv1_3 == 64
    assert pyswoole.SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW == 1009
    assert pyswoole.SWOOLE_ERROR_TASK_TIMEOUT == 2003
    assert pyswoole.WEBSOCKET_CLOSE_TRY_AGAIN_LATER == 1013


def test_from_pyswoole_import_a_constant_type_checks(tmp_path: Path) -> None:
    """``__all__`` must stay static: mypy --strict accepts ``from pyswoole import X``."""
    program = tmp_path / "uses_constants.py"
    program.write_text(
        "from pyswoole import SWOOLE_PROCESS, SWOOLE_LOG_WARNING, WebSocketServer\n"
        "mode: int = SWOOLE_PROCESS + SWOOLE_LOG_WARNING\n"
        "server = WebSocketServer('127.0.0.1', 0, SWOOLE_PROCESS)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(program)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
