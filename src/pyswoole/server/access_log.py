"""The access log (setting ``access_log``, off by default): one line per HTTP response and
per WebSocket open and close, on the ``pyswoole.access`` logger at INFO.

Swoole has no access log (its users put nginx in front); this is pyswoole's own, in the
spirit of uvicorn's and nginx's::

    127.0.0.1:50712 fd 3 "GET /chat?room=1 HTTP/1.1" 200 1234 0.8ms
    127.0.0.1:50714 fd 4 websocket open
    127.0.0.1:50714 fd 4 websocket close 1000 12.301s

- HTTP: logged when the response is complete (``Response.end()``, the end of a
  ``sendfile()`` or of a static file), by the process that ran the handler: method, target,
  version, status, the bytes handed to the connection (head included, as nginx's
  ``$bytes_sent``; a file counts its length) and the time from the response's creation
  (the request was parsed) to its end.
- WebSocket: logged by the process that owns the socket (the worker in SWOOLE_BASE, the
  master in SWOOLE_PROCESS), at the upgrade and when the connection is gone, with the close
  code of the closing handshake (1006 when there was none, RFC 6455 section 7.1.5) and the
  time since the connection was accepted.

``pyswoole.access`` propagates to the ``pyswoole`` logger: same handler (stderr or
``log_file``) and level (``log_level`` above info hides it), or route it with
``log_config``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..runtime.connection import Connection
    from .request import Request
    from .response import Response, ResponseWriter

__all__ = [
    "AccessWriter",
    "access_writer",
    "connection_writer",
    "request_writer",
    "websocket_event",
]

access = logging.getLogger("pyswoole.access")

_monotonic = time.monotonic


def _peer(conn: Any) -> str:
    try:
        host, port = conn.remote_addr, conn.remote_port
    except Exception:  # a connection already gone, or a writer that is no connection
        return "-"
    if not host:
        return "-"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class AccessWriter:
    """A :class:`ResponseWriter` that counts what a response writes and logs it at the end."""

    __slots__ = ("_bytes", "_inner", "_line", "_started")

    def __init__(self, inner: ResponseWriter, line: str) -> None:
        self._inner = inner
        self._line = line
        self._bytes = 0
        self._started = _monotonic()

    def write_response(self, data: bytes) -> bool:
        self._bytes += len(data)
        return self._inner.write_response(data)

    def send_file(self, path: str, offset: int, length: int) -> bool:
        self._bytes += length
        return self._inner.send_file(path, offset, length)

    def finish_response(self, response: Response, keep_alive: bool) -> None:
        self._inner.finish_response(response, keep_alive)
        elapsed = (_monotonic() - self._started) * 1000
        access.info("%s %d %d %.1fms", self._line, response.status_code, self._bytes, elapsed)

    def __getattr__(self, name: str) -> Any:  # anything else a writer offers
        return getattr(self._inner, name)


def access_writer(
    inner: ResponseWriter, fd: int, peer: str, method: str, target: str, version: str
) -> AccessWriter:
    """Wrap the writer of one response: ``peer`` is ``host:port`` or ``-``."""
    return AccessWriter(inner, f'{peer} fd {fd} "{method} {target} HTTP/{version}"')


def connection_writer(conn: Connection, method: str, target: str, version: str) -> AccessWriter:
    """:func:`access_writer` for a response written straight to ``conn``."""
    return access_writer(conn, conn.fd, _peer(conn), method, target, version)


def websocket_event(conn: Connection, opened: bool) -> None:
    """The runtime's hook (``Worker.on_websocket``): an upgrade, or a WebSocket gone."""
    if opened:
        access.info("%s fd %d websocket open", _peer(conn), conn.fd)
        return
    ws = conn.ws
    code = 1006 if ws is None else ws.close_code
    started = conn.connect_time
    elapsed = time.time() - started if started else 0.0
    access.info("%s fd %d websocket close %d %.3fs", _peer(conn), conn.fd, code, elapsed)


def request_writer(inner: ResponseWriter, request: Request, version: str) -> AccessWriter:
    """:func:`access_writer` for a SWOOLE_PROCESS worker's response (its relay to the
    master), described from the forwarded :class:`Request`."""
    server = request.server
    target = str(server.get("request_uri", "/"))
    query = server.get("query_string")
    if query:
        target = f"{target}?{query}"
    host = str(server.get("remote_addr", ""))
    peer = "-" if not host else (f"[{host}]" if ":" in host else host)
    if host:
        peer += f":{server.get('remote_port', 0)}"
    method = str(server.get("request_method", "GET"))
    return access_writer(inner, request.fd, peer, method, target, version)
