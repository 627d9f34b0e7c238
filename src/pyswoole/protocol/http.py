"""Sans-I/O HTTP/1.1 request parsing on top of ``httptools`` (llhttp).

The parser only turns received bytes into :class:`ParsedRequest` objects: it never touches
a socket, a clock or an event loop, so the runtime decides what a timeout is and what to
answer.  Peer errors are raised as :class:`~pyswoole.exceptions.HttpProtocolError` carrying
the status the server should answer with before closing the connection.

Theory of operation
-------------------
llhttp drives the callbacks below (bound methods, looked up once by httptools).  A message
moves ``IDLE -> HEAD -> BODY -> IDLE``::

    on_message_begin     IDLE -> HEAD    reset the per-message buffers
    on_url, on_header    HEAD            collect the request-target and the field lines
    on_headers_complete  HEAD -> BODY    check version, limits and framing
    on_body              BODY            collect (de-chunked) content, enforce the limit
    on_message_complete  BODY -> IDLE    emit a ParsedRequest

What is implemented here, and where it comes from:

* RFC 9112 section 2.2 / 3: request-line and field-line syntax (llhttp, strict mode);
  leading empty lines before a request are ignored (section 2.2).
* RFC 9112 section 2.3: only HTTP/1.0 and HTTP/1.1 are served; any other version that
  llhttp lets through (``0.9``, ``2.0``...) is answered with 505.
* RFC 9112 section 3.2 / 3.3: the request-target is kept raw; ``path`` and ``query`` are
  split at the first ``?`` (for the absolute-form, ``path`` drops scheme and authority).
* RFC 9112 section 6.3 and section 7.1: message framing by Content-Length or chunked
  transfer coding; conflicting framing (both, or duplicate Content-Length) is a 400 from
  llhttp.  Bodies arrive de-chunked.
* RFC 9112 section 9.3: persistence, from llhttp's ``should_keep_alive()`` (1.1 defaults to
  persistent, 1.0 needs ``Connection: keep-alive``).
* RFC 9110 section 7.8: Upgrade.  llhttp flags a request carrying ``Upgrade`` *and*
  ``Connection: upgrade`` and stops after its head; the bytes after that head (the first
  WebSocket frames, often in the same TCP segment) are kept in :attr:`trailing`.
  ``CONNECT`` is also an "upgrade" for llhttp; a WebSocket server does not tunnel, so it is
  refused with 501 (RFC 9110 section 9.3.6 allows refusing it).
* RFC 9110 section 15.5.14 (413) and RFC 6585 section 5 (431): the body limit is checked
  against Content-Length before any byte of the body is buffered and while chunked data
  arrives; the header section is measured as it arrives, so neither is ever buffered
  beyond its limit by more than one received chunk.
"""

from __future__ import annotations

from typing import NoReturn

import httptools

from pyswoole.exceptions import HttpProtocolError
from pyswoole.protocol.frames import SPEEDUPS

__all__ = ["HttpRequestParser", "ParsedRequest"]

_IDLE = 0
_HEAD = 1
_BODY = 2

# Bytes of a field line beyond its name and value: ": " and CRLF (RFC 9112 section 5).
_FIELD_OVERHEAD = 4
# "METHOD SP target SP HTTP/1.1 CRLF" beyond the target; a fair constant for the limit.
_REQUEST_LINE_OVERHEAD = 20
_OWS = " \t"


class ParsedRequest:
    """One complete HTTP/1.x request, as received (a value object: nothing is decoded)."""

    __slots__ = (
        "body",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query",
        "target",
        "upgrade",
        "version",
    )

    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        headers: list[tuple[str, str]],
        body: bytes,
        keep_alive: bool,
        upgrade: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        if "?" not in target:  # (the usual target: no tuple, no copies)
            path = target
            query = ""
        else:
            path, _, query = target.partition("?")
        if path[:1] != "/" and "://" in path:
            # absolute-form (RFC 9112 section 3.2.2): drop scheme and authority.
            slash = path.find("/", path.index("://") + 3)
            path = path[slash:] if slash >= 0 else "/"
        self.path = path
        self.query = query

    def __repr__(self) -> str:
        return (
            f"ParsedRequest({self.method} {self.target} HTTP/{self.version}, "
            f"{len(self.headers)} headers, {len(self.body)} body bytes, "
            f"keep_alive={self.keep_alive}, upgrade={self.upgrade})"
        )


