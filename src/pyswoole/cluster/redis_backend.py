"""The cluster backend on Redis (redis-py's asyncio client; ``pip install pyswoole[redis]``).

Which process talks to Redis: every process that holds subscriptions (each SWOOLE_BASE
worker, the SWOOLE_PROCESS master, the single process) has its own two connections, one
for pub/sub and one for commands. A message from another node then reaches the worker
that owns the receivers directly, without an IPC hop through a per-node relay, and no
process is a single point through which a node's whole fan-in must pass.

Channels (``P`` is ``channel_prefix``): one per topic, ``P:t:<topic>``, subscribed while
this process has a subscriber of it, so Redis sends a node only the topics it has members
in (a sharded scheme of N channels would send every node every message of its shards);
``P:all`` for ``broadcast(..., cluster=True)``; ``P:u:<uid>`` per bound user, for
``push_user``. A message carries its node's id: a node skips its own messages, because it
delivered them to its own workers over IPC already (so each receiver gets one copy).

Presence: each process keeps a set ``P:presence:<node>:<pid>`` of its bound uids with a TTL
(``presence_ttl``) that it refreshes every third of it, and lists that key in the sorted set
``P:presence`` scored by its expiry time; ``online``/``online_count`` read the keys still
alive. A killed node's keys expire within the TTL.

A lost connection (Redis restart, network blip) is logged once; the listener reconnects
with exponential backoff (0.1 s to 5 s) and subscribes again to every channel it needs,
and the next refresh re-adds the presence sets. Pub/sub is at most once: messages
published while a node is disconnected are lost for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from typing import Any

from ..exceptions import ConfigError
from .backend import ClusterConfig, Receiver

__all__ = ["RedisBackend", "import_redis"]

log = logging.getLogger("pyswoole")

#: commands queued while Redis cannot be reached, beyond which new ones are dropped
MAX_QUEUED = 100_000
_BACKOFF_MIN = 0.1
_BACKOFF_MAX = 5.0
#: messages read from Redis and delivered at one wakeup, at most
_BATCH = 256
#: how long closing a connection may take (Redis may be gone)
_CLOSE_TIMEOUT = 1.0


def import_redis() -> Any:
    """redis-py's asyncio module, or a ConfigError saying how to install it."""
    try:
        from redis import asyncio as aioredis
    except ImportError as error:
        raise ConfigError(
            "the 'cluster' setting needs redis-py: pip install 'pyswoole[redis]'"
        ) from error
    return aioredis


