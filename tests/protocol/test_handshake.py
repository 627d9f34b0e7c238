"""Tests of the opening handshake (pyswoole.protocol.handshake, RFC 6455 section 4)."""

from __future__ import annotations

import base64
import binascii
import random
import string

import pytest

from pyswoole.exceptions import HttpProtocolError
from pyswoole.protocol.handshake import (
    _KEY,
    GUID,
    accept_key,
    accept_response,
    check_request,
    header_tokens,
    is_upgrade_request,
    select_subprotocol,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # the key of RFC 6455 section 1.3
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

Headers = list[tuple[str, str]]


def request_headers(**overrides: str | None) -> Headers:
    """A valid upgrade request's headers; ``name=None`` drops one, ``name=value`` replaces."""
    base = {
        "host": "server.example.com",
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-key": KEY,
        "sec-websocket-version": "13",
    }
    for name, value in overrides.items():
        name = name.replace("_", "-")
        if value is None:
            base.pop(name)
        else:
            base[name] = value
    return list(base.items())


def rejected(headers: Headers, method: str = "GET", version: str = "1.1") -> HttpProtocolError:
    with pytest.raises(HttpProtocolError) as info:
        check_request(method, version, headers)
    return info.value


# -- Sec-WebSocket-Accept -------------------------------------------------------------------


def test_accept_key_rfc_example() -> None:
    assert GUID == b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert accept_key(KEY) == ACCEPT


def test_accept_key_other_keys() -> None:
    # values from an independent implementation (websockets.utils.accept_key)
    assert accept_key("x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk="
    assert accept_key("AQIDBAUGBwgJCgsMDQ4PEA==") == "C/0nmHhBztSRGR1CwL6Tf4ZjwpY="


# -- check_request: accepted -----------------------------------------------------------------


def test_valid_request_returns_the_key() -> None:
    assert check_request("GET", "1.1", request_headers()) == KEY


@pytest.mark.parametrize(
    "connection",
    [
        "Upgrade",
        "upgrade",
        "UPGRADE",
        "keep-alive, Upgrade",
        "Upgrade, keep-alive",
        "keep-alive,upgrade",
    ],
)
def test_connection_tokens(connection: str) -> None:
    assert check_request("GET", "1.1", request_headers(connection=connection)) == KEY


@pytest.mark.parametrize("upgrade", ["websocket", "WebSocket", "WEBSOCKET", "h2c, websocket"])
def test_upgrade_tokens(upgrade: str) -> None:
    assert check_request("GET", "1.1", request_headers(upgrade=upgrade)) == KEY


def test_connection_split_over_two_headers() -> None:
    headers = [*request_headers(connection="keep-alive"), ("connection", "Upgrade")]
    assert check_request("GET", "1.1", headers) == KEY


def test_version_with_whitespace() -> None:
    assert check_request("GET", "1.1", request_headers(sec_websocket_version=" 13 ")) == KEY


# -- check_request: 400 ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "HEAD", "PUT", "get", "OPTIONS"])
def test_rejects_other_methods(method: str) -> None:
    assert rejected(request_headers(), method=method).status == 400


@pytest.mark.parametrize("version", ["1.0", "0.9", "2"])
def test_rejects_other_http_versions(version: str) -> None:
    assert rejected(request_headers(), version=version).status == 400


def test_rejects_missing_host() -> None:
    assert rejected(request_headers(host=None)).status == 400


@pytest.mark.parametrize("upgrade", [None, "", "h2c", "web-socket", "websocket2"])
def test_rejects_missing_or_invalid_upgrade(upgrade: str | None) -> None:
    error = rejected(request_headers(upgrade=upgrade))
    assert error.status == 400
    assert error.headers == {}


@pytest.mark.parametrize("connection", [None, "", "keep-alive", "close", "upgraded"])
def test_rejects_missing_or_invalid_connection(connection: str | None) -> None:
    assert rejected(request_headers(connection=connection)).status == 400


@pytest.mark.parametrize(
    "key",
    [
        "",
        "not base64!",
        "dGhlIHNhbXBsZSBub25jZQ",  # missing padding
        "dGhlIHNhbXBsZSBub25j",  # 15 bytes
        base64.b64encode(b"x" * 17).decode(),
        base64.b64encode(b"x" * 15).decode(),
        "dGhlIHNhbXBs ZSBub25jZQ==",
        "dGhlIHNhbXBsZSBub25jZQ==é",
    ],
)
def test_rejects_bad_key(key: str) -> None:
    assert rejected(request_headers(sec_websocket_key=key)).status == 400


def test_rejects_missing_key() -> None:
    assert rejected(request_headers(sec_websocket_key=None)).status == 400


def test_rejects_duplicated_key() -> None:
    headers = [*request_headers(), ("sec-websocket-key", KEY)]
    assert rejected(headers).status == 400
    other = base64.b64encode(b"y" * 16).decode()
    assert rejected([*request_headers(), ("sec-websocket-key", other)]).status == 400


# -- check_request: 426 ----------------------------------------------------------------------


@pytest.mark.parametrize("version", [None, "8", "12", "14", "13, 8", ""])
def test_other_or_missing_version_is_426(version: str | None) -> None:
    error = rejected(request_headers(sec_websocket_version=version))
    assert error.status == 426
    assert error.headers == {"Sec-WebSocket-Version": "13"}


# -- header helpers ----------------------------------------------------------------------------


def test_header_tokens_and_is_upgrade_request() -> None:
    headers = [("connection", " keep-alive , Upgrade,, "), ("connection", "X")]
    assert header_tokens(headers, "connection") == ["keep-alive", "upgrade", "x"]
    assert header_tokens(headers, "upgrade") == []
    assert is_upgrade_request(request_headers()) is True
    assert is_upgrade_request(request_headers(upgrade="WebSocket")) is True
    assert is_upgrade_request(request_headers(upgrade=None)) is False


# -- select_subprotocol ------------------------------------------------------------------------


def offered(*values: str) -> Headers:
    return [("host", "h"), *(("sec-websocket-protocol", v) for v in values)]


def test_subprotocol_in_server_preference_order() -> None:
    headers = offered("chat, superchat")
    assert select_subprotocol(headers, ["superchat", "chat"]) == "superchat"
    assert select_subprotocol(headers, ["chat", "superchat"]) == "chat"
    assert select_subprotocol(offered("a", "b, c"), ["c", "a"]) == "c"


def test_subprotocol_only_one_the_client_offered() -> None:
    assert select_subprotocol(offered("chat"), ["mqtt", "wamp"]) is None
    assert select_subprotocol(offered(), ["chat"]) is None
    assert select_subprotocol(offered("chat"), []) is None
    assert select_subprotocol(offered(" , "), ["", " "]) is None


def test_subprotocol_is_case_sensitive() -> None:
    assert select_subprotocol(offered("Chat"), ["chat"]) is None
    assert select_subprotocol(offered("Chat, chat"), ["chat"]) == "chat"


def test_subprotocol_accepts_any_iterable() -> None:
    assert select_subprotocol(offered("b"), iter(["a", "b"])) == "b"


# -- accept_response ---------------------------------------------------------------------------


def parse_response(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    assert raw.endswith(b"\r\n\r\n")
    status, *lines = raw[:-4].decode("latin-1").split("\r\n")
    return status, [(k, v) for k, _, v in (line.partition(": ") for line in lines)]


def test_accept_response_minimal() -> None:
    raw = accept_response(KEY, server_name="")
    assert raw == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )


def test_accept_response_full() -> None:
    raw = accept_response(
        KEY,
        subprotocol="chat",
        extensions="permessage-deflate",
        extra_headers=[("X-A", "1"), ("Set-Cookie", "s=2")],
        server_name="swoole-http-server",
    )
    status, headers = parse_response(raw)
    assert status == "HTTP/1.1 101 Switching Protocols"
    assert headers == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", ACCEPT),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Protocol", "chat"),
        ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ("Server", "swoole-http-server"),
        ("X-A", "1"),
        ("Set-Cookie", "s=2"),
    ]


