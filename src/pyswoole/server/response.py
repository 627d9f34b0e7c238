"""``Swoole\\Http\\Response``: builds an HTTP/1.1 response and hands its bytes to a writer.

The response never touches a socket: it serialises and calls the three methods of
:class:`ResponseWriter`, which the runtime implements (and tests fake).

What is implemented here, and where it comes from:

* The head is laid out as Swoole 6.2's ``HttpContext::build_header``
  (swoole-src ``ext-src/swoole_http_response.cc``): status line, the user's headers in the
  order they were set (a list value gives one line per item), the ``Set-Cookie`` lines,
  then ``Server`` and ``Date`` unless the user set them, and (not for a 1xx) ``Connection``,
  ``Content-Type: text/html`` unless set, then ``Transfer-Encoding: chunked`` or
  ``Content-Length``.  The reason phrases are Swoole's ``get_status_message`` table
  (``src/protocol/http.cc``; an unknown code gets ``Unknown Status``).
* RFC 9112 section 4: the status line.  The server always speaks ``HTTP/1.1``, its
  highest version (RFC 9110 section 6.2), also to 1.0 clients.
* RFC 9112 section 6.3 / RFC 9110 section 8.6: framing.  ``end()`` sends Content-Length;
  ``write()`` streams with the chunked transfer coding (RFC 9112 section 7.1), except to
  an HTTP/1.0 client, which must not receive chunked (RFC 9112 section 7.1) and gets a
  body delimited by closing the connection instead (Swoole sends chunked to it).  Framing
  headers set by the user are ignored (Swoole sends them), so they can never disagree with
  the body.  ``trailer()`` fields follow the last chunk (RFC 9112 section 7.1.2).
* RFC 9110 section 6.4.1 / 9.3.2: no content after 1xx, 204 and 304; a HEAD response
  carries the Content-Length the GET would have had, and no content.
* RFC 9110 section 6.6.1: ``Date`` (cached per second); section 10.2.4 ``Server``;
  RFC 9112 section 9.6 / 9.3: ``Connection: close`` or ``keep-alive``.
* ``Set-Cookie`` values: :class:`~pyswoole.server.cookie.Cookie` (Swoole 6.2's format).
* ``http_compression``: the server sets :attr:`Response.codec` from the request's
  ``Accept-Encoding``; ``end()`` compresses its body once, ``write()`` streams through a
  per-response compressor (rules: :mod:`pyswoole.protocol.http_compression`);
  ``sendfile()`` never compresses (as Swoole).
* RFC 9110 section 5.5: header names and values with CR, LF or NUL are refused (no
  response splitting).
* A call on a response that ended or was detached logs Swoole's warning ``http response is
  unavailable (maybe it has been ended or detached)`` and returns False.
"""

from __future__ import annotations

import logging
import os
import stat
from typing import Any, Protocol

from ..protocol.http_compression import Codec, StreamCompressor
from .cookie import Cookie, make_cookie
from .http_util import NotInThisServer, error_response
from .http_util import unsafe as _unsafe
from .response_head import serialize_head

log = logging.getLogger("pyswoole")

__all__ = ["Cookie", "Response", "ResponseWriter", "error_response"]


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


def _format_key(key: str) -> str:
    """Swoole's ``http_header_key_format``: ``content-type`` -> ``Content-Type`` (cached:
    an application sets the same few names on every response)."""
    formatted = _FORMATTED.get(key)
    if formatted is None:
        formatted = "-".join(part[:1].upper() + part[1:].lower() for part in key.split("-"))
        if len(_FORMATTED) < _FORMATTED_MAX:
            _FORMATTED[key] = formatted
    return formatted


_FORMATTED: dict[str, str] = {}
_FORMATTED_MAX = 1024


# Swoole's SW_HTTP_HEADER_KEY_SIZE: longer keys are refused ("header key is too long").
_MAX_KEY = 127
# Framing headers that the response computes itself (user values are dropped).
_FRAMING = frozenset(("content-length", "transfer-encoding"))
#: the cookies of every response that sets none: shared, never appended to
_NO_COOKIES: list[str] = []
_UNAVAILABLE = "http response is unavailable (maybe it has been ended or detached)"
# Body framing modes once the head is out.
_CHUNKED = 1
_STREAM_UNTIL_CLOSE = 2
# Bodies up to this size are sent in the same write as the head.
_COALESCE_LIMIT = 65536


