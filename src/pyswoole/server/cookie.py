"""``Swoole\\Http\\Cookie``: the ``Set-Cookie`` value exactly as Swoole 6.2 writes it.

:meth:`Response.cookie() <pyswoole.server.response.Response.cookie>` and ``rawcookie()`` build
one of these and serialise it with :meth:`Cookie.to_string`.  What Swoole 6.2 writes (its
``swoole::http::Cookie::toString``, checked against swoole-src
``tests/swoole_http_server/cookieAlias.phpt``, ``max-age.phpt``, ``error_cookie.phpt``):

* ``name=value`` then, in this order and spelling, ``; expires=D, d-M-Y H:i:s GMT``
  and ``; Max-Age=N`` (only when ``expires > 0``; ``N`` = seconds left, at least 0),
  ``; path=``, ``; domain=``, ``; secure``, ``; HttpOnly``, ``; SameSite=``,
  ``; Priority=``, ``; Partitioned`` (each only when set).
* An empty value deletes the cookie: ``name=deleted; expires=Thu, 01-Jan-1970 00:00:01 GMT;
  Max-Age=0`` and *no* other attribute (``cookieAlias.phpt`` expects exactly 62 bytes for
  ``key1`` although path, domain and flags were set).
* ``cookie()`` encodes the value with PHP's ``urlencode()`` (letters, digits and ``-_.``
  kept, space as ``+``, every other byte ``%XX``); ``rawcookie()`` sends it as is.
* Refused (warning, nothing added): an empty name; a name with any of ``=,; \\t\\r\\n\\v\\f``;
  for ``rawcookie()`` a value with any of ``,; \\t\\r\\n\\v\\f``; a path or domain with any of
  those; an ``expires`` after the year 9999.

The ``expires`` date uses PHP's ``D, d-M-Y H:i:s T`` (``Thu, 01-Jan-1970 00:00:01 GMT``),
which RFC 6265 section 5.1.1's cookie-date parser reads (``-`` is a delimiter).  One
deliberate addition to Swoole: ``samesite`` and ``priority`` with CR, LF or NUL are refused
too (RFC 9110 section 5.5; Swoole copies them into the header unchecked).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote_plus

log = logging.getLogger("pyswoole")

__all__ = ["Cookie", "cookie_date", "make_cookie", "php_urlencode"]

_BAD_NAME = frozenset("=,; \t\r\n\013\014")
_BAD_VALUE = frozenset(",; \t\r\n\013\014")
_BAD_NAME_TEXT = '"=", ",", ";", " ", "\\t", "\\r", "\\n", "\\013", or "\\014"'
_BAD_VALUE_TEXT = '",", ";", " ", "\\t", "\\r", "\\n", "\\013", or "\\014"'
_UNSAFE = frozenset("\r\n\0")
# 9999-12-31 23:59:59 UTC: PHP refuses later expiry dates.
_MAX_EXPIRES = 253402300799
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DELETED = "=deleted; expires=Thu, 01-Jan-1970 00:00:01 GMT; Max-Age=0"


def php_urlencode(value: str) -> str:
    """PHP's ``urlencode()`` of the UTF-8 bytes of ``value`` (``~`` is encoded too)."""
    return quote_plus(value, safe="").replace("~", "%7E")


def cookie_date(timestamp: int) -> str:
    """PHP's ``gmdate("D, d-M-Y H:i:s T")``, independent of the locale."""
    t = time.gmtime(timestamp)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


