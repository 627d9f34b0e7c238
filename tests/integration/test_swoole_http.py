"""Swoole 6.2's HTTP Request/Response surface on a real server, checked byte for byte.

The server runs in a thread (``serve``); raw sockets show the exact response bytes
(``RawClient``, every read bounded by its socket timeout), ``http.client`` and
``http.cookiejar`` are the real clients where their view is the point.  Handlers only record
what they saw; the assertions run here, after the response proves the handler ran.

The expected bytes come from swoole-src: ``ext-src/swoole_http_response.cc``
(``build_header``, ``end``, ``write``), ``swoole::http::Cookie`` (tests
``swoole_http_server/cookieAlias.phpt``, ``max-age.phpt``, ``error_cookie.phpt``),
``ext-src/swoole_http_request.cc`` (``http_request_on_header_value``) and
``src/protocol/http.cc`` (``get_status_message``).
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from http.cookiejar import parse_ns_headers
from typing import Any

from pyswoole import Cookie, HttpServer
from pyswoole.server.response import Response
from tests.conftest import RawClient
from tests.integration.test_http_server import http_server, read_response, request_bytes

DATE = r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT"
COOKIE_DATE = r"[A-Z][a-z]{2}, \d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d GMT"


def head_lines(raw_head: bytes) -> list[str]:
    return raw_head.decode("latin-1").split("\r\n")[:-2]


def test_set_cookie_bytes(serve, raw_client) -> None:
    seen: dict[str, Any] = {}

    def handler(request, response):
        expires = int(time.time()) + 3600
        seen["expires"] = expires
        response.header("X-First", "1")
        seen["ok"] = [
            response.cookie("plain", "a b+c/é~"),
            response.setCookie(
                "key1", "val1", expires, "/", "id.test.com", True, True, "None", "High", True
            ),
            response.rawcookie("raw", "a%20b", 0, ""),
            response.cookie("gone", "", expires, "/p", "d.example", True),
            response.cookie(Cookie().withName("obj").withValue("v").withHttpOnly(True)),
            response.cookie("bad;name", "x"),
            response.rawcookie("r", "has space"),
        ]
        response.end("cookies")

    server = serve(http_server(handler))
    client = raw_client(server.port)
    client.send(request_bytes("/"))
    response = read_response(client)
    assert response.body == b"cookies"
    assert seen["ok"] == [True, True, True, True, True, False, False]
    lines = head_lines(response.raw_head)
    names = [line.split(":")[0] for line in lines[1:]]
    # Swoole's head: user headers, Set-Cookie lines, then Server, Date, Connection...
    assert names == ["X-First"] + ["Set-Cookie"] * 5 + [
        "Server",
        "Date",
        "Connection",
        "Content-Type",
        "Content-Length",
    ]
    cookies = [line[len("Set-Cookie: ") :] for line in lines if line.startswith("Set-Cookie")]
    assert cookies[0] == "plain=a+b%2Bc%2F%C3%A9%7E"  # no path given: none sent
    match = re.fullmatch(
        rf"key1=val1; expires=({COOKIE_DATE}); Max-Age=(\d+); path=/; domain=id\.test\.com; "
        r"secure; HttpOnly; SameSite=None; Priority=High; Partitioned",
        cookies[1],
    )
    assert match, cookies[1]
    assert 3598 <= int(match.group(2)) <= 3600
    assert cookies[2] == "raw=a%20b"
    assert cookies[3] == "gone=deleted; expires=Thu, 01-Jan-1970 00:00:01 GMT; Max-Age=0"
    assert cookies[4] == "obj=v; HttpOnly"
    # A real client's parser (urllib's http.cookiejar) reads Swoole's date format.
    [parsed] = parse_ns_headers([cookies[1]])
    assert dict(parsed)["expires"] == seen["expires"]
    assert dict(parse_ns_headers([cookies[3]])[0])["expires"] == 1


def test_repeated_request_headers_and_cookies(serve, raw_client) -> None:
    seen: list[dict[str, Any]] = []

    def handler(request, response):
        seen.append({"header": dict(request.header), "cookie": request.cookie})
        response.end("ok")

    raw = request_bytes(
        "/",
        headers=[
            ("X-Dup", "one"),
            ("x-dup", "two"),
            ("User-Agent", "first"),
            ("User-Agent", "second"),
            ("Cookie", "sid=a+b%21; flag; sid=ignored"),
            ("Cookie", "lang=en; list[]=1; list[]=2"),
        ],
    )
    for parse_cookie in (True, False):
        server = serve(http_server(handler, http_parse_cookie=parse_cookie))
        client = raw_client(server.port)
        client.send(raw)
        assert read_response(client).body == b"ok"
    with_parsing, without = seen
    assert with_parsing["header"] == {
        "host": "127.0.0.1",
        "x-dup": ["one", "two"],
        "user-agent": "second",
    }
    assert with_parsing["cookie"] == {"sid": "a+b!", "flag": "", "lang": "en", "list": ["1", "2"]}
    assert without["cookie"] is None
    assert without["header"]["cookie"] == [
        "sid=a+b%21; flag; sid=ignored",
        "lang=en; list[]=1; list[]=2",
    ]


def test_request_surface_through_http_client(serve) -> None:
    seen: dict[str, Any] = {}

    def handler(request, response):
        seen.update(
            server=dict(request.server),
            method=request.getMethod(),
            content=request.rawContent(),
            data=request.getData(),
            completed=request.isCompleted(),
            tmpfiles=request.tmpfiles,
            stream_id=request.streamId,
        )
        response.end("ok")

    server = serve(http_server(handler))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("PUT", "/a%20b/c+d?x=1", body=b"payload")
        answer = conn.getresponse()
        assert (answer.status, answer.read()) == (200, b"ok")
    finally:
        conn.close()
    srv = seen["server"]
    assert srv["request_uri"] == "/a%20b/c+d"
    assert srv["path_info"] == "/a b/c d"
    assert srv["query_string"] == "x=1"
    assert srv["server_protocol"] == "HTTP/1.1"
    assert srv["request_method"] == "PUT"
    for key, kind in (
        ("request_time", int),
        ("request_time_float", float),
        ("server_port", int),
        ("remote_port", int),
        ("remote_addr", str),
        ("master_time", int),
    ):
        assert type(srv[key]) is kind, key
    assert srv["request_time"] - 5 <= srv["master_time"] <= srv["request_time"]
    assert srv["request_time"] == int(srv["request_time_float"])
    assert seen["method"] == "PUT" and seen["content"] == b"payload"
    assert seen["data"].startswith(b"PUT /a%20b/c+d?x=1 HTTP/1.1\r\n")
    assert seen["data"].endswith(b"\r\n\r\npayload")
    assert seen["completed"] is True and seen["tmpfiles"] is None and seen["stream_id"] == 0


def test_status_redirect_and_header_format_bytes(serve, raw_client) -> None:
    def handler(request, response):
        if request.server["request_uri"] == "/unknown":
            response.status(299)
            response.header("x-MY-key", "v")
            response.header("x-raw-KEY", "w", False)
            response.end()
        else:
            response.redirect("/elsewhere", 301)

    server = serve(http_server(handler))
    client = raw_client(server.port)
    client.send(request_bytes("/unknown") + request_bytes("/go"))
    first = read_response(client)
    lines = head_lines(first.raw_head)
    assert lines[:3] == ["HTTP/1.1 299 Unknown Status", "X-My-Key: v", "x-raw-KEY: w"]
    second = read_response(client)
    lines = head_lines(second.raw_head)
    assert lines[0] == "HTTP/1.1 301 Moved Permanently"
    assert lines[1] == "Location: /elsewhere"
    assert lines[2] == "Server: pyswoole"
    assert re.fullmatch(rf"Date: {DATE}", lines[3])
    assert lines[4:] == ["Connection: keep-alive", "Content-Type: text/html", "Content-Length: 0"]
    assert second.body == b""


def test_write_end_twice_and_trailer_bytes(serve, raw_client) -> None:
    seen: dict[str, Any] = {}
    handled = threading.Event()

    def handler(request, response):
        response.header("Content-Type", "text/plain")
        response.trailer("X-Checksum", "abc")
        if request.server["request_uri"] != "/":
            response.end()
            return
        seen["writes"] = [response.write("hello "), response.write(b"world")]
        seen["end"] = [response.end("!"), response.end("again"), response.isWritable()]
        handled.set()

    server = serve(http_server(handler))
    client = raw_client(server.port)
    client.send(request_bytes("/"))
    raw_head = client.recv_until(b"\r\n\r\n")
    lines = head_lines(raw_head)
    assert lines[0:2] == ["HTTP/1.1 200 OK", "Content-Type: text/plain"]
    assert lines[-2:] == ["Connection: keep-alive", "Transfer-Encoding: chunked"]
    body = client.recv_until(b"0\r\nx-checksum: abc\r\n\r\n")
    assert body == b"6\r\nhello \r\n5\r\nworld\r\n1\r\n!\r\n0\r\nx-checksum: abc\r\n\r\n"
    assert handled.wait(5)
    assert seen == {"writes": [True, True], "end": [True, False, False]}
    # Nothing followed: the second end() sent no bytes, the connection serves on.
    client.send(request_bytes("/next"))
    assert client.recv_until(b"\r\n\r\n").startswith(b"HTTP/1.1 200 OK\r\n")
    assert client.buf == b""


def test_detach_then_create_answers(serve, raw_client) -> None:
    seen: dict[str, Any] = {}
    handled = threading.Event()
    server: HttpServer

    def handler(request, response):
        if seen:
            other = Response.create(server, request.fd)
            other.end("from create")
            return
        seen["detach"] = response.detach()
        seen["after_detach"] = [response.end("lost"), response.isWritable()]
        seen["swoole_only"] = [response.ping(), response.goaway(), response.upgrade()]
        other = Response.create(server, request.fd)
        seen["created"] = isinstance(other, Response)
        other.header("X-Created", "yes")
        handled.set()
        other.end("from create")

    server = http_server(handler)
    serve(server)
    client: RawClient = raw_client(server.port)
    client.send(request_bytes("/") + request_bytes("/"))
    response = read_response(client)
    assert (response.body, response.header("x-created")) == (b"from create", "yes")
    assert read_response(client).body == b"from create"  # the connection goes on
    assert handled.wait(5)
    assert seen == {
        "detach": True,
        "after_detach": [False, False],
        "swoole_only": [False, False, False],
        "created": True,
    }
