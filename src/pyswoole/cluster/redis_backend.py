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

Presence: each process keeps a set ``{P:presence}:<node>:<pid>`` of its bound uids with a
TTL (``presence_ttl``) that it refreshes every third of it, and lists that key in the sorted
set ``{P:presence}`` scored by its expiry time; ``online``/``online_count`` read the keys
still alive. A killed node's keys expire within the TTL. (The ``{...}`` hash tag puts them
all in one slot of a Redis Cluster, so ``SUNION`` over them is allowed.)

History (the ``history`` option): each publish is also ``XADD``-ed to the stream
``P:h:<topic>``, trimmed to about ``maxlen`` entries (``MAXLEN ~``), and :meth:`history`
reads it back (``XREVRANGE``, or ``XRANGE`` after an id), from any process of any node.

Deployments (:class:`~.backend.RedisTarget`): one Redis; a Sentinel group, through
redis-py's ``Sentinel.master_for`` (a new connection asks the Sentinels for the master, so
after a failover the reconnect below finds the new one); a Redis Cluster, through redis-py's
``RedisCluster`` for every keyed command (presence, history) and a plain connection to one
cluster node for ``PUBLISH``/``SUBSCRIBE``. Classic pub/sub in a Redis Cluster is
propagated to every node over the cluster bus, so a subscriber on any node gets what is
published on any node; one connection for both keeps each publisher's order (redis-py's
cluster client sends ``PUBLISH`` to a random node, and sharded ``SSUBSCRIBE`` would need a
connection per shard polled in turn). When that node fails, the next known node is used.

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
from .backend import ClusterConfig, Receiver, RedisTarget

