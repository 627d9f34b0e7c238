"""What a Swoole app may do that pyswoole refuses at once, saying so (rows of
docs/swoole-differences.md): nothing here binds a port or forks."""

from __future__ import annotations

import pytest

from pyswoole import ConfigError, HttpServer, Server, WebSocketServer


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
