"""What each connection calls on its server (``runtime.connection.Application``): a mixin
of :class:`~.base.Server` with the plain-TCP answers; ``HttpServer`` and
``WebSocketServer`` override the HTTP and WebSocket ones. Internal: not for applications."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..constants import WEBSOCKET_STATUS_ACTIVE
from ..exceptions import HttpProtocolError
from ..protocol.http import ParsedRequest
from ..runtime.connection import Connection
from .response import error_response

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["ConnectionEvents"]


class ConnectionEvents:
    """Mixin of :class:`~.base.Server`: the runtime's ``Application`` protocol."""

    if TYPE_CHECKING:
        _settings: Settings
        _closed_actively: set[int]

        def _callback(self, conn: Connection, event: str) -> Callable[..., Any] | None: ...

        def _call(self, callback: Callable[..., Any], *args: Any) -> Any: ...

        def spawn(self, awaitable: Awaitable[Any]) -> asyncio.Task[Any]: ...

    def handshake_accepted(self, conn: Connection, response: object) -> None:
        conn.accept_websocket(b"")

    def close_barrier(self, conn: Connection) -> asyncio.Future[Any] | None:
        return None  # the message callbacks ran here: their replies are written already

    def callback_result(self, result: Any) -> Any:
        """What a callback returned: an awaitable becomes a task (returned), else as is."""
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            return self.spawn(result)
        return result

    def receive(self, conn: Connection, data: bytes) -> None:
        callback = self._callback(conn, "receive")
        if callback is not None:
            self._call(callback, self, conn.fd, 0, data)

    def http_request(self, conn: Connection, request: ParsedRequest) -> None:
        self._refuse(conn, HttpProtocolError(400, "not an HTTP server"))

    def upgrade(self, conn: Connection, request: ParsedRequest) -> None:
        self.http_request(conn, request)

    def _refuse(self, conn: Connection, error: HttpProtocolError) -> None:
        """Answer ``error`` (its status, reason and headers) and close the connection,
        lingering: the client may still be sending, and an RST could destroy the answer."""
        conn.write(self.http_error(conn, error))
        conn.close(linger=True)

    def http_error(self, conn: Connection, error: HttpProtocolError) -> bytes:
        return error_response(
            error.status,
            server_name=self._settings.get_value("server_name"),
            reason=error.reason,
            headers=error.headers,
        )

    def connection_lost(self, conn: Connection) -> None:
        # reactor_id -1 when close()/disconnect() closed it (Swoole's CLOSE_ACTIVELY)
        reactor_id = 0
        actively = self._closed_actively
        if actively and conn.fd in actively:
            actively.discard(conn.fd)
            reactor_id = -1
        if conn.status != WEBSOCKET_STATUS_ACTIVE and conn.ws is None:
            disconnect = self._callback(conn, "disconnect")
            if disconnect is not None:
                self._call(disconnect, self, conn.fd)
                return
        close = self._callback(conn, "close")
        if close is not None:
            self._call(close, self, conn.fd, reactor_id)
