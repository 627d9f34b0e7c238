"""pyswoole.metrics without a server: the exposition format (checked with prometheus_client's
parser), the tally's close-code classes, the shared block's round trip, the setting."""

from __future__ import annotations

import os

import pytest

from pyswoole import WebSocketServer
from pyswoole.exceptions import ConfigError
from pyswoole.metrics import (
    CLOSE_NONE,
    CLOSE_RECEIVED,
    CLOSE_SENT,
    FRAME_COUNTS,
    HANDSHAKE_FAILED,
    OPCODES,
    PAIRS,
    TASK_BUCKET,
    TASK_BUCKETS,
    TASK_SUM,
    MetricsBlock,
    Tally,
    frame_counts,
    render,
    render_family,
    render_histogram,
)
from pyswoole.server import websocket_server
from tests.runtime.fakes import FLAVORS, FlowHarness, client_frame, feed, text


def test_a_counter_family_is_named_total_with_help_and_type() -> None:
    text = render_family("pyswoole_x", "counter", "what x counts", [({}, 3)])
    assert text == (
        "# HELP pyswoole_x_total what x counts\n"
        "# TYPE pyswoole_x_total counter\n"
        "pyswoole_x_total 3\n"
    )


def test_labels_and_help_are_escaped_and_floats_kept() -> None:
    text = render_family(
        "pyswoole_lag",
        "gauge",
        "a\\b\nc",
        [({"process": 'a"b\\c\nd'}, 0.25), ({"process": "1"}, 2.0)],
    )
    lines = text.splitlines()
    assert lines[0] == "# HELP pyswoole_lag a\\\\b\\nc"
    assert lines[2] == 'pyswoole_lag{process="a\\"b\\\\c\\nd"} 0.25'
    assert lines[3] == 'pyswoole_lag{process="1"} 2'
    parser = pytest.importorskip("prometheus_client.parser")
    (family,) = parser.text_string_to_metric_families(text)
    assert family.type == "gauge"
    assert family.documentation == "a\\b\nc"
    assert [(s.labels["process"], s.value) for s in family.samples] == [
        ('a"b\\c\nd', 0.25),
        ("1", 2.0),
    ]


def test_the_reference_parser_reads_a_counter() -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    text = render_family("pyswoole_y", "counter", "y", [({"code": "1000"}, 7)])
    (family,) = parser.text_string_to_metric_families(text)
    assert (family.name, family.type) == ("pyswoole_y", "counter")
    assert family.samples[0].value == 7


def test_the_tally_sorts_closes_by_who_sent_the_code() -> None:
    tally = Tally()
    tally.closed(True, True, 1000, "")  # the client closed, the server answered
    tally.closed(False, True, 1009, "")  # the server failed the connection
    tally.closed(False, True, 1013, "slow consumer")
    tally.closed(False, False, 1006, "")  # TCP dropped
    assert tally.labelled == {
        CLOSE_RECEIVED * 100_000 + 1000: 1,
        CLOSE_SENT * 100_000 + 1000: 1,
        CLOSE_SENT * 100_000 + 1009: 1,
        CLOSE_SENT * 100_000 + 1013: 1,
        CLOSE_NONE * 100_000 + 1006: 1,
    }
    assert tally.slow_consumer == 1


def test_the_tally_keeps_a_bounded_number_of_labels() -> None:
    tally = Tally()
    for status in range(PAIRS + 10):
        tally.add(HANDSHAKE_FAILED, 400 + status)
    assert len(tally.labelled) == PAIRS
    tally.add(HANDSHAKE_FAILED, 400)  # a known one still counts
    assert tally.labelled[HANDSHAKE_FAILED * 100_000 + 400] == 2


def test_the_block_round_trips_a_tally_across_fork() -> None:
    block = MetricsBlock(3)
    tally = Tally()
    tally.starts, tally.handshakes_ok, tally.http_requests = 2, 5, 9
    tally.lag, tally.lag_max = 0.125, 1.5
    tally.add(HANDSHAKE_FAILED, 403)
    tally.add(CLOSE_SENT, 4001)
    pid = os.fork()
    if pid == 0:  # the child publishes into slot 1, as a worker does
        block.publish(1, tally)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    got = block.read(1)
    assert (got.starts, got.handshakes_ok, got.http_requests) == (2, 5, 9)
    assert (got.lag, got.lag_max) == (0.125, 1.5)
    assert got.labelled == tally.labelled
    assert block.read(0).starts == 0 and block.read(0).labelled == {}
    block.publish(7, tally)  # out of range: ignored
    block.close()