class RedisBackend:
    """:class:`~.backend.ClusterBackend` on Redis pub/sub (see the module docstring)."""

    def __init__(self, config: ClusterConfig, receiver: Receiver) -> None:
        self.config = config
        self.receiver = receiver
        prefix = config.channel_prefix
        self._node = config.node_id.encode()
        self._head = bytes([len(self._node)]) + self._node
        self._topic_prefix = f"{prefix}:t:".encode()
        self._user_prefix = f"{prefix}:u:".encode()
        self._all = f"{prefix}:all".encode()
        self._registry = f"{prefix}:presence"
        self._presence = f"{prefix}:presence:{config.node_id}:{os.getpid()}"
        #: the channels this process needs (subscribed again after a reconnect)
        self._channels: set[bytes] = {self._all}
        self._control: deque[tuple[bool, bytes]] = deque()
        self._control_event: asyncio.Event | None = None
        self._out: deque[tuple[Any, ...]] = deque()
        self._out_event: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._users: set[int] = set()
        self._pubsub: Any = None
        self._redis: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sender: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._down = False  # logged "lost" and not yet "back"
        self.dropped = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop, query_only: bool = False) -> None:
        """Connect (lazily) and run the listener, the sender and the presence refresh;
        ``query_only`` (a SWOOLE_PROCESS worker): only ``online``/``online_count``."""
        aioredis = import_redis()
        self._redis = aioredis.from_url(self.config.backend, decode_responses=False)
        self._loop = loop
        self._control_event = asyncio.Event()
        self._out_event = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        if not query_only:
            for run in (self._listen, self._apply_control, self._refresh):
                self._tasks.append(loop.create_task(run()))
            self._sender = loop.create_task(self._send_loop())

    def close(self) -> None:
        """Stop (the worker is stopping): what is queued is sent, this process's presence
        is removed at once (not at its TTL), then the connections close (bounded: 1 s)."""
        for task in self._tasks:
            task.cancel()
        if self._redis is not None and self._loop is not None:
            self._loop.create_task(self._final())

    async def _final(self) -> None:
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            if self._users:
                self._queue(("DEL", self._presence))
                self._queue(("ZREM", self._registry, self._presence))
            assert self._idle is not None
            await asyncio.wait_for(self._idle.wait(), 1.0)
        if self._sender is not None:
            self._sender.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._redis.aclose(), 1.0)

    def _lost(self, what: str, error: BaseException) -> None:
        if not self._down:
            self._down = True
            log.warning("cluster: Redis unreachable (%s: %s); reconnecting", what, error)

    def _back(self) -> None:
        if self._down:
            self._down = False
            log.warning("cluster: Redis reachable again (messages meanwhile were lost)")

    # -- subscriptions --------------------------------------------------------------------

    def _want(self, channel: bytes, on: bool) -> None:
        if on:
            self._channels.add(channel)
        else:
            self._channels.discard(channel)
        self._control.append((on, channel))
        if self._control_event is not None:
            self._control_event.set()

    def topic_added(self, topic: str) -> None:
        self._want(self._topic_prefix + topic.encode(), True)

    def topic_removed(self, topic: str) -> None:
        self._want(self._topic_prefix + topic.encode(), False)

    def user_added(self, uid: int) -> None:
        self._users.add(uid)
        self._want(self._user_prefix + str(uid).encode(), True)
        ttl = int(self.config.presence_ttl + 0.999)
        self._queue(("SADD", self._presence, uid))
        self._queue(("EXPIRE", self._presence, ttl))
        self._queue(("ZADD", self._registry, time.time() + ttl, self._presence))

    def user_removed(self, uid: int) -> None:
        self._users.discard(uid)
        self._want(self._user_prefix + str(uid).encode(), False)
        self._queue(("SREM", self._presence, uid))

    async def _apply_control(self) -> None:
        event = self._control_event
        assert event is not None
        while True:
            await event.wait()
            event.clear()
            while self._control:
                on, channel = self._control.popleft()
                pubsub = self._pubsub
                if pubsub is None:  # the listener subscribes to every wanted channel
                    continue
                try:
                    if on:
                        await pubsub.subscribe(channel)
                    else:
                        await pubsub.unsubscribe(channel)
                except Exception:  # the listener sees it too, and starts over
                    self._control.clear()

    async def _listen(self) -> None:
        backoff = _BACKOFF_MIN
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                self._control.clear()
                channels = set(self._channels)
                await pubsub.subscribe(*channels)
                self._pubsub = pubsub
                # what changed while it subscribed (the control task skipped it meanwhile)
                if self._channels - channels:
                    await pubsub.subscribe(*(self._channels - channels))
                if channels - self._channels:
                    await pubsub.unsubscribe(*(channels - self._channels))
                self._back()
                backoff = _BACKOFF_MIN
                get = pubsub.get_message
                batch: list[Any] = []
                while True:
                    message = await get(ignore_subscribe_messages=True, timeout=None)
                    while message is not None and len(batch) < _BATCH:
                        batch.append(message)  # and what else already arrived
                        message = await get(ignore_subscribe_messages=True, timeout=0.0)
                    if message is not None:
                        batch.append(message)
                    self._deliver_batch(batch)
                    batch.clear()
            except asyncio.CancelledError:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), _CLOSE_TIMEOUT)
                raise
            except Exception as error:
                self._pubsub = None
                self._lost("subscribe", error)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), _CLOSE_TIMEOUT)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    def _deliver_batch(self, batch: list[Any]) -> None:
        """Deliver what one wakeup read with writes corked: a connection that gets several
        of these messages gets them in one send (architecture decision 22)."""
        receiver = self.receiver
        receiver.cluster_batch(True)
        try:
            for message in batch:
                self._deliver(message["channel"], message["data"])
        finally:
            receiver.cluster_batch(False)

    def _deliver(self, channel: bytes, data: bytes) -> None:
        try:
            size = data[0]
            if data[1 : 1 + size] == self._node:
                return  # this node's own: its workers had it over IPC
            opcode = data[1 + size]
            payload = data[2 + size :]
            if channel.startswith(self._topic_prefix):
                topic = channel[len(self._topic_prefix) :].decode()
                self.receiver.cluster_publish(topic, opcode, payload)
            elif channel == self._all:
                self.receiver.cluster_broadcast(opcode, payload)
            elif channel.startswith(self._user_prefix):
                uid = int(channel[len(self._user_prefix) :])
                self.receiver.cluster_push_user(uid, opcode, payload)
        except Exception:
            log.exception("cluster: delivering a message of %r failed", channel)

    # -- sending --------------------------------------------------------------------------

    def _queue(self, command: tuple[Any, ...]) -> None:
        if len(self._out) >= MAX_QUEUED:
            self.dropped += 1
            return
        self._out.append(command)
        if self._out_event is not None:
            self._out_event.set()
            assert self._idle is not None
            self._idle.clear()

    def _message(self, opcode: int, payload: bytes) -> bytes:
        return self._head + bytes([opcode]) + payload

    def publish(self, topic: str, opcode: int, payload: bytes) -> None:
        channel = self._topic_prefix + topic.encode()
        self._queue(("PUBLISH", channel, self._message(opcode, payload)))

    def broadcast(self, opcode: int, payload: bytes) -> None:
        self._queue(("PUBLISH", self._all, self._message(opcode, payload)))

    def push_user(self, uid: int, opcode: int, payload: bytes) -> None:
        channel = self._user_prefix + str(uid).encode()
        self._queue(("PUBLISH", channel, self._message(opcode, payload)))

    async def _send_loop(self) -> None:
        """Send the queued commands in order, a pipeline per wakeup (one round trip)."""
        event = self._out_event
        idle = self._idle
        assert event is not None and idle is not None
        backoff = _BACKOFF_MIN
        while True:
            await event.wait()
            event.clear()
            batch = list(self._out)
            self._out.clear()
            try:
                pipe = self._redis.pipeline(transaction=False)
                for command in batch:
                    pipe.execute_command(*command)
                await pipe.execute()
                backoff = _BACKOFF_MIN
            except asyncio.CancelledError:
                raise
            except Exception as error:  # at most once: the batch is lost
                self._lost("publish", error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            if not self._out:
                idle.set()
            else:
                event.set()

    async def _refresh(self) -> None:
        """Keep this process's presence alive (and re-add it after a Redis restart)."""
        ttl = int(self.config.presence_ttl + 0.999)
        while True:
            if self._users:
                now = time.time()
                self._queue(("SADD", self._presence, *self._users))
                self._queue(("EXPIRE", self._presence, ttl))
                self._queue(("ZADD", self._registry, now + ttl, self._presence))
                self._queue(("ZREMRANGEBYSCORE", self._registry, "-inf", now))
            await asyncio.sleep(self.config.presence_ttl / 3)

    # -- presence queries -----------------------------------------------------------------

    async def flush(self, timeout: float = 1.0) -> bool:
        """Wait until what this process queued has been sent (False after ``timeout``)."""
        assert self._idle is not None
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def _live_keys(self) -> list[bytes]:
        await self.flush()  # our own binds first
        keys: list[bytes] = await self._redis.zrangebyscore(self._registry, time.time(), "+inf")
        return keys

    async def online(self, uid: int) -> bool:
        """Whether a connection bound to ``uid`` is open on any node (raises if Redis
        cannot be reached)."""
        keys = await self._live_keys()
        if not keys:
            return False
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.sismember(key, uid)
        return any(await pipe.execute())

    async def online_count(self) -> int:
        """How many distinct uids are bound on all nodes together."""
        keys = await self._live_keys()
        if not keys:
            return 0
        members: set[bytes] = await self._redis.sunion(keys)
        return len(members)
