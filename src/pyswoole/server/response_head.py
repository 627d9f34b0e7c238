"""The status line and header section of an HTTP/1.1 response (RFC 9112 sections 4 and 5),
in Swoole's order: the application's headers as given, ``Set-Cookie``, ``Server``, ``Date``,
``Connection``, ``Content-Type`` (``text/html`` by default), then the body's framing
(``Transfer-Encoding: chunked`` or ``Content-Length``).

Most responses of a server repeat the same head but for ``Date`` (once per second) and
``Content-Length``: :func:`serialize_head` keeps the encoded parts of each head it made,
keyed by what decides them (status, reason, the header items, method class, framing,
keep-alive, server name), and later answers with two concatenations. Responses with cookies
or multi-valued headers are made afresh each time (the cache would rarely hit).
"""

from __future__ import annotations

import time
from typing import Any

from .http_util import REASONS, UNKNOWN_REASON, http_date

__all__ = ["serialize_head"]

# what the head does with a header it is given, by lower-cased name
_FRAMES_BODY, _SERVER, _DATE, _CONTENT_TYPE, _CONNECTION = range(5)
_SPECIAL = {
    "content-length": _FRAMES_BODY,
    "transfer-encoding": _FRAMES_BODY,
    "server": _SERVER,
    "date": _DATE,
    "content-type": _CONTENT_TYPE,
    "connection": _CONNECTION,
}

#: key -> (before the Date line, Date wanted, after it (ends with "Content-Length: " when
#: the length follows, else with the blank line), the length follows, keep-alive after)
_CACHE: dict[tuple[Any, ...], tuple[bytes, bool, bytes, bool, bool]] = {}
#: heads kept; past it the cache starts again (a header that changes on every response
#: would otherwise grow it without bound)
_CACHE_MAX = 256

_date_line: tuple[int, bytes] = (0, b"")


def _date() -> bytes:
    """``Date: <IMF-fixdate>\\r\\n``, encoded once per second (RFC 9110 section 6.6.1)."""
    global _date_line
    now = int(time.time())
    if _date_line[0] != now:
        _date_line = (now, b"Date: %s\r\n" % http_date().encode("ascii"))
    return _date_line[1]


def serialize_head(response: Any, content_length: int | None, chunked: bool) -> bytes:
    """The head of ``response`` (a :class:`~pyswoole.server.response.Response`) for a body of
    ``content_length`` bytes (None: unknown, ``chunked`` or delimited by the close).

    Sets ``response.keep_alive`` to False when the application's ``Connection`` header
    says ``close``, and ``response._head_sent``.
    """
    head_request = response._method == "HEAD"
    key: tuple[Any, ...] | None = None
    if not response._cookies:
        try:
            key = (
                response.status_code,
                response._reason,
                head_request,
                chunked,
                content_length is None,
                not content_length,
                response.keep_alive,
                response.server_name,
                *response.headers.items(),
            )
            entry = _CACHE.get(key)
        except TypeError:  # a list value (several lines of one header): not cached
            key = entry = None
        if entry is None:
            entry = _make(response, content_length, chunked, head_request)
            if key is not None:
                if len(_CACHE) >= _CACHE_MAX:
                    _CACHE.clear()
                _CACHE[key] = entry
    else:
        entry = _make(response, content_length, chunked, head_request)
    before, with_date, after, with_length, keep_alive = entry
    response.keep_alive = keep_alive
    response._head_sent = True
    if with_date:
        date = _date_line[1]
        if _date_line[0] != int(time.time()):  # (_date, inline: once per response)
            date = _date()
    else:
        date = b""
    if with_length:  # (content_length is an int then)
        return b"%b%b%b%d\r\n\r\n" % (before, date, after, content_length or 0)
    return before + date + after


def _make(
    response: Any, content_length: int | None, chunked: bool, head_request: bool
) -> tuple[bytes, bool, bytes, bool, bool]:
    """The parts of a head, as :data:`_CACHE` keeps them."""
    code = response.status_code
    final = code >= 200
    reason = response._reason or REASONS.get(code, UNKNOWN_REASON)
    lines = [f"HTTP/1.1 {code} {reason}"]
    add = lines.append
    server = date = content_type = length = False
    connection: str | None = None
    for key, value in response.headers.items():
        if not value and isinstance(value, list):
            continue  # header(key, []): no line, as if not given
        lower = key.lower()
        special = _SPECIAL.get(lower)
        if special is not None:
            if special == _FRAMES_BODY and final:
                if lower != "content-length" or not head_request:
                    continue  # the response frames its body itself
                length = True
            elif special == _SERVER:
                server = True
            elif special == _DATE:
                date = True
            elif special == _CONTENT_TYPE:
                content_type = True
            elif special == _CONNECTION:
                connection = value[-1] if isinstance(value, list) else value
            elif lower == "content-length":  # a 1xx's: kept
                length = True
        if isinstance(value, list):
            for item in value:
                add(f"{key}: {item.rstrip()}")
        else:
            add(f"{key}: {value.rstrip()}")
    for cookie in response._cookies:
        add(f"Set-Cookie: {cookie}")
    if not server and response.server_name:
        add(f"Server: {response.server_name}")
    after: list[str] = []
    keep_alive = response.keep_alive
    with_length = False
    if final:
        # A 1xx (a custom WebSocket handshake's 101) stops here, as Swoole's upgrade.
        if connection is None:
            after.append("Connection: keep-alive" if keep_alive else "Connection: close")
        elif "close" in connection.lower():
            keep_alive = False
        if code != 204 and code != 304:
            if not content_type:
                after.append("Content-Type: text/html")
            if chunked:
                after.append("Transfer-Encoding: chunked")
            elif content_length is not None and not length and (content_length or not head_request):
                # As Swoole: a HEAD answered with no body gets no Content-Length (the
                # GET's length is unknown here, RFC 9110 section 8.6).
                with_length = True
    before_text = "\r\n".join(lines) + "\r\n"
    after_text = "".join(line + "\r\n" for line in after)
    after_text += "Content-Length: " if with_length else "\r\n"
    try:
        parts = (before_text.encode("latin-1"), after_text.encode("latin-1"))
    except UnicodeEncodeError:  # non-Latin-1 text in a header: send it as UTF-8
        parts = (before_text.encode(), after_text.encode())
    return parts[0], not date, parts[1], with_length, keep_alive