class _ConnectionLookup(Protocol):
    def _conn(self, fd: int) -> Any: ...


class Response(NotInThisServer):
    """``Swoole\\Http\\Response``: status, headers, cookies, then ``end``/``write``/``sendfile``.

    Swoole's public properties ``header``, ``cookie`` and ``trailer`` share their names
    with methods, which Python cannot do: they are :attr:`headers`, :attr:`cookies` and
    :attr:`trailers` here.  camelCase aliases: ``setHeader``, ``setCookie``,
    ``setRawCookie``, ``setStatusCode``, ``isWritable``, ``initHeader``.
    """

    __slots__ = (
        "_alive",
        "_cookies",
        "_detached",
        "_head_sent",
        "_method",
        "_mode",
        "_reason",
        "_stream",
        "_writer",
        "codec",
        "ended",
        "fd",
        "headers",
        "keep_alive",
        "server_name",
        "socket",
        "status_code",
        "trailers",
        "version",
    )

    def __init__(
        self,
        fd: int,
        writer: ResponseWriter,
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
        self.headers: dict[str, str | list[str]] = {}
        self.trailers: dict[str, str] = {}
        self._cookies: list[str] = _NO_COOKIES  # (a list of its own at the first cookie)
        self.socket: object = None  # Swoole: the Coroutine\\Socket of a coroutine server
        self.ended = False
        self._head_sent = False
        self._alive = True
        self._detached = False
        self._mode = 0  # 0, _CHUNKED or _STREAM_UNTIL_CLOSE
        self.codec: Codec | None = None  # the negotiated HTTP compression, if any
        self._stream: StreamCompressor | None = None

    def _unavailable(self, method: str) -> bool:
        """Swoole's answer to a call on an ended or detached response: warning, False."""
        log.warning("Swoole\\Http\\Response::%s(): %s", method, _UNAVAILABLE)
        return False

    # -- status, headers, cookies -------------------------------------------------------

    def status(self, code: int, reason: str = "") -> bool:
        """Set the status code and optional reason phrase (``status()``).

        Swoole takes any integer; a status-code is three digits (RFC 9112 section 4), so
        codes outside 100..999 are refused here.
        """
        if self.ended or self._detached:
            return self._unavailable("status")
        if self._head_sent or not 100 <= code <= 999 or _unsafe(reason):
            return False
        self.status_code = code
        self._reason = reason
        return True

    set_status_code = status
    setStatusCode = status

    def header(self, key: str, value: str | list[str] | None, format: bool = True) -> bool:
        """Set a response header (``header()``); a list sends one line per item, None removes.

        With ``format`` the key gets Swoole's capitalisation (``x-my-key`` -> ``X-My-Key``).
        """
        if self.ended or self._detached:
            return self._unavailable("header")
        if len(key) > _MAX_KEY:
            log.warning("Swoole\\Http\\Response::header(): header key is too long")
            return False
        if self._head_sent or not key or ":" in key or "\r" in key or "\n" in key or "\0" in key:
            return False  # (http_util.unsafe inline: once per header of every response)
        if format:
            key = _FORMATTED.get(key) or _format_key(key)
        if value is None:
            self.headers.pop(key, None)
            return True
        if isinstance(value, list):
            values = [str(v) for v in value]
            if any(_unsafe(v) for v in values):
                return False
            self.headers[key] = values
            return True
        if type(value) is not str:
            value = str(value)
        if "\r" in value or "\n" in value or "\0" in value:
            return False
        self.headers[key] = value
        return True

    set_header = header
    setHeader = header

    def header_items(self) -> list[tuple[str, str]]:
        """The headers set so far as ``(name, value)`` lines (a list value gives several)."""
        items: list[tuple[str, str]] = []
        for key, value in self.headers.items():
            if isinstance(value, list):
                items.extend((key, v) for v in value)
            else:
                items.append((key, value))
        return items

    def init_header(self) -> bool:
        """Swoole's ``initHeader()``: makes sure the header arrays exist (they always do)."""
        return True

    initHeader = init_header

    def trailer(self, key: str, value: str | None) -> bool:
        """A trailer field sent after the last chunk of a ``write()`` body (``trailer()``).

        As Swoole: the key is lower-cased; trailers are only sent by a chunked body.
        """
        if self.ended or self._detached:
            return self._unavailable("trailer")
        if len(key) > _MAX_KEY:
            log.warning("Swoole\\Http\\Response::trailer(): trailer key is too long")
            return False
        if not key or _unsafe(key) or ":" in key or (value is not None and _unsafe(value)):
            return False
        key = key.lower()
        if value is None:
            self.trailers.pop(key, None)
        else:
            self.trailers[key] = value
        return True

    def cookie(
        self,
        name: str | Cookie,
        value: str = "",
        expires: int = 0,
        path: str = "",
        domain: str = "",
        secure: bool = False,
        httponly: bool = False,
        samesite: str = "",
        priority: str = "",
        partitioned: bool = False,
    ) -> bool:
        """Add a ``Set-Cookie`` header, the value URL-encoded (``cookie()``/``setCookie()``).

        ``name`` may also be a :class:`Cookie` (Swoole 6's cookie object).  The format is
        Swoole 6.2's, see :mod:`pyswoole.server.cookie`.  Without ``path`` the cookie has no
        ``path`` attribute (Swoole's stub shows ``'/'``, but its C code adds one only when a
        path is given: swoole-src tests/swoole_http_server/cookie_vs_rawcookie.phpt).
        """
        if isinstance(name, Cookie):
            return self._add_cookie(name, "cookie")
        fields = (value, expires, path, domain, secure, httponly, samesite, priority, partitioned)
        return self._add_cookie(make_cookie(True, name, *fields), "cookie")

    set_cookie = cookie
    setCookie = cookie

    def rawcookie(
        self,
        name: str,
        value: str = "",
        expires: int = 0,
        path: str = "",
        domain: str = "",
        secure: bool = False,
        httponly: bool = False,
        samesite: str = "",
        priority: str = "",
        partitioned: bool = False,
    ) -> bool:
        """Like :meth:`cookie` but the value is sent as is (``rawcookie()``)."""
        fields = (value, expires, path, domain, secure, httponly, samesite, priority, partitioned)
        return self._add_cookie(make_cookie(False, name, *fields), "rawcookie")

    set_raw_cookie = rawcookie
    setRawCookie = rawcookie

    def _add_cookie(self, cookie: Cookie, method: str) -> bool:
        if self.ended or self._detached:
            return self._unavailable(method)
        if self._head_sent:
            return False
        text = cookie.to_string("Swoole\\Http\\Response::" + method)
        if text is None:
            return False
        if self._cookies is _NO_COOKIES:
            self._cookies = []
        self._cookies.append(text)
        return True

    # -- state ------------------------------------------------------------------------------

    @property
    def head_sent(self) -> bool:
        """True once the status line and headers were written."""
        return self._head_sent

    @property
    def cookies(self) -> list[str]:
        """The ``Set-Cookie`` values set so far (Swoole's ``$response->cookie``)."""
        return list(self._cookies)

    @property
    def detached(self) -> bool:
        """True after :meth:`detach`."""
        return self._detached

    def is_writable(self) -> bool:
        """True until the response ended, was detached or lost its connection."""
        return not self.ended and not self._detached and self._alive

    isWritable = is_writable

    def _head(self, content_length: int | None, chunked: bool = False) -> bytes:
        """The status line and header section in Swoole's order (``response_head``)."""
        return serialize_head(self, content_length, chunked)

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
        """Send one piece of a streamed body (``write()``); the first call sends the head.

        As Swoole: empty data sends the head (if not sent yet) but no chunk, logs ``data
        to send is empty`` and returns False.
        """
        if self.ended or self._detached:
            return self._unavailable("write")
        if not self._alive:
            return False
        if isinstance(data, str):
            data = data.encode()
        head = b""
        if not self._head_sent:
            if self.codec is not None and self._has_body:
                self._stream = self.codec.stream(self.status_code, self.headers)
            if self.version == "1.0":
                # RFC 9112 section 7.1: no chunked coding for 1.0; the close delimits it.
                self.keep_alive = False
                self._mode = _STREAM_UNTIL_CLOSE
                head = self._head(None)
            else:
                self._mode = _CHUNKED
                head = self._head(None, chunked=True)
        if not data:
            if head:
                self._send(head)
            log.warning("Swoole\\Http\\Response::write(): data to send is empty")
            return False
        if not self._has_body:
            return self._send(head) if head else True
        if self._stream is not None:
            data = self._stream.compress(data)
        if self._mode == _CHUNKED:
            return self._send(b"%b%x\r\n%b\r\n" % (head, len(data), data))
        return self._send(head + data)

    def _last_chunk(self) -> bytes:
        """``0 CRLF``, the trailer fields, ``CRLF`` (RFC 9112 section 7.1)."""
        if not self.trailers:
            return b"0\r\n\r\n"
        fields = "".join(f"{key}: {value}\r\n" for key, value in self.trailers.items())
        try:
            encoded = fields.encode("latin-1")
        except UnicodeEncodeError:
            encoded = fields.encode()
        return b"0\r\n" + encoded + b"\r\n"

    def end(self, data: str | bytes | None = b"") -> bool:
        """Finish the response, sending ``data`` as its (last part of the) body (``end()``).

        A second ``end()`` (or any call after it) logs Swoole's warning and returns False.
        """
        if self.ended or self._detached:
            return self._unavailable("end")
        if data is None:
            data = b""
        elif isinstance(data, str):
            data = data.encode()
        code = self.status_code
        has_body = self._method != "HEAD" and code >= 200 and code != 204 and code != 304
        if self._stream is not None and has_body:
            data = self._stream.finish(data)  # the compressed stream's end (head sent)
        if not self._head_sent:
            if self.codec is not None and data and code >= 200 and code != 204 and code != 304:
                # (HEAD too, as Swoole: its Content-Length is the one GET's coding has)
                data = self.codec.encode(code, self.headers, data)
            head = self._head(len(data))
            if not has_body or not data:
                out = head
            elif len(data) > _COALESCE_LIMIT:
                # A big body is not copied behind the head: two writes, one copy fewer.
                self._send(head)
                out = data
            else:
                out = head + data
        elif not has_body:
            out = b""
        elif self._mode == _CHUNKED:
            last = self._last_chunk()
            out = b"%x\r\n%b\r\n%b" % (len(data), data, last) if data else last
        else:
            out = data
        ok = self._alive
        if out and ok and not self._writer.write_response(out):  # (_send, inline)
            self._alive = ok = False
        self.ended = True  # (_finish, inline)
        self._writer.finish_response(self, self.keep_alive)
        return ok

    def redirect(self, url: str, code: int = 302) -> bool:
        """Answer with ``Location: url`` and ``code``, then end (``redirect()``)."""
        if self.ended or self._detached:
            return self._unavailable("redirect")
        if self._head_sent or not self.status(code):
            return False
        if not self.header("Location", url):
            return False
        return self.end()

    def sendfile(self, path: str, offset: int = 0, length: int = 0) -> bool:
        """Send a file as the body (``sendfile()``); False, response still usable, on error."""
        if self.ended or self._detached:
            return self._unavailable("sendfile")
        if self._head_sent:
            log.warning("Swoole\\Http\\Response::sendfile(): the head was already sent")
            return False
        if not path or offset < 0 or length < 0:
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
        if not any(key.lower() == "content-type" for key in self.headers):
            import mimetypes  # (imported on first use: start-up time)

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

    # -- detach, create and what only Swoole's other servers have -------------------------

    def detach(self) -> bool:
        """Give up this response object (``detach()``): it will not be ended on drop.

        Another ``Response`` for the same connection, from :meth:`create`, answers instead.
        """
        if self.ended or self._detached:
            return self._unavailable("detach")
        self._detached = True
        return True

    @classmethod
    def create(cls, server: Any, fd: int = -1) -> Response | bool:
        """A new response for connection ``fd`` of ``server`` in this worker (``create()``).

        Swoole also takes a bare fd, an ``[server, request]`` pair or a coroutine socket;
        only the ``(server, fd)`` form exists here.
        """
        lookup = getattr(server, "_conn", None)
        conn = lookup(fd) if lookup is not None else None
        if conn is None:
            log.warning(
                "Swoole\\Http\\Response::create(): parameter $2 must be valid connection session id"
            )
            return False
        setting = getattr(server, "setting", {}) or {}
        return cls(fd, conn, server_name=str(setting.get("server_name", "pyswoole")))

    def close(self) -> bool:
        """Close the connection (``close()``), as Swoole's async server does."""
        closer = getattr(self._writer, "close", None)
        if closer is None:
            return False
        self._alive = False
        closer()
        return True

    def __del__(self) -> None:
        # A handler that dropped its response without end() must not leave the client
        # waiting until a timeout: finish it (500 if nothing was sent) and say so.  As
        # Swoole's free_object: not when detached.
        if self.ended or not self._alive or self._detached:
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
