"""The WebSocket opening handshake of ``WebSocketServer`` (RFC 6455 section 4.2).

The built-in handshake answers 101 itself (with ``beforeHandshakeResponse`` to add headers
and cookies, then ``open``), negotiating permessage-deflate (RFC 7692) and a subprotocol;
``on("handshake")`` replaces it: the callback answers with ``response.status(101)`` and
``response.end()``, and ``open`` is not called, exactly as in Swoole. A port with its own
settings (``Port.set``) brings its own subprotocols and callbacks (``conn.profile``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from ..constants import WEBSOCKET_STATUS_ACTIVE, WEBSOCKET_STATUS_CONNECTION
from ..exceptions import HttpProtocolError
from ..protocol.deflate import (
    DeflateConfig,
    DeflateParams,
    PerMessageDeflate,
    negotiate,
    parse_extensions,
)
from ..protocol.handshake import (
    accept_response,
    check_request,
    is_upgrade_request,
    select_subprotocol,
)
from ..protocol.http import ParsedRequest
from ..runtime.connection import Connection
from ..runtime.worker import Worker
from .http_server import HttpServer
from .proxies import OriginPolicy
from .request import Request
from .response import Response

__all__ = ["WebSocketHandshake"]

log = logging.getLogger("pyswoole")


class DiscardWriter:
    """The writer of the ``Response`` given to ``beforeHandshakeResponse``: only its
    headers and cookies are used, in the built-in 101 (here, or the SWOOLE_PROCESS
    master's)."""

    def write_response(self, data: bytes) -> bool:
        return False

    def send_file(self, path: str, offset: int, length: int) -> bool:
        return False

    def finish_response(self, response: Response, keep_alive: bool) -> None:
        pass


class WebSocketHandshake(HttpServer):
    """``HttpServer`` plus the WebSocket upgrade; ``WebSocketServer`` adds the frames."""

    #: ports may speak WebSocket (``Port.set({"open_websocket_protocol": True})``)
    _websocket_port = True

    def _configure_worker(self, worker: Worker) -> None:
        super()._configure_worker(worker)
        self._compression: bool = self._settings.get_value("websocket_compression")
        self._deflate_config: DeflateConfig = self._settings.deflate_config()
        self._websocket_enabled: bool = self._settings.get_value("open_websocket_protocol")
        self._subprotocols = self._settings.subprotocols()
        self._server_name: str = self._settings.get_value("server_name")
        self._origins = OriginPolicy.from_setting(self._settings.get_value("allowed_origins"))

    def upgrade(self, conn: Connection, parsed: ParsedRequest) -> None:
        profile = conn.profile
        enabled = self._websocket_enabled if profile is None else profile.websocket
        if not enabled or not is_upgrade_request(parsed.headers):
            # Some other Upgrade (h2c...): answer as plain HTTP, then close.
            conn.status = WEBSOCKET_STATUS_CONNECTION
            parsed.keep_alive = False
            self.http_request(conn, parsed)
            return
        if self._origins is not None and not self._origins.allows(parsed.headers):
            # allowed_origins: a browser page of another origin (cross-site WebSocket hijacking)
            self._refuse(conn, HttpProtocolError(403, "Forbidden"))
            return
        callbacks = self._callbacks if profile is None else profile.callbacks
        custom = callbacks.get("handshake")
        request: Request | None = None
        if custom is not None or "open" in callbacks or "beforeHandshakeResponse" in callbacks:
            try:
                request = self._make_request(conn, parsed)
            except HttpProtocolError as error:
                self._refuse(conn, error)
                return
        if custom is not None:
            assert request is not None
            self._custom_handshake(custom, conn, parsed, request)
            return
        try:
            key = check_request(parsed.method, parsed.version, parsed.headers)
        except HttpProtocolError as error:
            self._refuse(conn, error)
            return
        offered = self._subprotocols if profile is None else profile.subprotocols
        subprotocol = select_subprotocol(parsed.headers, offered) if offered else None
        try:
            extensions = self._negotiate(conn, parsed)
        except HttpProtocolError as error:
            self._refuse(conn, error)
            return
        if request is None and self._proxies is not None:
            self._forwarded_client(conn, parsed)  # get_client_info shows the proxied client
        before = callbacks.get("beforeHandshakeResponse")
        if before is None:
            self._accept(conn, request, key, subprotocol, extensions, ())
            return
        assert request is not None
        response = Response(conn.fd, DiscardWriter(), server_name="")

        def finish(_result: Any = None) -> None:
            if conn.closed:
                return
            extra = response.header_items()
            extra.extend(("Set-Cookie", cookie) for cookie in response.cookies)
            self._accept(conn, request, key, subprotocol, extensions, extra)

        try:
            result = before(self, request, response)
        except Exception:
            log.exception("exception in beforeHandshakeResponse callback")
            finish()
            return
        if result is not None and hasattr(result, "__await__"):
            self.spawn(_then(result, finish))
        else:
            finish()

    def _accept(
        self,
        conn: Connection,
        request: Request | None,
        key: str,
        subprotocol: str | None,
        extensions: str | None,
        extra: Iterable[tuple[str, str]],
    ) -> None:
        head = accept_response(
            key,
            subprotocol=subprotocol,
            extensions=extensions,
            extra_headers=extra,
            server_name=self._server_name,
        )
        on_open = self._callback(conn, "open")
        conn.accept_websocket(
            head, on_open=None if on_open is None else lambda: self._call(on_open, self, request)
        )

    def _negotiate(self, conn: Connection, parsed: ParsedRequest) -> str | None:
        """permessage-deflate (RFC 7692): the response header value, or None."""
        if not self._compression:
            return None
        offers = [v for k, v in parsed.headers if k == "sec-websocket-extensions"]
        if not offers:
            return None
        agreed = negotiate(offers, self._deflate_config)
        if agreed is None:
            return None
        extensions, params = agreed
        conn.deflate = PerMessageDeflate(params, self._deflate_config)
        return extensions

    def handshake_accepted(self, conn: Connection, response: object) -> None:
        """A custom handshake's 101: compression is what its headers finally say."""
        headers = getattr(response, "headers", {})
        answer = next(
            (v for k, v in headers.items() if k.lower() == "sec-websocket-extensions"), None
        )
        if answer is None or conn.deflate is None:
            conn.deflate = None
        else:
            params = _params_from_response(answer)
            conn.deflate = (
                None if params is None else PerMessageDeflate(params, self._deflate_config)
            )
        conn.accept_websocket(b"")

    def _custom_handshake(
        self,
        callback: Callable[..., Any],
        conn: Connection,
        parsed: ParsedRequest,
        request: Request,
    ) -> None:
        """``on("handshake")``: the callback answers; a 101 it ends makes a WebSocket."""
        response = self._make_response(conn, parsed)
        response.keep_alive = False
        # As Swoole does: the agreed extension is added unless the callback sets the header.
        try:
            extensions = self._negotiate(conn, parsed)
        except HttpProtocolError:
            extensions = None
        if extensions is not None:
            response.header("Sec-WebSocket-Extensions", extensions)

        def after(result: Any) -> None:
            if conn.closed or conn.status == WEBSOCKET_STATUS_ACTIVE or response.ended:
                return
            if result is not False:
                log.warning(
                    "handshake callback returned without response.end(); closing fd %d", conn.fd
                )
            conn.close()

        self._run_handler(callback, request, response, conn, after)


async def _then(awaitable: Any, callback: Callable[[Any], None]) -> None:
    try:
        result = await awaitable
    except Exception:
        log.exception("exception in async callback")
        result = None
    callback(result)


def _params_from_response(value: str) -> DeflateParams | None:
    """The parameters of a permessage-deflate response a custom handshake wrote itself."""
    try:
        extensions = parse_extensions([value])
    except HttpProtocolError:
        return None
    for name, params in extensions:
        if name != "permessage-deflate":
            continue
        found = dict(params)
        try:
            return DeflateParams(
                server_no_context_takeover="server_no_context_takeover" in found,
                client_no_context_takeover="client_no_context_takeover" in found,
                server_max_window_bits=int(found.get("server_max_window_bits") or 15),
                client_max_window_bits=int(found.get("client_max_window_bits") or 15),
            )
        except ValueError:
            return None
    return None
