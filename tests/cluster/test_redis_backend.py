"""cluster/redis_backend.py in one process against a real ``redis-server``: two or three
backends (nodes) with recording receivers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from pyswoole.cluster.backend import ClusterConfig
from tests.integration.redis_server import RedisServer, redis_server

pytest.importorskip("redis", reason="needs redis-py (the test extra)")

from pyswoole.cluster.redis_backend import RedisBackend

ROUNDS = 100


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
async def backend(redis: RedisServer, node: str) -> AsyncIterator[tuple[RedisBackend, Recorder]]:
    recorder = Recorder()
    config = ClusterConfig({"backend": redis.url, "presence_ttl": 3}, node)
    nodes = RedisBackend(config, recorder)
    nodes.start(asyncio.get_running_loop())
    try:
        yield nodes, recorder
    finally:
        nodes.close()
        await asyncio.sleep(0)  # let the final task start (it is bounded: 1 s)


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
