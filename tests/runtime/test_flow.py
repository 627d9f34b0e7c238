"""Flow control of a connection (runtime/flow.py): full and empty, pause reasons, push limits.

Everything queued for a client counts: the transport's buffer, the corked ``out`` of a read's
callbacks (``out_bytes``) and messages waiting behind off-loop compression (``_jobs_bytes``).
Past the high watermark a connection is *full*: it is not read, the transport's marks are
both the low watermark, ``worker.on_buffer(conn, True)`` is called; drained to the low
watermark it is *empty* again. ``push``/``broadcast`` refuse a message while ``limit`` bytes
are queued, whether the compiled ``Pusher``/``broadcast_frame`` or the Python push decides.

Connections run over ``FlowTransport`` (tests/runtime/fakes.py: a fake transport with a write
buffer and asyncio's pause/resume_writing marks) without a running loop, except where a test
waits for something (``push_async``, off-loop jobs, timers); the last tests use a real TCP
connection and the worker's real event loop (uvloop when installed). Each test runs on the
compiled read path and push (``c``, when built) and the Python ones (``py``); the whole file
also runs with ``PYSWOOLE_NO_EXTENSIONS=1``, where the Connection is the pure-Python one.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyswoole.constants import (
    SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW,
    WEBSOCKET_CLOSE_TRY_AGAIN_LATER,
    WEBSOCKET_STATUS_CLOSING,
)
from pyswoole.protocol import websocket as websocket_module
from pyswoole.protocol.frames import close_payload, encode_frame
from pyswoole.protocol.websocket import EVENT_BATCH
from pyswoole.runtime.connection import Connection
from pyswoole.runtime.flow import PAUSE_BACKPRESSURE, PAUSE_INPUT, PAUSE_PIPELINE, PAUSE_USER
from pyswoole.runtime.http_phase import NO_REQUESTS
from pyswoole.runtime.state import FASTPATH
from pyswoole.server import websocket_server
from tests.runtime.fakes import (
    FLAVORS,
    UPGRADE,
    FlowHarness,
    FlowTransport,
    client_frame,
    deflate_frames,
    feed,
    server_frames,
    settle,
    text,
)

#: limit 10,000 bytes: full past 8,000 (80 %), empty again at 1,000
SMALL = {"socket_buffer_size": 10_000, "buffer_low_watermark": 1_000}
LIMIT, HIGH, LOW = 10_000, 8_000, 1_000
DEFLATE_OFFER = b"Sec-WebSocket-Extensions: permessage-deflate\r\n"


@pytest.fixture
def h() -> Iterator[FlowHarness]:
    harness = FlowHarness(**SMALL)
    yield harness
    harness.close()


def pusher(h: FlowHarness, compiled: bool) -> Callable[..., bool]:
    """server.push: the compiled Pusher (when built) or the Python push."""
    return h.server.push if compiled else h.server._push_local


def broadcaster(h: FlowHarness, compiled: bool) -> Callable[..., int]:
    """server.broadcast with _fastpath.broadcast_frame (when built) or its Python loop."""
    if compiled:
        return h.server.broadcast

    def broadcast(*args: Any) -> int:
        saved = websocket_server._broadcast_frame
        websocket_server._broadcast_frame = None
        try:
            return h.server.broadcast(*args)
        finally:
            websocket_server._broadcast_frame = saved

    return broadcast


def frame_of(n: int, byte: bytes = b"x") -> tuple[str, bytes]:
    """A text message of ``n`` bytes and the frame push() writes for it."""
    data = (byte * n).decode()
    return data, encode_frame(1, data.encode())


# -- full and empty ---------------------------------------------------------------------------


@pytest.mark.parametrize("compiled", FLAVORS)
def test_past_the_high_watermark_full_then_drained_to_the_low_one(
    h: FlowHarness, compiled: bool
) -> None:
    conn, t = h.open(compiled)
    push = pusher(h, compiled)
    assert t.limits == (HIGH, LOW)  # set at connection_made
    data, frame = frame_of(1000)  # 1,004 bytes a frame
    for _ in range(7):
        assert push(conn.fd, data) is True
    assert t.buffered == 7 * len(frame) <= HIGH
    assert not conn.is_full and t.reading and conn._read_block == 0 and h.buffer_events == []
    assert push(conn.fd, data) is True  # 8,032 queued: past the high watermark
    assert conn.is_full and conn._write_paused
    assert conn._read_block == PAUSE_BACKPRESSURE and not t.reading
    assert t.limits == (LOW, LOW)  # the transport tells when it has drained to the low mark
    assert h.buffer_events == [(conn.fd, True)]
    assert conn.buffer_info() == {"send_queued_bytes": 8 * len(frame), "buffer_full": True}
    assert push(conn.fd, data) is True  # full is not the limit: 9,036 < 10,000
    assert h.buffer_events == [(conn.fd, True)]  # once
    t.drain(t.buffered - LOW - 1)
    assert conn.is_full and not t.reading  # one byte over the low watermark
    t.drain(1)
    assert not conn.is_full and not conn._write_paused
    assert t.limits == (HIGH, LOW) and t.reading and conn._read_block == 0
    assert h.buffer_events == [(conn.fd, True), (conn.fd, False)]
    assert t.reading_calls == ["pause", "resume"]
    assert t.written == frame * 9


@pytest.mark.parametrize("compiled", FLAVORS)
def test_the_echoes_of_a_read_make_it_full_and_it_is_not_read_meanwhile(
    h: FlowHarness, compiled: bool
) -> None:
    conn, t = h.open(compiled)
    h.handler = lambda srv, frame: srv.push(frame.fd, frame.data)
    feed(conn, b"".join(text(str(i) * 1000) for i in range(9)), compiled)
    assert len(h.frames) == 9
    # corked, and sent whenever early_flush (2,000 here: the limit's room above the high
    # watermark) bytes were held
    assert h.worker.early_flush == LIMIT - HIGH
    assert [len(data) for _, data in t.calls] == [2 * 1004] * 4 + [1004]
    assert t.written == b"".join(encode_frame(1, str(i).encode() * 1000) for i in range(9))
    assert conn.is_full and not t.reading and h.buffer_events == [(conn.fd, True)]
    t.drain()
    assert t.reading and h.buffer_events[-1] == (conn.fd, False)


@pytest.mark.parametrize("compiled", FLAVORS)
def test_push_async_waits_for_the_drain(h: FlowHarness, compiled: bool) -> None:
    conn, t = h.open(compiled)
    assert conn.write(b"w" * LIMIT)  # at the limit: push refuses
    assert conn.is_full and pusher(h, compiled)(conn.fd, "now") is False
    assert h.server.get_last_error() == SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        later = loop.create_task(h.server.push_async(conn.fd, "later"))
        room = loop.create_task(conn.wait_for_room(LIMIT, None))
        drained = loop.create_future()

        def drain() -> None:  # (runs after both tasks began to wait: call_soon is FIFO)
            drained.set_result(len(conn._waiters or ()))
            t.drain(LIMIT - LOW)  # down to the low watermark exactly

        loop.call_soon(drain)
        assert await later is True
        assert await room is True
        assert drained.result() == 2

    h.run(scenario())
    assert not conn.is_full and conn._waiters is None
    assert t.writes[-1] == encode_frame(1, b"later")


def test_wait_for_room_times_out_or_sees_the_close(h: FlowHarness) -> None:
    conn, _ = h.open()
    conn.write(b"w" * LIMIT)

    async def scenario() -> tuple[bool, bool]:
        timed_out = await conn.wait_for_room(LIMIT, 0.01)
        loop = asyncio.get_running_loop()
        waiting = loop.create_task(conn.wait_for_room(LIMIT, None))
        loop.call_soon(conn.connection_lost, None)
        return timed_out, await waiting

    assert h.run(scenario()) == (False, False)
    assert conn.closed and conn._waiters is None and h.closes == [conn.fd]


def test_wait_for_room_waits_at_exactly_the_limit_and_the_high_watermark() -> None:
    # limit == high watermark == queued: push() refuses (>= limit) although the transport
    # never said pause_writing (> high); the waiter must still wait for the drain.
    h = FlowHarness(socket_buffer_size=LIMIT, buffer_high_watermark=LIMIT)
    try:
        conn, t = h.open()
        conn.write(b"w" * LIMIT)
        assert not conn.is_full

        async def scenario() -> bool:
            waiting = asyncio.get_running_loop().create_task(conn.wait_for_room(LIMIT, 5))
            await asyncio.sleep(0)
            assert not waiting.done() and conn.is_full  # waiting, for the drain
            t.drain(LIMIT)
            return await waiting

        assert h.run(scenario()) is True
    finally:
        h.close()


def test_a_limit_under_the_high_watermark_has_nothing_to_wait_for(h: FlowHarness) -> None:
    conn, _ = h.open()
    conn.write(b"w" * 5_000)
    assert h.run(conn.wait_for_room(4_000, None)) is False  # never full: would wait forever
    assert h.run(conn.wait_for_room(6_000, None)) is True


class JobSpy(Connection):
    """Sets ``jobs_done`` when its off-loop sends are all out."""

    __slots__ = ("jobs_done",)
    jobs_done: asyncio.Event | None

    def _run_jobs(self) -> None:
        super()._run_jobs()
        if self._jobs is None and self.jobs_done is not None:
            self.jobs_done.set()


@pytest.mark.parametrize("hold", [False, True], ids=["kernel-takes-all", "transport-holds"])
def test_full_because_of_compression_jobs_until_they_finish(h: FlowHarness, hold: bool) -> None:
    conn, t = h.open(cls=JobSpy, hold=hold)
    conn.jobs_done = None
    gate = threading.Event()

    def job() -> bytes:
        gate.wait(5)
        return b"J" * 2_000

    conn.send_off_loop(job, 9_000)  # 9,000 bytes to compress: counted while the job runs
    assert conn._jobs_bytes == 9_000 and conn.queued_bytes() == 9_000 and t.buffered == 0
    assert conn.is_full and not t.reading and t.limits == (LOW, LOW)
    assert h.buffer_events == [(conn.fd, True)]
    assert conn.send_message(b"m" * 900, None, LIMIT) is True  # 9,900 queued, behind the job
    assert conn.send_message(b"n" * 100, None, LIMIT) is True  # 10,000 queued
    assert conn.send_message(b"o", None, LIMIT) is False
    assert conn._jobs_bytes == LIMIT and t.writes == []
    t.drain()  # the transport had nothing to drain: still full
    assert conn.is_full and not t.reading

    async def scenario() -> None:
        conn.jobs_done = asyncio.Event()
        gate.set()
        await conn.jobs_done.wait()

    h.run(scenario())
    assert conn._jobs is None and conn._jobs_bytes == 0
    assert t.written == b"J" * 2_000 + b"m" * 900 + b"n" * 100
    if hold:  # 3,000 bytes in the transport now: full until it drains to the low watermark
        assert conn.is_full and not t.reading and t.paused
        t.drain(2_000)
    assert not conn.is_full and t.reading and t.limits == (HIGH, LOW)
    assert h.buffer_events == [(conn.fd, True), (conn.fd, False)]


@pytest.mark.parametrize("compiled", FLAVORS)
def test_full_for_buffer_full_timeout_closes_with_1013(compiled: bool) -> None:
    h = FlowHarness(**SMALL, buffer_full_timeout=0.02)
    try:
        conn, t = h.open(compiled)
        slow: list[Any] = []
        original = h.worker.slow_consumer
        fired = asyncio.Event()

        def slow_consumer(c: Any) -> None:
            slow.append((c, h.loop.time()))
            original(c)
            fired.set()

        h.worker.slow_consumer = slow_consumer  # type: ignore[method-assign]

        async def scenario() -> None:
            other, other_t = h.open(compiled)
            start = h.loop.time()
            conn.write(b"w" * (HIGH + 1))
            other.write(b"w" * (HIGH + 1))
            timer = conn._slow_timer
            assert timer is not None and timer.when() - start >= 0.019
            other_t.drain()  # drained in time: its timer is cancelled
            assert other._slow_timer is None and not other.is_full
            await fired.wait()
            assert [c for c, _ in slow] == [conn] and slow[0][1] >= start + 0.015

        h.run(scenario())
        assert conn.status == WEBSOCKET_STATUS_CLOSING and conn._slow_timer is None
        close = encode_frame(8, close_payload(WEBSOCKET_CLOSE_TRY_AGAIN_LATER, "slow consumer"))
        assert t.writes[-1] == close  # written even though full: it is the last frame
        assert conn._timer is not None  # and TCP closes on the client's answer or a timeout
    finally:
        h.close()


# -- several reasons to pause reading --------------------------------------------------------


def pipelined(n: int) -> bytes:
    return b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(n))


@pytest.mark.parametrize("compiled", FLAVORS)
def test_a_connection_makes_its_request_queue_only_to_pipeline(
    h: FlowHarness, compiled: bool
) -> None:
    """The queue of pipelined requests is made when a read holds more than one request (a
    WebSocket or a client waiting for each answer shares one empty stand-in: 0.7 KiB less
    per connection), and the stand-in stays empty."""
    responses: list[Any] = []
    h.server.on("request", lambda request, response: responses.append(response))
    ws_conn, _ = h.open(compiled)
    conn, t = h.connect()
    assert ws_conn._pending is NO_REQUESTS and conn._pending is NO_REQUESTS
    conn.data_received(pipelined(1))
    responses[-1].end("one")
    assert conn._pending is NO_REQUESTS and len(responses) == 1
    conn.data_received(pipelined(3))
    assert conn._pending is not NO_REQUESTS and len(conn._pending) == 2
    for _ in range(3):
        responses[-1].end("ok")
    assert len(responses) == 4 and all(r.ended for r in responses) and not conn._pending
    settle(conn.worker)
    assert t.written.count(b"HTTP/1.1 200 OK") == 4
    assert len(NO_REQUESTS) == 0


def test_pipelined_requests_wait_for_the_drain_and_reading_for_the_queue(
    h: FlowHarness,
) -> None:
    responses: list[Any] = []
    h.server.on("request", lambda request, response: responses.append(response))
    conn, t = h.connect()
    conn.data_received(pipelined(40))  # one handled, 39 waiting: over 32
    assert len(responses) == 1 and conn._read_block == PAUSE_PIPELINE and not t.reading
    conn.write(b"w" * (HIGH + 1))  # a big response part: full
    assert conn._read_block == PAUSE_PIPELINE | PAUSE_BACKPRESSURE and conn.is_full
    assert t.reading_calls == ["pause"]  # paused once, for both
    responses[-1].end("ok")
    assert len(responses) == 1 and not conn.busy  # full: the next request waits
    t.drain()  # empty: the queue goes on, reading still waits for the queue to shrink
    assert h.buffer_events == [(conn.fd, True), (conn.fd, False)]
    assert len(responses) == 2 and conn.busy and len(conn._pending) == 38
    assert conn._read_block == PAUSE_PIPELINE and not t.reading
    for _ in range(22):
        responses[-1].end("ok")
    assert len(conn._pending) == 16 and conn._read_block == PAUSE_PIPELINE
    responses[-1].end("ok")  # 15 wait now: under 16
    assert conn._read_block == 0 and t.reading
    assert t.reading_calls == ["pause", "resume"]
    for _ in range(16):
        responses[-1].end("ok")
    assert len(responses) == 40 and all(r.ended for r in responses) and not conn._pending


@pytest.mark.parametrize("first", ["user", "backpressure"], ids=lambda s: f"{s}-ends-first")
@pytest.mark.parametrize("compiled", FLAVORS)
def test_reading_resumes_when_no_reason_is_left(h: FlowHarness, compiled: bool, first: str) -> None:
    conn, t = h.open(compiled)
    conn._block_reading(PAUSE_USER)
    assert pusher(h, compiled)(conn.fd, "x" * (HIGH + 1)) is True
    assert conn._read_block == PAUSE_USER | PAUSE_BACKPRESSURE and conn.is_full
    if first == "user":
        conn._unblock_reading(PAUSE_USER)
        assert conn._read_block == PAUSE_BACKPRESSURE and not t.reading
        t.drain()
    else:
        t.drain()
        assert conn._read_block == PAUSE_USER and not conn.is_full and not t.reading
        conn._unblock_reading(PAUSE_USER)
    assert conn._read_block == 0 and t.reading
    assert t.reading_calls == ["pause", "resume"]
    feed(conn, text("read again"), compiled)
    assert [f.data for f in h.frames] == ["read again"]


def test_a_closing_transport_is_not_resumed(h: FlowHarness) -> None:
    conn, t = h.open()
    conn.write(b"w" * (HIGH + 1))
    conn._block_reading(PAUSE_USER)
    t.closing = True  # e.g. the loop closed it after an error; connection_lost comes later
    conn._unblock_reading(PAUSE_USER)
    t.drain()
    assert not conn.is_full and conn._read_block == 0
    assert t.reading_calls == ["pause"]  # never resume_reading on a closing transport


@pytest.mark.parametrize("compiled", FLAVORS)
def test_a_closed_connection_is_not_resumed(h: FlowHarness, compiled: bool) -> None:
    conn, t = h.open(compiled)
    conn.write(b"w" * (HIGH + 1))
    conn.connection_lost(None)
    assert conn.closed and h.closes == [conn.fd]
    t.drain()
    assert t.reading_calls == ["pause"] and h.buffer_events == [(conn.fd, True)]
    conn._unblock_reading(PAUSE_BACKPRESSURE)
    assert t.reading_calls == ["pause"]


# -- push limits --------------------------------------------------------------------------------

#: limit 10,000 bytes, full past 2,000: corked bytes under 8,000 need not ask the transport
ROOMY = {"socket_buffer_size": 10_000, "buffer_high_watermark": 2_000}


@pytest.mark.parametrize("compiled", FLAVORS)
def test_push_counts_the_transport_the_corked_bytes_and_the_jobs(compiled: bool) -> None:
    h = FlowHarness(**ROOMY)
    gate = threading.Event()
    try:
        push = pusher(h, compiled)
        data, frame = frame_of(996)  # 1,000 bytes a frame
        # the transport's buffer alone
        a, ta = h.open(compiled)
        a.write(b"w" * (LIMIT - 1))
        assert push(a.fd, data) is True and ta.buffered == LIMIT - 1 + 1000
        assert push(a.fd, data) is False
        assert h.server.get_last_error() == SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
        # the transport and what a dispatch corked
        b, tb = h.open(compiled)
        b.write(b"w" * 5_000)
        h.worker.begin_batch()
        results = [push(b.fd, data) for _ in range(6)]
        assert b.corked and b.out_bytes == 5_000 and tb.buffered == 5_000
        h.worker.end_batch()
        assert results == [True] * 5 + [False]
        assert tb.written == b"w" * 5_000 + frame * 5
        # the jobs (push() hands such a connection to the Python push, both flavors)
        c, tc = h.open(compiled)
        c.send_off_loop(lambda: (gate.wait(5), b"J")[1], 9_000)
        c.write(b"w" * 500)  # (queued behind the job: counted with it)
        assert c.queued_bytes() == 9_500 and tc.buffered == 0
        assert push(c.fd, data) is True  # 9,500 queued: under the limit
        assert push(c.fd, data) is False  # 10,500
        assert c._jobs_bytes == 10_500 and tc.writes == []
    finally:
        gate.set()
        h.close()


Op = tuple[Any, ...]


def run_twin(settings_: dict[str, int], ops: list[Op]) -> list[bool]:
    """Apply ``ops`` to a connection pushed to by the compiled push/broadcast (when built) and
    to one pushed to by the Python ones, in one worker; after every step both must be in the
    same state, and every push must have been decided by the exact rule: refused iff the
    transport, the corked bytes and the jobs hold ``socket_buffer_size`` bytes. Returns the
    push results."""
    h = FlowHarness(**settings_)
    try:
        limit = h.server._buffer_limit
        flavors = (True, False) if FASTPATH else (False,)  # (else server.push is Python's)
        sides = [(pusher(h, c), broadcaster(h, c), *h.open(c)) for c in flavors]
        results: list[bool] = []
        for step, op in enumerate(ops):
            kind = op[0]
            if kind == "begin":
                h.worker.begin_batch()
            elif kind == "end":
                if h.worker.state.depth:
                    h.worker.end_batch()
            else:
                outcome = []
                for push, broadcast, conn, t in sides:
                    queued = t.buffered + conn.out_bytes + conn._jobs_bytes
                    if kind == "write":
                        conn.write(b"w" * op[1])
                        continue
                    if kind == "drain":
                        t.drain(op[1])
                        continue
                    if kind == "push":
                        data: Any = "x" * op[1] if op[2] == "text" else b"\x01" * op[1]
                        accepted = push(conn.fd, data, 1 if op[2] == "text" else 2)
                    else:
                        accepted = broadcast("b" * op[1], [conn.fd]) == 1
                    assert accepted == (queued < limit), (step, op, queued)
                    outcome.append(accepted)
                if outcome:
                    assert len(set(outcome)) == 1, (step, op, outcome)
                    results.append(outcome[0])
            states = [flow_state(conn, t) for _, _, conn, t in sides]
            assert all(s == states[0] for s in states), (step, op, states)
        while h.worker.state.depth:
            h.worker.end_batch()
        assert len({sides_[3].written for sides_ in sides}) == 1
        return results
    finally:
        h.close()


def flow_state(conn: Any, t: FlowTransport) -> tuple[Any, ...]:
    return (
        t.written,
        t.buffered,
        b"".join(conn.out),
        conn.out_bytes,
        conn.corked,
        conn.is_full,
        conn._write_paused,
        conn._read_block,
        t.limits,
    )


BIG = 20_000  # binary of 16 KiB or more: the header, then the payload uncopied
TWIN_CASES = {
    "transport-one-under": ([("write", 9_999), ("push", 10, "text")], [True]),
    "transport-at-limit": ([("write", 10_000), ("push", 10, "text")], [False]),
    "transport-at-limit-big": ([("write", 10_000), ("push", BIG, "binary")], [False]),
    "transport-under-then-over": (
        [("write", 9_000), ("push", BIG, "binary"), ("push", 1, "text")],
        [True, False],
    ),
    "corked-under-the-slack": (
        [("write", 1_500), ("begin",), *[("push", 996, "text")] * 9, ("end",)],
        [True] * 9,
    ),
    "corked-past-the-limit": (
        [("write", 1_900), ("begin",), *[("push", 2_996, "text")] * 4, ("end",)],
        [True, True, True, False],
    ),
    "paused-below-the-high-mark": (  # paused until drained to the low mark: ask the transport
        [("write", 9_000), ("drain", 7_500), ("begin",), *[("push", 4_996, "text")] * 3],
        [True, True, False],
    ),
    "corked-big-and-broadcast": (  # the big push is accepted at 6,008 queued: over after it
        [
            *[("begin",), ("push", 3_000, "text"), ("broadcast", 3_000), ("push", BIG, "binary")],
            *[("broadcast", 1), ("end",), ("drain", 30_000), ("broadcast", 1)],
        ],
        [True, True, True, False, True],
    ),
    "broadcast-at-the-limit": (
        [("write", 9_999), ("broadcast", 1), ("broadcast", 1)],
        [True, False],
    ),
}


@pytest.mark.parametrize(("ops", "expected"), TWIN_CASES.values(), ids=TWIN_CASES.keys())
def test_compiled_and_python_push_agree(ops: list[Op], expected: list[bool]) -> None:
    assert run_twin(ROOMY, ops) == expected


@st.composite
def twin_scenarios(draw: st.DrawFn) -> tuple[dict[str, int], list[Op]]:
    limit = draw(st.integers(200, 150_000))
    high = draw(st.integers(0, limit))
    low = draw(st.integers(0, high))
    size = st.integers(0, min(2 * limit, 70_000))
    op = st.one_of(
        st.tuples(st.just("write"), size),
        st.tuples(st.just("drain"), st.integers(0, 2 * limit)),
        st.just(("begin",)),
        st.just(("end",)),
        st.tuples(st.just("push"), size, st.sampled_from(["text", "binary"])),
        st.tuples(st.just("broadcast"), size),
    )
    ops = draw(st.lists(op, max_size=30))
    settings_ = {
        "socket_buffer_size": limit,
        "buffer_high_watermark": high,
        "buffer_low_watermark": low,
    }
    return settings_, ops


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(twin_scenarios())
def test_the_slack_shortcut_never_accepts_what_the_exact_rule_refuses(
    scenario: tuple[dict[str, int], list[Op]],
) -> None:
    """Whatever the limits, transport sizes, paused states and corked sizes: every push
    (compiled: the buffer_slack shortcut or the transport asked) is decided as the exact rule
    decides, and the compiled and Python paths end in the same state."""
    run_twin(*scenario)


@pytest.mark.parametrize("compiled", FLAVORS)
def test_early_flush_writes_big_corked_output_first_in_order(compiled: bool) -> None:
    h = FlowHarness()  # socket_buffer_size 8 MiB: early_flush is 64 KiB
    try:
        assert h.worker.early_flush == 64 * 1024
        (a, ta), (b, tb) = h.open(compiled), h.open(compiled)
        payloads = [bytes([i]) * 30_000 for i in range(1, 6)]
        push = pusher(h, compiled)
        seen = []

        def handler(server: Any, frame: Any) -> None:
            for payload in payloads:
                assert push(b.fd, payload, 2) is True
                assert push(a.fd, payload[:100], 2) is True  # the sender's own, corked too
                seen.append((len(tb.written), b.out_bytes, a.out_bytes))

        h.handler = handler
        feed(a, text("go"), compiled)
        size = len(encode_frame(2, payloads[0]))  # 30,004
        # B held 3 frames (90,012 bytes >= 64 KiB) when the 4th came: they left first
        assert seen == [
            (0, size, 102),
            (0, 2 * size, 204),
            (0, 3 * size, 306),
            (3 * size, size, 408),
            (3 * size, 2 * size, 510),
        ]
        assert tb.written == b"".join(encode_frame(2, p) for p in payloads)
        assert ta.written == b"".join(encode_frame(2, p[:100]) for p in payloads)
        assert b.out == [] and not b.corked and a.out == [] and not a.corked
    finally:
        h.close()


# -- input held for later ---------------------------------------------------------------------


class BatchSpy(Connection):
    """Records how many messages were delivered when each ``_resume_input`` came."""

    __slots__ = ("delivered", "resumes")
    resumes: list[int]
    delivered: Callable[[], int]

    def _resume_input(self) -> None:
        self.resumes.append(self.delivered())
        super()._resume_input()


MESSAGES = [bytes([65 + i]) * 600 for i in range(7)]  # each inflates to 600 bytes


@pytest.fixture
def deflate_h(monkeypatch: pytest.MonkeyPatch) -> Iterator[FlowHarness]:
    """Compression on; one receive_data call inflates about 1,000 bytes (not 1 MiB)."""
    monkeypatch.setattr(websocket_module, "INFLATE_BATCH", 1_000)
    harness = FlowHarness(websocket_compression=True, socket_buffer_size=1_000)
    yield harness
    harness.close()


def open_spy(h: FlowHarness, compiled: bool) -> tuple[BatchSpy, FlowTransport]:
    conn, t = h.open(compiled, DEFLATE_OFFER, cls=BatchSpy)
    assert conn.deflate is not None
    conn.resumes = []
    conn.delivered = lambda: len(h.frames)
    return conn, t


@pytest.mark.parametrize("compiled", FLAVORS)
def test_inflated_input_is_dispatched_in_batches_across_iterations(
    deflate_h: FlowHarness, compiled: bool
) -> None:
    h = deflate_h
    conn, _ = open_spy(h, compiled)
    feed(conn, deflate_frames(MESSAGES), compiled)
    assert len(h.frames) == 2 and conn.ws.input_pending  # 1,200 bytes inflated: a batch
    assert conn.ws.buffered_bytes > 0 and conn.resumes == []

    async def scenario() -> None:
        done = asyncio.Event()
        h.handler = lambda srv, frame: done.set() if len(h.frames) == len(MESSAGES) else None
        await done.wait()

    h.run(scenario())
    assert conn.resumes == [2, 4, 6]  # one batch per loop callback
    assert [f.data for f in h.frames] == MESSAGES and not conn.ws.input_pending


@pytest.mark.parametrize("compiled", FLAVORS)
def test_held_input_waits_while_reading_is_paused(deflate_h: FlowHarness, compiled: bool) -> None:
    h = deflate_h  # full past 800 bytes: the answers to one batch (2 x 500) make it full
    conn, t = open_spy(h, compiled)
    h.handler = lambda srv, frame: srv.send(frame.fd, b"w" * 500)
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    feed(conn, deflate_frames(MESSAGES, compressor=compressor), compiled)
    assert len(h.frames) == 2 and conn.ws.input_pending and conn.is_full

    async def a_few_iterations() -> None:
        for _ in range(3):  # (whatever was scheduled would run in these)
            await asyncio.sleep(0)

    h.run(a_few_iterations())
    assert len(h.frames) == 2 and conn.resumes == []  # nothing scheduled while paused
    for delivered in (4, 6, 7):
        t.drain()  # empty: reading resumes, and the held input goes on at once
        assert len(h.frames) == delivered
        assert conn.is_full == (delivered < 7)  # each batch's answers fill it again
    assert conn.resumes == [2, 4, 6]
    assert [f.data for f in h.frames] == MESSAGES and not conn.ws.input_pending
    # with another reason to pause, the drain does not let held input go on either
    more = [b"x" * 600, b"y" * 600, b"z" * 600]
    feed(conn, deflate_frames(more, compressor=compressor), compiled)
    assert len(h.frames) == 9 and conn.ws.input_pending and conn.is_full
    conn._block_reading(PAUSE_USER)
    t.drain()
    # (held input pauses reading too, until its next turn)
    assert not conn.is_full and conn._read_block == PAUSE_USER | PAUSE_INPUT
    assert len(h.frames) == 9
    conn._unblock_reading(PAUSE_USER)
    assert [f.data for f in h.frames[7:]] == more and t.reading


# -- a real transport -------------------------------------------------------------------------


def tcp_pair(rcvbuf: int = 16 * 1024, sndbuf: int = 16 * 1024) -> tuple[Any, Any]:
    """A connected TCP pair on 127.0.0.1 (ours, the client's), with small kernel buffers so
    that a transport's own buffer fills up soon; both non-blocking."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        client.connect(listener.getsockname())
        ours, _ = listener.accept()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    ours.setblocking(False)
    client.setblocking(False)
    return ours, client


async def serve(h: FlowHarness, ours: socket.socket, client: socket.socket) -> tuple[Any, Any]:
    """``ours`` served by a Connection on the worker's loop, past the WebSocket handshake."""
    loop = asyncio.get_running_loop()
    conn = Connection(h.worker, h.server, 9001)
    transport, _ = await loop.connect_accepted_socket(lambda: conn, ours)
    await loop.sock_sendall(client, UPGRADE)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await loop.sock_recv(client, 4096)
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 ") and head.endswith(b"\r\n\r\n")
    return conn, transport


def test_a_real_transport_pauses_and_resumes_reading() -> None:
    h = FlowHarness(socket_buffer_size=256 * 1024)  # full past 209,715 bytes, empty at 0
    ours, client = tcp_pair()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        conn, transport = await serve(h, ours, client)
        data, frame = frame_of(16_000)
        pushed = 0
        for _ in range(1_000):  # the kernel takes some; then the transport buffers
            if conn.is_full:
                break
            assert h.server.push(conn.fd, data) is True
            pushed += 1
        # the transport said pause_writing inside write(): full, not read any more
        assert conn.is_full and conn._write_paused and not transport.is_reading()
        assert transport.get_write_buffer_size() > h.worker.high_water
        assert h.buffer_events == [(conn.fd, True)]
        delivered: asyncio.Future[Any] = loop.create_future()
        h.handler = lambda srv, frame: delivered.set_result(
            (frame.data, conn.is_full, list(h.buffer_events))
        )
        await loop.sock_sendall(client, text("sent while full"))
        expected, got = pushed * len(frame), b""
        while len(got) < expected:  # the client reads: the transport drains
            chunk = await loop.sock_recv(client, 256 * 1024)
            assert chunk
            got += chunk
        assert got == frame * pushed
        message, full_when_read, events = await delivered  # read once drained, not before
        assert message == "sent while full" and not full_when_read
        assert events == [(conn.fd, True), (conn.fd, False)]
        assert transport.is_reading() and not conn._write_paused
        transport.abort()

    try:
        h.run(scenario())
    finally:
        ours.close()
        client.close()
        h.close()


@pytest.mark.parametrize("compiled", FLAVORS)
def test_a_read_of_thousands_of_pings_is_answered_in_turns(h: FlowHarness, compiled: bool) -> None:
    # 2,000 pings in one read: at most EVENT_BATCH events a turn, reading paused between
    # turns (libuv would read the same socket again at once), every pong in order.
    conn, t = h.open(compiled)
    pings = b"".join(client_frame(9, i.to_bytes(2, "big")) for i in range(2000))
    feed(conn, pings, compiled)
    first = len(server_frames(t.written))
    assert first == EVENT_BATCH and conn.ws.input_pending
    assert conn._read_block == PAUSE_INPUT and not t.reading

    async def turns() -> None:
        for _ in range(20):
            await asyncio.sleep(0)
            if not conn.ws.input_pending:
                return

    h.run(turns())
    pongs = server_frames(t.written)
    assert pongs == [(10, i.to_bytes(2, "big")) for i in range(2000)]
    assert conn._read_block == 0 and t.reading
