"""Byte-in / request-out tests of pyswoole.protocol.http."""

from __future__ import annotations

import random
from typing import Any

import pytest

from pyswoole.exceptions import HttpProtocolError
from pyswoole.protocol.http import (
    HttpRequestParser,
    ParsedRequest,
    _head_fields_py,
    _quick_request,
    _quick_upgrade,
)

GET = b"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nX-Multi: one\r\nX-Multi: two\r\n\r\n"
POST = b"POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = (
    b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)
UPGRADE = (
    b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def feed_all(parser: HttpRequestParser, *chunks: bytes) -> list[ParsedRequest]:
    out: list[ParsedRequest] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def test_simple_get() -> None:
    parser = HttpRequestParser()
    [req] = parser.feed(GET)
    assert req.method == "GET"
    assert req.target == "/a/b?x=1&y=2"
    assert req.path == "/a/b"
    assert req.query == "x=1&y=2"
    assert req.version == "1.1"
    assert req.headers == [("host", "example.com"), ("x-multi", "one"), ("x-multi", "two")]
    assert req.body == b""
    assert req.keep_alive is True
    assert req.upgrade is False
    assert not parser.waiting_for_more()
    assert not parser.upgraded
    assert "GET /a/b" in repr(req)


def test_no_query_and_absolute_form() -> None:
    parser = HttpRequestParser()
    [a, b, c] = parser.feed(
        b"GET / HTTP/1.1\r\n\r\n"
        b"GET http://example.com/p/q?z HTTP/1.1\r\n\r\n"
        b"GET http://example.com HTTP/1.1\r\n\r\n"
    )
    assert (a.path, a.query) == ("/", "")
    assert (b.path, b.query, b.target) == ("/p/q", "z", "http://example.com/p/q?z")
    assert (c.path, c.query) == ("/", "")


def test_header_values_stripped_and_names_lowered() -> None:
    [req] = HttpRequestParser().feed(b"GET / HTTP/1.1\r\nX-Thing:   spaced  \r\n\r\n")
    assert req.headers == [("x-thing", "spaced")]


def test_latin1_header_values() -> None:
    [req] = HttpRequestParser().feed(b"GET / HTTP/1.1\r\nX: caf\xe9\r\n\r\n")
    assert req.headers == [("x", "caf\xe9")]


@pytest.mark.parametrize("message", [GET, POST, CHUNKED])
def test_split_at_every_offset(message: bytes) -> None:
    expected = HttpRequestParser().feed(message)[0]
    for cut in range(1, len(message)):
        parser = HttpRequestParser()
        assert parser.feed(message[:cut]) == []
        assert parser.waiting_for_more()
        [req] = parser.feed(message[cut:])
        assert (req.method, req.target, req.headers, req.body) == (
            expected.method,
            expected.target,
            expected.headers,
            expected.body,
        )
        assert not parser.waiting_for_more()


def test_byte_at_a_time() -> None:
    parser = HttpRequestParser()
    stream = GET + POST + CHUNKED
    reqs = feed_all(parser, *(stream[i : i + 1] for i in range(len(stream))))
    assert [r.method for r in reqs] == ["GET", "POST", "POST"]
    assert reqs[2].body == b"hello world"


def test_pipelined_in_one_feed() -> None:
    parser = HttpRequestParser()
    reqs = parser.feed(GET + POST + CHUNKED + GET)
    assert [r.target for r in reqs] == ["/a/b?x=1&y=2", "/submit", "/c", "/a/b?x=1&y=2"]
    assert reqs[1].body == b"hello"
    assert reqs[2].body == b"hello world"


def test_pipelined_with_partial_tail() -> None:
    parser = HttpRequestParser()
    reqs = parser.feed(POST + GET[:10])
    assert [r.target for r in reqs] == ["/submit"]
    assert parser.waiting_for_more()
    [req] = parser.feed(GET[10:])
    assert req.path == "/a/b"


def test_leading_empty_lines_ignored() -> None:
    [req] = HttpRequestParser().feed(b"\r\n\r\n" + GET)
    assert req.method == "GET"


def test_chunked_body() -> None:
    [req] = HttpRequestParser().feed(CHUNKED)
    assert req.body == b"hello world"
    assert ("transfer-encoding", "chunked") in req.headers


def test_chunked_with_trailer_fields() -> None:
    data = (
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    [req] = HttpRequestParser().feed(data)
    assert req.body == b"abc"


def test_chunked_body_over_limit() -> None:
    parser = HttpRequestParser(max_body_size=8)
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert parser.feed(head + b"5\r\nhello\r\n") == []
    with pytest.raises(HttpProtocolError) as info:
        parser.feed(b"5\r\nworld\r\n0\r\n\r\n")
    assert info.value.status == 413
    # The parser is dead afterwards.
    with pytest.raises(HttpProtocolError):
        parser.feed(GET)


def test_chunked_body_at_limit() -> None:
    parser = HttpRequestParser(max_body_size=11)
    [req] = parser.feed(CHUNKED)
    assert req.body == b"hello world"


def test_content_length_over_limit_without_body() -> None:
    parser = HttpRequestParser(max_body_size=100)
    with pytest.raises(HttpProtocolError) as info:
        parser.feed(b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n")
    assert info.value.status == 413


def test_content_length_at_limit() -> None:
    parser = HttpRequestParser(max_body_size=5)
    [req] = parser.feed(POST)
    assert req.body == b"hello"


def test_head_request() -> None:
    [req] = HttpRequestParser().feed(b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n")
    assert req.method == "HEAD"
    assert req.body == b""


@pytest.mark.parametrize(
    ("request_bytes", "version", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "1.1", True),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", "1.1", False),
        (b"GET / HTTP/1.0\r\n\r\n", "1.0", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "1.0", True),
    ],
)
def test_keep_alive_per_version(request_bytes: bytes, version: str, keep_alive: bool) -> None:
    [req] = HttpRequestParser().feed(request_bytes)
    assert req.version == version
    assert req.keep_alive is keep_alive


def test_upgrade_with_trailing_bytes() -> None:
    parser = HttpRequestParser()
    frame = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
    reqs = parser.feed(GET + UPGRADE + frame)
    assert [r.upgrade for r in reqs] == [False, True]
    assert parser.upgraded
    assert parser.trailing == frame
    assert not parser.waiting_for_more()
    # The parser has stopped: later bytes are WebSocket data, kept in order.
    assert parser.feed(b"more") == []
    assert parser.trailing == frame + b"more"


def test_upgrade_without_trailing_bytes() -> None:
    parser = HttpRequestParser()
    [req] = feed_all(parser, UPGRADE[:30], UPGRADE[30:])
    assert req.upgrade and req.path == "/chat"
    assert parser.upgraded
    assert parser.trailing == b""


def test_upgrade_header_without_connection_upgrade_is_plain_request() -> None:
    parser = HttpRequestParser()
    [req] = parser.feed(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
    assert req.upgrade is False
    assert not parser.upgraded


def test_connect_refused() -> None:
    with pytest.raises(HttpProtocolError) as info:
        HttpRequestParser().feed(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
    assert info.value.status == 501


def test_oversize_header_431_in_one_feed() -> None:
    parser = HttpRequestParser(max_header_size=1024)
    with pytest.raises(HttpProtocolError) as info:
        parser.feed(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
    assert info.value.status == 431


def test_oversize_header_431_streamed_without_line_end() -> None:
    # A single header value that never ends must still be cut off.
    parser = HttpRequestParser(max_header_size=1024)
    parser.feed(b"GET / HTTP/1.1\r\nX-Big: ")
    with pytest.raises(HttpProtocolError) as info:
        for _ in range(20):
            parser.feed(b"a" * 100)
    assert info.value.status == 431


def test_oversize_many_headers_431() -> None:
    parser = HttpRequestParser(max_header_size=1024)
    with pytest.raises(HttpProtocolError) as info:
        parser.feed(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 300 + b"\r\n")
    assert info.value.status == 431


def test_oversize_url_431() -> None:
    parser = HttpRequestParser(max_header_size=1024)
    with pytest.raises(HttpProtocolError) as info:
        parser.feed(b"GET /" + b"a" * 2000)
    assert info.value.status == 431


def test_header_near_limit_accepted_and_body_not_charged() -> None:
    # A big pipelined body in the same read as the next head must not count as head bytes.
    parser = HttpRequestParser(max_header_size=200)
    body = b"b" * 1000
    post = b"POST / HTTP/1.1\r\nContent-Length: 1000\r\n\r\n" + body
    reqs = parser.feed(post + b"GET / HTTP/1.1\r\nX: ")
    assert reqs[0].body == body
    [req] = parser.feed(b"c" * 100 + b"\r\n\r\n")
    assert req.headers == [("x", "c" * 100)]


@pytest.mark.parametrize(
    "bad",
    [
        b"G@T / HTTP/1.1\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ],
)
def test_malformed_400(bad: bytes) -> None:
    parser = HttpRequestParser()
    with pytest.raises(HttpProtocolError) as info:
        parser.feed(bad)
    assert info.value.status == 400
    assert info.value.reason.startswith("malformed request")


@pytest.mark.parametrize("version", [b"2.0", b"0.9"])
def test_unsupported_version_505(version: bytes) -> None:
    with pytest.raises(HttpProtocolError) as info:
        HttpRequestParser().feed(b"GET / HTTP/" + version + b"\r\n\r\n")
    assert info.value.status == 505


def test_invalid_version_400() -> None:
    with pytest.raises(HttpProtocolError) as info:
        HttpRequestParser().feed(b"GET / HTTP/1.2\r\n\r\n")
    assert info.value.status in (400, 505)


def test_error_after_valid_pipelined_request() -> None:
    parser = HttpRequestParser()
    with pytest.raises(HttpProtocolError):
        parser.feed(GET + b"\x00garbage\r\n\r\n")


def test_waiting_for_more_during_body() -> None:
    parser = HttpRequestParser()
    assert not parser.waiting_for_more()
    assert parser.feed(POST[:-2]) == []
    assert parser.waiting_for_more()
    [req] = parser.feed(POST[-2:])
    assert req.body == b"hello"
    assert not parser.waiting_for_more()


# -- the whole-upgrade-head fast path (_quick_upgrade) ------------------------------------
#
# A WebSocket handshake that arrives whole in the first read skips the per-field callbacks;
# whatever it yields must be exactly what the callback parser yields. Feeding one byte
# first forces the callback parser, so each case is parsed both ways and compared.

_QUICK_CASES = [
    UPGRADE,
    UPGRADE + b"\x81\x80\x00\x00\x00\x00",  # a frame in the same read
    b"GET /chat?room=1&x=%20 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
    b"Connection: keep-alive, Upgrade\r\n\r\n",
    b"GET http://h:80/p?q HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    b"GET / HTTP/1.1\r\nHOST:h\r\nUPGRADE:\twebsocket \t\r\nconnection:   Upgrade\r\n"
    b"X-Empty:\r\nX-Obs: caf\xe9 \xa0\r\nX-Inner: a \t b\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Content-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n\r\n",
    # not taken by the fast path (each must still parse the same either way)
    b"\r\nGET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    GET + UPGRADE,  # pipelined: a plain request first
    b"GET  / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET /  HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",  # not an upgrade
]


def _both_ways(data: bytes, max_header_size: int = 65536) -> tuple[list[Any], list[Any]]:
    def parse(chunks: list[bytes]) -> list[Any]:
        parser = HttpRequestParser(max_header_size=max_header_size)
        out: list[Any] = []
        for chunk in chunks:
            try:
                requests = parser.feed(chunk)
            except HttpProtocolError as error:
                return [("error", error.status)]
            out.extend(
                (
                    r.method,
                    r.target,
                    r.version,
                    r.headers,
                    r.body,
                    r.keep_alive,
                    r.upgrade,
                    r.path,
                    r.query,
                )
                for r in requests
            )
        return [*out, ("trailing", parser.trailing, parser.upgraded)]

    return parse([data]), parse([data[:1], data[1:]])


@pytest.mark.parametrize("data", _QUICK_CASES)
def test_quick_upgrade_matches_the_callback_parser(data: bytes) -> None:
    whole, split = _both_ways(data)
    assert whole == split
    assert whole[-1][0] == "trailing"


def test_quick_upgrade_is_taken_for_a_whole_head() -> None:
    quick = _quick_upgrade(UPGRADE + b"xy", 65536)
    assert quick is not None
    request, end = quick
    assert end == len(UPGRADE)
    assert request.upgrade and request.method == "GET" and request.version == "1.1"
    for data in _QUICK_CASES[7:]:
        assert _quick_upgrade(data, 65536) is None, data


def test_quick_upgrade_leaves_the_header_limit_to_the_callback_parser() -> None:
    # Near the limit (by the callback parser's reckoning) the head goes the full way, so
    # 431 comes from one place; far below it the fast path answers.
    head = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + b"a:b\r\n" * 40
    data = head + b"\r\n"
    assert _quick_upgrade(data, 4 * len(data)) is not None
    for limit in range(len(data) - 60, 2 * len(data) + 30, 7):
        assert _quick_upgrade(data, limit) is None or 2 * len(data) + 20 <= limit
        whole, split = _both_ways(data, limit)
        assert whole == split, limit


def test_quick_upgrade_random_heads_match_the_callback_parser() -> None:
    rng = random.Random(6455)
    token = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    value_chars = [chr(c) for c in range(0x21, 0x7F)] + [" ", "\t", "\x80", "\xe9", "\xff"]
    for _ in range(300):
        lines = [
            b"GET /"
            + bytes(rng.choice(b"abc/?=&%20") for _ in range(rng.randrange(12)))
            + b" HTTP/1.1"
        ]
        fields = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
        for _ in range(rng.randrange(12)):
            name = "".join(rng.choice(token) for _ in range(rng.randrange(1, 10)))
            value = "".join(rng.choice(value_chars) for _ in range(rng.randrange(20)))
            fields.insert(rng.randrange(len(fields) + 1), (name, value.strip(" \t")))
        for name, value in fields:
            ows = rng.choice(["", " ", "\t", "  "])
            lines.append(f"{name}:{ows}{value}{rng.choice(['', ' ', chr(9)])}".encode("latin-1"))
        data = b"\r\n".join(lines) + b"\r\n\r\n" + bytes(rng.randrange(256) for _ in range(3))
        whole, split = _both_ways(data)
        assert whole == split, data


def test_head_fields_compiled_matches_python() -> None:
    # The compiled cut (when built) against its pure-Python reference, on well-formed heads
    # and on shapes it must refuse (None: the caller then uses the full parser).
    compiled = pytest.importorskip("pyswoole.protocol._speedups").head_fields
    rng = random.Random(7692)
    heads = [
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET /a?b HTTP/1.1\r\nA:\r\nB: \t x \t\r\nC:y\r\n\r\n",
        b"\r\nGET / HTTP/1.1\r\nA: b\r\n\r\n",
        b"POST / HTTP/1.1\r\nA: b\r\n\r\n",
        b"GET / HTTP/1.0\r\nA: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty name\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: caf\xe9\xa0\r\n\r\n",
        b"GET  / HTTP/1.1\r\nA: b\r\n\r\n",
        b"GET /\t HTTP/1.1\r\nA: b\r\n\r\n",
        b"GET  HTTP/1.1\r\n\r\n",
    ]
    for _ in range(200):
        fields = b"".join(
            bytes(rng.choice(b"aZ-_09!~") for _ in range(rng.randrange(1, 8)))
            + b":"
            + bytes(rng.choice(b" \tvV,;=\x80\xff") for _ in range(rng.randrange(10)))
            + b"\r\n"
            for _ in range(rng.randrange(6))
        )
        heads.append(
            b"GET /"
            + bytes(rng.choice(b"a?=&") for _ in range(5))
            + b" HTTP/1.1\r\n"
            + fields
            + b"\r\n"
        )
    for head in heads:
        for data in (head, head + b"\x81\x80tail"):
            assert compiled(data, len(head)) == _head_fields_py(data, len(head)), head


# -- the whole-plain-GET fast path (_quick_request) ----------------------------------------
#
# A keep-alive GET that arrives whole, alone, skips the per-field callbacks too; the same
# comparison with the callback parser holds it to the same answers.

_PLAIN_CASES = [
    GET,
    b"GET /a/b?x=1&y=%20+ HTTP/1.1\r\nHost: h\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n",
    b"GET http://h:80/p?q HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHOST:h\r\nX-Empty:\r\nX-Obs: caf\xe9 \xa0\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, CLOSE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
    # not taken by the fast path (each must still parse the same either way)
    b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: h\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    GET + GET,  # pipelined
    b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
]


@pytest.mark.parametrize("data", _PLAIN_CASES)
def test_quick_request_matches_the_callback_parser(data: bytes) -> None:
    whole, split = _both_ways(data)
    assert whole == split


def test_quick_request_is_taken_for_a_whole_plain_get() -> None:
    for data in _PLAIN_CASES[:9]:
        request = _quick_request(data, 65536)
        assert request is not None and not request.upgrade, data
    for data in _PLAIN_CASES[9:]:
        assert _quick_request(data, 65536) is None, data


def test_quick_request_keeps_the_connection_state_across_requests() -> None:
    # keep-alive: whole requests (fast path) and split ones (callback parser) alternate
    parser = HttpRequestParser()
    second = b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
    assert [r.target for r in parser.feed(GET)] == ["/a/b?x=1&y=2"]
    assert parser.feed(second[:5]) == []
    assert [r.target for r in parser.feed(second[5:])] == ["/2"]
    assert [r.target for r in parser.feed(second)] == ["/2"]
    closing = parser.feed(b"GET /3 HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert [(r.target, r.keep_alive) for r in closing] == [("/3", False)]


def test_quick_request_leaves_the_header_limit_to_the_callback_parser() -> None:
    data = b"GET / HTTP/1.1\r\n" + b"a:b\r\n" * 40 + b"\r\n"
    assert _quick_request(data, 4 * len(data)) is not None
    for limit in range(len(data) - 60, 2 * len(data) + 30, 7):
        assert _quick_request(data, limit) is None or 2 * len(data) + 20 <= limit
        whole, split = _both_ways(data, limit)
        assert whole == split, limit