def test_the_setting_is_a_path() -> None:
    server = WebSocketServer("127.0.0.1", 0)
    server.set(metrics="/metrics")
    with pytest.raises(ConfigError, match="metrics"):
        server.set(metrics="metrics")
    with pytest.raises(ConfigError, match="metrics"):
        server.set(metrics=True)


@pytest.mark.parametrize("compiled", FLAVORS)
def test_refused_pushes_and_broadcasts_are_counted_once(compiled: bool) -> None:
    """``WorkerState.buffer_overflows`` counts each message refused for a full output
    buffer: push (the compiled one hands an overflow to Python, which counts it) and
    broadcast (the compiled loop counts its own)."""
    h = FlowHarness(socket_buffer_size=10_000, buffer_low_watermark=1_000)
    try:
        conn, _ = h.open(compiled)
        state = h.worker.state
        assert state.buffer_overflows == 0
        push = h.server.push if compiled else h.server._push_local
        results = [push(conn.fd, "x" * 1000) for _ in range(12)]
        refused = results.count(False)
        assert refused == 2  # (10 frames of 1,004 bytes fill 10,000)
        assert state.buffer_overflows == refused
        if compiled:
            sent = h.server.broadcast("y" * 100)
        else:
            saved = websocket_server._broadcast_frame
            websocket_server._broadcast_frame = None
            try:
                sent = h.server.broadcast("y" * 100)
            finally:
                websocket_server._broadcast_frame = saved
        assert not sent
        assert state.buffer_overflows == refused + 1
    finally:
        h.close()


def test_task_durations_fall_in_their_buckets_and_render_as_a_histogram() -> None:
    tally = Tally()
    for seconds in (0.0005, 0.001, 0.02, 0.02, 7.0, 100.0):
        tally.task_done(seconds)
    # bisect_left: a duration equal to a bound is in that bound's bucket (le: <=)
    assert tally.labelled[TASK_BUCKET * 100_000 + 0] == 2  # <= 0.001
    assert tally.labelled[TASK_BUCKET * 100_000 + 3] == 2  # <= 0.05
    assert tally.labelled[TASK_BUCKET * 100_000 + 8] == 1  # <= 10
    assert tally.labelled[TASK_BUCKET * 100_000 + len(TASK_BUCKETS)] == 1  # +Inf
    assert tally.labelled[TASK_SUM * 100_000] == 107_041_500
    counts = [tally.labelled.get(TASK_BUCKET * 100_000 + i, 0) for i in range(11)]
    text = render_histogram("pyswoole_t", "tasks", TASK_BUCKETS, counts, 107.0415)
    assert 'pyswoole_t_bucket{le="0.001"} 2\n' in text
    assert 'pyswoole_t_bucket{le="60"} 5\n' in text
    assert 'pyswoole_t_bucket{le="+Inf"} 6\n' in text
    parser = pytest.importorskip("prometheus_client.parser")
    (family,) = parser.text_string_to_metric_families(text)
    assert family.type == "histogram"
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples["pyswoole_t_count", None] == 6
    assert samples["pyswoole_t_sum", None] == pytest.approx(107.0415)
    assert samples["pyswoole_t_bucket", "5"] == 4


def _frames_delta(before: list[int], after: list[int]) -> dict[tuple[str, str], list[int]]:
    """``(direction, opcode) -> [messages, payload bytes]`` of what changed."""
    names = {**OPCODES, 0: "continuation"}
    delta: dict[tuple[str, str], list[int]] = {}
    for direction, at in (("in", 0), ("out", 32)):
        for opcode, name in names.items():
            # (index 0 counts continuation frames, not messages: not shown)
            n = after[at + opcode] - before[at + opcode] if opcode else 0
            size = after[at + 16 + opcode] - before[at + 16 + opcode]
            if n or size:
                delta[direction, name] = [n, size]
    return delta