class Cookie:
    """``Swoole\\Http\\Cookie``: a cookie built field by field, then :meth:`to_string`.

    The ``with_*`` methods (camelCase aliases ``withName``...) set one field and return the
    cookie itself, so calls chain as in PHP.  ``encode`` (the constructor's argument) chooses
    ``cookie()``'s URL-encoding or ``rawcookie()``'s raw value.  A fresh cookie has no path:
    only ``with_path()`` (default ``"/"``) or a ``path`` given to ``Response.cookie()``
    adds one.
    """

    __slots__ = (
        "domain",
        "encode",
        "expires",
        "http_only",
        "name",
        "partitioned",
        "path",
        "priority",
        "same_site",
        "secure",
        "value",
    )

    def __init__(self, encode: bool = True) -> None:
        self.encode = encode
        self.reset()

    def reset(self) -> bool:
        """Clear every field (``reset()``)."""
        self.name = ""
        self.value = ""
        self.path = ""
        self.domain = ""
        self.same_site = ""
        self.priority = ""
        self.expires = 0
        self.secure = False
        self.http_only = False
        self.partitioned = False
        return True

    def with_name(self, name: str) -> Cookie:
        """Set the cookie's name; returns the cookie (``withName``)."""
        self.name = name
        return self

    def with_value(self, value: str = "") -> Cookie:
        """Set its value; returns the cookie (``withValue``)."""
        self.value = value
        return self

    def with_expires(self, expires: int = 0) -> Cookie:
        """Set ``Expires`` (a Unix time; 0: none); returns the cookie (``withExpires``)."""
        self.expires = expires
        return self

    def with_path(self, path: str = "/") -> Cookie:
        """Set ``Path``; returns the cookie (``withPath``)."""
        self.path = path
        return self

    def with_domain(self, domain: str = "") -> Cookie:
        """Set ``Domain``; returns the cookie (``withDomain``)."""
        self.domain = domain
        return self

    def with_secure(self, secure: bool = False) -> Cookie:
        """Set ``Secure``; returns the cookie (``withSecure``)."""
        self.secure = secure
        return self

    def with_http_only(self, http_only: bool = False) -> Cookie:
        """Set ``HttpOnly``; returns the cookie (``withHttpOnly``)."""
        self.http_only = http_only
        return self

    def with_same_site(self, same_site: str = "") -> Cookie:
        """Set ``SameSite`` (``Strict``, ``Lax``, ``None``); returns the cookie."""
        self.same_site = same_site
        return self

    def with_priority(self, priority: str = "") -> Cookie:
        """Set ``Priority`` (``Low``, ``Medium``, ``High``); returns the cookie."""
        self.priority = priority
        return self

    def with_partitioned(self, partitioned: bool = False) -> Cookie:
        """Set ``Partitioned`` (CHIPS); returns the cookie (``withPartitioned``)."""
        self.partitioned = partitioned
        return self

    withName = with_name
    withValue = with_value
    withExpires = with_expires
    withPath = with_path
    withDomain = with_domain
    withSecure = with_secure
    withHttpOnly = with_http_only
    withSameSite = with_same_site
    withPriority = with_priority
    withPartitioned = with_partitioned

    def to_array(self) -> dict[str, Any]:
        """The fields as Swoole's ``toArray()`` names them."""
        return {
            "name": self.name,
            "value": self.value,
            "path": self.path,
            "domain": self.domain,
            "sameSite": self.same_site,
            "priority": self.priority,
            "encode": self.encode,
            "expires": self.expires,
            "secure": self.secure,
            "httpOnly": self.http_only,
            "partitioned": self.partitioned,
        }

    toArray = to_array

    def to_string(self, caller: str = "Swoole\\Http\\Cookie::toString") -> str | None:
        """The ``Set-Cookie`` value, or None (and a warning) for a cookie Swoole refuses."""
        name = self.name
        value = self.value
        problem = ""
        if not name:
            problem = "Cookie name cannot be empty"
        elif not _BAD_NAME.isdisjoint(name):
            problem = "Cookie name cannot contain " + _BAD_NAME_TEXT
        elif not self.encode and not _BAD_VALUE.isdisjoint(value):
            problem = "Cookie value cannot contain " + _BAD_VALUE_TEXT
        elif not _BAD_VALUE.isdisjoint(self.path):
            problem = "Cookie path option cannot contain " + _BAD_VALUE_TEXT
        elif not _BAD_VALUE.isdisjoint(self.domain):
            problem = "Cookie domain option cannot contain " + _BAD_VALUE_TEXT
        elif self.expires > _MAX_EXPIRES:
            problem = "Cookie expires option cannot have a year greater than 9999"
        elif not _UNSAFE.isdisjoint(self.same_site + self.priority):
            problem = "Header may not contain more than a single header, new line detected"
        if problem:
            log.warning("%s(): %s", caller, problem)
            return None
        if not value:
            return name + _DELETED
        parts = [f"{name}={php_urlencode(value) if self.encode else value}"]
        expires = self.expires
        if expires > 0:
            max_age = max(0, expires - int(time.time()))
            parts.append(f"expires={cookie_date(expires)}; Max-Age={max_age}")
        if self.path:
            parts.append("path=" + self.path)
        if self.domain:
            parts.append("domain=" + self.domain)
        if self.secure:
            parts.append("secure")
        if self.http_only:
            parts.append("HttpOnly")
        if self.same_site:
            parts.append("SameSite=" + self.same_site)
        if self.priority:
            parts.append("Priority=" + self.priority)
        if self.partitioned:
            parts.append("Partitioned")
        return "; ".join(parts)

    def toString(self) -> str | bool:
        """Swoole's ``toString()``: the value, or False for a refused cookie."""
        text = self.to_string()
        return False if text is None else text

    def __repr__(self) -> str:
        return f"<Cookie {self.name}={self.value!r}>"


def make_cookie(
    encode: bool,
    name: str,
    value: str,
    expires: int,
    path: str,
    domain: str,
    secure: bool,
    httponly: bool,
    samesite: str,
    priority: str,
    partitioned: bool,
) -> Cookie:
    """The :class:`Cookie` of ``cookie()`` (``encode``: URL-encoded value) or ``rawcookie()``."""
    return (
        Cookie(encode)
        .with_name(name)
        .with_value(value)
        .with_expires(expires)
        .with_path(path)
        .with_domain(domain)
        .with_secure(secure)
        .with_http_only(httponly)
        .with_same_site(samesite)
        .with_priority(priority)
        .with_partitioned(partitioned)
    )
