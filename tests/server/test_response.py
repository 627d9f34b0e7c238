"""Serialisation tests of pyswoole.server.response, through a recording writer."""

from __future__ import annotations

import os
from pathlib import Path

import httptools
import pytest

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


def test_cookies() -> None:
    resp, writer = make()
    assert resp.cookie("a", "hello world;=")
    assert resp.set_cookie(
        "b",
        "v",
        expires=2_000_000_000,
        path="/p",
        domain="example.com",
        secure=True,
        httponly=True,
        samesite="Lax",
        priority="High",
    )
    assert resp.rawcookie("c", "raw%20value")
    assert resp.cookie("gone")
    assert resp.cookie("bad name", "x") is False
    assert resp.rawcookie("d", "has space") is False
    assert resp.cookie("e", "x", path="/a;b") is False
    resp.end()
    cookies = Parsed(writer.data).all("set-cookie")
    assert cookies[0] == "a=hello+world%3B%3D; path=/"
    assert cookies[1].startswith("b=v; expires=Wed, 18 May 2033 03:33:20 GMT; Max-Age=")
    assert cookies[1].endswith(
        "; path=/p; domain=example.com; secure; httponly; samesite=Lax; priority=High"
    )
    assert cookies[2] == "c=raw%20value; path=/"
    assert cookies[3] == "gone=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0; path=/"
    assert len(cookies) == 4


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
    assert writer.data == (
        b"HTTP/1.1 101 Switching Protocols\r\nServer: pyswoole\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Sec-Websocket-Protocol: chat\r\n\r\n"
    )
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