def test_accept_response_defaults() -> None:
    _, headers = parse_response(accept_response(KEY))
    names = [name for name, _ in headers]
    assert "Sec-WebSocket-Protocol" not in names
    assert "Sec-WebSocket-Extensions" not in names
    assert ("Server", "pyswoole") in headers


def test_handshake_round_trip() -> None:
    headers = [*request_headers(), ("sec-websocket-protocol", "chat")]
    key = check_request("GET", "1.1", headers)
    protocol = select_subprotocol(headers, ["chat"])
    _, response = parse_response(accept_response(key, subprotocol=protocol))
    assert ("Sec-WebSocket-Accept", ACCEPT) in response
    assert ("Sec-WebSocket-Protocol", "chat") in response


def test_key_check_is_exactly_base64_of_16_bytes() -> None:
    # The one-step key check must accept and refuse exactly what decoding would.
    rng = random.Random(6455)
    alphabet = string.ascii_letters + string.digits + "+/=-_ .\t\u00e9"
    keys = ["A" * 21 + "A==", "A" * 21 + "===", "A" * 22 + "=", "A" * 24, "A" * 22 + "==="]
    keys += [base64.b64encode(rng.randbytes(n)).decode() for n in range(12, 20)]
    keys += [
        "".join(rng.choice(alphabet) for _ in range(rng.choice((22, 23, 24, 25))))
        for _ in range(5000)
    ]
    keys += [
        base64.b64encode(rng.randbytes(16)).decode()[: rng.randrange(25)] + "=="
        for _ in range(2000)
    ]
    for key in keys:
        try:
            decodes = len(base64.b64decode(key.encode("ascii"), validate=True)) == 16
        except (binascii.Error, UnicodeEncodeError):
            decodes = False
        assert (_KEY.fullmatch(key) is not None) == decodes, key
        headers = [
            ("host", "h"),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", key),
            ("sec-websocket-version", "13"),
        ]
        if decodes:
            assert check_request("GET", "1.1", headers) == key
        else:
            with pytest.raises(HttpProtocolError):
                check_request("GET", "1.1", headers)
