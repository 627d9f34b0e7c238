"""HTTP/1.1 on the WebSocket port, over real sockets.

``HttpServer`` and ``WebSocketServer`` run in a thread (``serve``); the tests speak raw
bytes through ``RawClient`` (every read bounded by its socket timeout) so that status
lines, framing and connection handling are checked exactly, and use ``http.client`` or the
``websockets`` library where a real client is the point.

Handlers run in the server thread: they only record what they saw; the assertions are
made here, after the response proves the handler ran.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets

from pyswoole import HttpServer, WebSocketServer
from tests.conftest import RawClient, masked, ws_url
from tests.integration.conftest import swoole_handshake

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


# -- helpers ---------------------------------------------------------------------------------


@dataclass
class HttpResponse:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    chunks: list[bytes] | None = None
    raw_head: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]


def read_response(client: RawClient, *, head: bool = False) -> HttpResponse:
    """One response from ``client``: head, then the body as its framing says."""
    raw = client.recv_until(b"\r\n\r\n", limit=1 << 16)
    lines = raw[:-4].decode("latin-1").split("\r\n")
    version, status, *rest = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        assert colon, f"malformed header line {line!r}"
        headers.append((name.strip().lower(), value.strip()))
    response = HttpResponse(version, int(status), rest[0] if rest else "", headers, raw_head=raw)
    code = response.status
    if head or code < 200 or code in (204, 304):
        return response
    encoding = response.header("transfer-encoding")
    length = response.header("content-length")
    if encoding is not None:
        assert encoding.lower() == "chunked", encoding
        assert length is None, "Content-Length and Transfer-Encoding together"
        chunks = []
        while True:
            size_line = client.recv_until(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                assert client.recv_until(b"\r\n") == b"\r\n", "trailers are not expected"
                break
            chunks.append(client.recv_exact(size))
            assert client.recv_exact(2) == b"\r\n", "chunk not followed by CRLF"
        response.chunks = chunks
        response.body = b"".join(chunks)
    elif length is not None:
        response.body = client.recv_exact(int(length))
    else:
        response.body = client.recv_all()
    return response


def request_bytes(
    path: str = "/",
    *,
    method: str = "GET",
    version: str = "1.1",
    headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
    body: bytes = b"",
    content_length: bool = True,
) -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if body and content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def http_server(
    handler: Callable[..., Any], cls: type[HttpServer] = HttpServer, **settings: Any
) -> HttpServer:
    server = cls("127.0.0.1", 0)
    if settings:
        server.set(settings)
    server.on("request", handler)
    if cls is WebSocketServer:
        server.on("message", _echo)
    return server


def _echo(server: WebSocketServer, frame: Any) -> None:
    server.push(frame.fd, frame.data, frame.opcode)


def ws_server(**settings: Any) -> WebSocketServer:
    """A WebSocket echo server without on("request")."""
    server = WebSocketServer("127.0.0.1", 0)
    if settings:
        server.set(settings)
    server.on("message", _echo)
    return server


def upgrade_bytes(
    *,
    method: str = "GET",
    key: str | None = RFC_KEY,
    version: str | None = "13",
    connection: str = "Upgrade",
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    headers = [("Upgrade", "websocket"), ("Connection", connection)]
    if key is not None:
        headers.append(("Sec-WebSocket-Key", key))
    if version is not None:
        headers.append(("Sec-WebSocket-Version", version))
    headers.extend(extra)
    if method != "GET":
        headers.append(("Content-Length", "0"))
    return request_bytes("/", method=method, headers=headers)


# -- request attributes ---------------------------------------------------------------------


def test_request_attributes(serve, raw_client) -> None:
    seen: dict[str, Any] = {}

    def handler(request, response):
        seen.update(
            header=dict(request.header),
            server=dict(request.server),
            get=request.get,
            cookie=request.cookie,
            post=request.post,
            files=request.files,
            content=request.get_content(),
            method=request.get_method(),
            fd=request.fd,
        )
        response.end("ok")

    server = serve(http_server(handler))
    client = raw_client(server.port)
    before = time.time()
    client.send(
        request_bytes(
            "/path/to?foo=bar&a[]=1&a[]=2&sp=x+y%21",
            headers=[
                ("X-Custom-Header", "Value"),
                ("X-Dup", "one"),
                ("X-Dup", "two"),
                ("Cookie", "session=abc123; name=hello%20world"),
                ("User-Agent", "raw-test"),
            ],
        )
    )
    response = read_response(client)
    after = time.time()
    assert (response.status, response.body) == (200, b"ok")

    header = seen["header"]
    assert all(name == name.lower() for name in header), header
    assert header["x-custom-header"] == "Value"
    assert header["host"] == "127.0.0.1"
    assert header["user-agent"] == "raw-test"
    assert header["x-dup"] == ["one", "two"]  # Swoole 6.2: a repeated field is a list
    assert "cookie" not in header  # with http_parse_cookie it only fills request.cookie

    srv = seen["server"]
    assert srv["request_method"] == "GET"
    assert srv["request_uri"] == "/path/to"
    assert srv["path_info"] == "/path/to"
    assert srv["query_string"] == "foo=bar&a[]=1&a[]=2&sp=x+y%21"
    assert srv["server_protocol"] == "HTTP/1.1"
    assert srv["remote_addr"] == "127.0.0.1"
    assert srv["remote_port"] == client.sock.getsockname()[1]
    assert srv["server_port"] == server.port
    assert isinstance(srv["request_time"], int)
    assert isinstance(srv["request_time_float"], float)
    assert before - 1 <= srv["request_time_float"] <= after + 1
    assert srv["request_time"] == int(srv["request_time_float"])

    assert seen["get"] == {"foo": "bar", "a": ["1", "2"], "sp": "x y!"}
    assert seen["cookie"] == {"session": "abc123", "name": "hello world"}
    assert seen["post"] is None
    assert seen["files"] is None
    assert seen["content"] == b""
    assert seen["method"] == "GET"
    assert seen["fd"] == 1


def test_post_urlencoded(serve, raw_client) -> None:
    seen: dict[str, Any] = {}

    def handler(request, response):
        seen.update(post=request.post, content=request.get_content(), method=request.get_method())
        response.end(b"done")

    server = serve(http_server(handler))
    client = raw_client(server.port)
    body = b"name=J%C3%BCrgen&x[k]=v&list[]=a&list[]=b&sum=1+2"
    client.send(
        request_bytes(
            "/form",
            method="POST",
            headers=[("Content-Type", "application/x-www-form-urlencoded")],
            body=body,
        )
    )
    response = read_response(client)
    assert (response.status, response.body) == (200, b"done")
    assert seen["method"] == "POST"
    assert seen["content"] == body
    assert seen["post"] == {"name": "Jürgen", "x": {"k": "v"}, "list": ["a", "b"], "sum": "1 2"}


def _multipart(boundary: str, parts: list[tuple[str, str | None, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if content_type is not None:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_post_multipart_files(serve, raw_client, tmp_path, kind) -> None:
    seen: dict[str, Any] = {}

    def record(request, response):
        upload = request.files["upload"]
        with open(upload["tmp_name"], "rb") as f:
            seen["during"] = f.read()
        seen.update(post=request.post, upload=dict(upload))
        response.end("stored")

    if kind == "sync":
        handler = record
    else:

        async def handler(request, response):
            await asyncio.sleep(0)
            record(request, response)

    def ping_or_record(request, response):
        if request.server["request_uri"] == "/ping":
            response.end("pong")
            return None
        return handler(request, response)

    upload_dir = tmp_path / "uploads"
    upload_dir.mkdir()
    server = serve(http_server(ping_or_record, upload_tmp_dir=str(upload_dir)))
    content = os.urandom(3000) + b"\r\n--not-the-boundary\r\n" + os.urandom(100)
    boundary = "----pyswooleBoundary7MA4YWxkTrZu0gW"
    body = _multipart(
        boundary,
        [
            ("title", None, None, b"hello world"),
            ("tags[]", None, None, b"x"),
            ("tags[]", None, None, b"y"),
            ("upload", "data.bin", "application/octet-stream", content),
        ],
    )
    client = raw_client(server.port)
    client.send(
        request_bytes(
            "/upload",
            method="POST",
            headers=[("Content-Type", f"multipart/form-data; boundary={boundary}")],
            body=body,
        )
    )
    response = read_response(client)
    assert (response.status, response.body) == (200, b"stored")
    assert seen["post"] == {"title": "hello world", "tags": ["x", "y"]}
    upload = seen["upload"]
    assert upload["name"] == "data.bin"
    assert upload["type"] == "application/octet-stream"
    assert upload["error"] == 0
    assert upload["size"] == len(content)
    assert os.path.dirname(upload["tmp_name"]) == str(upload_dir)
    assert seen["during"] == content
    # A later response on the same connection proves the first request is fully finished.
    client.send(request_bytes("/ping"))
    assert read_response(client).body == b"pong"
    assert not os.path.exists(upload["tmp_name"])
    assert list(upload_dir.iterdir()) == []


# -- responses ---------------------------------------------------------------------------------


def test_status_header_cookie_end(serve, raw_client) -> None:
    def handler(request, response):
        response.status(201, "Made It")
        response.header("X-Thing", "yes")
        response.header("content-language", "en")
        response.cookie("session", "a b&c", path="/app", httponly=True)
        response.cookie("theme", "dark")
        response.end("created")

    server = serve(http_server(handler))
    client = raw_client(server.port)
    client.send(request_bytes("/"))
    response = read_response(client)
    assert response.raw_head.startswith(b"HTTP/1.1 201 Made It\r\n")
    assert response.header("x-thing") == "yes"
    assert b"\r\nContent-Language: en\r\n" in response.raw_head
    assert response.header("content-length") == "7"
    assert response.body == b"created"
    cookies = response.all("set-cookie")
    assert len(cookies) == 2, cookies
    first = [part.strip() for part in cookies[0].split(";")]
    assert first[0] == "session=a+b%26c"
    assert "path=/app" in first
    assert "httponly" in [part.lower() for part in first]
    assert cookies[1].split(";")[0] == "theme=dark"


def test_write_is_chunked(serve, raw_client) -> None:
    def handler(request, response):
        response.header("Content-Type", "text/plain")
        response.write("hello ")
        response.write(b"chunked ")
        response.write("world")
        response.end()

    server = serve(http_server(handler))
    client = raw_client(server.port)
    client.send(request_bytes("/stream"))
    response = read_response(client)
    assert response.status == 200
    assert response.header("transfer-encoding") == "chunked"
    assert response.header("content-length") is None
    assert response.chunks == [b"hello ", b"chunked ", b"world"]
    # keep-alive survives a chunked response
    client.send(request_bytes("/again"))
    assert read_response(client).body == b"hello chunked world"


def test_write_to_http10_client_is_close_delimited(serve, raw_client) -> None:
    def handler(request, response):
        response.write("part1-")
        response.write("part2")
        response.end()

    server = serve(http_server(handler))
    client = raw_client(server.port)
    client.send(request_bytes("/", version="1.0"))
    response = read_response(client)
    assert response.status == 200
    assert response.header("transfer-encoding") is None
    assert response.body == b"part1-part2"


@pytest.mark.parametrize("code", [301, 302])
def test_redirect(serve, raw_client, code) -> None:
    def handler(request, response):
        response.redirect("https://example.com/new?x=1", code)

    server = serve(http_server(handler))
    client = raw_client(server.port)
    client.send(request_bytes("/old"))
    response = read_response(client)
    assert response.status == code
    assert response.header("location") == "https://example.com/new?x=1"
    assert response.body == b""


def test_sendfile_one_mebibyte(serve, raw_client, tmp_path) -> None:
    data = os.urandom(1 << 20)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)

    def handler(request, response):
        if request.server["request_uri"] == "/file":
            response.sendfile(str(path))
        else:
            response.end("after")

    server = serve(http_server(handler))
    client = raw_client(server.port, timeout=10.0)
    client.send(request_bytes("/file"))
    response = read_response(client)
    assert response.status == 200
    assert response.header("content-length") == str(1 << 20)
    assert response.body == data
    client.send(request_bytes("/next"))
    assert read_response(client).body == b"after"


def test_head_has_length_but_no_body(serve, raw_client) -> None:
    def handler(request, response):
        response.end(b"x" * 100)

    server = serve(http_server(handler))
    client = raw_client(server.port)
    client.send(request_bytes("/", method="HEAD"))
    response = read_response(client, head=True)
    assert response.status == 200
    assert response.header("content-length") == "100"
    # No body bytes may follow: the next thing on the wire is the next response.
    client.send(request_bytes("/"))
    following = read_response(client)
    assert following.status == 200
    assert following.body == b"x" * 100


# -- connection management -----------------------------------------------------------------


def test_keep_alive_three_requests(serve) -> None:
    fds: list[int] = []

    def handler(request, response):
        fds.append(request.fd)
        response.end(f"n={len(fds)}")

    server = serve(http_server(handler))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        bodies = []
        sockets = []
        for _ in range(3):
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.getheader("Connection") == "keep-alive"
            bodies.append(resp.read())
            sockets.append(conn.sock)
    finally:
        conn.close()
    assert bodies == [b"n=1", b"n=2", b"n=3"]
    assert sockets[0] is not None and sockets[0] is sockets[1] is sockets[2]
    assert len(set(fds)) == 1


def test_http10_without_keep_alive_closes(serve, raw_client) -> None:
    def handler(request, response):
        response.end("bye")

    server = serve(http_server(handler))
    client = raw_client(server.port)
    client.send(request_bytes("/", version="1.0"))
    response = read_response(client)
    assert (response.status, response.body) == (200, b"bye")
    assert response.header("connection") == "close"
    assert client.is_closed_by_peer()
    assert client.buf == b""


def test_http10_with_keep_alive_stays_open(serve, raw_client) -> None:
    def handler(request, response):
        response.end("hi")

    server = serve(http_server(handler))
    client = raw_client(server.port)
    for _ in range(2):
        client.send(request_bytes("/", version="1.0", headers=[("Connection", "keep-alive")]))
        response = read_response(client)
        assert (response.status, response.body) == (200, b"hi")
        assert response.header("connection") == "keep-alive"


def _pipelined_batch() -> bytes:
    out = b""
    for i in range(5):
        if i == 2:
            out += request_bytes(f"/{i}", method="POST", body=b"body-of-two")
        else:
            out += request_bytes(f"/{i}")
    return out


def test_pipelining_sync(serve, raw_client) -> None:
    def handler(request, response):
        response.end(request.server["request_uri"].encode() + b":" + request.get_content())

    server = serve(http_server(handler))
    client = raw_client(server.port)
    client.send(_pipelined_batch())
    bodies = [read_response(client).body for _ in range(5)]
    assert bodies == [b"/0:", b"/1:", b"/2:body-of-two", b"/3:", b"/4:"]


def test_pipelining_async_slow_first(serve, raw_client) -> None:
    async def handler(request, response):
        uri = request.server["request_uri"]
        if uri == "/0":
            await asyncio.sleep(0.05)  # server-side work; later requests answer at once
        response.end(uri.encode() + b":" + request.get_content())

    server = serve(http_server(handler))
    client = raw_client(server.port)
    client.send(_pipelined_batch())
    bodies = [read_response(client).body for _ in range(5)]
    assert bodies == [b"/0:", b"/1:", b"/2:body-of-two", b"/3:", b"/4:"]


def test_chunked_request_body(serve, raw_client) -> None:
    seen: dict[str, Any] = {}

    def handler(request, response):
        seen["content"] = request.get_content()
        response.end(request.get_content())

    server = serve(http_server(handler))
    client = raw_client(server.port)
    head = request_bytes("/upload", method="POST", headers=[("Transfer-Encoding", "chunked")])
    client.send(head + b"7\r\nHello, \r\n8;ext=1\r\nchunked \r\n")
    client.send(b"6\r\nworld!\r\n0\r\n\r\n")
    response = read_response(client)
    assert response.status == 200
    assert seen["content"] == b"Hello, chunked world!"
    assert response.body == b"Hello, chunked world!"


def test_expect_100_continue(serve, raw_client) -> None:
    """RFC 9110 section 10.1.1: the server answers ``Expect: 100-continue`` at once with
    100 (or a final status) so the client sends its body without waiting (Swoole does)."""
    server = serve(http_server(lambda request, response: response.end(request.get_content())))
    client = raw_client(server.port, timeout=2.0)
    client.send(
        request_bytes(
            "/",
            method="POST",
            headers=[("Expect", "100-continue"), ("Content-Length", "5")],
        )
    )
    interim = client.recv_until(b"\r\n\r\n")  # TimeoutError if the server stays silent
    assert interim.startswith(b"HTTP/1.1 100 "), interim
    client.send(b"hello")
    response = read_response(client)
    assert (response.status, response.body) == (200, b"hello")


# -- handler errors ----------------------------------------------------------------------------


def test_handler_exception_is_500_and_server_goes_on(serve, raw_client) -> None:
    def handler(request, response):
        if request.server["request_uri"] == "/boom":
            raise RuntimeError("handler failure (expected by the test)")
        response.end("fine")

    server = serve(http_server(handler))
    client = raw_client(server.port)
    client.send(request_bytes("/boom"))
    response = read_response(client)
    assert response.status == 500
    other = raw_client(server.port)
    other.send(request_bytes("/ok"))
    response = read_response(other)
    assert (response.status, response.body) == (200, b"fine")


def test_async_handler_exception_is_500(serve, raw_client) -> None:
    async def handler(request, response):
        await asyncio.sleep(0)
        if request.server["request_uri"] == "/boom":
            raise RuntimeError("async handler failure (expected by the test)")
        response.end("fine")

    server = serve(http_server(handler))
    client = raw_client(server.port)
    client.send(request_bytes("/boom"))
    assert read_response(client).status == 500
    other = raw_client(server.port)
    other.send(request_bytes("/ok"))
    assert read_response(other).body == b"fine"


# -- limits ------------------------------------------------------------------------------------


def _ok(request, response):
    response.end(str(len(request.get_content())))


def test_body_over_package_max_length_is_413(serve, raw_client) -> None:
    server = serve(http_server(_ok, package_max_length=1024))
    small = raw_client(server.port)
    small.send(request_bytes("/", method="POST", body=b"a" * 1000))
    response = read_response(small)
    assert (response.status, response.body) == (200, b"1000")
    big = raw_client(server.port)
    # Only the head: the server can refuse on Content-Length alone.
    big.send(request_bytes("/", method="POST", headers=[("Content-Length", "2048")]))
    response = read_response(big)
    assert response.status == 413
    assert big.is_closed_by_peer()


def test_chunked_body_over_package_max_length_is_413(serve, raw_client) -> None:
    server = serve(http_server(_ok, package_max_length=1024))
    client = raw_client(server.port)
    head = request_bytes("/", method="POST", headers=[("Transfer-Encoding", "chunked")])
    client.send(head + b"800\r\n" + b"b" * 0x800 + b"\r\n")
    assert read_response(client).status == 413


def test_header_over_http_max_header_size_is_431(serve, raw_client) -> None:
    server = serve(http_server(_ok, http_max_header_size=1024))
    client = raw_client(server.port)
    client.send(request_bytes("/", headers=[("X-Big", "h" * 2000)]))
    response = read_response(client)
    assert response.status == 431
    assert client.is_closed_by_peer()


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        b"GET / HTXP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["no-spaces", "trailing-token", "bad-protocol"],
)
def test_malformed_request_line_is_400(serve, raw_client, raw) -> None:
    server = serve(http_server(_ok))
    client = raw_client(server.port)
    client.send(raw)
    response = read_response(client)
    assert response.status == 400
    assert client.is_closed_by_peer()


def test_incomplete_request_times_out(serve, raw_client) -> None:
    server = serve(http_server(_ok, handshake_timeout=0.5))
    client = raw_client(server.port, timeout=3.0)
    started = time.monotonic()
    client.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
    data = client.recv_all()  # bounded by the 3 s socket timeout
    elapsed = time.monotonic() - started
    assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data
    assert 0.4 <= elapsed < 2.5, elapsed


# -- HTTP on a WebSocketServer ---------------------------------------------------------------


def test_websocket_server_without_request_callback_answers_400(serve, raw_client) -> None:
    server = serve(ws_server())
    client = raw_client(server.port)
    client.send(request_bytes("/index.html"))
    response = read_response(client)
    assert response.status == 400
    assert (response.header("content-type") or "").startswith("text/html")
    assert b"<html" in response.body.lower()
    assert client.is_closed_by_peer()


async def test_websocket_server_with_request_callback_serves_both(serve, raw_client) -> None:
    def handler(request, response):
        response.header("Content-Type", "text/plain")
        response.end("http " + request.server["request_uri"])

    server = serve(http_server(handler, WebSocketServer))
    client = raw_client(server.port)
    for path in ("/a", "/b"):
        client.send(request_bytes(path))
        response = read_response(client)
        assert (response.status, response.body) == (200, f"http {path}".encode())
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("ws")
        assert await asyncio.wait_for(ws.recv(), 5) == "ws"


# -- the WebSocket handshake -------------------------------------------------------------------


def test_accept_key_for_rfc_sample(serve, raw_client) -> None:
    server = serve(ws_server())
    client = raw_client(server.port)
    client.send(upgrade_bytes())
    response = read_response(client)
    assert response.raw_head.startswith(b"HTTP/1.1 101 ")
    assert response.header("sec-websocket-accept") == RFC_ACCEPT
    assert (response.header("upgrade") or "").lower() == "websocket"
    assert (response.header("connection") or "").lower() == "upgrade"
    client.send(masked(0x1, b"after handshake"))
    assert client.recv_frame() == (0x81, 0x1, b"after handshake")


@pytest.mark.parametrize(
    "key",
    [None, "not base64 !!", base64.b64encode(b"short").decode(), ""],
    ids=["missing", "not-base64", "not-16-bytes", "empty"],
)
def test_bad_websocket_key_is_400(serve, raw_client, key) -> None:
    server = serve(ws_server())
    client = raw_client(server.port)
    client.send(upgrade_bytes(key=key))
    response = read_response(client)
    assert response.status == 400
    assert response.header("sec-websocket-accept") is None
    assert client.is_closed_by_peer()


def test_websocket_version_8_is_426(serve, raw_client) -> None:
    server = serve(ws_server())
    client = raw_client(server.port)
    client.send(upgrade_bytes(version="8"))
    response = read_response(client)
    assert response.status == 426
    assert response.header("sec-websocket-version") == "13"


def test_post_upgrade_is_400(serve, raw_client) -> None:
    server = serve(ws_server())
    client = raw_client(server.port)
    client.send(upgrade_bytes(method="POST"))
    response = read_response(client)
    assert response.status == 400
    assert response.header("sec-websocket-accept") is None


def test_connection_header_with_several_tokens(serve, raw_client) -> None:
    server = serve(ws_server())
    client = raw_client(server.port)
    client.send(upgrade_bytes(connection="keep-alive, Upgrade"))
    response = read_response(client)
    assert response.status == 101
    assert response.header("sec-websocket-accept") == RFC_ACCEPT
    client.send(masked(0x2, b"\x00\x01binary"))
    assert client.recv_frame() == (0x82, 0x2, b"\x00\x01binary")


@pytest.mark.parametrize(
    ("offered", "expected"),
    [("chat", "chat"), (None, None), ("other, another", None), ("other, chat", "chat")],
    ids=["offered", "none-offered", "others-offered", "among-others"],
)
def test_subprotocol_echoed_only_when_offered(serve, raw_client, offered, expected) -> None:
    server = serve(ws_server(websocket_subprotocol="chat"))
    client = raw_client(server.port)
    extra = () if offered is None else (("Sec-WebSocket-Protocol", offered),)
    client.send(upgrade_bytes(extra=extra))
    response = read_response(client)
    assert response.status == 101
    assert response.header("sec-websocket-protocol") == expected
    assert len(response.all("sec-websocket-protocol")) == (0 if expected is None else 1)


def test_frame_in_same_write_as_upgrade_is_not_lost(serve, raw_client) -> None:
    server = serve(ws_server())
    client = raw_client(server.port)
    client.send(upgrade_bytes() + masked(0x1, b"early bird") + masked(0x1, b"second"))
    response = read_response(client)
    assert response.status == 101
    assert client.recv_frame() == (0x81, 0x1, b"early bird")
    assert client.recv_frame() == (0x81, 0x1, b"second")


# -- on("handshake") and on("beforeHandshakeResponse") -----------------------------------------


async def test_custom_handshake(serve) -> None:
    opened: list[int] = []
    handshakes: list[str] = []
    server = ws_server()

    def on_handshake(request, response):
        handshakes.append(request.header["sec-websocket-key"])
        return swoole_handshake(request, response)

    server.on("handshake", on_handshake)
    server.on("open", lambda server, request: opened.append(request.fd))
    serve(server)
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("one")
        assert await asyncio.wait_for(ws.recv(), 5) == "one"
        await ws.send(b"two")
        assert await asyncio.wait_for(ws.recv(), 5) == b"two"
    assert len(handshakes) == 1
    assert opened == []


def test_custom_handshake_rejects_with_403(serve, raw_client) -> None:
    opened: list[int] = []
    messages: list[Any] = []
    server = WebSocketServer("127.0.0.1", 0)

    def on_handshake(request, response):
        response.status(403)
        response.end()
        return False

    server.on("handshake", on_handshake)
    server.on("open", lambda server, request: opened.append(request.fd))
    server.on("message", lambda server, frame: messages.append(frame))
    serve(server)
    client = raw_client(server.port)
    client.send(upgrade_bytes() + masked(0x1, b"should be ignored"))
    response = read_response(client)
    assert response.status == 403
    assert response.header("sec-websocket-accept") is None
    assert client.is_closed_by_peer()
    assert opened == []
    assert messages == []


async def test_custom_handshake_rejection_seen_by_websockets_client(serve) -> None:
    server = ws_server()

    def on_handshake(request, response):
        response.status(403)
        response.end()
        return False

    server.on("handshake", on_handshake)
    serve(server)
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(ws_url(server), open_timeout=5):
            pass
    assert info.value.response.status_code == 403


def test_before_handshake_response_adds_header_and_cookie(serve, raw_client) -> None:
    opened = threading.Event()
    seen: dict[str, Any] = {}
    server = ws_server()

    def before(server, request, response):
        seen["key"] = request.header.get("sec-websocket-key")
        response.header("X-Handshake", "ok")
        response.cookie("token", "abc", path="/")

    def on_open(server, request):
        opened.set()

    server.on("beforeHandshakeResponse", before)
    server.on("open", on_open)
    serve(server)
    client = raw_client(server.port)
    client.send(upgrade_bytes())
    response = read_response(client)
    assert response.status == 101
    assert response.header("sec-websocket-accept") == RFC_ACCEPT
    assert response.header("x-handshake") == "ok"
    cookies = response.all("set-cookie")
    assert len(cookies) == 1, cookies
    assert cookies[0].split(";")[0] == "token=abc"
    assert seen["key"] == RFC_KEY
    client.send(masked(0x1, b"hi"))
    assert client.recv_frame() == (0x81, 0x1, b"hi")
    assert opened.wait(5)
