"""Tests of pyswoole.runtime.worker's connection bookkeeping: which connections the periodic
request-timeout sweep looks at."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.runtime.fakes import FLAVORS, FlowHarness


@pytest.fixture
def h() -> Iterator[FlowHarness]:
    harness = FlowHarness(handshake_timeout=2.0)
    yield harness
    harness.close()


@pytest.mark.parametrize("compiled", FLAVORS)
def test_the_sweep_looks_only_at_connections_still_speaking_http(
    h: FlowHarness, compiled: bool
) -> None:
    """A connection is in ``http_conns`` from its accept to its upgrade (or its close): the
    sweep that times out slow HTTP requests once a second never walks the WebSocket
    connections (100k of them would stall the loop every second)."""
    worker = h.worker
    ws_conn, _ = h.open(compiled)
    http_conn, http_t = h.connect()
    closing, _ = h.connect()
    assert set(worker.http_conns) == {http_conn.fd, closing.fd}
    assert set(worker.connections) == {ws_conn.fd, http_conn.fd, closing.fd}
    closing.connection_lost(None)
    assert set(worker.http_conns) == {http_conn.fd}
    http_conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half: ")  # never finished
    for conn in (ws_conn, http_conn):
        conn.request_started -= 10.0  # both started long ago
    worker._sweep()
    assert http_t.written.startswith(b"HTTP/1.1 408 ")
    assert http_t.eof or http_t.closing  # (a lingering close: the write side first)
    assert not ws_conn.closed
