"""Serialisation tests of pyswoole.server.response, through a recording writer."""

from __future__ import annotations

import os
from pathlib import Path

import httptools
import pytest

from pyswoole.server import cookie as cookie_module
from pyswoole.server.cookie import Cookie
from pyswoole.server.response import Response, error_response


class FakeWriter:
    def __init__(self, alive: bool = True) -> None:
        self.chunks: list[bytes] = []
        self.files: list[tuple[str, int, int]] = []
        self.finished: list[tuple[Response, bool]] = []
        self.alive = alive

    def write_response(self, data: bytes) -> bool:
        assert isinstance(data, bytes)
        if self.alive:
            self.chunks.append(data)
        return self.alive

    def send_file(self, path: str, offset: int, length: int) -> bool:
        self.files.append((path, offset, length))
        with open(path, "rb") as f:
            f.seek(offset)
            self.chunks.append(f.read(length))
        return self.alive

    def finish_response(self, response: Response, keep_alive: bool) -> None:
        self.finished.append((response, keep_alive))

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class Parsed:
    """A response as httptools.HttpResponseParser sees it."""

    def __init__(self, data: bytes) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.complete = False
        self.headers_complete = False
        parser = httptools.HttpResponseParser(self)
        # For a HEAD response llhttp waits for the announced body: only the head is checked.
        parser.feed_data(data)
        self.status = parser.get_status_code()

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode().lower(), value.decode()))

    def on_headers_complete(self) -> None:
        self.headers_complete = True

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name]
        return values[-1] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


def make(**kwargs: object) -> tuple[Response, FakeWriter]:
    writer = FakeWriter()
    return Response(7, writer, **kwargs), writer  # type: ignore[arg-type]


def test_end_with_body() -> None:
    resp, writer = make()
    assert resp.end("héllo")
    parsed = Parsed(writer.data)
    assert parsed.complete
    assert parsed.status == 200
    assert parsed.reason == b"OK"
    assert parsed.body == "héllo".encode()
    assert parsed.header("content-length") == str(len("héllo".encode()))
    assert parsed.header("content-type") == "text/html"
    assert parsed.header("server") == "pyswoole"
    assert parsed.header("connection") == "keep-alive"
    date = parsed.header("date")
    assert date is not None and date.endswith(" GMT")
    assert writer.finished == [(resp, True)]
    assert resp.ended
    assert not resp.is_writable()
    assert len(writer.chunks) == 1  # head and small body in one write


def test_calls_after_end_return_false() -> None:
    resp, writer = make()
    assert resp.end()
    assert resp.end("again") is False
    assert resp.write("x") is False
    assert resp.status(404) is False
    assert resp.header("X", "y") is False
    assert resp.cookie("a", "b") is False
    assert resp.redirect("/x") is False
    assert resp.sendfile(__file__) is False
    assert len(writer.finished) == 1


def test_status_and_custom_reason() -> None:
    resp, writer = make()
    assert resp.status(404)
    resp.end("nope")
    parsed = Parsed(writer.data)
    assert (parsed.status, parsed.reason) == (404, b"Not Found")

    resp, writer = make()
    assert resp.set_status_code(299, "Fine Enough")
    resp.end()
    parsed = Parsed(writer.data)
    assert (parsed.status, parsed.reason) == (299, b"Fine Enough")
    assert resp.status_code == 299


def test_status_rejects_bad_values() -> None:
    resp, _ = make()
    assert resp.status(42) is False
    assert resp.status(200, "OK\r\nX: injected") is False
    assert resp.status_code == 200


def test_header_formatting_and_removal() -> None:
    resp, writer = make(server_name="custom")
    assert resp.header("content-type", "application/json")
    assert resp.header("x-my-HEADER", "1")
    assert resp.header("x-raw", "2", False)
    assert resp.set_header("X-Gone", "3")
    assert resp.header("x-gone", None)
    assert resp.headers == {"Content-Type": "application/json", "X-My-Header": "1", "x-raw": "2"}
    resp.end(b"{}")
    text = writer.data.decode()
    assert "\r\nContent-Type: application/json\r\n" in text
    assert "\r\nX-My-Header: 1\r\n" in text
    assert "\r\nx-raw: 2\r\n" in text
    assert "X-Gone" not in text
    assert "text/html" not in text
    assert "\r\nServer: custom\r\n" in text


