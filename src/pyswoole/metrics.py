"""Prometheus metrics (setting ``metrics``, off by default): the server's counters in the
Prometheus text exposition format (version 0.0.4), served on the server's HTTP port at the
path the setting names, before the static handler and ``on("request")``.

Where the numbers come from (docs/architecture.md, decision 35):

* what ``stats()`` reports is rendered *from* ``stats()`` -- connections accepted and
  closed, events handed to callbacks, messages and responses queued for clients, bytes on
  the wire, workers, task workers busy, the task queue (``task_queue_num``: tasks sent and
  not yet taken by a task worker, counted at once in :class:`MetricsBlock` slots), running
  ``async def`` callbacks -- so the two agree by construction;
* connections by state are counted in the shared connection table (any process) or the
  worker's own table (one process);
* what ``stats()`` has no key for -- handshakes (ok / refused by HTTP status), close codes
  received and sent, slow-consumer closes, HTTP requests, process starts (restarts), the
  event loop's lag -- is counted per process in a :class:`Tally` by hooks that run once
  per connection or request, never per frame, and published every
  :data:`PUBLISH_INTERVAL` seconds to this process's slot of a :class:`MetricsBlock`, a
  shared ``mmap`` made before fork (as ``stats()``'s own counters). A scrape adds every
  slot up, so it answers for the whole server in whichever process serves it: the
  SWOOLE_BASE worker that owns the scraping connection, or the SWOOLE_PROCESS master;
* WebSocket messages and payload bytes by opcode and direction are counted per frame
  where frames are parsed and queued -- one array index in C, one ``+=`` in Python
  (:func:`~pyswoole.metrics_shared.frame_counts`) -- and published with the tally.

Not ``prometheus_client``: its multiprocess mode needs ``PROMETHEUS_MULTIPROC_DIR``, a
directory of mmap files per process that must be wiped between runs, and it would count
on the hot path through its own objects; pyswoole already keeps per-process counters in
shared memory, and the text format is small and stable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .metrics_shared import (
    CLOSE_NONE,
    CLOSE_RECEIVED,
    CLOSE_SENT,
    FRAME_COUNTS,
    HANDSHAKE_FAILED,
    KIND,
    OPCODES,
    PAIRS,
    TASK_BUCKET,
    TASK_BUCKETS,
    TASK_SUM,
    MetricsBlock,
    Tally,
    frame_counts,
)
from .protocol.deflate import COMPRESSED

if TYPE_CHECKING:
    from .runtime.connection import Connection
    from .runtime.worker import Worker
    from .server.http_server import HttpServer
    from .server.response import Response

__all__ = [  # (and what metrics_shared.py holds, as before it was split off)
    "CLOSE_NONE",
    "CLOSE_RECEIVED",
    "CLOSE_SENT",
    "CONTENT_TYPE",
    "FRAME_COUNTS",
    "HANDSHAKE_FAILED",
    "OPCODES",
    "PAIRS",
    "TASK_BUCKET",
    "TASK_BUCKETS",
    "TASK_SUM",
    "MetricsBlock",
    "MetricsExporter",
    "Tally",
    "TaskMetrics",
    "exporter_for",
    "frame_counts",
    "render",
    "render_family",
    "render_histogram",
    "task_metrics",
]

#: the exposition format's media type (Prometheus text format 0.0.4)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: how often a process publishes its tally to its shared slot (seconds), as ``stats()``
PUBLISH_INTERVAL = 0.5

_DIRECTIONS = {CLOSE_RECEIVED: "received", CLOSE_SENT: "sent", CLOSE_NONE: "none"}
_STATES = {1: "connection", 2: "handshake", 3: "active", 4: "closing", 5: "handshake_failed"}

# -- the exposition format -------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def render_family(
    name: str,
    kind: str,
    doc: str,
    samples: Iterable[tuple[dict[str, str], float]],
) -> str:
    """One metric family: ``# HELP``, ``# TYPE`` and a line per sample (Prometheus text
    format 0.0.4: label values escaped, a counter's samples named ``<name>_total``)."""
    if kind == "counter":  # (as prometheus_client writes format 0.0.4)
        name += "_total"
    help_text = doc.replace("\\", "\\\\").replace("\n", "\\n")
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    sample_name = name
    for labels, value in samples:
        if labels:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{sample_name}{{{inner}}} {_number(value)}")
        else:
            lines.append(f"{sample_name} {_number(value)}")
    return "\n".join(lines) + "\n"


