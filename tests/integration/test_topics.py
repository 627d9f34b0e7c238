"""Topics across the workers of one server (server/topics.py, cluster/topics.py), with real
``websockets`` clients, in SWOOLE_BASE (subscriptions in each connection's worker) and
SWOOLE_PROCESS (subscriptions in the master)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import websockets

from tests.integration.conftest import ROOT
from tests.integration.hostile import RawWebSocket, client_frame
from tests.integration.serverproc import (
    REPLY_TIMEOUT,
    Client,
    ServerProcess,
    client_pool,
    connect,
    started,
)

PROGRAM = ROOT / "tests" / "integration" / "programs" / "topics_server.py"
WORKERS = 2
MESSAGES = 30


async def spread(server: ServerProcess, pool: list[Client], per_worker: int) -> list[Client]:
    """Connect until each worker has ``per_worker`` clients (SWOOLE_BASE: the kernel picks
    the accepting worker; SWOOLE_PROCESS: the worker that runs the fd's callbacks)."""
    by_worker: dict[int, list[Client]] = {w: [] for w in range(WORKERS)}
    for _ in range(40 * per_worker):
        if all(len(c) >= per_worker for c in by_worker.values()):
            break
        client = await connect(server, pool)
        if len(by_worker[client.worker]) < per_worker:
            by_worker[client.worker].append(client)
    assert all(len(c) >= per_worker for c in by_worker.values()), by_worker
    return [c for w in range(WORKERS) for c in by_worker[w]]


async def drain_until(client: Client, end: str) -> list[str]:
    """The messages ``client`` gets up to (not including) ``end``."""
    got: list[str] = []
    for _ in range(10 * MESSAGES):
        text = await client.message()
        if text == end:
            return got
        got.append(text)
    raise AssertionError(f"{client}: no {end!r} after {got[-5:]}")


@pytest.mark.parametrize("mode", ["base", "process"])
async def test_publish_reaches_every_subscriber_once_in_order(tmp_path: Path, mode: str) -> None:
    async with (
        started(PROGRAM, tmp_path, "--workers", str(WORKERS), "--mode", mode, processes=2) as srv,
        client_pool() as pool,
    ):
        clients = await spread(srv, pool, 3)
        subscribers = [c for i, c in enumerate(clients) if i % 3 != 2]  # 2 per worker
        others = [c for c in clients if c not in subscribers]
        for client in clients:
            assert (await client.request("sub:end"))["ok"] is True
        for client in subscribers:
            assert (await client.request("sub:room"))["ok"] is True
            assert (await client.request("sub:room"))["ok"] is True  # idempotent
        publisher = others[0]  # worker 0, not subscribed
        answer = await publisher.request(f"pubn:room:{MESSAGES}:m")
        if mode == "base":
            # per message: the 2 subscribers of its own worker + 1 hand-off to worker 1
            assert answer["n"] == MESSAGES * 3
        else:  # a SWOOLE_PROCESS worker hands each message to the master
            assert answer["n"] == MESSAGES
        await publisher.request("pub:end:END")
        expected = [f"m-{i}" for i in range(MESSAGES)]
        for client in subscribers:
            assert await drain_until(client, "END") == expected, client
        for client in others:
            assert await drain_until(client, "END") == [], client


@pytest.mark.parametrize("mode", ["base", "process"])
async def test_subscribe_another_workers_fd_and_close_leaves_topics(
    tmp_path: Path, mode: str
) -> None:
    async with (
        started(PROGRAM, tmp_path, "--workers", str(WORKERS), "--mode", mode, processes=2) as srv,
        client_pool() as pool,
    ):
        a0, b0, a1, b1 = await spread(srv, pool, 2)
        # a0 (worker 0) subscribes a1 (worker 1) and b1: the request goes to the owner
        assert (await a0.request(f"sub:t:{a1.fd}"))["ok"] is True
        assert (await a0.request(f"sub:t:{b1.fd}"))["ok"] is True
        assert (await a0.request("sub:t"))["ok"] is True
        await b0.request("pubx:t:one")  # b0 is not subscribed: exclude_fd changes nothing
        for client in (a0, a1, b1):
            assert await client.message() == "one"
        # subscribe another worker's fd and publish at once: the publish follows the request
        answer = await a0.request(f"subpub:fresh:{a1.fd}:now")
        assert answer["ok"] is True and answer["n"] == 1  # handed to a1's owner
        assert await a1.message() == "now"
        await a0.request("pubx:t:two")  # a0 excluded
        for client in (a1, b1):
            assert await client.message() == "two"
        # SWOOLE_BASE: b1's worker holds a1 and b1; SWOOLE_PROCESS: the master, asked
        expected = [a1.fd, b1.fd] if mode == "base" else [a0.fd, a1.fd, b1.fd]
        info = await b1.request("info:t")
        assert info["subscribers"] == sorted(expected) and info["count"] == len(expected)
        assert info["topics"] == ["t"]
        mark = srv.mark()
        await a1.close()
        await srv.expect(rf"close {a1.fd}", start=mark)
        expected.remove(a1.fd)  # a1 left its topics when it closed
        assert (await b1.request("info:t"))["subscribers"] == sorted(expected)
        assert (await b1.request("unsub:t"))["ok"] is True
        assert (await b1.request("unsub:t"))["ok"] is (mode == "process")  # handed over
        await b0.request("pub:t:three")
        assert await a0.message() == "three"
        assert (await a0.request("unsuball"))["n"] == 1  # base: topics left; process: handed over
        await b0.request("sub:t")
        await b0.request("pub:t:four")
        assert await b0.message() == "four"
        for client in (a0, b1):  # left "t": nothing more came
            with pytest.raises(asyncio.TimeoutError):
                await client.message(timeout=0.3)


async def test_subscribe_refuses_what_is_not_an_open_websocket(tmp_path: Path) -> None:
    async with (
        started(PROGRAM, tmp_path, "--workers", "1", processes=1) as srv,
        client_pool() as pool,
    ):
        client = await connect(srv, pool)
        assert (await client.request("sub:t:999"))["ok"] is False
        assert (await client.request("unsub:t:999"))["ok"] is False
        assert (await client.request("unsub:t"))["ok"] is False  # not subscribed
        assert (await client.request("pub:nobody:x"))["n"] == 0


async def test_compressed_subscribers_get_the_message(tmp_path: Path) -> None:
    """With permessage-deflate, publish goes through broadcast's path (compressed once per
    parameter set): compressed and plain subscribers both get the text."""
    async with (
        started(PROGRAM, tmp_path, "--workers", "1", "--compress", processes=1) as srv,
        client_pool() as pool,
    ):
        plain = await connect(srv, pool)
        ws = await websockets.connect(
            f"ws://127.0.0.1:{srv.port}/", compression="deflate", open_timeout=REPLY_TIMEOUT
        )
        deflated = Client(ws)
        pool.append(deflated)
        await deflated.identify()
        assert ws.response.headers.get("Sec-WebSocket-Extensions", "").startswith(
            "permessage-deflate"
        )
        for client in (plain, deflated):
            await client.request("sub:z")
        text = "compress me " * 200
        assert (await plain.request(f"pub:z:{text}"))["n"] == 2
        assert await plain.message() == text
        assert await deflated.message() == text


async def test_publish_respects_each_connections_buffer_limit(tmp_path: Path) -> None:
    """A subscriber that never reads is skipped once ``socket_buffer_size`` bytes wait for
    it (as by ``broadcast``); a reading subscriber gets every message."""
    size, rounds = 64 * 1024, 120
    async with (
        started(PROGRAM, tmp_path, "--workers", "1", "--buffer", str(1 << 20), processes=1) as srv,
        client_pool() as pool,
    ):
        stalled = await asyncio.to_thread(RawWebSocket, srv.port)  # a 4 KiB receive buffer
        try:
            await asyncio.to_thread(stalled.sock.sendall, client_frame(1, b"sub:big"))
            reader, publisher = await connect(srv, pool), await connect(srv, pool)
            await reader.request("sub:big")
            counts = []
            for _ in range(rounds):
                counts.append((await publisher.request(f"pubbig:big:1:{size}"))["n"])
                assert len(await reader.message()) == size  # the reader keeps up
            # every message reached the reader; the stalled one only until its queue was full
            assert counts[0] == 2 and counts[-1] == 1, counts
            assert counts == sorted(counts, reverse=True), counts  # it never drains
            assert counts.count(2) * size < 2 * (1 << 20) + 8 * (1 << 20), counts
        finally:
            stalled.close()


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_topic_calls_from_another_thread(tmp_path: Path, workers: str) -> None:
    """subscribe/publish from a thread are handed to the loop (server/threads.py) and
    return the real result."""
    async with (
        started(PROGRAM, tmp_path, "--workers", workers, processes=int(workers)) as srv,
        client_pool() as pool,
    ):
        client = await connect(srv, pool)
        await client.send("thread:th:from a thread")
        assert await client.message() == "from a thread"
        answer = await client.reply()
        assert answer["ok"] is True and answer["n"] == 1