def test_header_injection_refused() -> None:
    resp, _ = make()
    assert resp.header("X", "a\r\nSet-Cookie: evil=1") is False
    assert resp.header("X\r\nY", "a") is False
    assert resp.header("", "a") is False
    assert resp.headers == {}


def test_user_framing_headers_ignored() -> None:
    resp, writer = make()
    resp.header("Content-Length", "999")
    resp.header("Transfer-Encoding", "chunked")
    resp.end("abc")
    parsed = Parsed(writer.data)
    assert parsed.all("content-length") == ["3"]
    assert parsed.header("transfer-encoding") is None
    assert parsed.body == b"abc"


def test_keep_alive_false_sends_close() -> None:
    resp, writer = make(keep_alive=False)
    resp.end("x")
    assert Parsed(writer.data).header("connection") == "close"
    assert writer.finished == [(resp, False)]


def test_user_connection_close_disables_keep_alive() -> None:
    resp, writer = make()
    resp.header("Connection", "close")
    resp.end("x")
    parsed = Parsed(writer.data)
    assert parsed.all("connection") == ["close"]
    assert writer.finished == [(resp, False)]


def test_cookies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Swoole 6.2's Set-Cookie values (swoole-src tests/swoole_http_server/cookieAlias.phpt,
    max-age.phpt, cookie_delete.phpt, cookie_samesite.phpt)."""
    monkeypatch.setattr(cookie_module.time, "time", lambda: 2_000_000_000 - 84_600 + 0.75)
    resp, writer = make()
    assert resp.cookie("a", "hello world;=~*")
    assert resp.set_cookie(
        "key1", "val1", 2_000_000_000, "/", "id.test.com", True, True, "None", "High", True
    )
    assert resp.setRawCookie(
        "key1", "val1", 2_000_000_000, "/", "id.test.com", True, True, "None", "High", True
    )
    assert resp.rawcookie("c", "raw%20value")
    assert resp.cookie("gone")
    assert resp.cookie("gone2", "", 2_000_000_000, "/p", "d.example", True, True, "Lax")
    assert resp.cookie("a", "123", 0, "", "", False, False, "Lax")
    assert resp.cookie("neg", "v", -1, "")
    assert resp.cookie("old", "v", 1, "")
    obj = Cookie().withName("o").withValue("x y").withPath().withHttpOnly(True)
    assert resp.setCookie(obj)
    assert resp.cookie(Cookie(False).with_name("r").with_value("a+b"))
    resp.end()
    cookies = Parsed(writer.data).all("set-cookie")
    expiry = "expires=Wed, 18-May-2033 03:33:20 GMT; Max-Age=84600"
    flags = "path=/; domain=id.test.com; secure; HttpOnly; SameSite=None; Priority=High"
    assert cookies == [
        "a=hello+world%3B%3D%7E%2A",  # no path given: none sent (as Swoole)
        f"key1=val1; {expiry}; {flags}; Partitioned",
        f"key1=val1; {expiry}; {flags}; Partitioned",
        "c=raw%20value",
        "gone=deleted; expires=Thu, 01-Jan-1970 00:00:01 GMT; Max-Age=0",
        "gone2=deleted; expires=Thu, 01-Jan-1970 00:00:01 GMT; Max-Age=0",
        "a=123; SameSite=Lax",
        "neg=v",
        "old=v; expires=Thu, 01-Jan-1970 00:00:01 GMT; Max-Age=0",
        "o=x+y; path=/; HttpOnly",
        "r=a+b",
    ]
    assert resp.cookies == cookies


def test_cookies_refused_as_swoole(caplog: pytest.LogCaptureFixture) -> None:
    """swoole-src tests/swoole_http_server/error_cookie.phpt: each a warning and False."""
    resp, writer = make()
    assert resp.cookie("", "123456789") is False
    assert resp.cookie("test=,;", "123456789") is False
    assert resp.rawcookie("test", "12345,; 6789") is False
    assert resp.cookie("test", "123456789", 2_000_000_000, "/path,; ") is False
    assert resp.cookie("test", "123456789", 2_000_000_000, "/", "exam,; ple.com") is False
    assert resp.cookie("test", "123456789", 253_402_300_800) is False
    assert resp.cookie("test", "x", samesite="Lax\r\nX: y") is False
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings[:6] == [
        "Swoole\\Http\\Response::cookie(): Cookie name cannot be empty",
        'Swoole\\Http\\Response::cookie(): Cookie name cannot contain "=", ",", ";", " ", '
        '"\\t", "\\r", "\\n", "\\013", or "\\014"',
        'Swoole\\Http\\Response::rawcookie(): Cookie value cannot contain ",", ";", " ", '
        '"\\t", "\\r", "\\n", "\\013", or "\\014"',
        'Swoole\\Http\\Response::cookie(): Cookie path option cannot contain ",", ";", " ", '
        '"\\t", "\\r", "\\n", "\\013", or "\\014"',
        'Swoole\\Http\\Response::cookie(): Cookie domain option cannot contain ",", ";", " ", '
        '"\\t", "\\r", "\\n", "\\013", or "\\014"',
        "Swoole\\Http\\Response::cookie(): "
        "Cookie expires option cannot have a year greater than 9999",
    ]
    assert resp.cookie("ok", "1", 253_402_300_799)  # 9999-12-31 23:59:59 is still fine
    resp.end()
    assert (
        Parsed(writer.data)
        .all("set-cookie")[0]
        .startswith("ok=1; expires=Fri, 31-Dec-9999 23:59:59 GMT; Max-Age=")
    )


def test_cookie_object() -> None:
    """Swoole 6's Swoole\\Http\\Cookie: chained with*(), toArray(), toString(), reset()."""
    c = Cookie().withName("n").withValue("v v").withDomain("d").withSecure(True)
    assert c.withSameSite("Strict").withPriority("Low").withPartitioned(True) is c
    assert c.toString() == "n=v+v; domain=d; secure; SameSite=Strict; Priority=Low; Partitioned"
    assert c.toArray() == {
        "name": "n",
        "value": "v v",
        "path": "",
        "domain": "d",
        "sameSite": "Strict",
        "priority": "Low",
        "encode": True,
        "expires": 0,
        "secure": True,
        "httpOnly": False,
        "partitioned": True,
    }
    assert c.reset() is True
    assert c.toString() is False  # no name
    assert (
        c.withName("n").toString() == "n=deleted; expires=Thu, 01-Jan-1970 00:00:01 GMT; Max-Age=0"
    )
    assert "n=" in repr(c)