def render_histogram(
    name: str, doc: str, bounds: Iterable[float], counts: list[int], total: float
) -> str:
    """A histogram family: cumulative ``_bucket{le=...}`` lines (``counts[i]`` observations
    fell in bucket ``i``, the last one +Inf), ``_sum`` and ``_count``."""
    lines = [f"# HELP {name} {doc}", f"# TYPE {name} histogram"]
    running = 0
    for bound, count in zip([*map(_number, bounds), "+Inf"], counts, strict=True):
        running += count
        lines.append(f'{name}_bucket{{le="{bound}"}} {running}')
    lines.append(f"{name}_sum {_number(total)}")
    lines.append(f"{name}_count {running}")
    return "\n".join(lines) + "\n"


def _connection_states(server: HttpServer) -> dict[int, int]:
    procs = server._procs
    states: dict[int, int] = dict.fromkeys(range(1, 5), 0)
    if procs is not None:
        table = procs.table
        for fd in table.fds():
            rec = table.get(fd)
            if rec is not None:
                states[rec.status] = states.get(rec.status, 0) + 1
        return states
    worker = server._worker
    if worker is not None:
        for conn in worker.connections.values():
            if not conn.closed:
                states[conn.status] = states.get(conn.status, 0) + 1
    return states


Samples = list[tuple[dict[str, str], float]]

#: what stats() reports: (metric, type, help, stats() key)
_FROM_STATS = (
    ("pyswoole_start_time_seconds", "gauge", "when the server started (unix time)", "start_time"),
    ("pyswoole_connections_accepted", "counter", "connections accepted", "accept_count"),
    ("pyswoole_connections_closed", "counter", "connections closed", "close_count"),
    (
        "pyswoole_events_received",
        "counter",
        "HTTP requests and WebSocket messages handed to callbacks",
        "request_count",
    ),
    (
        "pyswoole_responses_sent",
        "counter",
        "messages, responses and sends queued for clients",
        "response_count",
    ),
    ("pyswoole_received_bytes", "counter", "bytes read from clients", "total_recv_bytes"),
    ("pyswoole_sent_bytes", "counter", "bytes written to clients", "total_send_bytes"),
    ("pyswoole_workers", "gauge", "event worker processes", "worker_num"),
    ("pyswoole_workers_idle", "gauge", "event workers idle now", "idle_worker_num"),
    ("pyswoole_task_workers", "gauge", "task worker processes", "task_worker_num"),
    ("pyswoole_tasks_running", "gauge", "task workers running a task", "tasking_num"),
    (
        "pyswoole_task_queue_depth",
        "gauge",
        "tasks sent by task()/taskwait()/taskCo()/task_async() that no task worker has "
        "taken yet, over the server",
        "task_queue_num",
    ),
    (
        "pyswoole_task_queue_bytes",
        "gauge",
        "the bytes of those tasks (IPC messages: pickled data and header)",
        "task_queue_bytes",
    ),
    ("pyswoole_coroutines", "gauge", "async def callbacks running here", "coroutine_num"),
    ("pyswoole_websocket_connections", "gauge", "WebSocket connections here", "websocket_num"),
)


