"""The ``metrics`` setting on a real server (programs/metrics_server.py): SWOOLE_BASE with 2
workers, SWOOLE_PROCESS with 2 workers, and one process. Real ``websockets`` clients talk
to it, a raw socket makes a handshake fail, and ``/metrics`` is fetched with a raw HTTP GET
over one keep-alive connection; the counts must match what the clients did, and the
exposition must say what ``stats()`` says."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import websockets

from pyswoole.metrics import CONTENT_TYPE
from tests.integration.serverproc import Client, client_pool, connect, started

PROGRAM = Path(__file__).parent / "programs" / "metrics_server.py"
#: metrics of other processes are published every 0.5 s: poll at most this long
SETTLE_TIMEOUT = 10.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """The exposition text, parsed by prometheus_client's reference parser."""
    parser = pytest.importorskip("prometheus_client.parser")
    samples: Samples = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class Scraper:
    """GET /metrics over one keep-alive connection (so scrapes add one accept in all)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.count = 0

    async def get(self, path: str = "/metrics") -> tuple[int, dict[str, str], str]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, field = line.partition(":")
                headers[name.strip().lower()] = field.strip()
        body = await asyncio.wait_for(self.reader.readexactly(int(headers["content-length"])), 10)
        self.count += 1
        return status, headers, body.decode()

    async def until(self, done: object) -> Samples:
        """Scrape until ``done(samples)`` holds (other processes publish every 0.5 s)."""
        assert callable(done)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        samples: Samples = {}
        for _ in range(200):
            status, _, text = await self.get()
            assert status == 200
            samples = parse(text)
            if done(samples) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)  # (a poll: the other processes publish periodically)
        return samples

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def bad_handshake(port: int) -> bytes:
    """An upgrade without Sec-WebSocket-Key: refused with 400 (RFC 6455 section 4.2.1)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


FLOODS = 5  # floods of 200 x 64 KiB at most, until a push is refused (SWOOLE_PROCESS)

MODES = {
    "base-2": ("--mode", "base", "--workers", "2"),
    "process-2": ("--mode", "process", "--workers", "2"),
    "one-process": ("--mode", "base", "--workers", "1"),
}


