"""``Swoole\\Http\\Response``: builds an HTTP/1.1 response and hands its bytes to a writer.

The response never touches a socket: it serialises and calls the three methods of
:class:`ResponseWriter`, which the runtime implements (and tests fake).

What is implemented here, and where it comes from:

* RFC 9112 section 4: the status line.  The server always speaks ``HTTP/1.1``, its
  highest version (RFC 9110 section 6.2), also to 1.0 clients.
* RFC 9112 section 6.3 / RFC 9110 section 8.6: framing.  ``end()`` sends Content-Length;
  ``write()`` streams with the chunked transfer coding (RFC 9112 section 7.1), except to
  an HTTP/1.0 client, which must not receive chunked (RFC 9112 section 7.1) and gets a
  body delimited by closing the connection instead.  Framing headers set by the user are
  ignored, so they can never disagree with the body.
* RFC 9110 section 6.4.1 / 9.3.2: no content after 1xx, 204 and 304; a HEAD response
  carries the Content-Length the GET would have had, and no content.
* RFC 9110 section 6.6.1: ``Date`` (cached per second); section 10.2.4 ``Server``;
  RFC 9112 section 9.6 / 9.3: ``Connection: close`` or ``keep-alive``.
* RFC 6265 section 4.1: ``Set-Cookie`` serialisation for :meth:`Response.cookie`, with the
  ``Expires`` date in the preferred IMF-fixdate form (RFC 9110 section 5.6.7) where Swoole
  writes ``D, d-M-Y H:i:s T``.
* RFC 9110 section 5.5: header names and values with CR, LF or NUL are refused (no
  response splitting).
"""

from __future__ import annotations

import html
import logging
import mimetypes
import os
import stat
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Protocol
from urllib.parse import quote_plus

log = logging.getLogger("pyswoole")

__all__ = ["Response", "ResponseWriter", "error_response"]


class ResponseWriter(Protocol):
    """What a :class:`Response` needs from the connection (implemented by the runtime)."""

    def write_response(self, data: bytes) -> bool:
        """Queue ``data`` on the socket; False if the connection is gone."""
        ...

    def send_file(self, path: str, offset: int, length: int) -> bool:
        """Stream ``length`` bytes of ``path`` from ``offset``, after the head was written."""
        ...

    def finish_response(self, response: Response, keep_alive: bool) -> None:
        """Called exactly once, when the response is complete."""
        ...


_REASONS = {s.value: s.phrase for s in HTTPStatus}
_REASONS.update({418: "I'm a teapot", 425: "Too Early"})