def test_chunked_write_then_end() -> None:
    resp, writer = make()
    assert resp.write("hello ")
    assert resp.write(b"") is False  # Swoole: empty data is refused
    assert resp.write(b"world")
    assert resp.header("X-Late", "1") is False  # head already sent
    assert writer.finished == []
    assert resp.end("!")
    parsed = Parsed(writer.data)
    assert parsed.complete
    assert parsed.header("transfer-encoding") == "chunked"
    assert parsed.header("content-length") is None
    assert parsed.body == b"hello world!"
    assert writer.data.endswith(b"1\r\n!\r\n0\r\n\r\n")
    assert writer.finished == [(resp, True)]


def test_chunked_end_without_data() -> None:
    resp, writer = make()
    resp.write("abc")
    resp.end()
    assert writer.data.endswith(b"3\r\nabc\r\n0\r\n\r\n")
    assert Parsed(writer.data).body == b"abc"


def test_write_to_http10_client_streams_until_close() -> None:
    resp, writer = make(version="1.0")
    resp.write("abc")
    resp.end("def")
    text = writer.data
    assert b"Transfer-Encoding" not in text
    assert b"Content-Length" not in text
    assert b"\r\nConnection: close\r\n" in text
    assert text.endswith(b"\r\n\r\nabcdef")
    assert writer.finished == [(resp, False)]


def test_http10_end_keeps_content_length() -> None:
    resp, writer = make(version="1.0", keep_alive=False)
    resp.end("abc")
    parsed = Parsed(writer.data)
    assert parsed.header("content-length") == "3"
    assert writer.data.startswith(b"HTTP/1.1 200 OK\r\n")


def test_head_request_has_length_but_no_body() -> None:
    resp, writer = make(method="HEAD")
    resp.end("twelve bytes")
    parsed = Parsed(writer.data)
    assert parsed.header("content-length") == "12"
    assert writer.data.endswith(b"\r\n\r\n")
    assert b"twelve" not in writer.data