@pytest.mark.parametrize("mode", list(MODES))
async def test_metrics_count_what_the_clients_did(tmp_path: Path, mode: str) -> None:
    args = MODES[mode]
    workers = int(args[-1])
    manager = workers > 1 or "process" in args
    async with (
        started(PROGRAM, tmp_path, *args, processes=workers, manager_line=manager) as server,
        client_pool() as pool,
    ):
        scraper = Scraper(server.port)
        try:
            status, headers, text = await scraper.get()
            assert status == 200
            assert headers["content-type"] == CONTENT_TYPE
            assert headers["cache-control"] == "no-store"
            before = parse(text)
            assert (
                value(before, "pyswoole_websocket_handshakes_total", result="ok", status="101") == 0
            )

            clients: list[Client] = [await connect(server, pool) for _ in range(5)]
            texts = binaries = 0
            sent_bytes = 0
            for i, client in enumerate(clients):
                for j in range(3 + i):
                    await client.echo(f"{i}-{j}" * 10)
                    texts += 1
                    sent_bytes += len(f"e:{i}-{j}" * 10)
                await client.ws.send(bytes(100 + i))
                assert await client.message() == "\0" * (100 + i)  # (the reader decodes)
                binaries += 1
            messages = len(clients) + texts + binaries + 1  # (whoami, echoes, binary, bye)
            answer = await bad_handshake(server.port)
            assert answer.startswith(b"HTTP/1.1 400")
            http_status, _, body = await scraper.get("/hello")
            assert (http_status, body) == (200, "ok")
            # two clients close (1000), one is closed by the server (4001)
            await clients[0].close()
            await clients[1].close()
            await clients[2].send("bye:4001")
            assert await clients[2].wait_closed() == 4001

            hs = "pyswoole_websocket_handshakes_total"

            def settled(s: Samples) -> bool:  # (other processes publish every 0.5 s)
                return (
                    value(s, "pyswoole_websocket_closes_total", direction="received", code="1000")
                    == 2
                    and value(s, "pyswoole_websocket_closes_total", direction="sent", code="4001")
                    == 1
                    and value(s, "pyswoole_events_received_total") >= messages + 1
                    and value(s, "pyswoole_http_requests_total") == 1
                    and value(s, "pyswoole_connections", state="active") == 2
                    and value(s, hs, result="ok", status="101") == 5
                    and value(s, hs, result="failed", status="400") == 1
                    and value(s, "pyswoole_websocket_closes_total", direction="sent", code="1000")
                    == 2
                )

            s = await scraper.until(settled)
            assert settled(s), s
            total = "pyswoole_websocket_handshakes_total"
            assert value(s, total, result="ok", status="101") == 5
            assert value(s, total, result="failed", status="400") == 1
            closes = "pyswoole_websocket_closes_total"
            assert value(s, closes, direction="sent", code="1000") == 2  # (the replies)
            assert value(s, closes, direction="received", code="4001") == 1  # (the client's)
            # a 400 answer, /hello and the scrapes' connection are plain HTTP connections
            assert value(s, "pyswoole_connections", state="connection") == 1
            # 5 WebSocket clients, the refused handshake, the scrapes' connection
            assert value(s, "pyswoole_connections_accepted_total") == 7
            assert value(s, "pyswoole_connections_closed_total") == 4
            if "process" not in args:  # (SWOOLE_PROCESS also counts the EV_OPEN events)
                assert value(s, "pyswoole_events_received_total") == messages + 1
            assert value(s, "pyswoole_received_bytes_total") > sent_bytes
            assert value(s, "pyswoole_workers") == workers
            assert value(s, "pyswoole_worker_restarts_total") == 0
            lag = [v for (n, _), v in s.items() if n == "pyswoole_event_loop_lag_seconds"]
            assert len(lag) == (workers + (1 if "process" in args else 0) if manager else 1)
            assert all(0 <= v < 5 for v in lag)

            # stats() and the metrics agree (made in one callback)
            agree = await clients[3].request("agree")
            stats, shown = agree["stats"], parse(agree["text"])
            pairs = {
                "pyswoole_connections_accepted_total": "accept_count",
                "pyswoole_connections_closed_total": "close_count",
                "pyswoole_events_received_total": "request_count",
                "pyswoole_responses_sent_total": "response_count",
                "pyswoole_received_bytes_total": "total_recv_bytes",
                "pyswoole_sent_bytes_total": "total_send_bytes",
                "pyswoole_workers": "worker_num",
                "pyswoole_start_time_seconds": "start_time",
            }
            for metric, key in pairs.items():
                assert value(shown, metric) == stats[key], (metric, key)
            states = sum(v for (n, _), v in shown.items() if n == "pyswoole_connections")
            assert states == stats["connection_num"]
        finally:
            scraper.close()


async def test_metrics_count_a_restarted_worker(tmp_path: Path) -> None:
    """A worker killed is replaced: the restart is counted, and its slot's counts go on."""
    args = MODES["base-2"]
    async with (
        started(PROGRAM, tmp_path, *args, processes=2, manager_line=True) as server,
        client_pool() as pool,
    ):
        scraper = Scraper(server.port)
        try:
            client = await connect(server, pool)
            own = client.worker
            other = 1 - own
            victim = server.pids()[other]
            mark = server.mark()
            os.kill(victim, signal.SIGKILL)
            await asyncio.to_thread(
                server.wait_line, rf"workerStart {other} (\d+) worker", 15.0, mark
            )
            s = await scraper.until(
                lambda s: (
                    value(s, "pyswoole_worker_restarts_total") == 1
                    and value(s, "pyswoole_websocket_handshakes_total", result="ok", status="101")
                    == 1
                )
            )
            assert value(s, "pyswoole_worker_restarts_total") == 1
            assert value(s, "pyswoole_websocket_handshakes_total", result="ok", status="101") == 1
        finally:
            scraper.close()