_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The current IMF-fixdate, recomputed at most once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def _format_key(key: str) -> str:
    """Swoole's header key format: ``content-type`` -> ``Content-Type``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in key.split("-"))


def _unsafe(text: str) -> bool:
    return "\r" in text or "\n" in text or "\0" in text


# Characters that a cookie name may not contain (PHP's setcookie check).
_BAD_COOKIE_NAME = frozenset("=,; \t\r\n\013\014")
_BAD_RAW_COOKIE_VALUE = frozenset(",; \t\r\n\013\014")
# Framing headers that the response computes itself (user values are dropped).
_FRAMING = frozenset(("Content-Length", "Transfer-Encoding"))
# Body framing modes once the head is out.
_CHUNKED = 1
_STREAM_UNTIL_CLOSE = 2
# Bodies up to this size are sent in the same write as the head.
_COALESCE_LIMIT = 65536


class Response:
    """``Swoole\\Http\\Response``: status, headers, cookies, then ``end``/``write``/``sendfile``."""

    __slots__ = (
        "_alive",
        "_cookies",
        "_head_sent",
        "_method",
        "_mode",
        "_reason",
        "_writer",
        "ended",
        "fd",
        "headers",
        "keep_alive",
        "server_name",
        "status_code",
        "version",
    )

    def __init__(
        self,
        fd: int,
        writer: ResponseWriter,
        *,
        method: str = "GET",
        version: str = "1.1",
        keep_alive: bool = True,
        server_name: str = "pyswoole",
    ) -> None:
        self.fd = fd
        self._writer = writer
        self._method = method
        self.version = version
        self.keep_alive = keep_alive
        self.server_name = server_name
        self.status_code = 200
        self._reason = ""
        self.headers: dict[str, str] = {}
        self._cookies: list[str] = []
        self.ended = False
        self._head_sent = False
        self._alive = True
        self._mode = 0  # 0, _CHUNKED or _STREAM_UNTIL_CLOSE

    # -- status, headers, cookies -------------------------------------------------------

    def status(self, code: int, reason: str = "") -> bool:
        """Set the status code and optional reason phrase (``status()``)."""
        if self.ended or self._head_sent or not 100 <= code <= 999 or _unsafe(reason):
            return False
        self.status_code = code
        self._reason = reason
        return True

    set_status_code = status

    def header(self, key: str, value: str | None, format: bool = True) -> bool:
        """Set (or, with ``None``, remove) a response header (``header()``)."""
        if self.ended or self._head_sent or not key or _unsafe(key) or ":" in key:
            return False
        if format:
            key = _format_key(key)
        if value is None:
            self.headers.pop(key, None)
            return True
        value = str(value)
        if _unsafe(value):
            return False
        self.headers[key] = value
        return True

    set_header = header

    def cookie(
        self,
        name: str,
        value: str = "",
        expires: int = 0,
        path: str = "/",
        domain: str = "",
        secure: bool = False,
        httponly: bool = False,
        samesite: str = "",
        priority: str = "",
    ) -> bool:
        """Add a ``Set-Cookie`` header, the value URL-encoded (``cookie()``)."""
        return self._add_cookie(
            name, value, True, expires, path, domain, secure, httponly, samesite, priority
        )

    set_cookie = cookie

    def rawcookie(
        self,
        name: str,
        value: str = "",
        expires: int = 0,
        path: str = "/",
        domain: str = "",
        secure: bool = False,
        httponly: bool = False,
        samesite: str = "",
        priority: str = "",
    ) -> bool:
        """Like :meth:`cookie` but the value is sent as is (``rawcookie()``)."""
        return self._add_cookie(
            name, value, False, expires, path, domain, secure, httponly, samesite, priority
        )

    set_raw_cookie = rawcookie

    def _add_cookie(
        self,
        name: str,
        value: str,
        encode: bool,
        expires: int,
        path: str,
        domain: str,
        secure: bool,
        httponly: bool,
        samesite: str,
        priority: str,
    ) -> bool:
        if self.ended or self._head_sent or not name or not _BAD_COOKIE_NAME.isdisjoint(name):
            return False
        if not encode and not _BAD_RAW_COOKIE_VALUE.isdisjoint(value):
            return False
        if any(_unsafe(a) or ";" in a for a in (path, domain, samesite, priority)):
            return False
        if not value:
            # Deleting a cookie, as PHP and Swoole do.
            parts = [f"{name}=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0"]
        else:
            parts = [f"{name}={quote_plus(value, safe='') if encode else value}"]
            if expires > 0:
                max_age = max(0, expires - int(time.time()))
                parts.append(f"expires={formatdate(expires, usegmt=True)}; Max-Age={max_age}")
        if path:
            parts.append(f"path={path}")
        if domain:
            parts.append(f"domain={domain}")
        if secure:
            parts.append("secure")
        if httponly:
            parts.append("httponly")
        if samesite:
            parts.append(f"samesite={samesite}")
        if priority:
            parts.append(f"priority={priority}")
        self._cookies.append("; ".join(parts))
        return True

    # -- state ------------------------------------------------------------------------------

    @property
    def head_sent(self) -> bool:
        """True once the status line and headers were written."""
        return self._head_sent

    @property
    def cookies(self) -> list[str]:
        """The ``Set-Cookie`` values set so far."""
        return list(self._cookies)

    def is_writable(self) -> bool:
        """True until the response ended or the connection went away (``isWritable()``)."""
        return not self.ended and self._alive

    def _head(self, content_length: int | None, chunked: bool = False) -> bytes:
        """Serialise the status line and header section (RFC 9112 sections 4 and 5)."""
        code = self.status_code
        headers = self.headers
        reason = self._reason or _REASONS.get(code, "Unknown")
        lines = [f"HTTP/1.1 {code} {reason}", f"Server: {self.server_name}"]
        if code < 200:
            # 1xx (a custom WebSocket handshake's 101): only what the user set.
            lines.extend(f"{key}: {value}" for key, value in headers.items())
        else:
            connection = headers.get("Connection")
            if connection is not None and "close" in connection.lower():
                self.keep_alive = False
            lines.append(f"Date: {_http_date()}")
            if connection is None:
                lines.append("Connection: keep-alive" if self.keep_alive else "Connection: close")
            body_allowed = code != 204 and code != 304
            if body_allowed and "Content-Type" not in headers:
                lines.append("Content-Type: text/html")
            head_request = self._method == "HEAD"
            for key, value in headers.items():
                if key in _FRAMING and (key != "Content-Length" or not head_request):
                    continue  # the response frames its body itself
                lines.append(f"{key}: {value}")
            if body_allowed:
                if chunked:
                    lines.append("Transfer-Encoding: chunked")
                elif content_length is not None and not (
                    head_request and "Content-Length" in headers
                ):
                    lines.append(f"Content-Length: {content_length}")
        lines.extend(f"Set-Cookie: {cookie}" for cookie in self._cookies)
        lines.append("\r\n")
        self._head_sent = True
        text = "\r\n".join(lines)
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            return text.encode()  # non-Latin-1 text in a header: send it as UTF-8

    def _send(self, data: bytes) -> bool:
        if self._alive and not self._writer.write_response(data):
            self._alive = False
        return self._alive

    def _finish(self) -> None:
        self.ended = True
        self._writer.finish_response(self, self.keep_alive)

    @property
    def _has_body(self) -> bool:
        code = self.status_code
        return self._method != "HEAD" and code >= 200 and code != 204 and code != 304

    # -- sending ------------------------------------------------------------------------

    def write(self, data: str | bytes) -> bool:
        """Send one piece of a streamed body (``write()``); the first call sends the head."""
        if self.ended or not self._alive:
            return False
        if isinstance(data, str):
            data = data.encode()
        if not data:
            return False
        head = b""
        if not self._head_sent:
            if self.version == "1.0":
                # RFC 9112 section 7.1: no chunked coding for 1.0; the close delimits it.
                self.keep_alive = False
                self._mode = _STREAM_UNTIL_CLOSE
                head = self._head(None)
            else:
                self._mode = _CHUNKED
                head = self._head(None, chunked=True)
        if not self._has_body:
            return self._send(head) if head else True
        if self._mode == _CHUNKED:
            return self._send(b"%b%x\r\n%b\r\n" % (head, len(data), data))
        return self._send(head + data)

    def end(self, data: str | bytes = b"") -> bool:
        """Finish the response, sending ``data`` as its (last part of the) body (``end()``)."""
        if self.ended:
            return False
        if isinstance(data, str):
            data = data.encode()
        if not self._head_sent:
            head = self._head(len(data))
            if not self._has_body or not data:
                out = head
            elif len(data) > _COALESCE_LIMIT:
                # A big body is not copied behind the head: two writes, one copy fewer.
                self._send(head)
                out = data
            else:
                out = head + data
        elif not self._has_body:
            out = b""
        elif self._mode == _CHUNKED:
            out = b"%x\r\n%b\r\n0\r\n\r\n" % (len(data), data) if data else b"0\r\n\r\n"
        else:
            out = data
        ok = self._send(out) if out else self._alive
        self._finish()
        return ok

    def redirect(self, url: str, code: int = 302) -> bool:
        """Answer with ``Location: url`` and ``code`` (``redirect()``)."""
        if self.ended or self._head_sent or not self.status(code):
            return False
        if not self.header("Location", url):
            return False
        return self.end()

    def sendfile(self, path: str, offset: int = 0, length: int = 0) -> bool:
        """Send a file as the body (``sendfile()``); False, response still usable, on error."""
        if self.ended or self._head_sent or offset < 0 or length < 0:
            return False
        try:
            st = os.stat(path)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or offset > st.st_size:
            return False
        if length == 0:
            length = st.st_size - offset
        elif offset + length > st.st_size:
            return False
        if "Content-Type" not in self.headers:
            self.headers["Content-Type"] = (
                mimetypes.guess_type(path)[0] or "application/octet-stream"
            )
        ok = self._send(self._head(length))
        if ok and self._has_body and length:
            ok = self._writer.send_file(path, offset, length)
            if not ok:
                self._alive = False
        self._finish()
        return ok

    def __del__(self) -> None:
        # A handler that dropped its response without end() must not leave the client
        # waiting until a timeout: finish it (500 if nothing was sent) and say so.
        if self.ended or not self._alive:
            return
        try:
            if not self._head_sent:
                self.status(500)
                self.keep_alive = False
                log.warning("response for fd %d was dropped without end(): answered 500", self.fd)
                self.end("<html><body><h2>HTTP 500 Internal Server Error</h2></body></html>")
            else:
                log.warning("response for fd %d was dropped without end(): body ended", self.fd)
                self.end()
        except Exception:  # never raise from a finalizer
            log.exception("finishing a dropped response failed")

    def __repr__(self) -> str:
        state = "ended" if self.ended else "open"
        return f"<Response fd={self.fd} {self.status_code} {state}>"


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
    phrase = _REASONS.get(status, "Unknown")
    detail = f"<p>{html.escape(reason)}</p>" if reason else ""
    body = (
        f"<html><body><h2>HTTP {status} {phrase}</h2>{detail}<hr>"
        f"<i>Powered by {html.escape(server_name)}</i></body></html>"
    ).encode()
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        f"Server: {server_name}",
        f"Date: {_http_date()}",
        "Connection: keep-alive" if keep_alive else "Connection: close",
        "Content-Type: text/html",
        f"Content-Length: {len(body)}",
    ]
    if headers:
        lines.extend(
            f"{key}: {value}"
            for key, value in headers.items()
            if not (_unsafe(key) or _unsafe(value))
        )
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1") + body
