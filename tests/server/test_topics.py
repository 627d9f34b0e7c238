"""server/topics.py without running a server: argument checks, the ``cluster`` setting, and
the clear error when redis-py is missing. (Delivery: tests/integration/test_topics.py and
test_cluster.py.)"""

from __future__ import annotations

import sys

import pytest

from pyswoole import WebSocketServer
from pyswoole.constants import WEBSOCKET_OPCODE_PING
from pyswoole.exceptions import ConfigError


def make() -> WebSocketServer:
    server = WebSocketServer("127.0.0.1", 0)
    server.on("message", lambda server, frame: None)
    return server


def test_arguments_are_checked() -> None:
    server = make()
    with pytest.raises(TypeError):
        server.subscribe(1, 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        server.subscribe(1, "")
    with pytest.raises(ValueError):
        server.publish("t" * 1025, "x")
    with pytest.raises(ValueError, match="opcode"):
        server.publish("t", "x", WEBSOCKET_OPCODE_PING)
    with pytest.raises(TypeError):
        server.publish("t", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        server.subscribe("1", "t")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        server.push_user(0, "x")
    with pytest.raises(TypeError):
        server.push_user(True, "x")


def test_nothing_to_deliver_before_start() -> None:
    server = make()
    assert server.publish("t", "x") == 0
    assert server.publish("t", b"\x00", 2, exclude_fd=3) == 0
    assert server.subscribers("t") == [] and server.topic_count("t") == 0
    assert server.topics(1) == []
    assert server.subscribe(1, "t") is False  # no such connection
    assert server.push_user(5, "x") == 0


def test_cluster_setting_is_checked_at_set() -> None:
    server = make()
    with pytest.raises(ConfigError, match="Redis URL"):
        server.set({"cluster": {"backend": "http://127.0.0.1"}})
    with pytest.raises(ConfigError, match="unknown keys"):
        server.set({"cluster": {"backend": "redis://127.0.0.1", "ttl": 3}})
    server.set({"cluster": {"backend": "redis://127.0.0.1:6379/0", "node_id": "a"}})
    assert server.setting["cluster"]["node_id"] == "a"


def test_missing_redis_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """``cluster`` without redis-py: a ConfigError from start(), before anything binds or
    forks, naming the extra to install."""
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis -> ImportError
    server = make()
    server.set({"cluster": {"backend": "redis://127.0.0.1:6379/0"}})
    with pytest.raises(ConfigError, match=r"pyswoole\[redis\]"):
        server.start()