@pytest.mark.parametrize("mode", ["base-2", "process-2"])
async def test_metrics_count_overflows_and_compression(tmp_path: Path, mode: str) -> None:
    """push() refused for a full output buffer is counted; the compression counters hold
    the bytes of the compressed pushes and what they became."""
    args = MODES[mode]
    process_mode = "process" in args
    async with started(PROGRAM, tmp_path, *args, processes=2, manager_line=True) as server:
        scraper = Scraper(server.port)
        try:
            # a client that never reads: the kernel's buffers fill, then the 1 MiB one
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 101")
            command = b"flood:200"
            mark = server.mark()
            writer.write(bytes((0x81, 0x80 | len(command))) + bytes(4) + command)  # (mask 0)
            line = await asyncio.to_thread(server.wait_line, r"flood (\d+) (\d+)", 15.0, mark)
            target, refused = int(line[1]), int(line[2])
            # SWOOLE_PROCESS: the worker refuses once the master, reading its pushes over the
            # IPC while the callback runs, marks the fd overflowing; a master that read too
            # little of the flood meanwhile (a busy machine) has not marked it yet. The fd
            # stopped being read then, so more floods come from another client, each adding
            # to what the master holds, until the mark is there (at most FLOODS of them).
            floods = 1
            if refused == 0 and process_mode:
                async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as other:
                    while refused == 0 and floods < FLOODS:
                        mark = server.mark()
                        await other.send(f"flood:200:{target}")
                        line = await asyncio.to_thread(
                            server.wait_line, rf"flood {target} (\d+)", 15.0, mark
                        )
                        refused, floods = int(line[1]), floods + 1
            # (a first flood is refused only from its middle on; a later one may find the
            # mark already there and be refused whole)
            assert refused > 0 and (refused < 200 or floods > 1), floods

            text = "e:" + "abc" * 400
            async with websockets.connect(
                f"ws://127.0.0.1:{server.port}/", compression="deflate", ping_interval=None
            ) as ws:
                assert ws.protocol.extensions, "permessage-deflate was not negotiated"
                for _ in range(3):
                    await ws.send(text)
                    assert await asyncio.wait_for(ws.recv(), 10) == text

            def settled(s: Samples) -> bool:
                overflows = value(s, "pyswoole_send_buffer_overflows_total")
                # SWOOLE_PROCESS: the worker's refusals, and the master's past its cap
                return (overflows >= refused if process_mode else overflows == refused) and value(
                    s, "pyswoole_compression_payload_bytes_total"
                ) == 3 * len(text)

            s = await scraper.until(settled)
            assert settled(s), s
            writer.transport.abort()
            deflated = value(s, "pyswoole_compression_deflated_bytes_total")
            assert 0 < deflated < len(text)  # (1,200 repeated bytes deflate to a few dozen)
            ratio = value(s, "pyswoole_compression_ratio")
            assert ratio == pytest.approx(3 * len(text) / deflated)
        finally:
            scraper.close()


@pytest.mark.parametrize("mode", ["base", "process"])
async def test_metrics_time_the_tasks(tmp_path: Path, mode: str) -> None:
    """The task duration histogram counts every task, from task() to its end."""
    args = ("--mode", mode, "--workers", "1", "--task-workers", "2")
    async with (
        started(PROGRAM, tmp_path, *args, processes=3, manager_line=True) as server,
        client_pool() as pool,
    ):
        scraper = Scraper(server.port)
        try:
            client = await connect(server, pool)
            await client.send("task:3:0.02")
            name = "pyswoole_task_duration_seconds"

            def settled(s: Samples) -> bool:
                return value(s, name + "_count") == 3

            s = await scraper.until(settled)
            assert settled(s), s
            assert value(s, name + "_bucket", le="0.01") == 0  # (each slept 20 ms)
            assert value(s, name + "_bucket", le="60") == 3
            assert value(s, name + "_bucket", le="+Inf") == 3
            assert 0.06 <= value(s, name + "_sum") < 60
            assert value(s, "pyswoole_task_workers") == 2
            lag = [v for (n, _), v in s.items() if n == "pyswoole_event_loop_lag_seconds"]
            assert len(lag) == (1 if mode == "base" else 2)  # (task workers have none)
        finally:
            scraper.close()