__all__ = ["RedisBackend", "connect", "import_redis"]

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
        self._registry = f"{{{prefix}:presence}}"
        self._presence = f"{self._registry}:{config.node_id}:{os.getpid()}"
        self._history = f"{prefix}:h:".encode()
        self._maxlen = config.history_maxlen
        #: the channels this process needs (subscribed again after a reconnect)
        self._channels: set[bytes] = {self._all}
        self._control: deque[tuple[bool, bytes]] = deque()
        self._control_event: asyncio.Event | None = None
        self._out: deque[tuple[Any, ...]] = deque()
        self._out_event: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._users: set[int] = set()
        self._pubsub: Any = None
        self._redis: Any = None  # keyed commands (presence, history)
        self._pub: Any = None  # PUBLISH and SUBSCRIBE (the same client but in a cluster)
        self._pub_node = 0  # (a cluster) the index of the node self._pub talks to
        self._helpers: list[Any] = []  # (Sentinel) the Sentinels' clients
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sender: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: asyncio.Task[None] | None = None
        self._down = False  # logged "lost" and not yet "back"
        self.dropped = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop, query_only: bool = False) -> None:
        """Connect (lazily) and run the listener, the sender and the presence refresh;
        ``query_only`` (a SWOOLE_PROCESS worker): only ``online``/``online_count``."""
        self._redis, self._helpers = connect(self.config.target)
        self._pub = None if self.config.target.kind == "cluster" else self._redis
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
        if self._closing is not None:
            return
        for task in self._tasks:
            task.cancel()
        if self._redis is not None and self._loop is not None:
            self._closing = self._loop.create_task(self._final())

    async def wait_closed(self) -> None:
        """Until what :meth:`close` began is over (at most about 3 s)."""
        if self._closing is not None:
            await asyncio.wait({self._closing}, timeout=4 * _CLOSE_TIMEOUT)

    async def _final(self) -> None:
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            if self._users:
                self._queue(("DEL", self._presence))
                self._queue(("ZREM", self._registry, self._presence))
            assert self._idle is not None
            await asyncio.wait_for(self._idle.wait(), 1.0)
        if self._sender is not None:
            self._sender.cancel()
        clients = [self._redis, self._pub, *self._helpers]
        for client in {id(client): client for client in clients}.values():
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.aclose(), 1.0)

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
            if _cancel_lost():
                raise asyncio.CancelledError
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
            if _cancel_lost():
                raise asyncio.CancelledError
            pub = self._pub_client()
            pubsub = pub.pubsub(ignore_subscribe_messages=True)
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
                self._pub_failed(pub)
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
        name = topic.encode()
        if self._maxlen:
            entry = bytes([opcode]) + payload
            key = self._history + name
            self._queue(("XADD", key, "MAXLEN", "~", self._maxlen, "*", "m", entry))
        self._queue(("PUBLISH", self._topic_prefix + name, self._message(opcode, payload)))

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
            if _cancel_lost():
                raise asyncio.CancelledError
            await event.wait()
            event.clear()
            batch = list(self._out)
            self._out.clear()
            pub = None
            try:
                if self._pub is self._redis:
                    await self._execute(self._redis, batch)
                else:  # a cluster: keyed commands to their slots, then the messages
                    keyed = [command for command in batch if command[0] != "PUBLISH"]
                    if keyed:
                        await self._execute(self._redis, keyed)
                    if len(keyed) < len(batch):
                        pub = self._pub_client()
                        messages = [command for command in batch if command[0] == "PUBLISH"]
                        await self._execute(pub, messages)
                backoff = _BACKOFF_MIN
            except asyncio.CancelledError:
                raise
            except Exception as error:  # at most once: the batch is lost
                self._lost("publish", error)
                if pub is not None:
                    self._pub_failed(pub)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            if not self._out:
                idle.set()
            else:
                event.set()

    @staticmethod
    async def _execute(client: Any, batch: list[tuple[Any, ...]]) -> None:
        """``batch`` in one pipeline (one round trip per node)."""
        pipe = client.pipeline(transaction=False)
        for command in batch:
            pipe.execute_command(*command)
        await pipe.execute()

    def _pub_client(self) -> Any:
        """The client for ``PUBLISH``/``SUBSCRIBE``: in a cluster, a plain connection to
        one of its nodes (made here, to the next node after a failure)."""
        if self._pub is None:
            target = self.config.target
            nodes = list(target.nodes)  # the URL's first, then those the cluster named
            for node in self._redis.get_nodes():
                if (node.host, node.port) not in nodes:
                    nodes.append((node.host, node.port))
            host, port = nodes[self._pub_node % len(nodes)]
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._pub = import_redis().Redis(
                host=host,
                port=port,
                username=target.username,
                password=target.password,
                ssl=target.ssl,
                retry=Retry(NoBackoff(), 0),  # no retry on a failed node: the next one
            )
        return self._pub

    def _pub_failed(self, client: Any) -> None:
        """(A cluster) ``client``'s node failed: the next one is used from now on."""
        if client is self._pub and self._pub is not self._redis:
            self._pub = None
            self._pub_node += 1
            if self._loop is not None:
                self._loop.create_task(_close_quietly(client))

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

    async def history(
        self, topic: str, count: int, after: str | None = None
    ) -> list[tuple[str, int, bytes]]:
        """The last ``count`` messages kept of ``topic``, or the first ``count`` after the
        id ``after`` (a ``history`` id: what a reader saw last), oldest first, as
        ``(id, opcode, payload)``; [] without the ``history`` option. Raises if Redis
        cannot be reached."""
        if not self._maxlen or count <= 0:
            return []
        await self.flush()  # this process's own publishes first
        key = self._history + topic.encode()
        if after is None:
            entries = list(reversed(await self._redis.xrevrange(key, count=count)))
        else:
            entries = await self._redis.xrange(key, min=f"({after}", count=count)
        found = []
        for entry_id, fields in entries:
            entry = fields[b"m"]
            found.append((entry_id.decode(), entry[0], bytes(entry[1:])))
        return found


def _cancel_lost() -> bool:
    """Whether this task was cancelled but the CancelledError never reached it (caught in
    redis-py, or turned into a TimeoutError by a timeout that expired at the same time): a
    loop that then went on would never end. Python 3.11+ can tell (``Task.cancelling``)."""
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    return cancelling is not None and cancelling() > 0


async def _close_quietly(client: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.aclose(), _CLOSE_TIMEOUT)


def connect(target: RedisTarget) -> tuple[Any, list[Any]]:
    """The redis-py asyncio client for ``target``'s keyed commands (it connects lazily),
    and the other clients it uses (a Sentinel group's: closed with it)."""
    aioredis = import_redis()
    if target.kind == "cluster":
        from redis.asyncio.cluster import ClusterNode

        cluster = aioredis.RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            username=target.username,
            password=target.password,
            ssl=target.ssl,
        )
        return cluster, []
    if target.kind == "sentinel":
        from redis.asyncio.sentinel import Sentinel

        tls: dict[str, Any] = {"ssl": True} if target.ssl else {}
        sentinel = Sentinel(target.nodes)
        master = sentinel.master_for(
            target.service,
            db=target.db,
            username=target.username,
            password=target.password,
            **tls,
        )
        return master, sentinel.sentinels
    return aioredis.from_url(target.url, decode_responses=False), []
