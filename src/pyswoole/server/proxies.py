"""The client behind a reverse proxy, and the origins a browser may open a WebSocket from.

pyswoole's own settings (Swoole 6.2 has neither: behind a proxy it shows the proxy's address
and leaves ``X-Forwarded-For`` to the application):

- ``trusted_proxies``: addresses and networks (``"10.0.0.0/8"``, ``"::1"``, ``"unix"`` for a
  Unix-socket listener, ``"*"`` for any peer) whose forwarding headers are believed. Empty by
  default: no header is believed from anyone. When the TCP peer is trusted, the request's
  ``server["remote_addr"]``/``["remote_port"]`` and ``get_client_info()`` show the client the
  headers name, from the first of ``proxy_headers`` the request carries (default: only
  ``X-Forwarded-For``; list exactly the headers the proxy sets, since a header it does not
  set is passed through from the client, who then chooses its own address):

  * ``X-Forwarded-For`` and ``Forwarded`` (RFC 7239 section 4/5.2: the ``for`` parameter of
    each element) list every hop, the client first. Each proxy appends the address it got
    the request from, so only the right end is vouched for: the list is walked from the right,
    skipping trusted hops; the first untrusted one is the client (as uvicorn's
    ``ProxyHeadersMiddleware`` and werkzeug's ``ProxyFix`` do). All trusted: the leftmost.
    A hop that is no address (``unknown``, an obfuscated ``_name`` of RFC 7239 section 6.3,
    garbage) ends the walk at the last trusted hop, which is then the address shown.
  * ``X-Real-IP`` names one address, set by the nearest proxy.

  The port is the one a hop carries (``for="[2001:db8::1]:4711"``, ``192.0.2.1:5555``), else
  0: the TCP port is the proxy's, not the client's.
- ``allowed_origins``: the ``Origin`` values (RFC 6454 section 7) a browser handshake may
  carry, ``*`` standing for one or more DNS labels (``https://*.example.com``). A handshake
  with an ``Origin`` not in the list gets 403 and is closed; one without ``Origin`` (not a
  browser) passes. Empty (default): every origin. This is the defence against cross-site
  WebSocket hijacking: browsers send cookies with a WebSocket handshake to any site, and
  only the server can refuse a page of another origin (RFC 6455 section 10.2).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

__all__ = [
    "DEFAULT_PROXY_HEADERS",
    "PROXY_HEADERS",
    "OriginPolicy",
    "TrustedProxies",
    "check_headers",
    "check_origins",
    "check_trusted",
    "parse_address",
    "parse_forwarded",
]

#: the forwarding headers pyswoole knows
PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
#: ``proxy_headers``' default: one header, as uvicorn and werkzeug's ProxyFix. A header the
#: proxy does not set is the client's own, passed through: believing it by default would let
#: any client choose its address (Swoole's nginx recipe sets X-Real-IP only: list that one)
DEFAULT_PROXY_HEADERS = ("x-forwarded-for",)

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_CACHE_MAX = 4096  # remembered trust decisions per server (peers are few: the proxies)

# RFC 7239 section 4: forwarded-pair = token "=" value; value = token / quoted-string
_PAIR = re.compile(
    r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[!#$%&\'*+.^_`|~0-9A-Za-z:\[\]-]*)\s*'
)
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"


def _entries(value: str | Iterable[str]) -> list[str]:
    """A setting's value as a list: a list of strings, or one comma-separated string."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item.strip()]


def _ip(text: str) -> str | None:
    """``text`` as a normalised IP address (IPv4-mapped IPv6 as IPv4), or None."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        if address.scope_id:
            return None
    return str(address)


def parse_address(token: str) -> tuple[str, int] | None:
    """A hop of a forwarding header as ``(ip, port)`` (port 0 if none), or None.

    Accepts ``192.0.2.1``, ``192.0.2.1:80``, ``2001:db8::1``, ``[2001:db8::1]`` and
    ``[2001:db8::1]:80`` (RFC 7239 section 6: node = nodename [":" node-port]), quoted or not.
    """
    token = token.strip()
    if len(token) >= 2 and token[0] == '"' and token[-1] == '"':
        token = token[1:-1].replace("\\", "")
    port = 0
    if token.startswith("["):
        host, bracket, rest = token[1:].partition("]")
        if not bracket:
            return None
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                return None
            port = int(rest[1:])
    elif token.count(":") == 1:
        host, _, digits = token.partition(":")
        if not digits.isdigit():
            return None
        port = int(digits)
    else:
        host = token
    ip = _ip(host)
    if ip is None or port > 65535:
        return None
    return ip, port


def parse_forwarded(values: Iterable[str]) -> list[tuple[str, int] | None]:
    """The ``for`` of each element of ``Forwarded`` field values (RFC 7239 section 4), left
    to right; None for an element without a usable address (missing, ``unknown``, obfuscated,
    malformed)."""
    hops: list[tuple[str, int] | None] = []
    for value in values:
        for element in _split_quoted(value, ","):
            found: tuple[str, int] | None = None
            for pair in _split_quoted(element, ";"):
                if not pair.strip():
                    continue
                match = _PAIR.fullmatch(pair)
                if match is None:
                    found = None
                    break
                if match.group(1).lower() == "for":
                    found = parse_address(match.group(2))
            hops.append(found)
    return hops


def _split_quoted(text: str, separator: str) -> list[str]:
    """``text`` cut at ``separator`` outside quoted-strings (RFC 9110 section 5.6.4)."""
    if '"' not in text:
        return text.split(separator)
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def check_trusted(value: object) -> str | None:
    """The ``trusted_proxies`` setting's check: every entry an address, a network, ``unix``
    or ``*``."""
    if not isinstance(value, (str, list, tuple)) or not all(
        isinstance(v, str) for v in (value if not isinstance(value, str) else [value])
    ):
        return "must be a list of addresses/networks (or one comma-separated string)"
    for entry in _entries(value):
        if entry in ("*", "unix"):
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return f"{entry!r} is not an IP address or network"
    return None


def check_headers(value: object) -> str | None:
    """The ``proxy_headers`` setting's check."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return "must be a list of header names"
    unknown = [v for v in value if v.lower() not in PROXY_HEADERS]
    return f"unknown header {unknown[0]!r} (one of {', '.join(PROXY_HEADERS)})" if unknown else None