class Peer:
    """A ``websockets`` client that counts, by opcode, what it sends (what the server
    receives) and what it reads (what the server sent): ``counts[direction, opcode]`` is
    ``[messages, payload bytes]``, as the server's metrics should show them."""

    def __init__(self, ws: Any, counts: dict[tuple[str, str], list[int]]) -> None:
        self.ws = ws
        self.counts = counts
        self.worker = -1
        self.fd = 0

    @classmethod
    async def connect(cls, port: int, counts: dict[tuple[str, str], list[int]]) -> Peer:
        ws = await websockets.connect(
            f"ws://127.0.0.1:{port}/", compression=None, ping_interval=None, close_timeout=5
        )
        return cls(ws, counts)

    def add(self, direction: str, opcode: str, size: int) -> None:
        entry = self.counts.setdefault((direction, opcode), [0, 0])
        entry[0] += 1
        entry[1] += size

    async def send(self, data: str | bytes) -> None:
        await self.ws.send(data)
        if isinstance(data, str):
            self.add("in", "text", len(data.encode()))
        else:
            self.add("in", "binary", len(data))

    async def recv(self) -> str | bytes:
        data: str | bytes = await asyncio.wait_for(self.ws.recv(), 10)
        if isinstance(data, str):
            self.add("out", "text", len(data.encode()))
        else:
            self.add("out", "binary", len(data))
        return data

    async def ping(self, payload: bytes) -> None:
        pong = await self.ws.ping(payload)
        self.add("in", "ping", len(payload))
        await asyncio.wait_for(pong, 10)  # (the server's pong echoes the payload)
        self.add("out", "pong", len(payload))

    async def identify(self) -> Peer:
        await self.send("whoami")
        who = json.loads(await self.recv())
        self.worker, self.fd = who["worker"], who["fd"]
        return self

    async def close(self) -> None:
        await asyncio.wait_for(self.ws.close(), 10)  # (1000: 2 payload bytes each way)
        self.add("in", "close", 2)
        self.add("out", "close", 2)


def frame_samples(s: Samples) -> dict[tuple[str, str], list[int]]:
    """What the scrape says: ``(direction, opcode) -> [messages, payload bytes]``."""
    shown: dict[tuple[str, str], list[int]] = {}
    for direction in ("in", "out"):
        for opcode in ("text", "binary", "ping", "pong", "close"):
            labels = {"direction": direction, "opcode": opcode}
            messages = value(s, "pyswoole_websocket_messages_total", **labels)
            size = value(s, "pyswoole_websocket_payload_bytes_total", **labels)
            if messages or size:
                shown[direction, opcode] = [int(messages), int(size)]
    return shown


@pytest.mark.parametrize("mode", ["base-2", "process-2"])
async def test_metrics_count_messages_and_bytes_by_opcode(tmp_path: Path, mode: str) -> None:
    """Text, binary and pings from real clients, echoed; pushes to another worker's client,
    a broadcast and a publish (over IPC in both modes); the scrape shows exactly what the
    clients sent and read, by opcode, in messages and payload bytes. A compressed message
    counts once as text; the closing handshakes count as close frames each way."""
    args = MODES[mode]
    async with started(PROGRAM, tmp_path, *args, processes=2, manager_line=True) as server:
        scraper = Scraper(server.port)
        counts: dict[tuple[str, str], list[int]] = {}
        peers: list[Peer] = []
        try:
            for _ in range(12):  # (until both workers have a client: the kernel spreads them)
                peers.append(await (await Peer.connect(server.port, counts)).identify())
                if len({p.worker for p in peers}) == 2 and len(peers) >= 3:
                    break
            assert {p.worker for p in peers} == {0, 1}, [p.worker for p in peers]
            for i, peer in enumerate(peers):
                for j in range(3 + i):  # texts, echoed
                    await peer.send(f"e:{i}-{j}-" + "é" * j)
                    assert await peer.recv() == f"e:{i}-{j}-" + "é" * j
                for j in range(2):  # binaries, echoed
                    await peer.send(bytes(range(i + j + 1)) * 50)
                    assert await peer.recv() == bytes(range(i + j + 1)) * 50
                if i == 0:  # big: pushed as a header and the payload uncopied
                    await peer.send(bytes(70_000))
                    assert await peer.recv() == bytes(70_000)
                await peer.ping(b"p%d" % i)  # answered with a pong
                await peer.ping(b"")
            # a push to another worker's client, a broadcast, a publish
            first = peers[0]
            other = next(p for p in peers if p.worker != first.worker)
            await first.send(f"to:{other.fd}:across")
            assert await other.recv() == "across"
            await first.send("b:news for all")
            for peer in peers:
                assert await peer.recv() == "news for all"
            for peer in peers[1:3]:
                await peer.send("sub:room")
                assert json.loads(await peer.recv())["re"] == "sub"
            await first.send("pub:room:published")
            for peer in peers[1:3]:
                assert await peer.recv() == "published"

            def settled(s: Samples) -> bool:
                return frame_samples(s) == counts

            s = await scraper.until(settled)
            assert frame_samples(s) == counts
            assert counts["in", "ping"][0] == counts["out", "pong"][0] == 2 * len(peers)

            # compressed: each message counts once, as text, at its compressed size
            text = "e:" + "abc" * 400
            async with websockets.connect(
                f"ws://127.0.0.1:{server.port}/", compression="deflate", ping_interval=None
            ) as ws:
                assert ws.protocol.extensions, "permessage-deflate was not negotiated"
                for _ in range(3):
                    await ws.send(text)
                    assert await asyncio.wait_for(ws.recv(), 10) == text
            before = {key: list(entry) for key, entry in counts.items()}
            for direction in ("in", "out"):
                counts[direction, "text"][0] += 3
                counts.setdefault((direction, "close"), [0, 0])[0] += 1

            def compressed(s: Samples) -> bool:
                shown = frame_samples(s)
                return all(shown.get(key, [0])[0] == entry[0] for key, entry in counts.items())

            s = await scraper.until(compressed)
            shown = frame_samples(s)
            assert {key: entry[0] for key, entry in shown.items()} == {
                key: entry[0] for key, entry in counts.items()
            }
            for direction in ("in", "out"):
                grew = shown[direction, "text"][1] - before[direction, "text"][1]
                assert 0 < grew < 3 * len(text) // 10  # (1,202 repeated bytes deflate small)

            for peer in peers:
                await peer.close()
            for key, entry in shown.items():  # (the compressed client's bytes, as shown)
                if key[1] == "text":
                    counts[key][1] = entry[1]
            counts["out", "close"][1] = shown["out", "close"][1] + 2 * len(peers)
            counts["in", "close"][1] = shown["in", "close"][1] + 2 * len(peers)
            for direction in ("in", "out"):
                counts[direction, "close"][0] = shown[direction, "close"][0] + len(peers)
            s = await scraper.until(settled)
            assert frame_samples(s) == counts
        finally:
            for peer in peers:
                peer.ws.transport.abort()
            scraper.close()


