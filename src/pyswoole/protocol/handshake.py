"""The server's opening handshake (RFC 6455 section 4.2), Sans-I/O.

:func:`check_request` validates a client's upgrade request as section 4.2.1 requires and
returns its ``Sec-WebSocket-Key``; :func:`accept_response` builds the ``101 Switching
Protocols`` answer of section 4.2.2. Headers are ``(lower-case name, value)`` pairs as the
HTTP parser (:mod:`pyswoole.protocol.http`) produces them.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from hashlib import sha1 as _sha1

from ..exceptions import HttpProtocolError

__all__ = [
    "GUID",
    "accept_key",
    "accept_response",
    "check_request",
    "header_tokens",
    "is_upgrade_request",
    "select_subprotocol",
]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: a base64-encoded 16-byte value (section 4.2.1 item 5): 22 alphabet characters and "=="
#: (what base64.b64decode(validate=True) accepts as 16 bytes, checked in one step)
_KEY = re.compile(r"[A-Za-z0-9+/]{22}==")


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for ``key``: base64(SHA-1(key + GUID)) (section 4.2.2)."""
    return _accept_bytes(key).decode()


def _accept_bytes(key: str) -> bytes:
    return binascii.b2a_base64(_sha1(key.encode("latin-1") + GUID).digest(), newline=False)


def header_tokens(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    """All comma-separated tokens of every ``name`` header, lower-cased (RFC 9110 section 5.6.1)."""
    tokens: list[str] = []
    for key, value in headers:
        if key == name:
            tokens.extend(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def _single(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    found = [value for key, value in headers if key == name]
    if not found:
        return None
    if len(found) > 1:
        raise HttpProtocolError(400, f"more than one {name} header")
    return found[0]


def is_upgrade_request(headers: Sequence[tuple[str, str]]) -> bool:
    """True when the request asks to switch to WebSocket (``Upgrade: websocket``)."""
    for key, value in headers:  # noqa: SIM110 - a plain loop: no generator per handshake
        if key == "upgrade" and _has_token(value, "websocket"):
            return True
    return False


def check_request(method: str, version: str, headers: Sequence[tuple[str, str]]) -> str:
    """Validate a WebSocket upgrade request (section 4.2.1); return ``Sec-WebSocket-Key``.

    Raises :class:`HttpProtocolError` 400 with a short reason, or 426 with
    ``Sec-WebSocket-Version: 13`` for another protocol version (section 4.4).
    """
    if method != "GET":
        raise HttpProtocolError(400, "WebSocket handshake requires GET")
    if version != "1.1":
        raise HttpProtocolError(400, "WebSocket handshake requires HTTP/1.1")
    # One pass over the headers: the ones the handshake needs, and how often each came.
    host = upgrade = connection = key = version_header = None
    key_count = version_count = 0
    for name, value in headers:
        if name == "host":
            host = value
        elif name == "upgrade":
            upgrade = value if upgrade is None else f"{upgrade},{value}"
        elif name == "connection":
            connection = value if connection is None else f"{connection},{value}"
        elif name == "sec-websocket-key":
            key = value
            key_count += 1
        elif name == "sec-websocket-version":
            version_header = value
            version_count += 1
    if host is None:
        raise HttpProtocolError(400, "missing Host header")
    if upgrade is None or not _has_token(upgrade, "websocket"):
        raise HttpProtocolError(400, "missing Upgrade: websocket")
    if connection is None or not _has_token(connection, "upgrade"):
        raise HttpProtocolError(400, "missing Connection: Upgrade")
    if key is None:
        raise HttpProtocolError(400, "missing Sec-WebSocket-Key")
    if key_count > 1:
        raise HttpProtocolError(400, "more than one sec-websocket-key header")
    if _KEY.fullmatch(key) is None:  # exactly what a base64 16-byte value looks like
        try:
            raw = base64.b64decode(key.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise HttpProtocolError(400, "Sec-WebSocket-Key is not base64") from None
        if len(raw) != 16:
            raise HttpProtocolError(400, "Sec-WebSocket-Key is not 16 bytes")
    if version_count > 1:
        raise HttpProtocolError(400, "more than one sec-websocket-version header")
    if version_header is None:
        raise HttpProtocolError(
            426, "missing Sec-WebSocket-Version", {"Sec-WebSocket-Version": "13"}
        )
    if version_header.strip() != "13":
        raise HttpProtocolError(
            426, "unsupported Sec-WebSocket-Version", {"Sec-WebSocket-Version": "13"}
        )
    return key


def _has_token(value: str, token: str) -> bool:
    """Whether the comma-separated ``value`` holds ``token`` (case-insensitive)."""
    lowered = value.lower()
    if lowered == token:
        return True
    return any(part.strip() == token for part in lowered.split(","))


def select_subprotocol(headers: Sequence[tuple[str, str]], supported: Iterable[str]) -> str | None:
    """The first of the server's ``supported`` subprotocols that the client offered.

    Subprotocol names are case-sensitive tokens (section 4.2.2 item 5.4); the answer must be
    one the client offered, or nothing at all.
    """
    offered: list[str] = []
    for key, value in headers:
        if key == "sec-websocket-protocol":
            offered.extend(t.strip() for t in value.split(",") if t.strip())
    if not offered:
        return None
    for name in supported:
        if name in offered:
            return name
    return None


def accept_response(
    key: str,
    *,
    subprotocol: str | None = None,
    extensions: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
    server_name: str = "pyswoole",
) -> bytes:
    """The ``101 Switching Protocols`` response head (section 4.2.2 item 5)."""
    if not (subprotocol or extensions or extra_headers):
        # The common answer: one concatenation with the cached end of the head.
        tail = _101_TAILS.get(server_name)
        if tail is None:
            tail = (
                b"\r\nSec-WebSocket-Version: 13"
                + (f"\r\nServer: {server_name}".encode("latin-1") if server_name else b"")
                + b"\r\n\r\n"
            )
            if len(_101_TAILS) < 8:  # a server has one name; never grow without bound
                _101_TAILS[server_name] = tail
        return _101_HEAD + _accept_bytes(key) + tail
    head = [_101_HEAD, _accept_bytes(key)]
    head.append(b"\r\nSec-WebSocket-Version: 13")
    if subprotocol:
        head.append(f"\r\nSec-WebSocket-Protocol: {subprotocol}".encode("latin-1"))
    if extensions:
        head.append(f"\r\nSec-WebSocket-Extensions: {extensions}".encode("latin-1"))
    if server_name:
        head.append(f"\r\nServer: {server_name}".encode("latin-1"))
    for name, value in extra_headers:
        head.append(f"\r\n{name}: {value}".encode("latin-1"))
    head.append(b"\r\n\r\n")
    return b"".join(head)


_101_HEAD = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: "
)
#: the end of the plain 101 head (no subprotocol, extension or extra header) per Server value
_101_TAILS: dict[str, bytes] = {}