def test_head_request_ended_empty_has_no_length() -> None:
    """Swoole's build_header: Content-Length only if length > 0 or the method is not HEAD."""
    resp, writer = make(method="HEAD")
    resp.end()
    assert Parsed(writer.data).header("content-length") is None
    assert writer.data.endswith(b"Content-Type: text/html\r\n\r\n")


def test_head_request_with_user_content_length() -> None:
    resp, writer = make(method="HEAD")
    resp.header("Content-Length", "1234")
    resp.end()
    assert Parsed(writer.data).all("content-length") == ["1234"]


def test_head_request_write_sends_head_only() -> None:
    resp, writer = make(method="HEAD")
    assert resp.write("abc")
    assert resp.write("def")
    resp.end("ghi")
    assert writer.data.endswith(b"\r\n\r\n")
    assert b"abc" not in writer.data and b"ghi" not in writer.data
    assert len(writer.finished) == 1


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(code: int) -> None:
    resp, writer = make()
    resp.status(code)
    resp.end("ignored")
    data = writer.data
    assert b"Content-Length" not in data
    assert b"Content-Type" not in data
    assert data.endswith(b"\r\n\r\n")
    assert Parsed(data).status == code


def test_101_head_only() -> None:
    resp, writer = make()
    resp.status(101)
    resp.header("Upgrade", "websocket")
    resp.header("Connection", "Upgrade")
    resp.header("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", False)
    resp.header("sec-websocket-protocol", "chat")  # Swoole's ucwords formatting
    assert resp.end()
    # Swoole's order: the user's headers, then Server and Date; nothing else for a 1xx.
    data = writer.data
    assert data.startswith(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Sec-Websocket-Protocol: chat\r\nServer: pyswoole\r\nDate: "
    )
    assert data.endswith(b" GMT\r\n\r\n") and data.count(b"\r\n") == 8
    assert writer.finished == [(resp, True)]


def test_redirect() -> None:
    resp, writer = make()
    assert resp.redirect("/elsewhere")
    parsed = Parsed(writer.data)
    assert (parsed.status, parsed.header("location")) == (302, "/elsewhere")
    assert parsed.header("content-length") == "0"
    resp, writer = make()
    assert resp.redirect("https://x.example/", 301)
    assert Parsed(writer.data).status == 301
    assert len(writer.finished) == 1


def test_sendfile(tmp_path: Path) -> None:
    path = tmp_path / "page.json"
    path.write_bytes(b"0123456789")
    resp, writer = make()
    assert resp.sendfile(str(path), 2, 5)
    parsed = Parsed(writer.data)
    assert parsed.header("content-type") == "application/json"
    assert parsed.header("content-length") == "5"
    assert parsed.body == b"23456"
    assert writer.files == [(str(path), 2, 5)]
    assert writer.finished == [(resp, True)]


def test_sendfile_whole_file_and_user_type(tmp_path: Path) -> None:
    path = tmp_path / "blob.unknownext"
    path.write_bytes(b"abc")
    resp, writer = make()
    assert resp.sendfile(str(path))
    assert Parsed(writer.data).header("content-type") == "application/octet-stream"
    resp, writer = make()
    resp.header("Content-Type", "text/plain")
    assert resp.sendfile(str(path), 1)
    parsed = Parsed(writer.data)
    assert (parsed.header("content-type"), parsed.body) == ("text/plain", b"bc")


def test_sendfile_head_request(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"abc")
    resp, writer = make(method="HEAD")
    assert resp.sendfile(str(path))
    assert writer.files == []
    assert Parsed(writer.data).header("content-length") == "3"


def test_sendfile_errors_leave_response_usable(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"abc")
    resp, writer = make()
    assert resp.sendfile(str(tmp_path / "missing")) is False
    assert resp.sendfile(str(tmp_path)) is False  # a directory
    assert resp.sendfile(str(path), 4) is False
    assert resp.sendfile(str(path), 1, 5) is False
    assert resp.sendfile(str(path), -1) is False
    assert writer.chunks == [] and writer.finished == []
    assert resp.is_writable()
    assert resp.end("fallback")
    assert Parsed(writer.data).body == b"fallback"


