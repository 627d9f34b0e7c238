"""Cluster mode on a real 3-master Redis Cluster (``redis+cluster://``) and a real Sentinel
group (``redis+sentinel://``): two server programs each, real ``websockets`` clients; and
the ``history`` option (Redis streams) read back from another node."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.redis_server import RedisServer, redis_server
from tests.integration.redis_topologies import (
    RedisClusterNodes,
    RedisSentinelGroup,
)
from tests.integration.serverproc import Client, ServerProcess, client_pool, connect, started
from tests.integration.test_cluster import PROGRAM, TTL, messages_until, sync

pytest.importorskip("redis", reason="the cluster tests need redis-py (the test extra)")

MESSAGES = 30
HISTORY = 200  # more than the room test publishes: nothing trimmed there
WAIT = 15.0  # bound on waits for Redis to come back (seconds)


@contextlib.asynccontextmanager
async def node(
    tmp_path: Path, url: str, name: str, mode: str = "base", workers: int = 2
) -> AsyncIterator[ServerProcess]:
    args = ("--workers", str(workers), "--mode", mode, "--cluster", url, "--node-id", name)
    args += ("--ttl", str(TTL), "--history", str(HISTORY))
    async with started(PROGRAM, tmp_path, *args, processes=workers) as server:
        yield server


async def until_online(asker: Client, uid: int, online: bool = True) -> None:
    """Poll ``online(uid)`` until it answers ``online`` (bounded: WAIT)."""
    deadline = time.monotonic() + WAIT
    while (await asker.request(f"online:{uid}"))["online"] is not online:
        assert time.monotonic() < deadline, f"online({uid}) never became {online}"
        await asyncio.sleep(0.05)  # polling interval, not an ordering assumption


async def two_nodes_exchange(n1: ServerProcess, n2: ServerProcess, pool: list[Client]) -> None:
    """Publish both ways (once each, in order), push_user and online across, history."""
    a1, a2 = await connect(n1, pool), await connect(n1, pool)
    b1, b2 = await connect(n2, pool), await connect(n2, pool)
    members = [a1, b1, b2]
    for client in members:
        assert (await client.request("sub:room"))["ok"] is True
    await sync(a2, "room", members, "a")
    await sync(b2, "room", members, "b")
    await a2.request(f"pubn:room:{MESSAGES}:x")
    await b2.request(f"pubn:room:{MESSAGES}:y")
    await a2.request("pub:room:END-x")
    await b2.request("pub:room:END-y")
    for client in members:
        got = await messages_until(client, {"END-x", "END-y"})
        assert [m for m in got if m.startswith("x-")] == [f"x-{i}" for i in range(MESSAGES)]
        assert [m for m in got if m.startswith("y-")] == [f"y-{i}" for i in range(MESSAGES)]
        assert len(got) == 2 * MESSAGES, client  # exactly once
    # history: the last messages of the room, read on the other node, oldest first (a
    # message's XADD is sent before its PUBLISH: what was received is in the stream)
    full = (await b2.request("hist:room:1000"))["history"]
    texts = [data for _, data in full]
    for tag, end in (("x-", "END-x"), ("y-", "END-y")):
        mine = [text for text in texts if text.startswith(tag) or text == end]
        assert mine == [f"{tag}{i}" for i in range(MESSAGES)] + [end]  # once, in order
    assert (await a2.request("hist:room:3"))["history"] == full[-3:]
    middle = full[len(full) // 2][0]
    assert (await a2.request(f"hist:room:1000:{middle}"))["history"] == full[len(full) // 2 + 1 :]
    # push_user and presence across the nodes
    assert (await a2.request("bind:77"))["ok"] is True
    await until_online(b2, 77)
    for _ in range(100):  # until node 1 subscribed the user's channel
        await b2.request("user:77:probe-u")
        with contextlib.suppress(asyncio.TimeoutError):
            if (await a2.message(0.2)) == "probe-u":
                break
    await b2.request("user:77:direct")
    assert await messages_until(a2, {"direct"}) == []
    assert (await b1.request("online:77"))["count"] == 1


async def test_two_nodes_on_a_redis_cluster(tmp_path: Path, cluster: RedisClusterNodes) -> None:
    """Each node's first seed differs, so their pub/sub connections are on different
    cluster nodes: every message crosses the cluster bus."""
    first, second, third = (f"127.0.0.1:{node.port}" for node in cluster.nodes)
    async with (
        node(tmp_path, f"redis+cluster://{first},{second}", "c1") as n1,
        node(tmp_path, f"redis+cluster://{second},{third}", "c2", mode="process") as n2,
        client_pool() as pool,
    ):
        await two_nodes_exchange(n1, n2, pool)
        subscribed = [await node_channels(node.port) for node in cluster.nodes]
        # each program's processes subscribe on their URL's first seed only
        assert [b"pyswoole:t:room" in channels for channels in subscribed] == [True, True, False]


async def node_channels(port: int) -> list[bytes]:
    """The classic pub/sub channels subscribed on one cluster node (PUBSUB CHANNELS is
    per node in a Redis Cluster)."""
    from redis.asyncio import Redis

    async with Redis(port=port) as one:
        channels: list[bytes] = await one.pubsub_channels()
    return channels


async def test_two_nodes_on_a_sentinel_group(tmp_path: Path, sentinel: RedisSentinelGroup) -> None:
    """Through the Sentinel's master; after the master restarts (the Sentinel names the
    same address), subscriptions, publishing and presence come back."""
    async with (
        node(tmp_path, sentinel.url, "s1") as n1,
        node(tmp_path, sentinel.url, "s2", mode="process") as n2,
        client_pool() as pool,
    ):
        await two_nodes_exchange(n1, n2, pool)
        publisher, receiver = await connect(n1, pool), await connect(n2, pool)
        await receiver.request("sub:r")
        await sync(publisher, "r", [receiver], "before")
        await asyncio.to_thread(sentinel.master.restart)  # (no persistence: data is gone)
        await sync(publisher, "r", [receiver], "after")  # resubscribed, publishing again
        await publisher.request("pub:r:resumed")
        assert await messages_until(receiver, {"resumed"}) == []
        await until_online(receiver, 77)  # re-added by the presence refresh
        assert "Redis reachable again" in n2.stderr()


async def test_history_with_one_redis(tmp_path: Path) -> None:
    """``history`` on a single Redis: a client that joins later reads what was published
    before, on another node; the stream is trimmed near ``maxlen``."""
    redis: RedisServer
    with redis_server() as redis:
        async with (
            node(tmp_path, redis.url, "h1") as n1,
            node(tmp_path, redis.url, "h2", mode="process") as n2,
            client_pool() as pool,
        ):
            publisher = await connect(n1, pool)
            await publisher.request("pubn:chat:300:m")  # nobody subscribed anywhere
            await publisher.request("pub:other:elsewhere")
            late = await connect(n2, pool)
            deadline = time.monotonic() + WAIT
            while True:  # (node 1 sends its queue to Redis on its own time)
                kept = (await late.request("hist:chat:5"))["history"]
                if kept and kept[-1][1] == "m-299":
                    break
                assert time.monotonic() < deadline, kept
                await asyncio.sleep(0.05)  # polling interval
            assert [data for _, data in kept] == [f"m-{i}" for i in range(295, 300)]
            everything = (await late.request("hist:chat:1000"))["history"]
            assert HISTORY <= len(everything) < 300  # MAXLEN ~: trimmed in whole nodes
            assert (await late.request("hist:nothing:5"))["history"] == []
