"""``Server\\Port``: an extra listening address with its own settings and callbacks.

As in Swoole (``Port::set``/``Port::on``, ext-src/swoole_server_port.cc):

- a port on which ``set()`` was never called speaks the server's protocol with the server's
  settings; one that called ``set()`` has its own protocol settings only: it speaks HTTP
  only with ``open_http_protocol``, WebSocket only with ``open_websocket_protocol``, and is a
  raw TCP port (``on("receive")``) otherwise; its limits are its own (Swoole's defaults
  where it did not set them);
- a port's callbacks replace the server's for that port's connections; the server's serve
  the events the port did not set.

pyswoole takes the protocol keys per port (below); the others a Swoole port accepts
(``heartbeat_idle_time``, the buffer watermarks, ``websocket_compression``...) are the
server's here: set per port, they are an error saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError, ServerStateError
from ..runtime.listener import Listener, PortProfile
from .callbacks import EventRegistration
from .events import adapt, canonical_event
from .process_setup import connection_options
from .setting_keys import ALIASES, REFUSED, SETTINGS
from .settings import Settings

if TYPE_CHECKING:
    from .base import Server

__all__ = ["PORT_EVENTS", "PORT_KEYS", "Port"]

#: what ``Port.on()`` takes (Swoole's port events; ``packet`` is UDP: not served)
PORT_EVENTS = frozenset(
    {
        "connect",
        "receive",
        "close",
        "disconnect",
        "request",
        "handshake",
        "beforeHandshakeResponse",
        "open",
        "message",
        "bufferFull",
        "bufferEmpty",
    }
)

#: the settings a port may have of its own in pyswoole (the ssl_* keys: runtime/tls.py)
PORT_KEYS = frozenset(
    {
        "open_http_protocol",
        "open_websocket_protocol",
        "package_max_length",
        "http_max_header_size",
        "websocket_subprotocol",
        "open_websocket_close_frame",
        "open_websocket_ping_frame",
        "open_websocket_pong_frame",
        "open_tcp_nodelay",
        "open_tcp_keepalive",
        "tcp_keepidle",
        "tcp_keepinterval",
        "tcp_keepcount",
        "tcp_user_timeout",
        "kernel_socket_recv_buffer_size",
        "kernel_socket_send_buffer_size",
        "tcp_fastopen",
        "tcp_defer_accept",
        "backlog",
        *(name for name, s in SETTINGS.items() if name.startswith("ssl_") and s.effect != REFUSED),
    }
)


class Port(EventRegistration):
    """One listening address of a server (``server.ports``, what ``listen()`` returns)."""

    __slots__ = ("_callbacks", "_listener", "_raw_callbacks", "_server", "_settings")

    def __init__(self, server: Server, listener: Listener) -> None:
        self._server = server
        self._listener = listener
        self._settings: Settings | None = None
        self._callbacks: dict[str, Callable[..., Any]] = {}
        self._raw_callbacks: dict[str, Callable[..., Any]] = {}

    @property
    def host(self) -> str:
        return self._listener.host

    @property
    def port(self) -> int:
        return self._listener.port

    @property
    def type(self) -> int:
        return self._listener.sock_type

    @property
    def sock(self) -> Any:
        return self._listener.sock

    @property
    def setting(self) -> dict[str, Any]:
        """What was passed to this port's ``set()``."""
        return {} if self._settings is None else dict(self._settings)

    @property
    def connections(self) -> list[int]:
        """The open fds of this port (in this process's view, as ``server.connections``)."""
        port = self._listener.port
        return [
            fd
            for fd in self._server.connections
            if (info := self._server.get_client_info(fd)) and info.get("server_port") == port
        ]

    def _is_main(self) -> bool:
        return self._listener is self._server._listeners[0]

    def set(self, settings: Mapping[str, Any] | None = None, **kwargs: Any) -> bool:
        """This port's own protocol settings (Swoole's ``Port::set``); on the main port,
        the same as ``server.set()``."""
        if self._server._started:
            raise ServerStateError("set() must be called before start()")
        values = {**(settings or {}), **kwargs}
        if self._is_main():
            return self._server.set(values)
        for key in values:
            name = ALIASES.get(key, key)
            if name in SETTINGS and name not in PORT_KEYS and SETTINGS[name].effect != "refused":
                raise ConfigError(
                    f"setting {key!r} cannot be set per port in pyswoole: set it on the server"
                )
        checked = Settings() if self._settings is None else self._settings
        checked.update(values)  # unknown, refused or ill-typed keys raise here
        self._settings = checked
        return True

    # on() (callbacks.EventRegistration, typed per event) is Swoole's ``Port::on``: this
    # port's callback for an event; the server's serve the events a port does not set. On the
    # main port, the same as ``server.on()``.
    def _event_name(self, event: str) -> str:
        name = canonical_event(event)
        if name not in PORT_EVENTS:
            raise ConfigError(
                f"event {name!r} is not a port event ({', '.join(sorted(PORT_EVENTS))})"
            )
        return name

    def _register(self, name: str, callback: Callable[..., Any]) -> bool:
        if self._is_main():
            return self._server.on(name, callback)
        if self._server._started:
            raise ServerStateError("on() must be called before start()")
        self._raw_callbacks[name] = callback
        self._callbacks[name] = adapt(name, callback)
        return True

    def get_callback(self, event: str) -> Callable[..., Any] | None:
        name = canonical_event(event)
        if self._is_main():
            return self._server.get_callback(name)
        return self._raw_callbacks.get(name)

    getCallback = get_callback

    def get_socket(self) -> Any:
        """This port's listening socket once bound (Swoole's ``Port::getSocket``)."""
        return self._listener.sock

    getSocket = get_socket

    @property
    def has_own(self) -> bool:
        """Whether this port differs from the server (its own settings or callbacks)."""
        return not self._is_main() and (self._settings is not None or bool(self._callbacks))

    def check_startable(self) -> None:
        if self._settings is not None:
            self._settings.check_startable()

    def build_profile(self, server_callbacks: dict[str, Callable[..., Any]]) -> PortProfile:
        """The runtime view of this port: protocol, limits and callbacks."""
        server = self._server
        own = self._settings
        get = server._settings.get_value if own is None else own.get_value
        if own is None:
            websocket = bool(getattr(server, "_websocket_port", False))
            raw = server._raw_tcp
        else:
            websocket = bool(own.get("open_websocket_protocol", False))
            raw = not (websocket or own.get("open_http_protocol", False))
        if websocket and not getattr(server, "_websocket_port", False):
            raise ConfigError(
                f"port {self.host}:{self.port}: open_websocket_protocol needs a WebSocketServer"
            )
        if not raw and server._raw_tcp:
            raise ConfigError(f"port {self.host}:{self.port}: HTTP needs an HttpServer")
        callbacks = {**server_callbacks, **self._callbacks} if self._callbacks else server_callbacks
        if raw and "receive" not in callbacks:
            raise ConfigError(
                f"port {self.host}:{self.port} is a raw TCP port: it needs on('receive') (a "
                "port that called set(), e.g. for its ssl_* keys, speaks WebSocket or HTTP "
                "only with open_websocket_protocol or open_http_protocol, as in Swoole)"
            )
        if websocket and "message" not in callbacks:
            raise ConfigError(f"port {self.host}:{self.port} needs on('message')")
        return PortProfile(
            raw=raw,
            websocket=websocket,
            callbacks=callbacks,
            max_message_size=get("package_max_length"),
            max_header_size=get("http_max_header_size"),
            max_body_size=get("package_max_length"),
            deliver_close=get("open_websocket_close_frame"),
            deliver_ping=get("open_websocket_ping_frame"),
            deliver_pong=get("open_websocket_pong_frame"),
            subprotocols=(server._settings if own is None else own).subprotocols(),
            sock_options=connection_options(get),
            on_message=self._callbacks.get("message"),
        )

    def __repr__(self) -> str:
        return f"Port(host={self.host!r}, port={self.port})"
