"""server/base_flow.py in one process: a SWOOLE_BASE worker of several publishes its
connections' output state in the shared table and decides what to do with a push that
came over IPC past ``socket_buffer_size``. The connection runs over a FlowTransport whose
"kernel" takes nothing until drained; the IPC messages are handed to
``ProcessModel.on_message`` as the worker's Mailer would. (Over the wire, with two real
workers: tests/integration/test_base_flow.py.)"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from pyswoole import SWOOLE_BASE, WebSocketServer
from pyswoole.constants import SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
from pyswoole.process import messages as msg
from pyswoole.process.table import FLOW_FULL, FLOW_OVERFLOW
from pyswoole.server.base_flow import BaseFlow
from pyswoole.server.processes import ProcessModel
from tests.runtime.fakes import FlowHarness

KiB = 1024
LIMIT = 64 * KiB
FRAME = 4 + 4096  # a 4 KiB binary message on the wire


class _BaseServer(WebSocketServer):
    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port, SWOOLE_BASE)


@pytest.fixture
def h() -> Iterator[tuple[FlowHarness, ProcessModel, BaseFlow]]:
    """Worker 0 of 2, its shared table, its BaseFlow (built as ``_run_worker`` does)."""
    harness = FlowHarness(_BaseServer, worker_num=2, socket_buffer_size=LIMIT)
    server = harness.server
    procs = ProcessModel(server)
    server._procs = procs
    procs.process_id = 0
    harness.worker.shared = procs.table
    flow = BaseFlow(server, procs, harness.worker)
    procs.base_flow = flow
    try:
        yield harness, procs, flow
    finally:
        server._procs = None
        harness.close()
        procs.table.close()
        for inbox in procs.inboxes:
            inbox.close()


def fill(server: Any, fd: int) -> int:
    """Push 4 KiB messages until one is refused; how many were taken."""
    for taken in range(1000):
        if not server.push(fd, b"x" * 4096, 2):
            return taken
    raise AssertionError("never refused")


def test_each_change_of_state_goes_to_the_table_and_buffer_events_still_run(
    h: tuple[FlowHarness, ProcessModel, BaseFlow],
) -> None:
    """Past the high watermark: FULL (bufferFull runs too); at the first refused push:
    FULL|OVERFLOW with the queue at that moment; drained: nothing (bufferEmpty)."""
    harness, procs, _ = h
    server = harness.server
    conn, transport = harness.open()
    fd = conn.fd
    assert procs.table.get(fd).flow == 0  # type: ignore[union-attr]
    fill(server, fd)
    assert server.get_last_error() == SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
    rec = procs.table.get(fd)
    assert rec is not None
    assert rec.flow == FLOW_FULL | FLOW_OVERFLOW
    assert rec.send_queued_bytes >= LIMIT
    assert harness.buffer_events == [(fd, True)]
    transport.drain()
    rec = procs.table.get(fd)
    assert rec is not None and rec.flow == 0 and rec.send_queued_bytes == 0
    assert harness.buffer_events == [(fd, True), (fd, False)]


def test_an_ipc_push_past_the_limit_is_queued_up_to_the_window_then_dropped_once_logged(
    h: tuple[FlowHarness, ProcessModel, BaseFlow], caplog: pytest.LogCaptureFixture
) -> None:
    """A push from another process that the owner refuses was sent before the mark: it
    is queued while the queue is below socket_buffer_size + the window; past it dropped,
    with one warning for the fd however many are dropped; a PUSH_YIELD always queued;
    after the drain, a new overflow warns again."""
    harness, procs, flow = h
    conn, transport = harness.open()
    fd = conn.fd
    flow.ipc_window = 16 * KiB
    body = msg.pack_push(fd, 2, 1, b"y" * 4096)
    fill(harness.server, fd)
    queued = conn.queued_bytes()
    with caplog.at_level(logging.WARNING, logger="pyswoole"):
        for _ in range(10):  # 40 KiB past the limit: the window's worth taken
            procs.on_message(msg.PUSH, 1, body)
        taken = (conn.queued_bytes() - queued) // FRAME
        assert conn.queued_bytes() == queued + taken * FRAME
        # (taken while below the cap: the last one taken crossed it)
        assert queued + (taken - 1) * FRAME < LIMIT + flow.ipc_window <= queued + taken * FRAME
        procs.on_message(msg.PUSH_YIELD, 1, body)
        assert conn.queued_bytes() == queued + (taken + 1) * FRAME
        warnings = [r.getMessage() for r in caplog.records if "output buffer overflow" in r.message]
        assert len(warnings) == 1 and f"fd {fd}:" in warnings[0], warnings
        assert "dropped 4096 bytes from process 1" in warnings[0]
        transport.drain()
        fill(harness.server, fd)
        for _ in range(10):
            procs.on_message(msg.PUSH, 1, body)
        warnings = [r.getMessage() for r in caplog.records if "output buffer overflow" in r.message]
        assert len(warnings) == 2


def test_a_send_past_the_limit_from_another_process_is_kept_too(
    h: tuple[FlowHarness, ProcessModel, BaseFlow],
) -> None:
    """A raw ``send`` over IPC (SEND) that the owner refuses is queued below the window,
    as a push is, and marks the fd overflowing."""
    harness, procs, flow = h
    conn, _ = harness.open()
    fd = conn.fd
    flow.ipc_window = 16 * KiB
    conn.send_message(b"z" * LIMIT, None, 1 << 62)
    queued = conn.queued_bytes()
    procs.on_message(msg.SEND, 1, msg.pack_send(fd, b"s" * 100))
    assert conn.queued_bytes() == queued + 100
    rec = procs.table.get(fd)
    assert rec is not None and rec.flow & FLOW_OVERFLOW
