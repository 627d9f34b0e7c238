"""cluster/topics.py: subscriptions, the shared worker map, the IPC body; backend.py's
check of the ``cluster`` setting."""

from __future__ import annotations

import os

import pytest

from pyswoole.cluster.backend import RedisTarget, check_cluster, cluster_config
from pyswoole.cluster.topics import (
    BUCKETS,
    OP_PUBLISH,
    Subscriptions,
    TopicMap,
    bucket_of,
    pack_topic_op,
    unpack_topic_op,
)


def test_subscriptions_follow_first_and_last_subscriber() -> None:
    subs = Subscriptions()
    events: list[tuple[str, str]] = []
    subs.on_first.append(lambda t: events.append(("first", t)))
    subs.on_last.append(lambda t: events.append(("last", t)))
    assert subs.add(1, "a") and subs.add(2, "a") and subs.add(1, "b")
    assert not subs.add(1, "a")  # already: nothing changes
    assert events == [("first", "a"), ("first", "b")]
    assert subs.by_topic == {"a": {1, 2}, "b": {1}}
    assert subs.remove(2, "a") and not subs.remove(2, "a") and not subs.remove(9, "zz")
    assert events[-1] == ("first", "b")  # "a" still has fd 1
    assert subs.remove_all(1) == 2
    assert sorted(events[2:]) == [("last", "a"), ("last", "b")]
    assert subs.by_topic == {} and subs.by_fd == {}
    assert subs.remove_all(1) == 0


def test_topic_map_routes_to_workers_with_subscribers() -> None:
    tmap = TopicMap(3)
    assert tmap.holders("room", exclude=0) == []
    tmap.add(1, "room", 1)
    tmap.add(2, "room", 1)
    assert tmap.holders("room", exclude=0) == [1, 2]
    assert tmap.holders("room", exclude=2) == [1]
    tmap.add(2, "room", -1)
    tmap.add(2, "room", -1)  # never below zero
    assert tmap.holders("room", exclude=0) == [1]
    tmap.reset(1)
    assert tmap.holders("room", exclude=0) == []
    assert 0 <= bucket_of("room") < BUCKETS


def test_topic_map_is_shared_with_forked_workers() -> None:
    tmap = TopicMap(2)
    pid = os.fork()
    if pid == 0:  # the child is worker 1
        tmap.add(1, "shared", 1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert tmap.holders("shared", exclude=0) == [1]


def test_topic_op_round_trip() -> None:
    body = pack_topic_op(OP_PUBLISH, 42, "héllo", 2, 1, b"\x00payload", relay=True)
    assert unpack_topic_op(body) == (OP_PUBLISH, True, 2, 1, 42, "héllo", b"\x00payload")
    assert unpack_topic_op(pack_topic_op(OP_PUBLISH))[5:] == ("", b"")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, None),
        ({"backend": "redis://127.0.0.1:6379/0"}, None),
        ({"backend": "redis://h", "node_id": "a", "channel_prefix": "p", "presence_ttl": 2}, None),
        ({"backend": "http://h"}, "Redis URL"),
        ({}, "Redis URL"),
        ({"backend": "redis://h", "nodeid": "x"}, "unknown keys"),
        ({"backend": "redis://h", "node_id": ""}, "non-empty"),
        ({"backend": "redis://h", "presence_ttl": 0}, "presence_ttl"),
        ({"backend": "redis://h", "presence_ttl": True}, "presence_ttl"),
        ({"backend": "redis+cluster://10.0.0.1:7000,10.0.0.2:7001"}, None),
        ({"backend": "rediss+cluster://u:p@h"}, None),
        ({"backend": "redis+cluster://h:7000/0"}, "no path"),
        ({"backend": "redis+cluster://h:port"}, "host:port"),
        ({"backend": "redis+sentinel://s1:26379,s2/mymaster/2"}, None),
        ({"backend": "redis+sentinel://s1:26379"}, "/service"),
        ({"backend": "redis+sentinel://s1/m/x"}, "/service"),
        ({"backend": "redis+sentinal://s1/m"}, "Redis URL"),
        ({"backend": "redis://h", "history": {"maxlen": 50}}, None),
        ({"backend": "redis://h", "history": {"maxlen": 0}}, "'history'"),
        ({"backend": "redis://h", "history": {"max": 5}}, "'history'"),
        ({"backend": "redis://h", "history": 50}, "'history'"),
    ],
)
def test_check_cluster(value: object, problem: str | None) -> None:
    found = check_cluster(value)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_cluster_config_defaults() -> None:
    config = cluster_config({"backend": "redis://h"}, "node-x")
    assert config is not None
    assert (config.node_id, config.channel_prefix, config.presence_ttl) == (
        "node-x",
        "pyswoole",
        10,
    )
    assert cluster_config(None, "n") is None


def test_redis_targets() -> None:
    """The ``backend`` URL forms (RedisTarget): one Redis, a Redis Cluster, a Sentinel."""
    one = RedisTarget("redis://h:6380/3")
    assert (one.kind, one.url) == ("redis", "redis://h:6380/3")
    cluster = RedisTarget("rediss+cluster://user:s%40cret@a:7000,[::1]:7001,b")
    assert (cluster.kind, cluster.ssl) == ("cluster", True)
    assert cluster.nodes == [("a", 7000), ("::1", 7001), ("b", 6379)]
    assert (cluster.username, cluster.password) == ("user", "s@cret")
    sentinel = RedisTarget("redis+sentinel://:pw@s1,s2:26380/my%20master/4")
    assert (sentinel.kind, sentinel.service, sentinel.db) == ("sentinel", "my master", 4)
    assert sentinel.nodes == [("s1", 26379), ("s2", 26380)]
    assert (sentinel.username, sentinel.password, sentinel.ssl) == (None, "pw", False)
    config = cluster_config({"backend": "redis://h", "history": {"maxlen": 9}}, "n")
    assert config is not None and config.history_maxlen == 9
