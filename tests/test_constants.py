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


def test_swooles_prefixed_websocket_spellings() -> None:
    """Swoole 6 registers every WebSocket status, opcode and close code twice: the
    ``SWOOLE_WEBSOCKET_*`` names and the older unprefixed ones (swoole_websocket_server.cc,
    ``SW_REGISTER_LONG_CONSTANT``); ported code uses both."""
    for kind in ("OPCODE", "CLOSE"):
        old = {n for n in constants.__all__ if n.startswith(f"WEBSOCKET_{kind}_")}
        for name in old - {"WEBSOCKET_CLOSE_SERVICE_RESTART"}:  # (pyswoole's own RFC name)
            assert getattr(constants, f"SWOOLE_{name}") == getattr(constants, name), name
    statuses = ("CONNECTION", "HANDSHAKE", "ACTIVE", "CLOSING")
    for status in statuses:
        assert getattr(constants, f"SWOOLE_WEBSOCKET_STATUS_{status}") == getattr(
            constants, f"WEBSOCKET_STATUS_{status}"
        )
    assert pyswoole.SWOOLE_WEBSOCKET_CLOSE_CLOSE_SERVICE_RESTART == 1012  # (sic, Swoole's)
    assert pyswoole.SWOOLE_WEBSOCKET_OPCODE_BINARY == 2
    assert not hasattr(pyswoole, "SWOOLE_WEBSOCKET_STATUS_HANDSHAKE_FAILED")  # (as Swoole)
    # Swoole 6's newer names (ide-helper constants.php, swoole_error.h)
    assert pyswoole.SWOOLE_ERROR_NO_PAYLOAD == 550
    assert pyswoole.SWOOLE_ERROR_SERVER_INVALID_CALLBACK == 9015
    assert pyswoole.SWOOLE_ERROR_HTTP_COOKIE_UNAVAILABLE == 7107
    assert (pyswoole.SWOOLE_SOCK_RAW, pyswoole.SWOOLE_SOCK_RAW6) == (7, 8)
    assert pyswoole.SWOOLE_SSL_SSLv3 == 4 and pyswoole.SWOOLE_TLSv1_2_SERVER_METHOD == 13
    assert pyswoole.SWOOLE_TRACE_CO_SQLITE == 1 << 35 and pyswoole.SWOOLE_TRACE_ZLIB == 1 << 31


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
