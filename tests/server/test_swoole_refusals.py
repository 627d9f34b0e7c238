"""What a Swoole app may do that pyswoole refuses at once, saying so (rows of
docs/swoole-differences.md): nothing here binds a port or forks."""

from __future__ import annotations

import pytest

from pyswoole import SWOOLE_PROCESS, ConfigError, HttpServer, Server, WebSocketServer


def test_a_raw_tcp_server_is_refused_in_process_mode() -> None:
    """Swoole's SWOOLE_PROCESS master forwards on('receive') data to the workers; pyswoole's
    master forwards WebSocket and HTTP events only (server/process_mode.py)."""
    server = Server("127.0.0.1", 0, SWOOLE_PROCESS)
    server.on("receive", lambda server, fd, reactor_id, data: None)
    with pytest.raises(ConfigError, match=r"on\('receive'\) is not supported in SWOOLE_PROCESS"):
        server.start()
    assert server.get_socket() is None  # refused before binding


@pytest.mark.parametrize(
    ("cls", "event"),
    [(WebSocketServer, "receive"), (HttpServer, "receive"), (HttpServer, "message")],
)
def test_an_event_the_servers_protocol_never_fires_is_refused_by_on(
    cls: type[Server], event: str
) -> None:
    """Swoole registers it on the primary port, where it is never called (and extra ports
    without their own callback fall back to it); pyswoole says so at once: register it on
    the port that serves that protocol (``port.on``)."""
    server = cls("127.0.0.1", 0)
    with pytest.raises(ConfigError, match=f"event '{event}' is not available on {cls.__name__}"):
        server.on(event, lambda *args: None)
    port = server.listen("127.0.0.1", 0)
    assert port.on(event, lambda *args: None) is True