@pytest.mark.parametrize("mode", ["base", "process"])
async def test_metrics_show_the_task_queue_depth(tmp_path: Path, mode: str) -> None:
    """Five tasks for one task worker, the first held in it (reading a FIFO the test
    writes to): four wait in the queue -- the gauge and stats()["task_queue_num"] say 4,
    one task worker is busy -- then all run once released, and the queue is empty."""
    args = ("--mode", mode, "--workers", "1", "--task-workers", "1")
    fifo = tmp_path / "release"
    os.mkfifo(fifo)
    async with (
        started(PROGRAM, tmp_path, *args, processes=2, manager_line=True) as server,
        client_pool() as pool,
    ):
        scraper = Scraper(server.port)
        writer = -1
        try:
            client = await connect(server, pool)
            s = await scraper.get()
            assert value(parse(s[2]), "pyswoole_task_queue_depth") == 0
            await client.send(f"hold:5:{fifo}")

            def held(s: Samples) -> bool:
                return (
                    value(s, "pyswoole_task_queue_depth") == 4
                    and value(s, "pyswoole_tasks_running") == 1
                )

            s = await scraper.until(held)
            assert held(s), s
            assert value(s, "pyswoole_task_queue_bytes") > 4 * len(str(fifo))
            stats = (await client.request("agree"))["stats"]
            assert stats["task_queue_num"] == 4
            assert stats["task_queue_bytes"] == value(s, "pyswoole_task_queue_bytes")
            assert stats["tasking_num"] == 1

            # (returns once the held task has the FIFO open for reading)
            writer = await asyncio.wait_for(asyncio.to_thread(os.open, fifo, os.O_WRONLY), 10)
            os.write(writer, b"x" * 5)
            name = "pyswoole_task_duration_seconds_count"

            def released(s: Samples) -> bool:
                return (
                    value(s, "pyswoole_task_queue_depth") == 0
                    and value(s, "pyswoole_tasks_running") == 0
                    and value(s, name) == 5
                )

            s = await scraper.until(released)
            assert released(s), s
            assert value(s, "pyswoole_task_queue_bytes") == 0
            stats = (await client.request("agree"))["stats"]
            assert (stats["task_queue_num"], stats["task_queue_bytes"]) == (0, 0)
        finally:
            if writer < 0:  # (a failed test: let the held tasks end before the stop)
                with contextlib.suppress(OSError):
                    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            if writer >= 0:
                with contextlib.suppress(OSError):
                    os.write(writer, b"x" * 5)
                os.close(writer)
            scraper.close()