def render(server: HttpServer) -> str:
    """The whole server's metrics, as of now (this process's live tally, the others' as
    last published), in the text exposition format."""
    stats = server.stats()
    exporter = server._metrics
    tallies = [] if exporter is None else exporter.tallies()
    out: list[str] = []
    for name, kind, doc, key in _FROM_STATS:
        out.append(render_family(name, kind, f"{doc} (stats() {key})", [({}, stats.get(key, 0))]))
    states = _connection_states(server)
    out.append(
        render_family(
            "pyswoole_connections",
            "gauge",
            "open connections by state (stats() connection_num in all)",
            [({"state": _STATES.get(s, str(s))}, n) for s, n in sorted(states.items())],
        )
    )
    failed: dict[int, int] = {}
    closes: dict[tuple[int, int], int] = {}
    buckets = [0] * (len(TASK_BUCKETS) + 1)
    task_seconds = 0.0
    for _, tally in tallies:
        for code, count in tally.labelled.items():
            what, value = divmod(code, KIND)
            if what == HANDSHAKE_FAILED:
                failed[value] = failed.get(value, 0) + count
            elif what in _DIRECTIONS:
                closes[what, value] = closes.get((what, value), 0) + count
            elif what == TASK_BUCKET and value < len(buckets):
                buckets[value] += count
            elif what == TASK_SUM:
                task_seconds += count / 1e6
    handshakes: Samples = [
        ({"result": "ok", "status": "101"}, sum(t.handshakes_ok for _, t in tallies))
    ]
    handshakes += [({"result": "failed", "status": str(s)}, n) for s, n in sorted(failed.items())]
    started = [(str(p), t) for p, t in tallies if t.starts]
    procs = server._procs
    tasking = set() if procs is None else set(range(procs.worker_num, procs.count))
    looped = [(p, t) for p, t in started if int(p) not in tasking]  # (task workers: no lag)
    payload = sum(t.payload for _, t in tallies)
    deflated = sum(t.deflated for _, t in tallies)
    frames = [sum(column) for column in zip(*(t.frames for _, t in tallies), strict=True)]
    if not frames:
        frames = [0] * FRAME_COUNTS
    messages: Samples = []
    payload_bytes: Samples = []
    for direction, at in (("in", 0), ("out", 32)):
        for opcode, name in OPCODES.items():
            labels = {"direction": direction, "opcode": name}
            messages.append((labels, frames[at + opcode]))
            payload_bytes.append((labels, frames[at + 16 + opcode]))
    if frames[48]:  # (fragments pushed with OPCODE_CONTINUATION: whose message is unknown)
        payload_bytes.append(({"direction": "out", "opcode": "continuation"}, frames[48]))
    families: list[tuple[str, str, str, Samples]] = [
        (
            "pyswoole_http_requests",
            "counter",
            "HTTP requests handled (metrics scrapes excepted)",
            [({}, sum(t.http_requests for _, t in tallies))],
        ),
        (
            "pyswoole_websocket_handshakes",
            "counter",
            "WebSocket opening handshakes: accepted (101) or refused, by HTTP status",
            handshakes,
        ),
        (
            "pyswoole_websocket_closes",
            "counter",
            "WebSocket connections gone, by close code and by who sent it (received: the "
            "client's close frame; sent: the server's; none: no closing handshake, 1006)",
            [
                ({"direction": _DIRECTIONS[k], "code": str(c)}, n)
                for (k, c), n in sorted(closes.items())
            ],
        ),
        (
            "pyswoole_websocket_messages",
            "counter",
            "WebSocket messages received (in) and queued for clients (out), by opcode: a "
            "fragmented or compressed message counts once, as its first frame's opcode",
            messages,
        ),
        (
            "pyswoole_websocket_payload_bytes",
            "counter",
            "their payload bytes as on the wire (frame headers and masks excluded, compressed "
            "messages at their compressed size; pushed continuation frames: opcode "
            "continuation)",
            payload_bytes,
        ),
        (
            "pyswoole_slow_consumer_closes",
            "counter",
            "connections closed (1013) for staying full buffer_full_timeout seconds",
            [({}, sum(t.slow_consumer for _, t in tallies))],
        ),
        (
            "pyswoole_send_buffer_overflows",
            "counter",
            "messages refused (push/send/broadcast) because socket_buffer_size bytes were "
            "queued for the connection (SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW)",
            [({}, sum(t.buffer_overflows for _, t in tallies))],
        ),
        (
            "pyswoole_compression_payload_bytes",
            "counter",
            "message bytes given to permessage-deflate (RFC 7692)",
            [({}, payload)],
        ),
        (
            "pyswoole_compression_deflated_bytes",
            "counter",
            "the bytes permessage-deflate made of them",
            [({}, deflated)],
        ),
        (
            "pyswoole_compression_ratio",
            "gauge",
            "payload bytes per deflated byte since the start (0: nothing compressed yet)",
            [({}, payload / deflated if deflated else 0)],
        ),
        (
            "pyswoole_worker_restarts",
            "counter",
            "worker and task worker processes started again (a crash, max_request, reload)",
            [({}, sum(max(0, t.starts - 1) for _, t in started))],
        ),
        (
            "pyswoole_event_loop_lag_seconds",
            "gauge",
            "how late the loop ran a timer at its last check (every 0.5 s), by process",
            [({"process": p}, t.lag) for p, t in looped],
        ),
        (
            "pyswoole_event_loop_lag_max_seconds",
            "gauge",
            "the most the loop was late since the process started, by process",
            [({"process": p}, t.lag_max) for p, t in looped],
        ),
    ]
    out.extend(render_family(*family) for family in families)
    out.append(
        render_histogram(
            "pyswoole_task_duration_seconds",
            "tasks from task() in the worker to their end in a task worker (queue wait included)",
            TASK_BUCKETS,
            buckets,
            task_seconds,
        )
    )
    return "".join(out)


# -- a worker's side ---------------------------------------------------------------------------


