"""Property-based fuzzing of the opening handshake (``pyswoole.protocol.handshake``).

``check_request`` on arbitrary methods, versions and header lists (the handshake's own
fields with valid, borderline and random values, repeated or missing, among others)
returns the ``Sec-WebSocket-Key`` exactly when RFC 6455 section 4.2.1 holds, and otherwise
raises ``HttpProtocolError`` with the status of one of the problems the request has (400,
or 426 with ``Sec-WebSocket-Version: 13`` for the version, section 4.4); nothing else.
``select_subprotocol``, ``is_upgrade_request`` and ``accept_key``/``accept_response``
are checked against their definitions.
"""

from __future__ import annotations

import base64
import hashlib
import re

from hypothesis import example, given
from hypothesis import strategies as st

from pyswoole.exceptions import HttpProtocolError
from pyswoole.protocol.handshake import (
    accept_key,
    accept_response,
    check_request,
    is_upgrade_request,
    select_subprotocol,
)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: a base64-encoded 16-byte value: 22 alphabet characters, then "==" (section 4.2.1 item 5)
KEY = re.compile(r"[A-Za-z0-9+/]{22}==")

_any = st.text(max_size=12)
VALUES = {
    "host": st.sampled_from(["example.com", "h:80", ""]) | _any,
    "upgrade": st.sampled_from(
        ["websocket", "WebSocket", "h2c, websocket", " websocket ", "websocket2", "", "a,,b"]
    )
    | _any,
    "connection": st.sampled_from(
        ["Upgrade", "keep-alive, Upgrade", "upgrade", "close", "", "Upgrade2", ",upgrade,"]
    )
    | _any,
    "sec-websocket-key": st.binary(min_size=16, max_size=16).map(
        lambda b: base64.b64encode(b).decode()
    )
    | st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode())
    | st.sampled_from(["dGhlIHNhbXBsZSBub25jZQ==", " dGhlIHNhbXBsZSBub25jZQ==", "x" * 24])
    | _any,
    "sec-websocket-version": st.sampled_from(["13", " 13 ", "8", "", "13, 8", "1 3", "013"]) | _any,
    "sec-websocket-protocol": st.sampled_from(["chat", "chat, superchat", " v2 ,v1", ","]) | _any,
    "origin": _any,
}
NAMES = st.sampled_from(sorted(VALUES)) | st.text("abcdefghijklmnopqrstuvwxyz-", max_size=20)


@st.composite
def header_lists(draw: st.DrawFn) -> list[tuple[str, str]]:
    """(lower-case name, value) pairs as the HTTP parser gives them; mostly a complete,
    valid handshake with a few fields dropped, repeated or changed."""
    headers: list[tuple[str, str]] = []
    if draw(st.integers(0, 3)):
        headers = [
            ("host", "example.com"),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
        ]
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 4]))):
        what = draw(st.sampled_from(["add", "add", "drop", "change"]))
        if what == "add":
            name = draw(NAMES)
            value = draw(VALUES.get(name, _any))
            headers.insert(draw(st.integers(0, len(headers))), (name, value))
        elif headers:
            at = draw(st.integers(0, len(headers) - 1))
            if what == "drop":
                del headers[at]
            else:
                name = headers[at][0]
                headers[at] = (name, draw(VALUES.get(name, _any)))
    return draw(st.permutations(headers)) if draw(st.integers(0, 4)) == 0 else headers


def has_token(values: list[str], token: str) -> bool:
    """Whether the comma-separated lists hold ``token`` (RFC 9110 section 5.6.1, case-
    insensitive; whitespace around elements ignored, as ``str.strip`` sees it)."""
    return any(part.strip().lower() == token for value in values for part in value.split(","))


def problems(method: str, version: str, headers: list[tuple[str, str]]) -> set[int]:
    """The statuses of everything wrong with the request (section 4.2.1; 426 for the
    version, section 4.4); empty when it is a valid handshake."""
    found: set[int] = set()

    def values(name: str) -> list[str]:
        return [v for k, v in headers if k == name]

    if method != "GET" or version != "1.1" or not values("host"):
        found.add(400)
    if not has_token(values("upgrade"), "websocket"):
        found.add(400)
    if not has_token(values("connection"), "upgrade"):
        found.add(400)
    keys = values("sec-websocket-key")
    if len(keys) != 1 or not KEY.fullmatch(keys[0]):
        found.add(400)
    versions = values("sec-websocket-version")
    if len(versions) > 1:
        found.add(400)
    elif not versions or versions[0].strip() != "13":
        found.add(426)
    return found


def mostly(value: str, *others: str) -> st.SearchStrategy[str]:
    """``value`` three times in four, else one of ``others`` or random text."""
    return st.sampled_from([value] * 6 + list(others)) | st.just(value) | st.text(max_size=6)


@given(mostly("GET", "POST", "get", "HEAD"), mostly("1.1", "1.0", "2.0", "1.1 "), header_lists())
@example("GET", "1.1", [("host", "h"), ("upgrade", "websocket"), ("connection", "upgrade")])
def test_check_request(method: str, version: str, headers: list[tuple[str, str]]) -> None:
    expected = problems(method, version, headers)
    try:
        key = check_request(method, version, headers)
    except HttpProtocolError as error:
        assert expected, f"refused a valid handshake: {error}"
        assert error.status in expected
        if error.status == 426:
            assert error.headers == {"Sec-WebSocket-Version": "13"}
        return
    assert not expected
    [(only_key,)] = {(v,) for k, v in headers if k == "sec-websocket-key"}
    assert key == only_key and len(base64.b64decode(key, validate=True)) == 16


@given(header_lists(), st.lists(st.sampled_from(["chat", "superchat", "v1", "v2", "V1"])))
def test_select_subprotocol(headers: list[tuple[str, str]], supported: list[str]) -> None:
    """The first supported name the client offered (names are case-sensitive), or None."""
    offered = [
        part.strip()
        for k, v in headers
        if k == "sec-websocket-protocol"
        for part in v.split(",")
        if part.strip()
    ]
    expected = next((name for name in supported if name in offered), None)
    assert select_subprotocol(headers, supported) == expected


@given(header_lists())
def test_is_upgrade_request(headers: list[tuple[str, str]]) -> None:
    expected = any(has_token([v], "websocket") for k, v in headers if k == "upgrade")
    assert is_upgrade_request(headers) is expected


@given(
    st.binary(min_size=16, max_size=16).map(lambda b: base64.b64encode(b).decode()),
    st.none() | st.sampled_from(["chat", "v2"]),
    st.none() | st.just("permessage-deflate; server_no_context_takeover"),
    st.sampled_from(["pyswoole", "", "swoole-http-server"]),
)
def test_accept_response(key: str, subprotocol: str | None, ext: str | None, name: str) -> None:
    """Section 4.2.2: base64(SHA-1(key + GUID)) in a 101 head that carries what it was given."""
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    assert accept_key(key) == accept
    head = accept_response(key, subprotocol=subprotocol, extensions=ext, server_name=name)
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 101 Switching Protocols" and lines[-2:] == ["", ""]
    fields = dict(line.split(": ", 1) for line in lines[1:-2])
    assert fields["Sec-WebSocket-Accept"] == accept
    assert fields["Upgrade"] == "websocket" and fields["Connection"] == "Upgrade"
    assert fields.get("Sec-WebSocket-Protocol") == subprotocol
    assert fields.get("Sec-WebSocket-Extensions") == ext
    assert fields.get("Server") == (name or None)
