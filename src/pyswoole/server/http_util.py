"""What a Swoole HTTP response needs besides :class:`~pyswoole.server.response.Response`.

* :data:`REASONS`: Swoole 6.2's reason phrases (``get_status_message`` in swoole-src
  ``src/protocol/http.cc``); a code it does not know gets :data:`UNKNOWN_REASON`.
* :func:`http_date`: the ``Date`` value (RFC 9110 section 5.6.7 IMF-fixdate), cached per
  second as Swoole's ``http_set_date_header`` does.
* :func:`error_response`: the server's own small HTML error answers.
* :class:`NotInThisServer`: the ``Response`` methods that only Swoole's HTTP/2 or
  coroutine servers have; Swoole's async HTTP/1.1 server answers them with a warning and
  false, and so does pyswoole.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("pyswoole")

__all__ = ["REASONS", "UNKNOWN_REASON", "NotInThisServer", "error_response", "http_date", "unsafe"]

# Swoole's get_status_message() (src/protocol/http.cc), code -> reason phrase.
REASONS = {
    100: "Continue",
    101: "Switching Protocols",
    102: "Processing",
    103: "Early Hints",
    200: "OK",
    201: "Created",
    202: "Accepted",
    203: "Non-Authoritative Information",
    204: "No Content",
    205: "Reset Content",
    206: "Partial Content",
    207: "Multi-Status",
    208: "Already Reported",
    226: "IM Used",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    305: "Use Proxy",
    306: "(Unused)",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Payload Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    416: "Range Not Satisfiable",
    417: "Expectation Failed",
    418: "I'm a teapot",
    421: "Misdirected Request",
    422: "Unprocessable Entity",
    423: "Locked",
    424: "Failed Dependency",
    425: "Too Early",
    426: "Upgrade Required",
    428: "Precondition Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    451: "Unavailable For Legal Reasons",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
    506: "Variant Also Negotiates",
    507: "Insufficient Storage",
    508: "Loop Detected",
    510: "Not Extended",
    511: "Network Authentication Required",
}
UNKNOWN_REASON = "Unknown Status"

_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """The current IMF-fixdate, recomputed at most once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        from email.utils import formatdate  # (imported on first use: start-up time)

        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def unsafe(text: str) -> bool:
    """True if ``text`` has CR, LF or NUL (RFC 9110 section 5.5: no response splitting)."""
    return "\r" in text or "\n" in text or "\0" in text


class NotInThisServer:
    """Swoole's HTTP/2-only and coroutine-server-only ``Response`` methods."""

    __slots__ = ()
    fd: int

    def ping(self, data: str = "") -> bool:
        """HTTP/2 only in Swoole; pyswoole speaks HTTP/1.1: warning, False."""
        log.warning("Swoole\\Http\\Response::ping(): fd[%d] is not a HTTP2 conncetion", self.fd)
        return False

    def goaway(self, error_code: int = 0, debug_data: str = "") -> bool:
        """HTTP/2 only in Swoole; pyswoole speaks HTTP/1.1: warning, False."""
        log.warning("Swoole\\Http\\Response::goaway(): fd[%d] is not a HTTP2 conncetion", self.fd)
        return False

    def upgrade(self) -> bool:
        """Coroutine servers only in Swoole; its async server refuses, and so does this one."""
        log.warning(
            "Swoole\\Http\\Response::upgrade(): async server dose not support protocol upgrade"
        )
        return False

    def push(self, data: Any, opcode: int = 1, flags: int = 1) -> bool:
        """Coroutine WebSocket only (use ``WebSocketServer.push``): warning, False."""
        log.warning("Swoole\\Http\\Response::push(): fd[%d] is not a websocket conncetion", self.fd)
        return False

    def recv(self, timeout: float = 0) -> bool:
        """Coroutine WebSocket only (use ``on("message")``): warning, False."""
        log.warning("Swoole\\Http\\Response::recv(): fd[%d] is not a websocket conncetion", self.fd)
        return False

    def disconnect(self, code: int = 1000, reason: str = "") -> bool:
        """Coroutine WebSocket only (use ``WebSocketServer.disconnect``): warning, False."""
        log.warning(
            "Swoole\\Http\\Response::disconnect(): fd[%d] is not a websocket conncetion", self.fd
        )
        return False


def error_response(
    status: int,
    *,
    server_name: str = "pyswoole",
    reason: str = "",
    headers: dict[str, str] | None = None,
    keep_alive: bool = False,
) -> bytes:
    """A complete small HTML error response, e.g. for a :class:`HttpProtocolError`.

    ``reason`` is a short explanation shown in the page (HTML-escaped); ``headers`` are
    extra fields such as ``Sec-WebSocket-Version`` for a 426 (RFC 6455 section 4.4).
    """
    import html

    phrase = REASONS.get(status, UNKNOWN_REASON)
    detail = f"<p>{html.escape(reason)}</p>" if reason else ""
    body = (
        f"<html><body><h2>HTTP {status} {phrase}</h2>{detail}<hr>"
        f"<i>Powered by {html.escape(server_name)}</i></body></html>"
    ).encode()
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        f"Server: {server_name}",
        f"Date: {http_date()}",
        "Connection: keep-alive" if keep_alive else "Connection: close",
        "Content-Type: text/html",
        f"Content-Length: {len(body)}",
    ]
    if headers:
        lines.extend(
            f"{key}: {value}"
            for key, value in headers.items()
            if not (unsafe(key) or unsafe(value))
        )
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1") + body