class MetricsExporter:
    """This process's tally, its hooks and its shared slot (``metrics`` is set)."""

    def __init__(self, server: HttpServer, worker: Worker, path: str) -> None:
        self.server = server
        self.path = path
        procs = server._procs
        if procs is None:
            self.block = MetricsBlock(1)
            self.process_id = 0
        else:
            self.block = procs.counters.metrics
            self.process_id = procs.process_id
        # the slot outlives the process: a replacement goes on from its predecessor
        self.tally = self.block.read(self.process_id)
        self.tally.starts += 1
        self.tally.lag = 0.0
        self._state: Any = worker.state
        if hasattr(self._state, "buffer_overflows"):
            self._state.buffer_overflows = self.tally.buffer_overflows
        # (COMPRESSED counts since this process started; add what it counts from now on)
        self._compressed = (
            self.tally.payload - COMPRESSED.payload,
            self.tally.deflated - COMPRESSED.deflated,
        )
        # (the same for the frame counts: a forked process starts with its parent's)
        self._frames = [a - b for a, b in zip(self.tally.frames, frame_counts(), strict=True)]
        self.publish()
        previous = worker.on_websocket
        self._chain: Callable[[Connection, bool], None] | None = previous
        worker.on_websocket = self._websocket_event
        for name in ("upgrade", "_refuse"):  # (a server started again: not wrapped twice)
            server.__dict__.pop(name, None)
        refuse = server._refuse
        upgrade = server.upgrade
        tally = self.tally
        in_upgrade = [False]

        def counted_upgrade(conn: Connection, parsed: Any) -> None:
            in_upgrade[0] = True
            try:
                upgrade(conn, parsed)
            finally:
                in_upgrade[0] = False

        def counted_refuse(conn: Connection, error: Any) -> None:
            if in_upgrade[0]:
                tally.add(HANDSHAKE_FAILED, int(getattr(error, "status", 0)))
            refuse(conn, error)

        # (instance attributes: only a server with metrics on pays for the count)
        setattr(server, "upgrade", counted_upgrade)  # noqa: B010
        setattr(server, "_refuse", counted_refuse)  # noqa: B010
        loop = worker.loop
        due = time.monotonic() + PUBLISH_INTERVAL

        def tick() -> None:
            nonlocal due
            now = time.monotonic()
            lag = max(0.0, now - due)
            tally.lag = lag
            if lag > tally.lag_max:
                tally.lag_max = lag
            self.publish()
            due = now + PUBLISH_INTERVAL
            if worker.running:
                loop.call_later(PUBLISH_INTERVAL, tick)

        loop.call_later(PUBLISH_INTERVAL, tick)

    def _websocket_event(self, conn: Connection, opened: bool) -> None:
        if opened:
            self.tally.handshakes_ok += 1
        else:
            ws = conn.ws
            if ws is None:
                self.tally.closed(False, False, 1006, "")
            else:
                self.tally.closed(ws.close_received, ws.close_sent, ws.close_code, ws.close_reason)
        chain = self._chain
        if chain is not None:
            chain(conn, opened)

    def publish(self) -> None:
        tally = self.tally
        tally.buffer_overflows = int(getattr(self._state, "buffer_overflows", 0))
        tally.payload = self._compressed[0] + COMPRESSED.payload
        tally.deflated = self._compressed[1] + COMPRESSED.deflated
        tally.frames = [a + b for a, b in zip(self._frames, frame_counts(), strict=True)]
        self.block.publish(self.process_id, tally)

    def tallies(self) -> list[tuple[int, Tally]]:
        """``(process id, tally)`` of every process: this one's live, the others' as
        they last published."""
        self.publish()  # (brings this process's counts up to date)
        block = self.block
        return [
            (i, self.tally if i == self.process_id else block.read(i)) for i in range(block.count)
        ]

    def serve(self, response: Response) -> None:
        """Answer a scrape: 200 with the exposition text (``Cache-Control: no-store``)."""
        body = render(self.server)
        response.header("Content-Type", CONTENT_TYPE)
        response.header("Cache-Control", "no-store")
        response.end(body)


class TaskMetrics:
    """A task worker's side (``metrics`` is set): the durations of its tasks, published to
    its slot after each one (a task costs an IPC round trip and pickling: one more
    ``pack_into`` is small beside it)."""

    def __init__(self, block: MetricsBlock, process_id: int) -> None:
        self.block = block
        self.process_id = process_id
        self.tally = block.read(process_id)  # (a replacement goes on from its slot)
        self.tally.starts += 1
        block.publish(process_id, self.tally)

    def task_done(self, dispatch_time: float) -> None:
        """A task sent at ``dispatch_time`` (``time.time()`` in the worker) ended."""
        self.tally.task_done(time.time() - dispatch_time)
        self.block.publish(self.process_id, self.tally)


def task_metrics(server: Any, block: MetricsBlock, process_id: int) -> TaskMetrics | None:
    """A task worker's :class:`TaskMetrics`, or None when the ``metrics`` setting is off."""
    if not server._settings.get_value("metrics"):
        return None
    return TaskMetrics(block, process_id)


def exporter_for(server: HttpServer, worker: Worker) -> MetricsExporter | None:
    """The exporter of ``server``'s worker, or None when the ``metrics`` setting is off."""
    path = server._settings.get_value("metrics")
    if not path:
        return None
    return MetricsExporter(server, worker, path)