class HttpRequestParser:
    """Incremental HTTP/1.1 request parser for one connection.

    :meth:`feed` takes whatever the socket delivered and returns the requests it completed,
    in order; pipelined requests and requests split over many reads are both normal.  Once
    an upgrade request has been returned, :attr:`upgraded` is true, the parser stops, and
    :attr:`trailing` holds the bytes that followed that request's head (later feeds are
    appended to it).  After a :class:`HttpProtocolError` the parser is dead: every later
    :meth:`feed` raises the same error.
    """

    __slots__ = (
        "_body_parts",
        "_body_size",
        "_done",
        "_error",
        "_head_estimate",
        "_head_size",
        "_headers",
        "_keep_alive",
        "_max_body_size",
        "_max_header_size",
        "_messages_begun",
        "_method",
        "_parser",
        "_quick",
        "_state",
        "_upgrade",
        "_url",
        "_version",
        "interim",
        "trailing",
        "upgraded",
    )

    # set by on_message_begin / on_headers_complete, before any use
    _url: bytes
    _headers: list[tuple[str, str]]
    _head_size: int
    _head_estimate: int
    _body_parts: list[bytes]
    _body_size: int
    _method: bytes
    _version: str
    _keep_alive: bool
    _upgrade: bool

    def __init__(
        self, *, max_header_size: int = 65536, max_body_size: int = 2 * 1024 * 1024
    ) -> None:
        # Only what is read before the first message begins; on_message_begin and
        # on_headers_complete set the rest.  The llhttp parser itself is made at the first
        # feed, and not at all when that feed is a whole upgrade request (_quick_upgrade).
        self._max_header_size = max_header_size
        self._max_body_size = max_body_size
        self._parser: httptools.HttpRequestParser | None = None
        # the llhttp parser of _quick_request, kept between whole requests
        self._quick: tuple[httptools.HttpRequestParser, _Completion] | None = None
        self._state = _IDLE
        self._messages_begun = 0
        self._done: list[ParsedRequest] = []
        self._error: HttpProtocolError | None = None
        self.upgraded = False
        self.trailing = b""
        #: interim responses to send now (``100 Continue``); the caller writes and clears it
        self.interim = b""

    # -- public API ---------------------------------------------------------------------

    def feed(self, data: bytes) -> list[ParsedRequest]:
        """Parse ``data``; return the requests it completed (possibly none).

        Raises :class:`HttpProtocolError` (400, 413, 431, 501 or 505) if the peer broke
        the protocol; the caller answers with ``error.status`` and closes.
        """
        if self._error is not None:
            raise self._error
        if self.upgraded:
            self.trailing += data
            return []
        parser = self._parser
        if parser is None:
            quick = _quick_upgrade(data, self._max_header_size)
            if quick is not None:
                request, end = quick
                self.upgraded = True
                self.trailing = data[end:]
                return [request]
            parser = self._parser = httptools.HttpRequestParser(self)
        if self._state == _IDLE and data[-4:] == b"\r\n\r\n":
            # The common keep-alive request (_quick_request) with this connection's llhttp
            # parser, kept at a message boundary between whole requests (made once, not per
            # request); dropped whenever it may not be at one (it declined, or the request
            # closes the connection).
            kept = self._quick
            if kept is None:
                completion = _Completion()
                kept = (httptools.HttpRequestParser(completion), completion)
            self._quick = None
            plain = _quick_request(data, self._max_header_size, kept)
            if plain is not None:
                if plain.keep_alive:
                    self._quick = kept
                self._messages_begun += 1
                return [plain]
        in_head = self._state == _HEAD
        begun = self._messages_begun
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.upgraded = True
            self.trailing = data[upgrade.args[0] :]
        except httptools.HttpParserError as exc:
            error = self._error
            if error is None:
                error = self._error = HttpProtocolError(400, f"malformed request: {exc}")
            self._done = []
            raise error from None
        if self._state == _HEAD:
            self._check_partial_head(len(data), in_head and begun == self._messages_begun)
        done = self._done
        if done:
            self._done = []
        return done

    def waiting_for_more(self) -> bool:
        """True while a request has been partially received (for read timeouts)."""
        return self._state != _IDLE

    # -- limits ---------------------------------------------------------------------------

    def _check_partial_head(self, fed: int, same_head: bool) -> None:
        # httptools keeps a field line that is still arriving to itself, so the callbacks
        # alone cannot see a huge header growing.  Every byte fed while the *same* head
        # stays incomplete belongs to that head; the feed in which the head began counts
        # only what the callbacks saw (a lower bound), so the estimate never exceeds the
        # true size and a pipelined body in the same read is never charged to the head.
        estimate = self._head_estimate + fed if same_head else self._head_size
        self._head_estimate = estimate
        if estimate > self._max_header_size:
            self._fail(431, "request header section too large")

    def _fail(self, status: int, reason: str) -> NoReturn:
        """Record the error (httptools wraps callback exceptions) and abort parsing."""
        self._error = HttpProtocolError(status, reason)
        raise self._error

    # -- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._state = _HEAD
        self._messages_begun += 1
        self._url = b""
        self._headers = []
        self._head_size = _REQUEST_LINE_OVERHEAD
        self._head_estimate = 0
        self._body_parts = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > self._max_header_size:
            self._fail(431, "request-target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        size = self._head_size = self._head_size + len(name) + len(value) + _FIELD_OVERHEAD
        if size > self._max_header_size:
            self._fail(431, "request header section too large")
        if self._state == _BODY:
            # A trailer field of a chunked body (counted against the limit above): never
            # merged into the header section (RFC 9110 section 6.5.1), where a client could
            # add a field after the head was checked (or after a proxy inspected it).
            return
        # OWS is SP / HTAB only (RFC 9110 section 5.6.3); llhttp drops the leading part.
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1").strip(_OWS)))

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        self._version = version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            self._fail(505, f"HTTP version {version} not supported")
        self._method = method = parser.get_method()
        self._upgrade = upgrade = parser.should_upgrade()
        if upgrade and method == b"CONNECT":
            self._fail(501, "CONNECT is not supported")
        self._keep_alive = parser.should_keep_alive()
        self._state = _BODY
        if not upgrade:
            # RFC 9112 section 6.3: llhttp already rejected duplicate or malformed values.
            expects_continue = False
            for name, value in self._headers:
                if name == "content-length":
                    if int(value) > self._max_body_size:
                        self._fail(413, f"body of {value} bytes exceeds the limit")
                elif name == "expect":
                    if value.lower() != "100-continue":
                        # RFC 9110 section 10.1.1: an unknown expectation gets 417.
                        self._fail(417, f"unsupported expectation {value!r}")
                    expects_continue = version == "1.1"
            if expects_continue:
                # RFC 9110 section 10.1.1: the body is acceptable (its size passed the
                # limit), so invite the client to send it.
                self.interim += b"HTTP/1.1 100 Continue\r\n\r\n"

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._max_body_size:
            self._fail(413, "body exceeds the limit")
        self._body_parts.append(body)

    def on_message_complete(self) -> None:
        parts = self._body_parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._done.append(
            ParsedRequest(
                self._method.decode("ascii"),
                self._url.decode("latin-1"),
                self._version,
                self._headers,
                body,
                self._keep_alive,
                self._upgrade,
            )
        )
        self._state = _IDLE
        self._body_parts = []


def _head_fields_py(data: bytes, end: int) -> tuple[str, list[tuple[str, str]]] | None:
    """The request-target and the fields of the validated head ``data[:end]``, which is
    ``GET`` target ``HTTP/1.1`` CRLF, field lines, CRLF (RFC 9112 sections 2-5): names
    lower-cased, values without their OWS, both latin-1. None for any other shape.
    The reference for the compiled ``_speedups.head_fields``."""
    lines = data[:end].decode("latin-1").split("\r\n")
    request_line = lines[0]
    if request_line[:4] != "GET " or request_line[-9:] != " HTTP/1.1":
        return None  # e.g. leading empty lines (RFC 9112 section 2.2): the full parser
    target = request_line[4:-9]
    if not target or " " in target or "\t" in target:
        return None  # llhttp lets extra SP around the target through: the full parser
    headers: list[tuple[str, str]] = []
    for line in lines[1:-2]:  # the head ends with an empty line, then the split's tail
        name, colon, value = line.partition(":")
        if not colon or not name:
            return None
        headers.append((name.lower(), value.strip(_OWS)))
    return target, headers


_head_fields = _head_fields_py
if SPEEDUPS:
    from ._speedups import head_fields as _head_fields


class _Silent:
    """An httptools protocol with no callbacks: llhttp only validates and frames."""

    __slots__ = ()


_SILENT = _Silent()


class _Completion:
    """An httptools protocol that only counts the messages llhttp completed (the other
    callbacks are None: httptools then registers none, and looks each up without a miss)."""

    __slots__ = ("done",)

    on_message_begin = on_url = on_header = on_headers_complete = on_body = None
    on_chunk_header = on_chunk_complete = on_status = None

    def __init__(self) -> None:
        self.done = 0

    def on_message_complete(self) -> None:
        self.done += 1


def _quick_request(
    data: bytes,
    max_header_size: int,
    quick: tuple[httptools.HttpRequestParser, _Completion] | None = None,
) -> ParsedRequest | None:
    """The common keep-alive request, parsed without a Python call per field line.

    When ``data`` is exactly one whole bodiless ``GET ... HTTP/1.1`` request (one head,
    ending the read: no pipelining, no body, no upgrade) that llhttp parsed to its end
    (strict mode validates every line, RFC 9112 sections 2-5), its fields are cut from
    the validated bytes as :func:`_quick_upgrade` does. None for anything else -- or an
    ``Expect`` field (answered by the full parser's checks) --, and the caller parses
    ``data`` with the full parser, which gives the authoritative answer; the same limit
    rule as :func:`_quick_upgrade` keeps the 431 in one place.
    """
    end = len(data)
    if (
        data[:4] != b"GET "
        or 2 * end + _REQUEST_LINE_OVERHEAD > max_header_size
        or data.find(b"\r\n\r\n") != end - 4
    ):
        return None
    if quick is None:
        completion = _Completion()
        parser = httptools.HttpRequestParser(completion)
    else:  # a parser at a message boundary (kept by HttpRequestParser.feed)
        parser, completion = quick
        completion.done = 0
    try:
        parser.feed_data(data)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return None
    if completion.done != 1 or parser.get_http_version() != "1.1":
        return None
    cut = _head_fields(data, end)
    if cut is None:
        return None
    target, headers = cut
    keep_alive = True  # (llhttp resets its flags at the message's end: decided here)
    for name, value in headers:
        if name == "connection":
            # RFC 9112 section 9.6: the "close" option ends the connection after this one
            if "close" in value.lower() and any(
                option.strip(_OWS) == "close" for option in value.lower().split(",")
            ):
                keep_alive = False
        elif name == "expect":
            return None
    return ParsedRequest("GET", target, "1.1", headers, b"", keep_alive, False)


def _quick_upgrade(data: bytes, max_header_size: int) -> tuple[ParsedRequest, int] | None:
    """The common WebSocket handshake, parsed without a Python call per field line.

    When ``data`` starts with a whole ``GET ... HTTP/1.1`` head that llhttp flags as an
    upgrade (RFC 9110 section 7.8), llhttp has already validated every line of it (strict
    mode: token field names, CRLF endings, no obs-fold, RFC 9112 sections 2-5), so the
    fields are cut from the validated bytes instead of being collected by ``on_header``.
    Returns the request and the offset of the first byte after its head, or None for
    anything else (a partial head, another method or version, an error, a plain request):
    the caller then parses ``data`` again with the full parser, which gives the
    authoritative answer.  Heads that might come near ``max_header_size`` by the full
    parser's reckoning (at most 20 + twice their length) also go the full way, so the 431
    limit is applied in exactly one place.
    """
    if data[:4] != b"GET ":  # the only method taken here: no second parse for the others
        return None
    parser = httptools.HttpRequestParser(_SILENT)
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade as upgrade:
        end: int = upgrade.args[0]
    except httptools.HttpParserError:
        return None
    else:
        return None
    if 2 * end + _REQUEST_LINE_OVERHEAD > max_header_size:
        return None
    if data.find(b"\r\n\r\n", 0, end) != end - 4:  # pipelined: an earlier request ended first
        return None
    if parser.get_http_version() != "1.1":
        return None
    cut = _head_fields(data, end)
    if cut is None:
        return None
    target, headers = cut
    return (
        ParsedRequest("GET", target, "1.1", headers, b"", parser.should_keep_alive(), True),
        end,
    )
