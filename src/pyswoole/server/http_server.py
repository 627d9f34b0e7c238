"""``HttpServer``: Swoole's ``Swoole\\Http\\Server`` — ``on("request", fn(request, response))``.

Each request gets a :class:`Request` and a :class:`Response` writing through the
connection. A handler that raises gets a 500 (if nothing was sent yet) and its traceback is
logged; ``async def`` handlers run as tasks and may end the response whenever they like.
Responses leave in request order even when pipelined requests are answered asynchronously
(the connection hands over the next request only when the current response is complete).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..exceptions import HttpProtocolError
from ..protocol.http import ParsedRequest
from ..runtime.connection import Connection
from .base import Server
from .events import EVENTS
from .request import Request
from .response import Response

__all__ = ["HttpServer"]

log = logging.getLogger("pyswoole")


class _Closable(Protocol):
    def close(self) -> None: ...


class HttpServer(Server):
    """An HTTP/1.1 server (keep-alive, pipelining, chunked bodies) with Swoole's API."""

    _required_events: tuple[str, ...] = ("request",)
    _raw_tcp = False

    def _supported_events(self) -> set[str]:
        return set(EVENTS) - {"receive", "handshake", "beforeHandshakeResponse", "open", "message"}

    # -- requests -------------------------------------------------------------------------

    def make_request(self, conn: Connection, parsed: ParsedRequest) -> Request:
        """Build the ``Request`` of ``parsed`` (raises ``HttpProtocolError`` on a bad body)."""
        get = self._settings.get_value
        now = time.time()
        # Swoole's master_time: when the connection last received data (last_recv_time).
        received = now - max(0.0, time.monotonic() - conn.last_recv) if conn.last_recv else now
        request = Request.from_parsed(
            parsed,
            fd=conn.fd,
            remote_addr=conn.remote_addr,
            remote_port=conn.remote_port,
            server_port=conn.server_port,
            request_time=now,
            upload_tmp_dir=get("upload_tmp_dir") or None,
            parse_cookie=bool(get("http_parse_cookie")),
            master_time=int(received),
        )
        if not get("http_parse_post"):
            request.post = None
        return request

    def make_response(self, conn: Connection, parsed: ParsedRequest) -> Response:
        worker = self._worker
        keep_alive = parsed.keep_alive and not (worker is not None and worker.stopping)
        return Response(
            conn.fd,
            conn,
            method=parsed.method,
            version=parsed.version,
            keep_alive=keep_alive,
            server_name=self._settings.get_value("server_name"),
        )

    def http_request(self, conn: Connection, parsed: ParsedRequest) -> None:
        worker = self._worker
        if worker is not None:
            worker.request_count += 1
        callback = self._callbacks.get("request")
        if callback is None or not self._settings.get_value("open_http_protocol"):
            # Swoole: a WebSocket server without on("request") answers plain HTTP with 400.
            self._refuse(conn, HttpProtocolError(400, ""))
            return
        try:
            request = self.make_request(conn, parsed)
        except HttpProtocolError as error:
            self._refuse(conn, error)
            return
        response = self.make_response(conn, parsed)
        self.run_handler(callback, request, response, conn)

    def run_handler(
        self,
        callback: Callable[..., Any],
        request: Request,
        response: Response,
        conn: _Closable,
        after: Callable[[Any], None] | None = None,
    ) -> None:
        """Call a request-style handler; on an exception answer 500; then ``after(result)``."""
        try:
            result = callback(request, response)
        except Exception:
            log.exception("exception in %s handler", getattr(callback, "__name__", "request"))
            request.cleanup()
            self._server_error(response, conn)
            return
        if isinstance(result, Awaitable):
            self.spawn(self._finish_async(result, request, response, conn, after))
            return
        request.cleanup()
        if after is not None:
            after(result)

    async def _finish_async(
        self,
        awaitable: Awaitable[Any],
        request: Request,
        response: Response,
        conn: _Closable,
        after: Callable[[Any], None] | None,
    ) -> None:
        try:
            result = await awaitable
        except Exception:
            log.exception("exception in async request handler")
            self._server_error(response, conn)
            return
        finally:
            request.cleanup()
        if after is not None:
            after(result)

    def _server_error(self, response: Response, conn: _Closable) -> None:
        """500 if nothing was sent yet; otherwise the response is cut, so close."""
        if response.ended:
            return
        if response.is_writable() and not response.head_sent:
            response.status(500)
            response.header("Connection", "close")
            response.keep_alive = False
            response.end("<html><body><h2>HTTP 500 Internal Server Error</h2></body></html>")
        else:
            conn.close()