def test_dead_connection() -> None:
    writer = FakeWriter(alive=False)
    resp = Response(1, writer)
    assert resp.write("x") is False
    assert not resp.is_writable()
    assert resp.end("y") is False
    assert writer.finished == [(resp, True)]


def test_big_body_sent_without_coalescing() -> None:
    resp, writer = make()
    body = os.urandom(200_000)
    assert resp.end(body)
    assert len(writer.chunks) == 2
    assert writer.chunks[1] is body
    assert Parsed(writer.data).body == body


def test_non_latin1_header_value() -> None:
    resp, writer = make()
    resp.header("Content-Disposition", 'attachment; filename="文件.txt"')
    resp.end()
    assert 'filename="文件.txt"'.encode() in writer.data


@pytest.mark.parametrize("status", [400, 413, 426, 431, 500, 503])
def test_error_response(status: int) -> None:
    data = error_response(status, reason="bad <thing>", headers={"Sec-WebSocket-Version": "13"})
    parsed = Parsed(data)
    assert parsed.complete
    assert parsed.status == status
    assert parsed.header("connection") == "close"
    assert parsed.header("sec-websocket-version") == "13"
    assert parsed.header("content-length") == str(len(parsed.body))
    assert f"<h2>HTTP {status} ".encode() in parsed.body
    assert b"bad &lt;thing&gt;" in parsed.body
    assert b"Powered by pyswoole" in parsed.body


def test_error_response_keep_alive_and_defaults() -> None:
    data = error_response(400, server_name="srv", keep_alive=True)
    parsed = Parsed(data)
    assert parsed.header("connection") == "keep-alive"
    assert parsed.header("server") == "srv"
    assert parsed.body == (
        b"<html><body><h2>HTTP 400 Bad Request</h2><hr><i>Powered by srv</i></body></html>"
    )


# -- the rest of Swoole's Response surface ---------------------------------------------------


def test_reason_phrases_are_swooles() -> None:
    """src/protocol/http.cc get_status_message: Swoole's table, "Unknown Status" otherwise."""
    for code, reason in ((413, b"Payload Too Large"), (501, b"Not Implemented"), (299, None)):
        resp, writer = make()
        assert resp.setStatusCode(code)
        resp.end()
        assert writer.data.startswith(
            b"HTTP/1.1 %d %s\r\n" % (code, reason or b"Unknown Status")
        ), writer.data
    assert error_response(414).startswith(b"HTTP/1.1 414 URI Too Long\r\n")


def test_head_in_swooles_order() -> None:
    """build_header: user headers (lists as several lines), Set-Cookie, Server, Date,
    Connection, Content-Type, Content-Length."""
    resp, writer = make()
    assert resp.header("x-b", "2")
    assert resp.header("Vary", ["Accept", "Origin"])
    assert resp.cookie("s", "1")
    assert resp.header("x-a", "1 ")  # Swoole right-trims values
    resp.end("ok")
    head = writer.data.split(b"\r\n\r\n")[0].split(b"\r\n")
    names = [line.split(b":")[0] for line in head[1:]]
    assert names == [
        b"X-B",
        b"Vary",
        b"Vary",
        b"X-A",
        b"Set-Cookie",
        b"Server",
        b"Date",
        b"Connection",
        b"Content-Type",
        b"Content-Length",
    ]
    assert b"Vary: Accept" in head and b"Vary: Origin" in head and b"X-A: 1" in head
    assert resp.header_items()[:3] == [("X-B", "2"), ("Vary", "Accept"), ("Vary", "Origin")]


def test_user_server_date_and_unformatted_type_replace_defaults() -> None:
    resp, writer = make()
    assert resp.header("server", "mine")
    assert resp.header("date", "Thu, 01 Jan 1970 00:00:00 GMT")
    assert resp.header("content-type", "text/plain", False)
    resp.end("x")
    text = writer.data.decode()
    assert text.count("Server:") == 1 and "\r\nServer: mine\r\n" in text
    assert text.count("Date:") == 1 and "\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n" in text
    assert "text/html" not in text and "\r\ncontent-type: text/plain\r\n" in text


def test_header_key_limits() -> None:
    resp, _ = make()
    assert resp.header("k" * 127, "v")
    assert resp.header("k" * 128, "v") is False  # SW_HTTP_HEADER_KEY_SIZE
    assert resp.header("X", ["a", "b\r\nc"]) is False
    assert resp.initHeader() is True


