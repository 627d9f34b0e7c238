"""The one interface between the server and a broker that spans machines (the ``cluster``
setting). :mod:`.redis_backend` implements it on Redis; another broker could plug in.

The server calls a backend only in the processes that hold subscriptions (a SWOOLE_BASE
worker, the SWOOLE_PROCESS master, the single process); the backend calls back the
:class:`Receiver` for what other nodes sent. Sending never blocks: messages are queued
and leave in order. Delivery is at most once (pub/sub): what is sent while the broker is
unreachable is lost.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

__all__ = ["ClusterBackend", "ClusterConfig", "Receiver", "check_cluster", "cluster_config"]


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


class ClusterConfig:
    """The ``cluster`` setting, checked: see :func:`check_cluster`."""

    __slots__ = ("backend", "channel_prefix", "node_id", "presence_ttl")

    def __init__(self, value: dict[str, Any], node_id: str) -> None:
        self.backend: str = value["backend"]
        self.node_id: str = value.get("node_id") or node_id
        self.channel_prefix: str = value.get("channel_prefix", "pyswoole")
        self.presence_ttl: float = float(value.get("presence_ttl", 10))


_KEYS = {"backend", "node_id", "channel_prefix", "presence_ttl"}
_SCHEMES = ("redis://", "rediss://", "unix://")


def check_cluster(value: Any) -> str | None:
    """What is wrong with a ``cluster`` setting value, or None."""
    if value is None:
        return None
    unknown = set(value) - _KEYS
    if unknown:
        return f"unknown keys {sorted(unknown)} (known: {sorted(_KEYS)})"
    backend = value.get("backend")
    if not isinstance(backend, str) or not backend.startswith(_SCHEMES):
        return "'backend' must be a Redis URL (redis://host:6379/0, rediss://, unix://)"
    for key in ("node_id", "channel_prefix"):
        if key in value and (not isinstance(value[key], str) or not value[key]):
            return f"{key!r} must be a non-empty str"
    ttl = value.get("presence_ttl", 10)
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 1 <= ttl <= 3600:
        return "'presence_ttl' must be a number of seconds from 1 to 3600"
    return None


def cluster_config(value: dict[str, Any] | None, node_id: str) -> ClusterConfig | None:
    return None if value is None else ClusterConfig(value, node_id)
