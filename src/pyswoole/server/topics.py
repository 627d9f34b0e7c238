"""Topics (rooms) and users across workers and nodes: the server's side of :mod:`..cluster`.

pyswoole's own API (Swoole has no topics; apps there keep rooms in a ``Table`` and loop
over ``push``). Subscriptions live in the process that owns the connection (the
SWOOLE_BASE worker, the SWOOLE_PROCESS master; :mod:`..cluster.topics`); ``subscribe``
of an fd another process owns goes to it over IPC, in order with the caller's other
messages. ``publish`` delivers to this process's subscribers through ``broadcast``'s own
path (one encode, compressed once per parameter set, per-connection buffer limits) and
hands the message, once, to every other worker that has subscribers of the topic (and, with
the ``cluster`` setting, once to Redis); order is kept per publisher because IPC and the
Redis connection each keep their sender's order.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable
from typing import Any

from ..cluster.backend import ClusterBackend, cluster_config
from ..cluster.topics import (
    OP_ANSWER,
    OP_BROADCAST,
    OP_PRESENCE,
    OP_PUBLISH,
    OP_PUSH_USER,
    OP_QUERY,
    OP_SUBSCRIBE,
    OP_UNSUBSCRIBE,
    OP_UNSUBSCRIBE_ALL,
    QUERY_SUBSCRIBERS,
    QUERY_TOPICS,
    Subscriptions,
    TopicMap,
    pack_topic_op,
    unpack_topic_op,
)
from ..constants import (
    SWOOLE_BASE,
    SWOOLE_ERROR_SESSION_NOT_EXIST,
    SWOOLE_ERROR_WEBSOCKET_UNCONNECTED,
    SWOOLE_SOCK_TCP,
    SWOOLE_WEBSOCKET_FLAG_FIN,
    WEBSOCKET_OPCODE_BINARY,
    WEBSOCKET_OPCODE_TEXT,
    WEBSOCKET_STATUS_ACTIVE,
)
from ..process import messages as msg
from ..runtime.connection import Connection
from ..runtime.worker import Worker
from .control import check_fd
from .threads import from_thread, get_ident
from .ws_handshake import WebSocketHandshake

__all__ = ["TopicServer"]

_FIN = SWOOLE_WEBSOCKET_FLAG_FIN
#: how long a subscribe sent to another worker counts as pending (it is applied as soon as
#: that worker reads its inbox; a worker stuck longer also holds back the publish)
_PENDING_SUB_TIME = 5.0
#: how long a SWOOLE_PROCESS worker waits for the master's answer to a query
_QUERY_TIMEOUT = 5.0

log = logging.getLogger("pyswoole")


def _check_topic(topic: object) -> str:
    if not isinstance(topic, str):
        raise TypeError(f"topic must be str, not {type(topic).__name__}")
    if not topic or (len(topic) > 256 and len(topic.encode()) > 1024):  # (<= 4 bytes a char)
        raise ValueError("topic must be 1 to 1024 bytes of UTF-8")
    return topic


def _payload(data: object, opcode: int) -> str | bytes:
    if opcode not in (WEBSOCKET_OPCODE_TEXT, WEBSOCKET_OPCODE_BINARY):
        raise ValueError("topics carry whole text or binary messages (opcode 1 or 2)")
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"data must be str or bytes, not {type(data).__name__}")


class TopicServer(WebSocketHandshake):
    """``subscribe``/``publish``/``push_user``... for :class:`.WebSocketServer`."""

    _subs: Subscriptions
    _topic_map: TopicMap | None = None
    _cluster_backend: ClusterBackend | None = None
    _cluster_query: ClusterBackend | None = None
    #: topic -> {worker: deadline}: subscribe requests sent to other workers and not yet
    #: visible in the shared map (see _to_owner)
    _pending_subs: dict[str, dict[int, float]] = {}
    _query_id = 0
    #: the cluster setting is on (set before fork: task workers and user processes, which
    #: have no backend, hand their cluster sends to a process that has one)
    _cluster_on = False
    _node_id: str = ""

    # (WebSocketServer's)
    def _broadcast_local(
        self,
        data: str | bytes,
        fds: Iterable[int] | None = None,
        opcode: int = WEBSOCKET_OPCODE_TEXT,
        flags: int = _FIN,
    ) -> int:
        raise NotImplementedError

    # -- setup ----------------------------------------------------------------------------

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 0,
        mode: int = SWOOLE_BASE,
        sock_type: int = SWOOLE_SOCK_TCP,
    ) -> None:
        super().__init__(host, port, mode, sock_type)
        self._subs = Subscriptions()  # (a worker starts its own: _configure_worker)

    def start(self) -> bool:
        """Before the processes fork: the shared topic map (SWOOLE_BASE, several workers)
        and the cluster node id; a missing redis-py fails here, not in every worker."""
        get = self._settings.get_value
        cluster = get("cluster")
        if cluster is not None:
            from ..cluster.redis_backend import import_redis

            import_redis()  # ConfigError now if missing
            self._cluster_on = True
            self._node_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        if self.mode == SWOOLE_BASE and get("worker_num") > 1:
            self._topic_map = TopicMap(get("worker_num"))
        return super().start()

    def _configure_worker(self, worker: Worker) -> None:
        super()._configure_worker(worker)
        self._subs = Subscriptions()
        self._pending_subs = {}
        self._presence_fd: dict[int, int] = {}  # fd -> uid, for bound fds held here
        self._presence_uid: dict[int, set[int]] = {}
        procs = self._procs
        me = -1 if procs is None else procs.process_id
        if self._topic_map is not None and 0 <= me < self._settings.get_value("worker_num"):
            topic_map = self._topic_map
            topic_map.reset(me)
            self._subs.on_first.append(lambda topic: topic_map.add(me, topic, 1))
            self._subs.on_last.append(lambda topic: topic_map.add(me, topic, -1))
        config = cluster_config(self._settings.get_value("cluster"), self._node_id)
        if config is None:
            return
        from ..cluster.redis_backend import RedisBackend

        backend = RedisBackend(config, self)
        if self._holds_subscriptions():
            self._cluster_backend = backend
            self._subs.on_first.append(backend.topic_added)
            self._subs.on_last.append(backend.topic_removed)
            backend.start(worker.loop)
        else:  # a SWOOLE_PROCESS worker: online()/online_count() only
            self._cluster_query = backend
            backend.start(worker.loop, query_only=True)
        # once the loop runs (its on_stopping is set by then): close with the worker
        worker.loop.call_soon(self._close_with, worker, backend)

    @staticmethod
    def _close_with(worker: Worker, backend: ClusterBackend) -> None:
        before = worker.on_stopping

        def stopping() -> None:
            backend.close()
            if before is not None:
                before()

        worker.on_stopping = stopping

    def _holds_subscriptions(self) -> bool:
        """Whether this process owns connections (and so holds their subscriptions)."""
        procs = self._procs
        if procs is None:
            return True
        me: int = procs.process_id
        if procs.process_mode:
            return bool(me == procs.master_id)
        return 0 <= me < procs.worker_num

    def _homes(self) -> list[int]:
        """The other processes that hold subscriptions."""
        procs = self._procs
        if procs is None or procs.process_id < 0:
            return []
        if procs.process_mode:
            return [] if procs.process_id == procs.master_id else [procs.master_id]
        return [w for w in range(procs.worker_num) if w != procs.process_id]

    def _local_ws(self, fd: int) -> Connection | bool | None:
        """``fd``'s connection if held here and established; False if held here but not
        established (error set); None if another process holds it."""
        conn = self._table.get(fd)
        if conn is None or not self._holds_subscriptions():
            return None
        if conn.closed or conn.status != WEBSOCKET_STATUS_ACTIVE:
            self._last_error = (
                SWOOLE_ERROR_SESSION_NOT_EXIST
                if conn.closed
                else SWOOLE_ERROR_WEBSOCKET_UNCONNECTED
            )
            return False
        return conn

    def _to_owner(self, fd: int, op: int, topic: str = "") -> bool:
        procs = self._procs
        if procs is None:
            self._last_error = SWOOLE_ERROR_SESSION_NOT_EXIST
            return False
        owner = procs.remote(fd, need_websocket=True)
        if owner < 0 or not procs.send(owner, msg.TOPIC, pack_topic_op(op, fd, topic)):
            return False
        if op == OP_SUBSCRIBE and self._topic_map is not None:
            # until the owner has applied it (the shared map shows it), this process's
            # publishes of the topic go to the owner too: behind the request, in order
            pending = self._pending_subs.setdefault(topic, {})
            pending[owner] = time.monotonic() + _PENDING_SUB_TIME
        return True

    # -- subscriptions --------------------------------------------------------------------

    def subscribe(self, fd: int, topic: str) -> bool:
        """Subscribe WebSocket ``fd`` to ``topic`` (idempotent). True if it is subscribed,
        or, for an fd another process owns, the request was handed to it; False (see
        ``get_last_error()``) if ``fd`` is not an established WebSocket connection."""
        if self._loop_thread and get_ident() != self._loop_thread:
            return from_thread(self._loop, "subscribe", self.subscribe, fd, topic)
        check_fd(fd)
        _check_topic(topic)
        conn = self._local_ws(fd)
        if conn is None:
            return self._to_owner(fd, OP_SUBSCRIBE, topic)
        if conn is False:
            return False
        self._subs.add(fd, topic)
        return True

    def unsubscribe(self, fd: int, topic: str) -> bool:
        """``fd`` leaves ``topic``; False if it was not in it (here) or is not open."""
        if self._loop_thread and get_ident() != self._loop_thread:
            return from_thread(self._loop, "unsubscribe", self.unsubscribe, fd, topic)
        check_fd(fd)
        _check_topic(topic)
        if fd in self._table and self._holds_subscriptions():
            return self._subs.remove(fd, topic)
        return self._to_owner(fd, OP_UNSUBSCRIBE, topic)

    def unsubscribe_all(self, fd: int) -> int:
        """``fd`` leaves every topic; how many it left (1 when handed to its owner)."""
        if self._loop_thread and get_ident() != self._loop_thread:
            return int(from_thread(self._loop, "unsubscribe_all", self.unsubscribe_all, fd))
        check_fd(fd)
        if fd in self._table and self._holds_subscriptions():
            return self._subs.remove_all(fd)
        return int(self._to_owner(fd, OP_UNSUBSCRIBE_ALL))

    def subscribers(self, topic: str) -> list[int]:
        """The fds subscribed to ``topic``, sorted: in SWOOLE_BASE those of this worker's
        connections; in SWOOLE_PROCESS all of them (a worker asks the master, which holds
        them, and waits for the answer, as ``taskwait`` does, at most 5 s)."""
        topic = _check_topic(topic)
        asked = self._ask_master(QUERY_SUBSCRIBERS, topic)
        if asked is not None:
            return [int(fd) for fd in asked]
        return sorted(self._subs.by_topic.get(topic, ()))

    def topics(self, fd: int) -> list[str]:
        """The topics of ``fd``, sorted; [] if it has none or another SWOOLE_BASE worker
        holds it (SWOOLE_PROCESS: asked from the master, as ``subscribers``)."""
        fd = check_fd(fd)
        asked = self._ask_master(QUERY_TOPICS, str(fd))
        if asked is not None:
            return [str(topic) for topic in asked]
        return sorted(self._subs.by_fd.get(fd, ()))

    def topic_count(self, topic: str) -> int:
        """``len(subscribers(topic))``: this worker's connections in SWOOLE_BASE, all in
        SWOOLE_PROCESS."""
        topic = _check_topic(topic)
        if self._procs is not None and self._procs.process_mode:
            return len(self.subscribers(topic))
        return len(self._subs.by_topic.get(topic, ()))

    def _ask_master(self, what: int, arg: str) -> list[Any] | None:
        """A query answered by the SWOOLE_PROCESS master (None: answer here). The worker
        blocks on its inbox for the answer; other messages wait, in order, for the loop
        (as in ``taskwait``). The master never waits on a worker, so this cannot deadlock;
        it reads its inbox in order, so the caller's earlier subscribes are counted."""
        procs = self._procs
        if (
            procs is None
            or not procs.process_mode
            or procs.process_id < 0
            or procs.process_id == procs.master_id
            or procs.mailer is None
            or procs.loop is None
        ):
            return None
        self._query_id += 1
        query = self._query_id
        body = pack_topic_op(OP_QUERY, query, arg, what)
        if not procs.send(procs.master_id, msg.TOPIC, body):
            return []
        deadline = time.monotonic() + _QUERY_TIMEOUT
        while (remaining := deadline - time.monotonic()) > 0:
            got = procs.mailer.recv_blocking(remaining)
            if got is None:
                break
            kind, src, reply = got
            if kind == msg.TOPIC and reply[0] == OP_ANSWER:
                _, _, _, _, answer_id, _, payload = unpack_topic_op(reply)
                if answer_id == query:
                    answer: list[Any] = json.loads(payload)
                    return answer
                continue  # the late answer to a query that timed out
            procs.loop.call_soon(procs.on_message, kind, src, reply)
        log.warning("topics: the master did not answer a query within %.0f s", _QUERY_TIMEOUT)
        return []

    def _topic_closed(self, fd: int) -> None:
        """A connection held here closed: it leaves its topics and its user's presence."""
        subs = getattr(self, "_subs", None)
        if subs is not None and fd in subs.by_fd:
            subs.remove_all(fd)
        presence = getattr(self, "_presence_fd", None)
        if presence:
            uid = presence.pop(fd, None)
            if uid is not None:
                self._presence_drop(fd, uid)

    def connection_lost(self, conn: Connection) -> None:
        self._topic_closed(conn.fd)
        super().connection_lost(conn)

    # -- publishing -----------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        data: str | bytes,
        opcode: int = WEBSOCKET_OPCODE_TEXT,
        exclude_fd: int | None = None,
    ) -> int:
        """Send a message to every subscriber of ``topic`` (on every worker and, with the
        ``cluster`` setting, every node), except ``exclude_fd`` (on its own node).

        Returns the number of this process's connections it was queued on (full, closed
        ones are skipped, as by ``broadcast``) plus the number of other processes of this
        server it was handed to (one per worker with subscribers); the copy sent to other
        nodes is queued for Redis and not counted."""
        if self._loop_thread and get_ident() != self._loop_thread:
            call = self.publish
            return int(from_thread(self._loop, "publish", call, topic, data, opcode, exclude_fd))
        _check_topic(topic)
        data = _payload(data, opcode)
        exclude = 0 if exclude_fd is None else check_fd(exclude_fd, "exclude_fd")
        sent = self._publish_local(topic, data, opcode, exclude)
        backend = self._cluster_backend
        relay = backend is None and self._cluster_on
        targets = self._publish_targets(topic)
        if targets or relay or backend is not None:
            payload = data.encode() if isinstance(data, str) else data
            if backend is not None:
                backend.publish(topic, opcode, payload)
            if relay and not targets:
                targets = self._homes()[:1]
            procs = self._procs
            for i, dst in enumerate(targets):
                body = pack_topic_op(
                    OP_PUBLISH, exclude, topic, opcode, _FIN, payload, relay and i == 0
                )
                if procs is not None and procs.send(dst, msg.TOPIC, body):
                    sent += 1
        return sent

    def _publish_targets(self, topic: str) -> list[int]:
        procs = self._procs
        if procs is None or procs.process_id < 0:
            return []
        if self._topic_map is not None:
            holders = self._topic_map.holders(topic, procs.process_id)
            pending = self._pending_subs.get(topic) if self._pending_subs else None
            if pending:
                now = time.monotonic()
                for owner, until in list(pending.items()):
                    if owner in holders or until < now:
                        del pending[owner]
                    else:
                        holders.append(owner)
                if not pending:
                    del self._pending_subs[topic]
            return holders
        return self._homes()

    def _publish_local(self, topic: str, data: str | bytes, opcode: int, exclude: int) -> int:
        fds = self._subs.by_topic.get(topic)
        if not fds:
            return 0
        targets = [fd for fd in fds if fd != exclude] if exclude in fds else list(fds)
        return self._broadcast_local(data, targets, opcode, _FIN)

    def broadcast_cluster(self, data: str | bytes, opcode: int = WEBSOCKET_OPCODE_TEXT) -> int:
        """``broadcast(data, cluster=True)``'s other nodes part (this node's is
        ``broadcast``): queued for Redis, or handed to the process that talks to it."""
        data = _payload(data, opcode)
        payload = data.encode() if isinstance(data, str) else data
        backend = self._cluster_backend
        if backend is not None:
            backend.broadcast(opcode, payload)
            return 0
        homes = self._homes()
        if homes and self._procs is not None and self._cluster_on:
            body = pack_topic_op(OP_BROADCAST, 0, "", opcode, _FIN, payload, True)
            self._procs.send(homes[0], msg.TOPIC, body)
        return 0

    # -- users ----------------------------------------------------------------------------

    def bind(self, fd: int, uid: int) -> bool:
        """Swoole's ``bind`` (see ``Server.bind``); then ``push_user(uid, ...)`` reaches ``fd``
        and, with the ``cluster`` setting, ``online(uid)`` is True on every node."""
        if self._loop_thread and get_ident() != self._loop_thread:
            return from_thread(self._loop, "bind", self.bind, fd, uid)
        bound: bool = super().bind(fd, uid)
        if not bound:
            return False
        if fd in self._table and self._holds_subscriptions():
            self._presence_add(fd, uid)
        elif self._procs is not None and self._procs.process_mode:
            self._procs.send(
                self._procs.master_id, msg.TOPIC, pack_topic_op(OP_PRESENCE, fd, str(uid))
            )
        return True

    def _presence_add(self, fd: int, uid: int) -> None:
        self._presence_fd[fd] = uid
        fds = self._presence_uid.setdefault(uid, set())
        fds.add(fd)
        if len(fds) == 1 and self._cluster_backend is not None:
            self._cluster_backend.user_added(uid)

    def _presence_drop(self, fd: int, uid: int) -> None:
        fds = self._presence_uid.get(uid)
        if fds is None:
            return
        fds.discard(fd)
        if not fds:
            del self._presence_uid[uid]
            if self._cluster_backend is not None:
                self._cluster_backend.user_removed(uid)

    def push_user(self, uid: int, data: str | bytes, opcode: int = WEBSOCKET_OPCODE_TEXT) -> int:
        """Push a message to every connection bound to ``uid`` (``bind``) on every worker
        and, with the ``cluster`` setting, every node. Returns the connections of this
        process it was queued on plus the other processes of this server it was handed to
        (the other nodes' copy is queued for Redis and not counted)."""
        if isinstance(uid, bool) or not isinstance(uid, int) or uid <= 0:
            raise TypeError(f"uid must be a positive int, not {uid!r}")
        if self._loop_thread and get_ident() != self._loop_thread:
            return int(from_thread(self._loop, "push_user", self.push_user, uid, data, opcode))
        data = _payload(data, opcode)
        sent = self._push_user_local(uid, data, opcode)
        homes = self._homes()
        backend = self._cluster_backend
        relay = backend is None and self._cluster_on
        if homes or backend is not None:
            payload = data.encode() if isinstance(data, str) else data
            if backend is not None:
                backend.push_user(uid, opcode, payload)
            procs = self._procs
            assert procs is not None or not homes
            for i, dst in enumerate(homes):
                body = pack_topic_op(OP_PUSH_USER, uid, "", opcode, _FIN, payload, relay and i == 0)
                if procs is not None and procs.send(dst, msg.TOPIC, body):
                    sent += 1
        return sent

    def _push_user_local(self, uid: int, data: str | bytes, opcode: int) -> int:
        fds = getattr(self, "_presence_uid", {}).get(uid)
        if not fds:
            return 0
        return self._broadcast_local(data, list(fds), opcode, _FIN)

    async def online(self, uid: int) -> bool:
        """Whether a connection bound to ``uid`` is open: on any node with the ``cluster``
        setting (asks Redis), else in
        any worker of this server (the shared table)."""
        backend = self._cluster_backend or self._cluster_query
        if backend is not None:
            return await backend.online(uid)
        return uid in self._local_uids()

    async def online_count(self) -> int:
        """How many distinct uids are bound: cluster-wide with ``cluster``, else here."""
        backend = self._cluster_backend or self._cluster_query
        if backend is not None:
            return await backend.online_count()
        return len(self._local_uids())

    async def history(
        self, topic: str, count: int = 50, after: str | None = None
    ) -> list[tuple[str, str | bytes]]:
        """pyswoole's own: the last ``count`` messages published to ``topic`` on any node
        (kept in a Redis stream by the ``cluster`` setting's ``history`` option), or the
        first ``count`` after the id ``after``; oldest first, as ``(id, data)`` (``str``
        for text). [] without that option or in a task worker."""
        backend = self._cluster_backend or self._cluster_query
        if backend is None:
            return []
        found = await backend.history(topic, count, after)
        return [(i, p.decode() if op == WEBSOCKET_OPCODE_TEXT else p) for i, op, p in found]

    def _local_uids(self) -> set[int]:
        procs = self._procs
        if procs is None:
            return {conn.uid for conn in self._table.values() if conn.uid and not conn.closed}
        uids = set()
        for fd in procs.table.fds():
            rec = procs.table.get(fd)
            if rec is not None and rec.uid:
                uids.add(rec.uid)
        return uids

    # -- receiving ------------------------------------------------------------------------

    def _topic_ipc(self, src: int, body: bytes) -> None:
        """A TOPIC message from another process of this server."""
        op, relay, opcode, _flags, fd, topic, payload = unpack_topic_op(body)
        data: str | bytes = payload
        backend = self._cluster_backend
        if op == OP_PUBLISH:
            self._publish_local(topic, data, opcode, fd)
            if relay and backend is not None:
                backend.publish(topic, opcode, payload)
        elif op == OP_SUBSCRIBE:
            if self._local_ws(fd):
                self._subs.add(fd, topic)
        elif op == OP_UNSUBSCRIBE:
            self._subs.remove(fd, topic)
        elif op == OP_UNSUBSCRIBE_ALL:
            self._subs.remove_all(fd)
        elif op == OP_PUSH_USER:
            self._push_user_local(fd, data, opcode)
            if relay and backend is not None:
                backend.push_user(fd, opcode, payload)
        elif op == OP_BROADCAST:
            if backend is not None:
                backend.broadcast(opcode, payload)
        elif op == OP_QUERY:  # (in the SWOOLE_PROCESS master, from a worker)
            if opcode == QUERY_SUBSCRIBERS:
                answer: list[Any] = sorted(self._subs.by_topic.get(topic, ()))
            else:
                answer = sorted(self._subs.by_fd.get(int(topic), ()))
            if self._procs is not None:
                body = pack_topic_op(OP_ANSWER, fd, "", 0, 0, json.dumps(answer).encode())
                self._procs.send(src, msg.TOPIC, body)
        elif op == OP_PRESENCE:
            conn = self._table.get(fd)
            if conn is not None and not conn.closed:
                self._presence_add(fd, int(topic))

    # the cluster backend's Receiver
    def cluster_publish(self, topic: str, opcode: int, payload: bytes) -> None:
        self._publish_local(topic, payload, opcode, 0)

    def cluster_broadcast(self, opcode: int, payload: bytes) -> None:
        self._broadcast_local(payload, None, opcode, _FIN)

    def cluster_push_user(self, uid: int, opcode: int, payload: bytes) -> None:
        self._push_user_local(uid, payload, opcode)

    def cluster_batch(self, start: bool) -> None:
        worker = self._worker
        if worker is not None:
            if start:
                worker.begin_batch()
            else:
                worker.end_batch()