class TrustedProxies:
    """``trusted_proxies`` + ``proxy_headers``: who the client of a request is."""

    __slots__ = ("_addresses", "_all", "_cache", "_headers", "_networks", "_unix")

    def __init__(
        self, entries: str | Iterable[str], headers: Iterable[str] = DEFAULT_PROXY_HEADERS
    ) -> None:
        self._all = False
        self._unix = False
        self._addresses: set[str] = set()
        self._networks: list[_Network] = []
        for entry in _entries(entries):
            if entry == "*":
                self._all = True
            elif entry == "unix":
                self._unix = True
            else:
                network = ipaddress.ip_network(entry, strict=False)
                if network.num_addresses == 1:
                    self._addresses.add(_ip(str(network.network_address)) or entry)
                else:
                    self._networks.append(network)
        self._headers = tuple(h.lower() for h in headers)
        self._cache: dict[str, bool] = {}

    @classmethod
    def from_settings(
        cls, entries: str | Iterable[str] | None, headers: Iterable[str] | None
    ) -> TrustedProxies | None:
        """None when no proxy is trusted (the default): nothing to do per request."""
        if not entries or not _entries(entries):
            return None
        return cls(entries, headers or DEFAULT_PROXY_HEADERS)

    def trusts(self, ip: str) -> bool:
        """Whether the peer ``ip`` ("" for a Unix-socket peer) is a trusted proxy."""
        if self._all:
            return True
        if not ip:
            return self._unix
        if ip in self._addresses:
            return True
        known = self._cache.get(ip)
        if known is not None:
            return known
        normal = _ip(ip)
        trusted = normal is not None and (
            normal in self._addresses
            or any(ipaddress.ip_address(normal) in net for net in self._networks)
        )
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[ip] = trusted
        return trusted

    def client(self, peer: tuple[str, int], headers: list[tuple[str, str]]) -> tuple[str, int]:
        """The client of a request that came from the TCP ``peer`` with these ``headers``
        (lowercase names, as parsed): ``peer`` itself unless it is trusted and a forwarding
        header names someone else."""
        if not self.trusts(peer[0]):
            return peer
        for name in self._headers:
            values = [v for k, v in headers if k == name]
            if not values:
                continue
            if name == "x-real-ip":
                return parse_address(values[-1]) or peer
            if name == "forwarded":
                hops = parse_forwarded(values)
            else:
                hops = [parse_address(h) for v in values for h in v.split(",") if h.strip()]
            return self._walk(hops, peer)
        return peer

    def _walk(self, hops: list[tuple[str, int] | None], peer: tuple[str, int]) -> tuple[str, int]:
        """From the right: skip trusted hops; the first untrusted one is the client."""
        last = peer
        for hop in reversed(hops):
            if hop is None:
                return last
            if not self.trusts(hop[0]):
                return hop
            last = hop
        return last


def check_origins(value: object) -> str | None:
    """The ``allowed_origins`` setting's check: ``scheme://host[:port]``, ``null`` or ``*``."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return "must be a list of origins ('https://example.com', 'https://*.example.com')"
    for origin in value:
        if origin in ("*", "null"):
            continue
        scheme, sep, rest = origin.partition("://")
        if not sep or not scheme or not rest or "/" in rest:
            return f"{origin!r} is not an origin (scheme://host[:port], no path)"
    return None


class OriginPolicy:
    """``allowed_origins``: which ``Origin`` a WebSocket handshake may come from."""

    __slots__ = ("_exact", "_patterns")

    def __init__(self, origins: Iterable[str]) -> None:
        self._exact: set[str] = set()
        patterns: list[str] = []
        for origin in origins:
            origin = origin.strip().lower().rstrip("/")
            if "*" in origin:
                parts = (re.escape(p) for p in origin.split("*"))
                patterns.append("(?:" + f"{_LABEL}(?:\\.{_LABEL})*".join(parts) + ")")
            else:
                self._exact.add(origin)
        self._patterns = re.compile("|".join(patterns)) if patterns else None

    @classmethod
    def from_setting(cls, origins: Iterable[str] | None) -> OriginPolicy | None:
        """None when every origin is allowed (the default, or ``*`` in the list)."""
        if not origins or "*" in origins:
            return None
        return cls(origins)

    def allows(self, headers: list[tuple[str, str]]) -> bool:
        """False for a handshake whose ``Origin`` is not allowed; True without ``Origin``.
        Several ``Origin`` fields (never sent by a browser) must all be allowed."""
        return all(self.allowed(value) for name, value in headers if name == "origin")

    def allowed(self, origin: str) -> bool:
        origin = origin.strip().lower()
        if origin in self._exact:
            return True
        return self._patterns is not None and self._patterns.fullmatch(origin) is not None