@pytest.mark.parametrize("compiled", FLAVORS)
def test_frames_are_counted_by_opcode_on_every_path(compiled: bool) -> None:
    """One read of text, binary, ping, pong and a fragmented text, each echoed by push (or
    the pong by the protocol); a broadcast; a fragmented push; the client's close: every
    message counted once by opcode, with its payload bytes -- the same counts whether the
    compiled read path and push ran or the Python ones (and in PYSWOOLE_NO_EXTENSIONS=1)."""
    h = FlowHarness(metrics="/metrics")
    try:
        conn, _ = h.open(compiled)
        h.open(compiled)  # (a second one, for the broadcast)
        push = h.server.push if compiled else h.server._push_local
        h.handler = lambda srv, frame: push(frame.fd, frame.data, frame.opcode)
        before = frame_counts()
        feed(
            conn,
            text("héllo")
            + client_frame(2, bytes(300))
            + client_frame(9, b"pp")
            + client_frame(10, b"")
            + client_frame(1, b"ab", fin=False)
            + client_frame(0, b"cd"),
            compiled,
        )
        assert [f.data for f in h.frames] == ["héllo", bytes(300), "abcd"]
        if compiled:
            assert h.server.broadcast("all") == 2
        else:  # (the Python loop of broadcast)
            saved = websocket_server._broadcast_frame
            websocket_server._broadcast_frame = None
            try:
                assert h.server.broadcast("all") == 2
            finally:
                websocket_server._broadcast_frame = saved
        assert push(conn.fd, "Hel", 1, 0) and push(conn.fd, "lo", 0, 1)  # one message
        assert push(conn.fd, bytes(20_000), 2)  # big: header and payload apart
        assert h.server.send(conn.fd, b"\xff")  # raw bytes, not a frame: not counted
        feed(conn, client_frame(8, (1000).to_bytes(2, "big") + b"bye"), compiled)
        assert conn.ws.close_received
        expected = {
            ("in", "text"): [2, 10],
            ("in", "binary"): [1, 300],
            ("in", "ping"): [1, 2],
            ("in", "pong"): [1, 0],
            ("in", "close"): [1, 5],
            ("out", "text"): [5, 10 + 2 * 3 + 3],
            ("out", "continuation"): [0, 2],
            ("out", "binary"): [2, 20_300],
            ("out", "pong"): [1, 2],
            ("out", "close"): [1, 2],  # (the code echoed, section 5.5.1)
        }
        assert _frames_delta(before, frame_counts()) == expected
        # the exporter (made with the worker) counts from its start: the same numbers
        exporter = h.server._metrics
        assert exporter is not None
        ((_, tally),) = exporter.tallies()
        assert _frames_delta([0] * FRAME_COUNTS, tally.frames) == expected
        parser = pytest.importorskip("prometheus_client.parser")
        shown = {
            (s.name, s.labels.get("direction"), s.labels.get("opcode")): s.value
            for family in parser.text_string_to_metric_families(render(h.server))
            for s in family.samples
        }
        messages, size = (
            "pyswoole_websocket_messages_total",
            "pyswoole_websocket_payload_bytes_total",
        )
        for (direction, opcode), (n, nbytes) in expected.items():
            if opcode != "continuation":
                assert shown[messages, direction, opcode] == n
            assert shown[size, direction, opcode] == nbytes
        assert shown[messages, "in", "binary"] == 1 and shown[messages, "out", "ping"] == 0
    finally:
        h.close()


def test_the_task_queue_is_sent_minus_started_over_every_slot() -> None:
    """Each process writes only its own slot (a worker its sends, a task worker its
    starts), at once: the depth is the sums' difference, never below 0."""
    block = MetricsBlock(4)
    assert block.task_queue() == (0, 0)
    pid = os.fork()
    if pid == 0:  # worker 0 sends three tasks, one of which could not be queued
        for size in (100, 200, 300):
            block.task_sent(0, size)
        block.task_sent(0, 300, -1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    block.task_sent(1, 50)  # worker 1
    assert block.task_queue() == (3, 350)
    block.task_started(3, 100)  # the task worker takes two
    block.task_started(3, 50)
    assert block.task_queue() == (1, 200)
    block.task_started(2, 200)  # another task worker
    assert block.task_queue() == (0, 0)
    block.task_started(2, 10)  # a start seen before its send: 0, not -1
    assert block.task_queue() == (0, 0)
    block.task_sent(9, 10)  # out of range: ignored
    block.close()


def test_the_block_round_trips_the_frame_counts() -> None:
    block = MetricsBlock(2)
    tally = Tally()
    tally.frames = list(range(1, FRAME_COUNTS + 1))
    tally.frames[17] = 1 << 40  # (payload bytes past 32 bits)
    tally.add(CLOSE_SENT, 1000)
    block.publish(1, tally)
    got = block.read(1)
    assert got.frames == tally.frames
    assert got.labelled == tally.labelled
    assert block.read(0).frames == [0] * FRAME_COUNTS
    block.close()