def test_end_twice_warns_and_returns_false(caplog: pytest.LogCaptureFixture) -> None:
    resp, writer = make()
    assert resp.end("once")
    sent = writer.data
    assert resp.end("twice") is False
    assert writer.data == sent
    assert "http response is unavailable (maybe it has been ended or detached)" in caplog.text
    assert "Response::end()" in caplog.text


def test_write_then_end_exact_bytes() -> None:
    resp, writer = make(keep_alive=False)
    resp.header("Content-Type", "text/plain")
    assert resp.write("a" * 26)
    assert resp.end("tail")
    head, _, body = writer.data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: pyswoole\r\n")
    assert head.endswith(b"\r\nConnection: close\r\nTransfer-Encoding: chunked")
    assert body == b"1a\r\n" + b"a" * 26 + b"\r\n4\r\ntail\r\n0\r\n\r\n"


def test_write_empty_sends_head_then_refuses(caplog: pytest.LogCaptureFixture) -> None:
    resp, writer = make()
    assert resp.write("") is False
    assert "data to send is empty" in caplog.text
    assert resp.head_sent and writer.data.endswith(b"Transfer-Encoding: chunked\r\n\r\n")
    assert resp.end()
    assert writer.data.endswith(b"\r\n\r\n0\r\n\r\n")


def test_trailer_after_chunks() -> None:
    resp, writer = make()
    assert resp.trailer("X-Checksum", "abc")
    assert resp.trailer("X-Gone", "1") and resp.trailer("x-gone", None)
    assert resp.trailer("X", "a\r\nb") is False
    assert resp.trailers == {"x-checksum": "abc"}
    resp.write("data")
    resp.end()
    assert writer.data.endswith(b"4\r\ndata\r\n0\r\nx-checksum: abc\r\n\r\n")
    # Not chunked: the trailers are not sent.
    resp, writer = make()
    resp.trailer("x-t", "1")
    resp.end("body")
    assert writer.data.endswith(b"\r\n\r\nbody")


def test_detach_and_create(caplog: pytest.LogCaptureFixture) -> None:
    resp, writer = make()
    assert resp.detach()
    assert resp.detached and not resp.isWritable()
    assert resp.end("x") is False and resp.detach() is False
    del resp  # a detached response is not finished when dropped
    assert writer.data == b"" and writer.finished == []

    class FakeServer:
        setting = {"server_name": "srv"}

        def _conn(self, fd: int) -> FakeWriter | None:
            return writer if fd == 7 else None

    again = Response.create(FakeServer(), 7)
    assert isinstance(again, Response) and again.fd == 7
    assert again.end("from create")
    parsed = Parsed(writer.data)
    assert (parsed.body, parsed.header("server")) == (b"from create", "srv")
    assert writer.finished == [(again, True)]
    assert Response.create(FakeServer(), 8) is False
    assert Response.create(object(), 7) is False
    assert "must be valid connection session id" in caplog.text


def test_http2_and_coroutine_only_methods(caplog: pytest.LogCaptureFixture) -> None:
    """Swoole's async HTTP/1.1 server answers these with a warning and false."""
    resp, writer = make()
    assert resp.ping() is False and resp.goaway() is False
    assert resp.upgrade() is False
    assert resp.push("x") is False and resp.recv() is False and resp.disconnect() is False
    assert "is not a HTTP2 conncetion" in caplog.text
    assert "async server dose not support protocol upgrade" in caplog.text
    assert "is not a websocket conncetion" in caplog.text
    assert resp.close() is False  # this writer cannot close
    assert resp.end("still fine")
    assert writer.data.endswith(b"still fine")


def test_close_closes_the_connection() -> None:
    class ClosingWriter(FakeWriter):
        closed = 0

        def close(self) -> None:
            self.closed += 1

    writer = ClosingWriter()
    resp = Response(7, writer)
    assert resp.close() is True
    assert writer.closed == 1 and not resp.is_writable()


def test_aliases() -> None:
    assert Response.setHeader is Response.header and Response.set_header is Response.header
    assert Response.setCookie is Response.cookie and Response.setRawCookie is Response.rawcookie
    assert Response.setStatusCode is Response.status and Response.isWritable is Response.is_writable
