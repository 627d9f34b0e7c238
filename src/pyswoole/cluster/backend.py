"""The one interface between the server and a broker that spans machines (the ``cluster``
setting). :mod:`.redis_backend` implements it on Redis; another broker could plug in.

The server calls a backend only in the processes that hold subscriptions (a SWOOLE_BASE
worker, the SWOOLE_PROCESS master, the single process); the backend calls back the
:class:`Receiver` for what other nodes sent. Sending never blocks: messages are queued
and leave in order. Delivery is at most once (pub/sub): what is sent while the broker is
unreachable is lost. With ``history``, each publish is also kept in a bounded stream that
any process can read back by id (:meth:`ClusterBackend.history`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol
from urllib.parse import unquote

__all__ = [
    "ClusterBackend",
    "ClusterConfig",
    "Receiver",
    "RedisTarget",
    "check_cluster",
    "cluster_config",
]


class Receiver(Protocol):
    """What a backend delivers to (the server's topic layer, in this process)."""

    def cluster_publish(self, topic: str, opcode: int, payload: bytes) -> None: ...

    def cluster_broadcast(self, opcode: int, payload: bytes) -> None: ...

    def cluster_push_user(self, uid: int, opcode: int, payload: bytes) -> None: ...

    def cluster_batch(self, start: bool) -> None:
        """Deliveries between ``cluster_batch(True)`` and ``(False)`` may leave together."""


class ClusterBackend(Protocol):
    def start(self, loop: asyncio.AbstractEventLoop, query_only: bool = False) -> None:
        """Begin (tasks on ``loop``); ``query_only``: only ``online``/``online_count``."""

    def close(self) -> None: ...

    def topic_added(self, topic: str) -> None:
        """This process has its first subscriber of ``topic``: receive it from now on."""

    def topic_removed(self, topic: str) -> None: ...

    def user_added(self, uid: int) -> None:
        """This process has its first connection bound to ``uid`` (presence, push_user)."""

    def user_removed(self, uid: int) -> None: ...

    def publish(self, topic: str, opcode: int, payload: bytes) -> None: ...

    def broadcast(self, opcode: int, payload: bytes) -> None: ...

    def push_user(self, uid: int, opcode: int, payload: bytes) -> None: ...

    async def online(self, uid: int) -> bool: ...

    async def online_count(self) -> int: ...

    async def history(
        self, topic: str, count: int, after: str | None
    ) -> list[tuple[str, int, bytes]]:
        """The last ``count`` messages kept of ``topic`` (or the first ``count`` after the
        id ``after``), oldest first: ``(id, opcode, payload)``."""


class ClusterConfig:
    """The ``cluster`` setting, checked: see :func:`check_cluster`."""

    __slots__ = ("backend", "channel_prefix", "history_maxlen", "node_id", "presence_ttl", "target")

    def __init__(self, value: dict[str, Any], node_id: str) -> None:
        self.backend: str = value["backend"]
        self.target = RedisTarget(self.backend)
        #: keep each topic's last ~N publishes in a Redis stream (0: no history)
        self.history_maxlen: int = (value.get("history") or {}).get("maxlen", 0)
        self.node_id: str = value.get("node_id") or node_id
        self.channel_prefix: str = value.get("channel_prefix", "pyswoole")
        self.presence_ttl: float = float(value.get("presence_ttl", 10))


_KEYS = {"backend", "node_id", "channel_prefix", "presence_ttl", "history"}
_SCHEMES = ("redis://", "rediss://", "unix://")


class RedisTarget:
    """Where the ``backend`` URL points: one Redis, a Redis Cluster or a Sentinel group.

    - ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...``, ``unix://path``:
      one Redis (redis-py's ``from_url``, every query option included);
    - ``redis+cluster://[[user]:password@]host:port[,host:port...]`` (``rediss+cluster``
      for TLS): a Redis Cluster, from these seed nodes (redis-py's ``RedisCluster``);
    - ``redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]``
      (``rediss+sentinel``): the master that these Sentinels name for ``service``
      (redis-py's ``Sentinel.master_for``); the credentials are the master's.
    """

    __slots__ = ("db", "kind", "nodes", "password", "service", "ssl", "url", "username")

    def __init__(self, url: str) -> None:
        self.url = url
        self.kind = "redis"
        self.nodes: list[tuple[str, int]] = []
        self.service = ""
        self.db = 0
        self.username: str | None = None
        self.password: str | None = None
        self.ssl = url.startswith("rediss+")
        scheme, _, rest = url.partition("://")
        if scheme not in ("redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel"):
            if not url.startswith(_SCHEMES):
                raise ValueError("'backend' must be a Redis URL " + _FORMS)
            return
        self.kind = scheme.partition("+")[2]
        hosts, _, path = rest.partition("/")
        auth, at, hosts = hosts.rpartition("@")
        if at:
            user, colon, password = auth.partition(":")
            if not colon:
                user, password = "", user
            self.username = unquote(user) or None
            self.password = unquote(password) or None
        default = 26379 if self.kind == "sentinel" else 6379
        for item in hosts.split(","):
            host, colon, port = item.rpartition(":")
            if not colon:
                host, port = port, str(default)
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{item!r} in 'backend' is not host:port")
            self.nodes.append((host.strip("[]"), int(port)))
        parts = [part for part in path.split("/") if part]
        if self.kind == "cluster":
            if parts:
                raise ValueError("a redis+cluster:// URL has no path (a cluster has only db 0)")
            return
        if not parts or len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
            raise ValueError("a redis+sentinel:// URL ends in /service or /service/db")
        self.service = unquote(parts[0])
        self.db = int(parts[1]) if len(parts) == 2 else 0


_FORMS = (
    "(redis://host:6379/0, rediss://, unix://, redis+cluster://host:port[,host:port], "
    "redis+sentinel://host:26379[,host:port]/service[/db])"
)


def check_cluster(value: Any) -> str | None:
    """What is wrong with a ``cluster`` setting value, or None."""
    if value is None:
        return None
    unknown = set(value) - _KEYS
    if unknown:
        return f"unknown keys {sorted(unknown)} (known: {sorted(_KEYS)})"
    backend = value.get("backend")
    if not isinstance(backend, str):
        return "'backend' must be a Redis URL " + _FORMS
    try:
        RedisTarget(backend)
    except ValueError as error:
        return str(error)
    for key in ("node_id", "channel_prefix"):
        if key in value and (not isinstance(value[key], str) or not value[key]):
            return f"{key!r} must be a non-empty str"
    ttl = value.get("presence_ttl", 10)
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 1 <= ttl <= 3600:
        return "'presence_ttl' must be a number of seconds from 1 to 3600"
    history = value.get("history")
    if history is not None:
        maxlen = history.get("maxlen") if isinstance(history, dict) else None
        if (
            not isinstance(history, dict)
            or set(history) - {"maxlen"}
            or isinstance(maxlen, bool)
            or not isinstance(maxlen, int)
            or not 1 <= maxlen <= 1_000_000
        ):
            return "'history' must be {'maxlen': N} with N from 1 to 1000000"
    return None


def cluster_config(value: dict[str, Any] | None, node_id: str) -> ClusterConfig | None:
    return None if value is None else ClusterConfig(value, node_id)
