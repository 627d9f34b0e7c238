"""``HttpServer``: Swoole's ``Swoole\\Http\\Server`` — ``on("request", fn(request, response))``.

Each request gets a :class:`Request` and a :class:`Response` writing through the
connection. A handler that raises gets a 500 (if nothing was sent yet) and its traceback is
logged; ``async def`` handlers run as tasks and may end the response whenever they like.
Responses leave in request order even when pipelined requests are answered asynchronously
(the connection hands over the next request only when the current response is complete).

As Swoole: with ``enable_static_handler``, a request without a body is first looked up
under ``document_root`` (:mod:`pyswoole.server.static`) and ``on("request")`` only gets it
if it is not a static file; with ``http_compression`` (on by default, as Swoole) a
response's body is compressed when the client accepts it
(:mod:`pyswoole.protocol.http_compression`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..exceptions import ConfigError, HttpProtocolError
from ..metrics import MetricsExporter, exporter_for
from ..protocol.http import ParsedRequest
from ..protocol.http_compression import HttpCompression
from ..runtime.connection import Connection
from ..runtime.worker import Worker
from .access_log import connection_writer
from .base import Server
from .callback_errors import describe_async, describe_call
from .events import EVENTS
from .proxies import TrustedProxies
from .request import Request
from .response import Response
from .static import StaticHandler

__all__ = ["HttpServer"]

log = logging.getLogger("pyswoole")


class _Closable(Protocol):
    def close(self) -> None: ...


class HttpServer(Server):
    """An HTTP/1.1 server (keep-alive, pipelining, chunked bodies) with Swoole's API."""

    _required_events: tuple[str, ...] = ("request",)
    _raw_tcp = False
    #: set from the settings when a worker is built (None: off)
    _static: StaticHandler | None = None
    _document_root = ""
    _http_compression: HttpCompression | None = None
    #: ``trusted_proxies`` (None: no proxy is trusted, the default)
    _proxies: TrustedProxies | None = None
    #: the ``metrics`` setting's exporter (pyswoole/metrics.py; None: off)
    _metrics: MetricsExporter | None = None
    #: settings read per request, cached at the first (set() is refused once started)
    _request_opts: tuple[str | None, bool, bool] | None = None
    _response_opts: tuple[bool, str] | None = None
    _open_http_opt: bool | None = None

    def _open_http(self) -> bool:
        open_http = self._open_http_opt
        if open_http is None:
            open_http = self._open_http_opt = bool(self._settings.get_value("open_http_protocol"))
        return open_http

    def _supported_events(self) -> set[str]:
        return set(EVENTS) - {"receive", "handshake", "beforeHandshakeResponse", "open", "message"}

    def start(self) -> bool:
        """As Swoole's ``set()``: a static handler needs a ``document_root`` that exists."""
        get = self._settings.get_value
        root = get("document_root")
        if get("enable_static_handler") and root and not os.path.isdir(root):
            raise ConfigError(f"setting 'document_root': document_root[{root}] does not exist")
        # Resolved now, as Swoole's set_document_root: daemonize may change the directory.
        self._document_root = os.path.realpath(root) if root else ""
        return super().start()

    def _configure_worker(self, worker: Worker) -> None:
        super()._configure_worker(worker)
        get = self._settings.get_value
        self._static = None
        root = self._document_root or get("document_root")
        if get("enable_static_handler"):
            if root:
                self._static = StaticHandler(
                    root,
                    get("static_handler_locations") or (),
                    get("http_index_files") or (),
                    get("http_autoindex"),
                    get("url_rewrite_rules"),
                )
            else:
                log.warning("enable_static_handler is set without document_root: no file is served")
        self._proxies = TrustedProxies.from_settings(get("trusted_proxies"), get("proxy_headers"))
        self._http_compression = None
        if get("http_compression"):
            self._http_compression = HttpCompression(
                get("http_compression_level"),
                get("http_compression_min_length"),
                get("http_compression_types"),
            )
        self._metrics = exporter_for(self, worker)

    # -- requests -------------------------------------------------------------------------

    def _make_request(self, conn: Connection, parsed: ParsedRequest) -> Request:
        """Build the ``Request`` of ``parsed`` (raises ``HttpProtocolError`` on a bad body)."""
        upload_tmp_dir, parse_cookie, parse_post = self._request_opts or self._request_options()
        now = time.time()
        if self._proxies is not None:
            remote_addr, remote_port = self._forwarded_client(conn, parsed)
        else:
            remote_addr, remote_port = conn._peer or conn._peer_info()
        # (positional: a keyword call costs ~1k instructions more, once per request)
        request = Request.from_parsed(
            parsed,
            conn.fd,
            remote_addr,
            remote_port,
            conn.server_port,
            now,
            upload_tmp_dir,
            parse_cookie,
            None,
            # Swoole's master_time: when the connection last received data (made at the
            # first read of request.server, from this monotonic time)
            conn.last_recv,
        )
        if not parse_post:
            request.post = None
        return request

    def _request_options(self) -> tuple[str | None, bool, bool]:
        """``upload_tmp_dir``, ``http_parse_cookie``, ``http_parse_post``: read once (a
        settings lookup per request and key cost more than the rest of the request)."""
        options = self._request_opts
        if options is None:
            get = self._settings.get_value
            options = self._request_opts = (
                get("upload_tmp_dir") or None,
                bool(get("http_parse_cookie")),
                bool(get("http_parse_post")),
            )
        return options

    def _forwarded_client(self, conn: Connection, parsed: ParsedRequest) -> tuple[str, int]:
        """The client a trusted proxy names (:mod:`.proxies`), recorded as the connection's
        address (``get_client_info``, in every process) until its next request says again."""
        assert self._proxies is not None
        transport = conn.transport
        info = None if transport is None else transport.get_extra_info("peername")
        # the TCP peer, not conn.remote_addr: that may be the previous request's client
        peer = (info[0], info[1]) if isinstance(info, tuple) else ("", 0)
        client = self._proxies.client(peer, parsed.headers)
        if client != (conn.remote_addr, conn.remote_port):
            conn._peer = client
            if self._procs is not None:  # the other processes read the shared table
                self._procs.table.set_peer(conn.fd, client[0], client[1])
        return client

    def _make_response(self, conn: Connection, parsed: ParsedRequest) -> Response:
        worker = self._worker
        keep_alive = parsed.keep_alive and not (worker is not None and worker.stopping)
        writer: Any = conn
        access_log, server_name = self._response_opts or self._response_options()
        if access_log:  # server/access_log.py
            writer = connection_writer(conn, parsed.method, parsed.target, parsed.version)
        return Response(conn.fd, writer, parsed.method, parsed.version, keep_alive, server_name)

    def _response_options(self) -> tuple[bool, str]:
        """``access_log`` and ``server_name``, read once."""
        options = self._response_opts
        if options is None:
            get = self._settings.get_value
            options = self._response_opts = (bool(get("access_log")), get("server_name"))
        return options

    def http_request(self, conn: Connection, parsed: ParsedRequest) -> None:
        metrics = self._metrics
        if metrics is not None:  # (a scrape is not counted as a request)
            if parsed.path == metrics.path:
                metrics.serve(self._make_response(conn, parsed))
                return
            metrics.tally.http_requests += 1
        worker = self._worker
        if worker is not None:
            worker.state.request_count += 1
        static = self._static
        # As Swoole's Port_onRead_http: a bodiless request may be a file (before the
        # request callback, in the process owning the connection).
        if static is not None and not parsed.body:
            found = static.resolve(parsed.path)
            if found is not None:
                static.answer(parsed, found, self._make_response(conn, parsed))
                return
        profile = conn.profile  # (self._callback, inline: once per request)
        if profile is None:
            callback = self._callbacks.get("request")
        else:
            callback = profile.callbacks.get("request")
        if callback is None or (profile is None and not (self._open_http_opt or self._open_http())):
            # Swoole: a WebSocket server without on("request") answers plain HTTP with 400.
            self._refuse(conn, HttpProtocolError(400, ""))
            return
        try:
            request = self._make_request(conn, parsed)
        except HttpProtocolError as error:
            self._refuse(conn, error)
            return
        response = self._make_response(conn, parsed)
        self._run_handler(callback, request, response, conn)

    def _run_handler(
        self,
        callback: Callable[..., Any],
        request: Request,
        response: Response,
        conn: _Closable,
        after: Callable[[Any], None] | None = None,
    ) -> None:
        """Call a request-style handler; on an exception answer 500; then ``after(result)``."""
        compression = self._http_compression
        if compression is not None:
            accept = request.header.get("accept-encoding")
            if accept is not None:  # (none: identity, the codec's default)
                if isinstance(accept, list):  # the field repeated: one list (RFC 9110 5.3)
                    accept = ", ".join(accept)
                response.codec = compression.negotiate(accept)
        try:
            result = callback(request, response)
        except Exception:
            what = describe_call(self._callbacks, self._raw_callbacks, callback, (request,))
            log.exception("exception in %s", what)
            request.cleanup()
            self._server_error(response, conn)
            return
        if result is not None and isinstance(result, Awaitable):
            self.spawn(self._finish_async(result, request, response, conn, after))
            return
        if request._tmpfiles:
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
        except Exception as exc:  # the event and the fd, as the sync path
            log.exception("exception in %s", describe_async(self._raw_callbacks, awaitable, exc))
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
