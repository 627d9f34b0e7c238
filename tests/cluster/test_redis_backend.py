"""cluster/redis_backend.py in one process against a real ``redis-server``: two or three
backends (nodes) with recording receivers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from pyswoole.cluster.backend import ClusterConfig
from tests.integration.redis_server import RedisServer, redis_server
from tests.integration.redis_topologies import (
    RedisClusterNodes,
    RedisSentinelGroup,
    redis_cluster,
    redis_sentinel,
)

pytest.importorskip("redis", reason="needs redis-py (the test extra)")

from pyswoole.cluster.redis_backend import RedisBackend

ROUNDS = 100
FAILOVER_WAIT = 30.0  # the Sentinel's failover (~2-4 s) plus the reconnect backoff
TRIMMED = 250  # publishes: more than two stream nodes (stream-node-max-entries 100)


class Recorder:
    """A Receiver that keeps what it was given."""

    def __init__(self) -> None:
        self.got: list[tuple[str, object, int, bytes]] = []
        self.event = asyncio.Event()
        self.batches = 0

    def cluster_publish(self, topic: str, opcode: int, payload: bytes) -> None:
        self.got.append(("publish", topic, opcode, payload))
        self.event.set()

    def cluster_broadcast(self, opcode: int, payload: bytes) -> None:
        self.got.append(("broadcast", None, opcode, payload))
        self.event.set()

    def cluster_push_user(self, uid: int, opcode: int, payload: bytes) -> None:
        self.got.append(("user", uid, opcode, payload))
        self.event.set()

    def cluster_batch(self, start: bool) -> None:
        self.batches += start


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@contextlib.asynccontextmanager
async def backend(
    redis: RedisServer | str, node: str, **options: Any
) -> AsyncIterator[tuple[RedisBackend, Recorder]]:
    recorder = Recorder()
    url = redis if isinstance(redis, str) else redis.url
    config = ClusterConfig({"backend": url, "presence_ttl": 3, **options}, node)
    nodes = RedisBackend(config, recorder)
    nodes.start(asyncio.get_running_loop())
    try:
        yield nodes, recorder
    finally:
        nodes.close()
        await nodes.wait_closed()  # (bounded)


async def until(recorder: Recorder, what: tuple[str, object, int, bytes], send: object) -> None:
    """Call ``send()`` until ``recorder`` got ``what`` (the subscription is then up)."""
    for _ in range(ROUNDS):
        send()  # type: ignore[operator]
        recorder.event.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(recorder.event.wait(), 0.1)
        if what in recorder.got:
            return
    raise AssertionError(f"{what} never arrived: {recorder.got[-3:]}")


async def test_topics_broadcast_and_users_between_nodes(redis: RedisServer) -> None:
    async with (
        backend(redis, "a") as (a, got_a),
        backend(redis, "b") as (b, got_b),
        backend(redis, "a") as (twin, got_twin),  # another process of node "a"
    ):
        b.topic_added("room")
        twin.topic_added("room")
        await until(got_b, ("publish", "room", 1, b"hi"), lambda: a.publish("room", 1, b"hi"))
        a.publish("room", 2, b"\x00bin")
        a.broadcast(1, b"everyone")
        await until(got_b, ("broadcast", None, 1, b"everyone"), lambda: None)
        assert ("publish", "room", 2, b"\x00bin") in got_b.got
        assert got_b.batches >= 1
        # a node skips its own messages: its workers had them over IPC
        assert got_twin.got == [] and got_a.got == []
        b.topic_removed("room")
        b.user_added(7)
        await until(got_b, ("user", 7, 1, b"dm"), lambda: a.push_user(7, 1, b"dm"))
        assert await b.flush()  # b's presence commands are sent (its subscription may be first)
        assert await a.online(7) is True and await a.online(8) is False
        twin.user_added(8)
        twin.user_added(7)
        assert await twin.flush()  # (another process's binds: sent when it sends them)
        assert await a.online_count() == 2  # uids 7 and 8, 7 counted once
        b.user_removed(7)
        assert await b.online(7) is True  # still bound in "twin"
        twin.close()
        await asyncio.sleep(0)
        for _ in range(ROUNDS):  # a stopped process's presence goes at once, not at its TTL
            if not await a.online(8):
                break
            await asyncio.sleep(0.02)  # polling interval
        assert await a.online(8) is False and await a.online_count() == 0


async def test_history_keeps_the_last_messages_of_a_topic(redis: RedisServer) -> None:
    """``history``: every publish is kept in the topic's stream (trimmed near ``maxlen``);
    any node reads the last ``count`` of them, or those after an id it saw."""
    async with (
        backend(redis, "a", history={"maxlen": 5}) as (a, _),
        backend(redis, "b", history={"maxlen": 5}) as (b, _),
        backend(redis, "c") as (plain, _),
    ):
        for i in range(TRIMMED):
            a.publish("room", 1, f"m{i}".encode())
        a.publish("room", 2, b"\x00\xffbin")
        b.publish("other", 1, b"elsewhere")
        assert await a.flush() and await b.flush()
        last = await b.history("room", 3)
        assert [(op, payload) for _, op, payload in last] == [
            (1, f"m{TRIMMED - 2}".encode()),
            (1, f"m{TRIMMED - 1}".encode()),
            (2, b"\x00\xffbin"),
        ]
        ids = [entry_id for entry_id, _, _ in last]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
        kept = await a.history("room", 100)
        # MAXLEN ~ 5: at least 5 kept, trimmed in whole stream nodes (100 entries each)
        assert 5 <= len(kept) < TRIMMED
        assert kept[-3:] == last
        after = await a.history("room", 100, after=kept[-3][0])  # what came after an id
        assert after == last[1:]
        assert await a.history("room", 100, after=last[-1][0]) == []
        assert await a.history("nobody", 5) == []
        assert [p for _, _, p in await a.history("other", 5)] == [b"elsewhere"]
        plain.publish("room", 1, b"not kept")  # no history option: no stream, nothing read
        assert await plain.flush()
        assert await plain.history("room", 5) == []
        assert (await a.history("room", 1))[0][2] == b"\x00\xffbin"


def pub_port(nodes: RedisBackend) -> int:
    """The port of the Redis that ``nodes`` publishes and subscribes on."""
    return int(nodes._pub.connection_pool.connection_kwargs["port"])


async def test_a_redis_cluster(cluster: RedisClusterNodes) -> None:
    """``redis+cluster://``: two nodes whose pub/sub connections are on different cluster
    nodes (the URL's first seed) get each other's messages over the cluster bus, in order;
    presence (one hash slot: SUNION works) and history (a stream per topic, on its slot's
    node) are read from the other node."""
    first, second = (node.port for node in cluster.nodes[:2])
    url_a = f"redis+cluster://127.0.0.1:{first},127.0.0.1:{second}"
    url_b = f"redis+cluster://127.0.0.1:{second},127.0.0.1:{first}"
    history = {"maxlen": 10}
    async with (
        backend(url_a, "a", history=history) as (a, _),
        backend(url_b, "b", history=history) as (b, got_b),
    ):
        b.topic_added("room")
        await until(got_b, ("publish", "room", 1, b"hi"), lambda: a.publish("room", 1, b"hi"))
        assert (pub_port(a), pub_port(b)) == (first, second)
        for i in range(50):
            a.publish("room", 1, f"n{i}".encode())
        a.broadcast(2, b"all")
        await until(got_b, ("broadcast", None, 2, b"all"), lambda: None)
        sent = [payload for kind, _, _, payload in got_b.got if payload.startswith(b"n")]
        assert sent == [f"n{i}".encode() for i in range(50)]  # once each, in order
        b.user_added(7)
        await until(got_b, ("user", 7, 1, b"dm"), lambda: a.push_user(7, 1, b"dm"))
        a.user_added(8)
        assert await a.flush() and await b.flush()
        assert await b.online(8) and await a.online(7) and not await a.online(9)
        assert await a.online_count() == 2
        assert [p for _, _, p in await b.history("room", 2)] == [b"n48", b"n49"]
        for topic in ("t1", "t2", "t3", "t4"):  # streams on several slots / nodes
            a.publish(topic, 1, topic.encode())
        assert await a.flush()
        for topic in ("t1", "t2", "t3", "t4"):
            assert [p for _, _, p in await b.history(topic, 5)] == [topic.encode()]


async def master_channels(sentinel: RedisSentinelGroup) -> list[bytes]:
    """The pub/sub channels subscribed on the Sentinel group's master (asked directly)."""
    from redis.asyncio import Redis

    async with Redis(port=sentinel.master.port) as master:
        channels: list[bytes] = await master.pubsub_channels()
    return channels


async def test_a_sentinel_group(sentinel: RedisSentinelGroup) -> None:
    """``redis+sentinel://``: the master the Sentinel names; after the master restarts
    (same address: what the Sentinel reports), subscriptions, publishing and presence
    come back."""
    async with (
        backend(sentinel.url, "a", history={"maxlen": 10}) as (a, _),
        backend(sentinel.url, "b", history={"maxlen": 10}) as (b, got_b),
    ):
        b.topic_added("room")
        await until(got_b, ("publish", "room", 1, b"hi"), lambda: a.publish("room", 1, b"hi"))
        assert b"pyswoole:t:room" in await master_channels(sentinel)  # (not the Sentinel)
        b.user_added(5)
        assert await b.flush() and await a.online(5)
        kept = {payload for _, _, payload in await b.history("room", 5)}
        assert kept == {b"hi"}  # (until() may have sent it more than once)
        await asyncio.to_thread(sentinel.master.restart)  # (no persistence: data is gone)
        await until(got_b, ("publish", "room", 1, b"back"), lambda: a.publish("room", 1, b"back"))
        for _ in range(ROUNDS):  # the presence refresh (every ttl / 3 = 1 s) re-adds it
            with contextlib.suppress(Exception):
                if await a.online(5):
                    break
            await asyncio.sleep(0.05)  # polling interval
        assert await a.online(5)


async def test_a_sentinel_failover() -> None:
    """The master stops; the Sentinel promotes the replica; both nodes reconnect through
    the Sentinel to the new master and messages flow again (bounded: FAILOVER_WAIT)."""
    with redis_sentinel(replica=True) as group:
        assert group.replica is not None
        async with (
            backend(group.url, "a") as (a, _),
            backend(group.url, "b") as (b, got_b),
        ):
            b.topic_added("room")
            await until(got_b, ("publish", "room", 1, b"hi"), lambda: a.publish("room", 1, b"hi"))
            await asyncio.to_thread(group.master.stop)
            deadline = time.monotonic() + FAILOVER_WAIT
            while ("publish", "room", 1, b"after") not in got_b.got:
                assert time.monotonic() < deadline, "no message through the new master"
                a.publish("room", 1, b"after")
                got_b.event.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(got_b.event.wait(), 0.2)
            assert await asyncio.to_thread(group.master_port) == group.replica.port


async def test_a_cluster_node_fails() -> None:
    """The cluster node a process publishes and subscribes on stops: it moves to the next
    node of its URL, subscribes there again, and messages flow both ways again (classic
    pub/sub works on the surviving nodes even when the cluster has lost slots)."""
    with redis_cluster() as cluster:
        first, second = (node.port for node in cluster.nodes[:2])
        url_a = f"redis+cluster://127.0.0.1:{first},127.0.0.1:{second}"
        url_b = f"redis+cluster://127.0.0.1:{second},127.0.0.1:{first}"
        async with backend(url_a, "a") as (a, got_a), backend(url_b, "b") as (b, got_b):
            b.topic_added("room")
            a.topic_added("back")
            await until(got_b, ("publish", "room", 1, b"hi"), lambda: a.publish("room", 1, b"hi"))
            assert pub_port(a) == first
            await asyncio.to_thread(cluster.nodes[0].stop)
            deadline = time.monotonic() + FAILOVER_WAIT
            while ("publish", "room", 1, b"after") not in got_b.got:
                assert time.monotonic() < deadline, "a never published through another node"
                a.publish("room", 1, b"after")
                got_b.event.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(got_b.event.wait(), 0.2)
            assert pub_port(a) == second
            await until(got_a, ("publish", "back", 1, b"ok"), lambda: b.publish("back", 1, b"ok"))
