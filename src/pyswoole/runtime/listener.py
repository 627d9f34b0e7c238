"""Listening sockets and what each one's connections are (Swoole's ports).

A :class:`Listener` is one ``listen()``: TCP, TCP6 or a unix socket path. A port whose
settings or callbacks differ from the server's (``Port.set()``/``Port.on()``) carries a
:class:`PortProfile`; its connections read their limits, frame delivery, socket options and
callbacks from it instead of from the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import stat
from typing import Any

from ..constants import SWOOLE_SOCK_UNIX_STREAM
from .tls import TlsConfig

__all__ = ["Listener", "PortProfile", "raise_nofile_limit"]


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (many connections need many fds)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


class PortProfile:
    """A port's own protocol settings and callbacks (Swoole's ``Port::set``/``Port::on``).

    ``raw``: no HTTP nor WebSocket on this port (``on("receive")`` gets the bytes);
    ``websocket``: upgrades accepted; ``callbacks``: the port's adapted callbacks (the
    server's for the events it does not set); ``on_message``: its ``message`` callback.
    """

    __slots__ = (
        "callbacks",
        "deliver_close",
        "deliver_ping",
        "deliver_pong",
        "max_body_size",
        "max_header_size",
        "max_message_size",
        "on_message",
        "raw",
        "sock_options",
        "subprotocols",
        "websocket",
    )

    def __init__(
        self,
        *,
        raw: bool,
        websocket: bool,
        callbacks: dict[str, Any],
        max_message_size: int,
        max_header_size: int,
        max_body_size: int,
        deliver_close: bool,
        deliver_ping: bool,
        deliver_pong: bool,
        subprotocols: list[str],
        sock_options: tuple[tuple[int, int, int], ...],
        on_message: Any = None,
    ) -> None:
        self.raw = raw
        self.websocket = websocket
        self.callbacks = callbacks
        #: the port's own message callback (None: the worker's, which SWOOLE_PROCESS's
        #: master replaces with its forwarding)
        self.on_message: Any = on_message
        self.max_message_size = max_message_size
        self.max_header_size = max_header_size
        self.max_body_size = max_body_size
        self.deliver_close = deliver_close
        self.deliver_ping = deliver_ping
        self.deliver_pong = deliver_pong
        self.subprotocols = subprotocols
        self.sock_options = sock_options


def _mode_of(path: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:
        return 0


class Listener:
    """A listening socket: ``host``, ``port`` (the bound one once started), ``sock_type``."""

    __slots__ = ("host", "port", "profile", "server", "sock", "sock_type", "tls")

    def __init__(self, host: str, port: int, sock_type: int) -> None:
        self.host = host
        self.port = port
        self.sock_type = sock_type
        self.sock: socket.socket | None = None
        self.server: asyncio.AbstractServer | None = None
        #: the port's own settings and callbacks, when it has any (else the server's)
        self.profile: PortProfile | None = None
        #: TLS (``sock_type | SWOOLE_SSL``): its settings and contexts (runtime/tls.py)
        self.tls: TlsConfig | None = None

    def bind(self, backlog: int) -> socket.socket:
        """Create, bind and listen; resolves ``port=0`` to the port the kernel chose. A
        ``SWOOLE_SOCK_UNIX_STREAM`` listener binds the path ``host`` (a stale socket file
        left there by an earlier run is replaced; any other file is an error)."""
        address: str | tuple[str, int]
        if self.sock_type == SWOOLE_SOCK_UNIX_STREAM:
            if stat.S_ISSOCK(_mode_of(self.host)):
                os.unlink(self.host)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address = self.host
        else:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            # IPPROTO_TCP, not 0: asyncio's loop sets TCP_NODELAY only on sockets whose
            # proto says TCP (base_events._set_nodelay), uvloop on every TCP socket; without
            # it a TLS close_notify waited for the client's delayed ACK (40 ms)
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            address = (self.host, self.port)
        try:
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        if sock.family != socket.AF_UNIX:
            self.port = sock.getsockname()[1]
        return sock

    def unlink(self) -> None:
        """Remove a unix listener's socket file (when the server that bound it stops)."""
        if self.sock_type == SWOOLE_SOCK_UNIX_STREAM:
            with contextlib.suppress(OSError):
                os.unlink(self.host)
