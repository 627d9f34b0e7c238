"""Cluster mode on Redis (the ``cluster`` setting; cluster/redis_backend.py): separate server
programs on different ports, one real ``redis-server``, real ``websockets`` clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT
from tests.integration.redis_server import RedisServer, redis_server
from tests.integration.serverproc import Client, ServerProcess, client_pool, connect, started

pytest.importorskip("redis", reason="the cluster tests need redis-py (the test extra)")

PROGRAM = ROOT / "tests" / "integration" / "programs" / "topics_server.py"
MESSAGES = 30
TTL = 2
SYNC_ROUNDS = 100  # probes before giving up (each waits at most PROBE_WAIT)
PROBE_WAIT = 0.2


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@contextlib.asynccontextmanager
async def node(
    tmp_path: Path,
    redis: RedisServer,
    name: str,
    mode: str = "base",
    workers: int = 2,
    *extra: str,
) -> AsyncIterator[ServerProcess]:
    args = ("--workers", str(workers), "--mode", mode, "--cluster", redis.url, "--node-id", name)
    args += extra
    async with started(PROGRAM, tmp_path, *args, "--ttl", str(TTL), processes=workers) as server:
        yield server


async def sync(publisher: Client, topic: str, receivers: list[Client], tag: str) -> None:
    """Publish probes on ``topic`` until every receiver got one (so every node's Redis
    subscriptions made before the receivers' last one are in place)."""
    waiting = set(receivers)
    for _ in range(SYNC_ROUNDS):
        await publisher.request(f"pub:{topic}:probe-{tag}")
        for client in list(waiting):
            with contextlib.suppress(asyncio.TimeoutError):
                if (await client.message(PROBE_WAIT)).startswith("probe-"):
                    waiting.discard(client)
        if not waiting:
            return
    raise AssertionError(f"probes from {publisher} never reached {waiting}")


async def messages_until(client: Client, ends: set[str]) -> list[str]:
    """What ``client`` gets (probes left out) until it has seen every marker of ``ends``."""
    got: list[str] = []
    left = set(ends)
    for _ in range(20 * MESSAGES + SYNC_ROUNDS):
        text = await client.message()
        if text in left:
            left.discard(text)
            if not left:
                return got
        elif not text.startswith("probe-"):
            got.append(text)
    raise AssertionError(f"{client}: markers {left} missing; got {got[-5:]}")


async def test_publish_reaches_every_node_once_in_order(tmp_path: Path, redis: RedisServer) -> None:
    async with (
        node(tmp_path, redis, "n1") as n1,
        node(tmp_path, redis, "n2") as n2,
        node(tmp_path, redis, "n3", mode="process") as n3,
        client_pool() as pool,
    ):
        nodes = [n1, n2, n3]
        clients = {i: [await connect(n, pool) for _ in range(4)] for i, n in enumerate(nodes)}
        members = [c for i in clients for c in clients[i][:3]]
        outsiders = [clients[i][3] for i in clients]
        for client in members:
            assert (await client.request("sub:room"))["ok"] is True
        everyone = members + outsiders
        for client in everyone:  # after "room": a probe seen means "room" is subscribed
            await client.request("sub:sync")
        for i in clients:  # each node's publications reach every other node
            await sync(clients[i][3], "sync", everyone, f"n{i}")
        pub_a, pub_b = outsiders[0], outsiders[1]  # nodes 1 and 2, not in the room
        answers = await asyncio.gather(
            pub_a.request(f"pubn:room:{MESSAGES}:a"), pub_b.request(f"pubn:room:{MESSAGES}:b")
        )
        # per message: nothing queued in the publisher's own worker (it has no member
        # there or one), plus one hand-off to the other worker if it has members
        assert all(a["n"] >= 0 for a in answers)
        await pub_a.request("pub:room:END-a")
        await pub_b.request("pub:room:END-b")
        for client in members:
            got = await messages_until(client, {"END-a", "END-b"})
            assert [m for m in got if m.startswith("a-")] == [f"a-{i}" for i in range(MESSAGES)]
            assert [m for m in got if m.startswith("b-")] == [f"b-{i}" for i in range(MESSAGES)]
            assert len(got) == 2 * MESSAGES, client  # exactly once
        for client in outsiders:  # never in the room: probes only
            with contextlib.suppress(asyncio.TimeoutError):
                for _ in range(SYNC_ROUNDS * 3):
                    text = await client.message(0.3)
                    assert text.startswith("probe-"), (client, text)


async def test_push_user_and_presence_across_nodes(tmp_path: Path, redis: RedisServer) -> None:
    async with (
        node(tmp_path, redis, "n1") as n1,
        node(tmp_path, redis, "n2", mode="process") as n2,
        node(tmp_path, redis, "n3") as n3,
        client_pool() as pool,
    ):
        on1, on2, sender = await connect(n1, pool), await connect(n2, pool), await connect(n3, pool)
        assert (await sender.request("online:4242"))["online"] is False
        for client in (on1, on2):
            assert (await client.request("bind:4242"))["ok"] is True
        for _ in range(SYNC_ROUNDS):  # until both nodes subscribed the user's channel
            await sender.request("user:4242:probe-u")
            seen = []
            for client in (on1, on2):
                with contextlib.suppress(asyncio.TimeoutError):
                    seen.append(await client.message(PROBE_WAIT))
            if len(seen) == 2:
                break
        await sender.request("user:4242:hello")
        for client in (on1, on2):
            assert await messages_until(client, {"hello"}) == []
        for asker in (sender, on2):  # a BASE worker and a SWOOLE_PROCESS worker ask Redis
            answer = await asker.request("online:4242")
            assert answer["online"] is True and answer["count"] == 1
        assert (await sender.request("online:4243"))["online"] is False
        # broadcast(..., cluster=True) from the SWOOLE_PROCESS node reaches every node once
        assert (await on2.request("bcast:everyone"))["n"] >= 1
        for client in (on1, on2, sender):
            assert await messages_until(client, {"everyone"}) == []


async def test_killed_node_leaves_presence_within_ttl(tmp_path: Path, redis: RedisServer) -> None:
    async with (
        node(tmp_path, redis, "doomed") as doomed,
        node(tmp_path, redis, "alive") as alive,
        client_pool() as pool,
    ):
        victim, watcher = await connect(doomed, pool), await connect(alive, pool)
        assert (await victim.request("bind:99"))["ok"] is True
        deadline = time.monotonic() + 10
        while not (await watcher.request("online:99"))["online"]:
            assert time.monotonic() < deadline, "the bind never showed in Redis"
            await asyncio.sleep(0.05)  # polling interval, not an ordering assumption
        os.killpg(doomed.pgid, signal.SIGKILL)
        killed = time.monotonic()
        await victim.wait_closed()
        while (await watcher.request("online:99"))["online"]:  # polled: Redis expires keys
            assert time.monotonic() - killed < TTL + 1.5, "presence outlived its TTL"
            await asyncio.sleep(0.05)  # polling interval, not an ordering assumption
        # the surviving node still serves
        await watcher.request("sub:still")
        assert (await watcher.request("pub:still:here"))["n"] == 1
        assert await watcher.message() == "here"


async def test_publishing_resumes_after_a_redis_restart(tmp_path: Path, redis: RedisServer) -> None:
    async with (
        node(tmp_path, redis, "n1") as n1,
        node(tmp_path, redis, "n2") as n2,
        client_pool() as pool,
    ):
        publisher, receiver = await connect(n1, pool), await connect(n2, pool)
        await receiver.request("sub:r")
        await sync(publisher, "r", [receiver], "before")
        await asyncio.to_thread(redis.restart)
        await sync(publisher, "r", [receiver], "after")  # resubscribed, publishing again
        await publisher.request("pub:r:resumed")
        assert await messages_until(receiver, {"resumed"}) == []
        logs = n2.stderr()
        lost = logs.count("Redis unreachable")
        assert 1 <= lost <= 2, logs  # once per process that talks to Redis (2 workers)
        assert "Redis reachable again" in logs


async def test_many_clients_in_ten_topics_on_three_nodes(
    tmp_path: Path, redis: RedisServer
) -> None:
    """The issue's check, scaled to this machine: 3 nodes x 2 workers (one in SWOOLE_PROCESS
    mode), 90 clients in 10 topics, a publisher on every node publishing to every topic at
    once: each client gets exactly its topic's messages from every publisher, once, in that
    publisher's order."""
    topics, per_node, count = 10, 30, 5
    async with (
        node(tmp_path, redis, "n0") as n0,
        node(tmp_path, redis, "n1", mode="process") as n1,
        node(tmp_path, redis, "n2") as n2,
        client_pool() as pool,
    ):
        nodes = [n0, n1, n2]
        members: dict[Client, int] = {}
        publishers: list[Client] = []
        for server in nodes:
            for i in range(per_node):
                client = await connect(server, pool)
                await client.request(f"sub:room{i % topics}")
                await client.request("sub:sync")  # last: a probe proves the rooms are up
                members[client] = i % topics
            publisher = await connect(server, pool)
            await publisher.request("sub:sync")
            publishers.append(publisher)
        everyone = [*members, *publishers]
        for index, publisher in enumerate(publishers):
            await sync(publisher, "sync", everyone, f"p{index}")

        async def publish_all(index: int, publisher: Client) -> None:
            for topic in range(topics):
                await publisher.request(f"pubn:room{topic}:{count}:p{index}t{topic}")
            for topic in range(topics):
                await publisher.request(f"pub:room{topic}:END-{index}")

        await asyncio.gather(*(publish_all(i, p) for i, p in enumerate(publishers)))
        ends = {f"END-{i}" for i in range(len(publishers))}
        for client, topic in members.items():
            got = await messages_until(client, ends)
            for index in range(len(publishers)):
                tag = f"p{index}t{topic}-"
                assert [m for m in got if m.startswith(tag)] == [
                    f"{tag}{n}" for n in range(count)
                ], client
            assert len(got) == len(publishers) * count, (client, got)  # nothing else


async def test_single_process_node(tmp_path: Path, redis: RedisServer) -> None:
    """A node of one process (no manager, no IPC) publishes and receives like the others."""
    async with (
        node(tmp_path, redis, "solo", workers=1) as solo,
        node(tmp_path, redis, "duo") as duo,
        client_pool() as pool,
    ):
        one, two = await connect(solo, pool), await connect(duo, pool)
        for client in (one, two):
            await client.request("sub:s")
        await sync(one, "s", [two], "solo")
        await sync(two, "s", [one], "duo")
        await one.request("pub:s:from-solo")
        await two.request("pub:s:from-duo")
        for client in (one, two):
            assert await messages_until(client, {"from-solo", "from-duo"}) == []


@pytest.mark.parametrize("mode", ["base", "process"])
async def test_publish_from_a_task_worker(tmp_path: Path, redis: RedisServer, mode: str) -> None:
    """A task worker has no Redis connection: its publish is handed to a worker (the
    master) that has one, and reaches the other node and its own node's subscribers."""
    async with (
        node(tmp_path, redis, "tasks", mode, 2, "--task-workers", "1") as here,
        node(tmp_path, redis, "there") as there,
        client_pool() as pool,
    ):
        local, remote = await connect(here, pool), await connect(there, pool)
        for client in (local, remote):
            await client.request("sub:tp")
        await sync(local, "tp", [remote], "t")
        assert (await local.request("taskpub:tp:via-task"))["n"] >= 1
        for client in (local, remote):
            assert await messages_until(client, {"via-task"}) == []
