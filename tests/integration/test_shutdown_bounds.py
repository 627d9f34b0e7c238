"""The graceful stop is bounded (issue 11, "Graceful drain"): a client that never reads
cannot hold a stopping server longer than ``max_wait_time``, and SIGINT as the second
signal stops it at once as SIGTERM does (``test_shutdown.py`` has the drain itself).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.integration.hostile import RawWebSocket
from tests.integration.test_shutdown import fill, start, wait_refused


def test_the_drain_ends_at_max_wait_time_when_a_client_never_reads(tmp_path: Path) -> None:
    server = start(tmp_path, "--set", "max_wait_time=1")
    target = RawWebSocket(server.port)
    try:
        assert fill(server, target, 64) == 64  # 4 MiB queued, which it never reads
        began = time.monotonic()
        os.kill(server.proc.pid, signal.SIGTERM)
        assert server.proc.wait(10) == 0
        took = time.monotonic() - began
        # the whole budget was waited (the client read nothing), and not much more
        assert 0.9 <= took < 4.0, f"stopped after {took:.2f} s (max_wait_time 1 s)"
    finally:
        target.close()
        server.stop()


def test_a_second_signal_sigint_stops_at_once(tmp_path: Path) -> None:
    server = start(tmp_path, "--set", "max_wait_time=30")
    target = RawWebSocket(server.port)
    try:
        assert fill(server, target, 64) == 64
        os.kill(server.proc.pid, signal.SIGTERM)
        wait_refused(server.port)  # the stop began (two signals at once would coalesce)
        assert server.proc.poll() is None  # draining: the client has not read anything
        os.kill(server.proc.pid, signal.SIGINT)
        assert server.proc.wait(10) == 0
        assert "second signal: stopping at once" in server.stderr()
    finally:
        target.close()
        server.stop()
