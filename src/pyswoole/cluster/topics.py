"""One process's topic subscriptions, the shared per-topic worker map, and their IPC.

A connection's subscriptions live in the process that owns the connection (its *home*): a
SWOOLE_BASE worker for its own fds, the master in SWOOLE_PROCESS mode, the only process
of a single-process server. So the home sees a close at once (a closed connection leaves
all its topics there) and writes the frames itself, encoded once per publish.

To publish across workers without asking all of them, every home process counts, in a
shared ``mmap`` made before fork, how many of its topics fall in each of ``BUCKETS``
buckets (CRC-32 of the topic): one ``u32`` per (bucket, worker), written only by that
worker. A publisher sends the message to the workers whose count in the topic's bucket
is not zero: one IPC message per worker that (probably) has subscribers. Two topics in one
bucket only cost an IPC message to a worker that then finds no subscriber.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Callable

__all__ = [
    "BUCKETS",
    "OP_ANSWER",
    "OP_BROADCAST",
    "OP_PRESENCE",
    "OP_PUBLISH",
    "OP_PUSH_USER",
    "OP_QUERY",
    "OP_SUBSCRIBE",
    "OP_UNSUBSCRIBE",
    "OP_UNSUBSCRIBE_ALL",
    "QUERY_SUBSCRIBERS",
    "QUERY_TOPICS",
    "Subscriptions",
    "TopicMap",
    "pack_topic_op",
    "unpack_topic_op",
]

#: buckets of the shared worker map (a power of two)
BUCKETS = 4096

OP_SUBSCRIBE = 1  # subscribe(fd, topic) of a connection the destination owns
OP_UNSUBSCRIBE = 2
OP_UNSUBSCRIBE_ALL = 3
OP_PUBLISH = 4  # deliver to the destination's subscribers (relay: publish on the cluster too)
OP_BROADCAST = 5  # SWOOLE_PROCESS worker -> master: broadcast(..., cluster=True)
OP_PUSH_USER = 6  # SWOOLE_PROCESS worker -> master: push_user on the cluster
OP_PRESENCE = 7  # SWOOLE_PROCESS worker -> master: fd was bound to uid (register it)
OP_QUERY = 8  # SWOOLE_PROCESS worker -> master: subscribers(topic) / topics(fd) (fd: query id)
OP_ANSWER = 9  # master -> worker: the answer (JSON list) to query id ``fd``
QUERY_SUBSCRIBERS = 1  # (in the opcode field)
QUERY_TOPICS = 2

# op, relay, opcode, flags, fd (or uid), topic length
_OP = struct.Struct("<BBBBqH")


def pack_topic_op(
    op: int,
    fd: int = 0,
    topic: str = "",
    opcode: int = 0,
    flags: int = 0,
    payload: bytes = b"",
    relay: bool = False,
) -> bytes:
    """The body of an IPC ``TOPIC`` message (:data:`pyswoole.process.messages.TOPIC`)."""
    name = topic.encode()
    return _OP.pack(op, relay, opcode, flags, fd, len(name)) + name + payload


def unpack_topic_op(body: bytes) -> tuple[int, bool, int, int, int, str, bytes]:
    """``(op, relay, opcode, flags, fd, topic, payload)`` of a ``TOPIC`` body."""
    op, relay, opcode, flags, fd, size = _OP.unpack_from(body)
    at = _OP.size
    return op, bool(relay), opcode, flags, fd, body[at : at + size].decode(), body[at + size :]


def bucket_of(topic: str) -> int:
    return zlib.crc32(topic.encode()) & (BUCKETS - 1)


class TopicMap:
    """Per (bucket, worker) counts of topics with subscribers, in shared memory."""

    __slots__ = ("_mem", "_view", "workers")

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._mem = mmap.mmap(-1, BUCKETS * workers * 4)  # anonymous, MAP_SHARED
        self._view = memoryview(self._mem).cast("I")

    def add(self, worker: int, topic: str, delta: int) -> None:
        """``worker`` gained (+1) or lost (-1) its first / last subscriber of ``topic``
        (only ``worker`` writes its cells)."""
        at = bucket_of(topic) * self.workers + worker
        self._view[at] = max(0, self._view[at] + delta)

    def holders(self, topic: str, exclude: int) -> list[int]:
        """The workers (not ``exclude``) that may have subscribers of ``topic``."""
        view = self._view
        base = bucket_of(topic) * self.workers
        return [w for w in range(self.workers) if w != exclude and view[base + w]]

    def reset(self, worker: int) -> None:
        """A (re)started worker holds no subscriptions: clear what its predecessor left."""
        view = self._view
        for bucket in range(BUCKETS):
            view[bucket * self.workers + worker] = 0


class Subscriptions:
    """The subscriptions held in this process: topic -> fds and fd -> topics.

    ``on_first``/``on_last`` are called when a topic gets its first subscriber here or
    loses its last one (the shared map and the cluster backend follow them)."""

    __slots__ = ("by_fd", "by_topic", "on_first", "on_last")

    def __init__(self) -> None:
        self.by_topic: dict[str, set[int]] = {}
        self.by_fd: dict[int, set[str]] = {}
        self.on_first: list[Callable[[str], None]] = []
        self.on_last: list[Callable[[str], None]] = []

    def add(self, fd: int, topic: str) -> bool:
        """Subscribe; False if ``fd`` already was (nothing changes)."""
        fds = self.by_topic.get(topic)
        if fds is None:
            fds = self.by_topic[topic] = set()
            for call in self.on_first:
                call(topic)
        elif fd in fds:
            return False
        fds.add(fd)
        self.by_fd.setdefault(fd, set()).add(topic)
        return True

    def remove(self, fd: int, topic: str) -> bool:
        """Unsubscribe; False if ``fd`` was not subscribed to ``topic``."""
        fds = self.by_topic.get(topic)
        if fds is None or fd not in fds:
            return False
        fds.discard(fd)
        if not fds:
            del self.by_topic[topic]
            for call in self.on_last:
                call(topic)
        topics = self.by_fd.get(fd)
        if topics is not None:
            topics.discard(topic)
            if not topics:
                del self.by_fd[fd]
        return True

    def remove_all(self, fd: int) -> int:
        """``fd`` leaves every topic (it closed, or ``unsubscribe_all``); how many."""
        topics = self.by_fd.pop(fd, None)
        if not topics:
            return 0
        for topic in topics:
            fds = self.by_topic.get(topic)
            if fds is not None:
                fds.discard(fd)
                if not fds:
                    del self.by_topic[topic]
                    for call in self.on_last:
                        call(topic)
        return len(topics)
