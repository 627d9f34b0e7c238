"""The static file handler and HTTP response compression on a real server, over real sockets.

Raw sockets send request targets exactly as written (every traversal encoding reaches the
server untouched); ``http.client`` is the real client for conditional and range requests;
the ``websockets`` library checks that a WebSocket still connects on a port that serves
files.  The multi-process and 1 GiB cases run ``programs/static_server.py`` as a subprocess.
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import importlib.util
import os
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from pyswoole import HttpServer, WebSocketServer
from tests.integration.serverproc import ServerProcess
from tests.integration.test_http_server import http_server, read_response, request_bytes

PROGRAMS = Path(__file__).resolve().parent / "programs"
CSS = b"body { color: #123456; margin: 0 auto; }\n" * 50
PAGE = b"<!doctype html><title>home</title><script src=/js/app.js></script>"
TEXT = b"<p>" + b"compressible text, said again and again. " * 60 + b"</p>"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "public"
    for sub in ("css", "js", "img", "listing"):
        (root / sub).mkdir(parents=True)
    (root / "index.html").write_bytes(PAGE)
    (root / "css" / "site.css").write_bytes(CSS)
    (root / "js" / "app.js").write_text("console.log('hi')")
    (root / "img" / "dot.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    (root / "listing" / "a.txt").write_text("a")
    (tmp_path / "secret.txt").write_text("SECRET")
    (root / "out.txt").symlink_to(tmp_path / "secret.txt")
    (root / "outdir").symlink_to(tmp_path)
    return root


def recording_server(
    cls: type[HttpServer] = HttpServer, **settings: Any
) -> tuple[HttpServer, list[str]]:
    seen: list[str] = []

    def handler(request: Any, response: Any) -> None:
        seen.append(f"{request.server['request_method']} {request.server['request_uri']}")
        response.end(f"dynamic {request.server['request_uri']}")

    return http_server(handler, cls, **settings), seen


def static(root: Path, **extra: Any) -> dict[str, Any]:
    return {"enable_static_handler": True, "document_root": str(root), **extra}


# -- serving ----------------------------------------------------------------------------------


def test_files_are_served_before_on_request(serve, raw_client, site) -> None:
    server, seen = recording_server(**static(site))
    serve(server)
    client = raw_client(server.port)
    client.send(request_bytes("/css/site.css"))
    answer = read_response(client)
    assert answer.status == 200
    assert answer.body == CSS
    assert answer.header("content-type") == "text/css"
    assert answer.header("accept-ranges") == "bytes"
    assert answer.header("etag") and answer.header("last-modified")
    client.send(request_bytes("/missing.css"))  # not a file: on("request")
    assert read_response(client).body == b"dynamic /missing.css"
    client.send(request_bytes("/img/"))  # a directory without an index: on("request")
    assert read_response(client).body == b"dynamic /img/"
    assert seen == ["GET /missing.css", "GET /img/"]


def test_pipelined_static_and_dynamic_answers_keep_their_order(serve, raw_client, site) -> None:
    server, _ = recording_server(**static(site))
    serve(server)
    client = raw_client(server.port)
    paths = ["/css/site.css", "/a", "/js/app.js", "/b", "/css/site.css"]
    client.send(b"".join(request_bytes(p) for p in paths))
    bodies = [read_response(client).body for _ in paths]
    assert bodies == [CSS, b"dynamic /a", b"console.log('hi')", b"dynamic /b", CSS]


TRAVERSALS = [
    "/../secret.txt",
    "/css/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/.%2e/secret.txt",
    "/css/%2e%2e/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/css%2F..%2F..%2Fsecret.txt",
    "/..\\secret.txt",
    "/..%5csecret.txt",
    "/css/site.css%00",
    "/out.txt",
    "/outdir/secret.txt",
]


@pytest.mark.parametrize("locations", [None, ["/"]])
def test_traversal_in_every_encoding_is_refused(serve, raw_client, site, locations) -> None:
    server, seen = recording_server(**static(site, static_handler_locations=locations))
    serve(server)
    client = raw_client(server.port)
    for target in TRAVERSALS:
        client.send(request_bytes(target))
        answer = read_response(client)
        assert answer.status == 403, target
        assert b"SECRET" not in answer.body
    assert seen == []  # refused by the static handler, never handed on


def test_a_raw_nul_or_an_over_long_target_is_never_served(serve, raw_client, site) -> None:
    server, _ = recording_server(**static(site, static_handler_locations=["/"]))
    serve(server)
    client = raw_client(server.port)
    client.send(request_bytes("/" + "a/" * 2100 + "x.css"))  # over PATH_MAX
    assert read_response(client).status == 404
    client.send(request_bytes("/" + "b" * 300 + ".css"))  # a segment over NAME_MAX
    assert read_response(client).status == 404
    client.send(b"GET /css/site.css\x00.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = read_response(client)
    assert answer.status in (400, 403) and CSS not in answer.body


def test_locations_missing_file_is_404_and_others_are_dynamic(serve, raw_client, site) -> None:
    server, seen = recording_server(**static(site, static_handler_locations=["/css", "/js/"]))
    serve(server)
    client = raw_client(server.port)
    client.send(request_bytes("/css/none.css"))
    assert read_response(client).status == 404
    client.send(request_bytes("/index.html"))  # outside every location
    assert read_response(client).body == b"dynamic /index.html"
    client.send(request_bytes("/js/app.js"))
    assert read_response(client).body == b"console.log('hi')"
    assert seen == ["GET /index.html"]


def test_url_rewrite_rules_map_urls_to_files_and_on_request_sees_the_url_sent(
    serve, raw_client, site
) -> None:
    rules = {
        "/assets/v42/": "/css/",  # a prefix
        r"~^/scripts/(\w+)\.js$~": "/js/$1.js",  # a regular expression
        r"~^/files/(.*)$~": "/css/$1",  # a capture a client could try to climb out with
    }
    server, seen = recording_server(**static(site, url_rewrite_rules=rules))
    serve(server)
    client = raw_client(server.port)
    client.send(request_bytes("/assets/v42/site.css?v=1"))
    answer = read_response(client)
    assert answer.status == 200 and answer.body == CSS
    assert answer.header("content-type") == "text/css"
    client.send(request_bytes("/scripts/app.js"))
    assert read_response(client).body == b"console.log('hi')"
    client.send(request_bytes("/assets/v42/none.css"))  # rewritten, not a file
    assert read_response(client).body == b"dynamic /assets/v42/none.css"
    for target in ("/files/../../secret.txt", "/files/%2e%2e/%2e%2e/secret.txt"):
        client.send(request_bytes(target))
        refused = read_response(client)
        assert refused.status == 403 and b"SECRET" not in refused.body, target
    client.send(request_bytes("/css/site.css"))  # the unrewritten path still serves
    assert read_response(client).body == CSS
    assert seen == ["GET /assets/v42/none.css"]  # request_uri as the client sent it


def test_index_files_and_autoindex(serve, raw_client, site) -> None:
    server, _ = recording_server(
        **static(site, http_index_files=["index.htm", "index.html"], http_autoindex=True)
    )
    serve(server)
    client = raw_client(server.port)
    client.send(request_bytes("/"))
    answer = read_response(client)
    assert answer.body == PAGE and answer.header("content-type") == "text/html"
    client.send(request_bytes("/listing"))
    listing = read_response(client)
    assert listing.status == 200
    assert b"<title>Index of /listing/</title>" in listing.body
    assert b'<a href="/listing/a.txt">a.txt</a>' in listing.body


def test_head_and_methods(serve, raw_client, site) -> None:
    server, seen = recording_server(**static(site))
    serve(server)
    client = raw_client(server.port)
    client.send(request_bytes("/css/site.css", method="HEAD"))
    head = read_response(client, head=True)
    assert head.status == 200 and head.header("content-length") == str(len(CSS))
    # As Swoole: a bodiless request of any method is served; one with a body is not.
    client.send(request_bytes("/css/site.css", method="DELETE"))
    assert read_response(client).body == CSS
    client.send(request_bytes("/css/site.css", method="POST", body=b"x=1"))
    assert read_response(client).body == b"dynamic /css/site.css"
    assert seen == ["POST /css/site.css"]


def test_conditional_and_range_requests_with_http_client(serve, site) -> None:
    server, _ = recording_server(**static(site))
    serve(server)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/css/site.css")
        first = conn.getresponse()
        assert first.read() == CSS
        etag, modified = first.getheader("ETag"), first.getheader("Last-Modified")
        assert etag and modified
        conn.request("GET", "/css/site.css", headers={"If-None-Match": etag})
        cached = conn.getresponse()
        assert (cached.status, cached.read()) == (304, b"")
        conn.request("GET", "/css/site.css", headers={"If-Modified-Since": modified})
        revalidated = conn.getresponse()
        assert (revalidated.status, revalidated.read()) == (304, b"")
        # A download cut at 1000 bytes resumes with Range/If-Range.
        conn.request("GET", "/css/site.css", headers={"Range": "bytes=0-999"})
        part = conn.getresponse()
        assert part.status == 206
        assert part.getheader("Content-Range") == f"bytes 0-999/{len(CSS)}"
        head_part = part.read()
        conn.request("GET", "/css/site.css", headers={"Range": "bytes=1000-", "If-Range": etag})
        rest = conn.getresponse()
        assert rest.status == 206
        assert head_part + rest.read() == CSS
        conn.request("GET", "/css/site.css", headers={"Range": "bytes=0-9,20-29"})
        multi = conn.getresponse()
        assert multi.status == 206
        kind = multi.getheader("Content-Type") or ""
        assert kind.startswith("multipart/byteranges; boundary=")
        body = multi.read()
        assert body.count(f"--{kind.split('=')[1]}".encode()) == 3
        assert CSS[:10] in body and CSS[20:30] in body
        conn.request("GET", "/css/site.css", headers={"Range": f"bytes={len(CSS)}-"})
        unsatisfiable = conn.getresponse()
        assert unsatisfiable.status == 416
        assert unsatisfiable.getheader("Content-Range") == f"bytes */{len(CSS)}"
        unsatisfiable.read()
    finally:
        conn.close()


def test_a_websocket_connects_on_a_port_that_serves_files(serve, raw_client, site) -> None:
    server, _ = recording_server(WebSocketServer, **static(site, http_index_files=["index.html"]))
    serve(server)
    client = raw_client(server.port)
    client.send(request_bytes("/"))
    assert read_response(client).body == PAGE  # the page...

    async def talk() -> Any:  # ...and its WebSocket, on the same path
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("over the static port")
            return await asyncio.wait_for(ws.recv(), 5)

    assert asyncio.run(talk()) == "over the static port"


def test_a_relative_document_root_is_resolved_at_start(serve, raw_client, site) -> None:
    server, _ = recording_server(**static(Path(os.path.relpath(site))))
    serve(server)
    client = raw_client(server.port)
    client.send(request_bytes("/css/site.css"))
    assert read_response(client).body == CSS
    assert server._document_root == str(site.resolve())


def test_a_missing_document_root_fails_at_start(site) -> None:
    server, _ = recording_server(**static(site / "nope"))
    with pytest.raises(Exception, match="does not exist"):
        server.start()


# -- compression ------------------------------------------------------------------------------


def compression_server(**settings: Any) -> HttpServer:
    def handler(request: Any, response: Any) -> None:
        path = request.server["request_uri"]
        if path == "/stream":
            response.header("Content-Type", "text/plain")
            for i in range(3):
                response.write(f"piece {i} " * 20)
            response.end()
        elif path == "/png":
            response.header("Content-Type", "image/png")
            response.end(TEXT)
        elif path == "/tiny":
            response.end("tiny")
        else:
            response.end(TEXT)

    return http_server(handler, **settings)


@pytest.mark.parametrize(
    ("accept", "encoding"),
    [
        ("gzip, deflate", "gzip"),
        ("deflate", "deflate"),
        ("gzip;q=0.1, deflate;q=0.9", "deflate"),
        ("identity", None),
        ("gzip;q=0, deflate;q=0", None),
        (None, None),
    ],
)
def test_end_is_compressed_as_accept_encoding_asks(serve, raw_client, accept, encoding) -> None:
    server = serve(compression_server())
    client = raw_client(server.port)
    headers = [("Accept-Encoding", accept)] if accept is not None else []
    client.send(request_bytes("/", headers=headers))
    answer = read_response(client)
    assert answer.header("content-encoding") == encoding
    if encoding is None:
        assert answer.body == TEXT and answer.header("vary") is None
        return
    assert answer.header("vary") == "Accept-Encoding"
    assert int(answer.header("content-length") or 0) == len(answer.body) < len(TEXT)
    body = gzip.decompress(answer.body) if encoding == "gzip" else zlib.decompress(answer.body)
    assert body == TEXT


def test_head_announces_the_coding_get_would_use(serve, raw_client) -> None:
    server = serve(compression_server())
    client = raw_client(server.port)
    client.send(request_bytes("/", headers=[("Accept-Encoding", "gzip")]))
    get_answer = read_response(client)
    client.send(request_bytes("/", method="HEAD", headers=[("Accept-Encoding", "gzip")]))
    head = read_response(client, head=True)
    assert head.header("content-encoding") == get_answer.header("content-encoding") == "gzip"
    assert head.header("content-length") == get_answer.header("content-length")
    client.send(request_bytes("/tiny"))  # nothing of the HEAD's body is on the wire
    assert read_response(client).body == b"tiny"


@pytest.mark.skipif(importlib.util.find_spec("brotli") is None, reason="brotli not installed")
def test_br_when_the_brotli_package_is_installed(serve, raw_client) -> None:
    import brotli  # type: ignore[import-not-found]

    server = serve(compression_server())
    client = raw_client(server.port)
    client.send(request_bytes("/", headers=[("Accept-Encoding", "gzip, deflate, br")]))
    answer = read_response(client)
    assert answer.header("content-encoding") == "br"
    assert brotli.decompress(answer.body) == TEXT


def test_a_streamed_body_is_compressed_piece_by_piece(serve, raw_client) -> None:
    server = serve(compression_server())
    client = raw_client(server.port)
    client.send(request_bytes("/stream", headers=[("Accept-Encoding", "gzip")]))
    answer = read_response(client)
    assert answer.header("content-encoding") == "gzip"
    assert answer.header("transfer-encoding") == "chunked"
    inflater = zlib.decompressobj(31)
    pieces = [inflater.decompress(chunk) for chunk in answer.chunks or []]
    assert pieces[:3] == [f"piece {i} ".encode() * 20 for i in range(3)]  # each decodable
    assert b"".join(pieces) == b"".join(f"piece {i} ".encode() * 20 for i in range(3))
    assert inflater.eof


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"http_compression": False}, "/"),
        ({}, "/tiny"),  # under http_compression_min_length
        ({"http_compression_min_length": 100_000}, "/"),
        ({"http_compression_types": ["text/plain"]}, "/"),  # text/html is not listed
        ({"http_compression_types": ["text/*"]}, "/png"),
    ],
)
def test_bodies_left_uncompressed(serve, raw_client, settings, path) -> None:
    server = serve(compression_server(**settings))
    client = raw_client(server.port)
    client.send(request_bytes(path, headers=[("Accept-Encoding", "gzip")]))
    answer = read_response(client)
    assert answer.header("content-encoding") is None
    assert answer.body in (TEXT, b"tiny")


def test_level_and_types_settings(serve, raw_client) -> None:
    server = serve(compression_server(http_compression_level=9, http_compression_types=["image/*"]))
    client = raw_client(server.port)
    client.send(request_bytes("/png", headers=[("Accept-Encoding", "gzip")]))
    answer = read_response(client)
    assert answer.header("content-encoding") == "gzip"
    assert gzip.decompress(answer.body) == TEXT


def test_static_files_are_not_compressed(serve, raw_client, site) -> None:
    server, _ = recording_server(**static(site))
    serve(server)
    client = raw_client(server.port)
    client.send(request_bytes("/css/site.css", headers=[("Accept-Encoding", "gzip")]))
    answer = read_response(client)
    assert answer.header("content-encoding") is None and answer.body == CSS


# -- other process models, a 1 GiB file ------------------------------------------------------


@pytest.fixture
def program(tmp_path: Path) -> Iterator[Any]:
    started: list[ServerProcess] = []

    def start(root: Path, *args: str) -> ServerProcess:
        proc = ServerProcess(PROGRAMS / "static_server.py", tmp_path, "--root", str(root), *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["base", "process"])
def test_multi_process_servers_serve_files(program, site, mode) -> None:
    proc = program(site, "--mode", mode, "--workers", "2")
    proc.wait_ready(2)
    assert get(proc.port, "/css/site.css") == (200, CSS)
    assert get(proc.port, "/") == (200, PAGE)
    assert get(proc.port, "/../secret.txt")[0] == 403
    status, body = get(proc.port, "/api")
    assert status == 200 and body.startswith(b"dynamic /api ")
    if mode == "process":  # a worker answered on("request"), not the master
        assert int(body.split()[-1]) in proc.pids().values()
    # the worker that answers compresses (SWOOLE_PROCESS: before the bytes go to the master)
    conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=10)
    try:
        path = "/api/" + "x" * 40  # (a body over http_compression_min_length)
        conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
        answer = conn.getresponse()
        assert answer.getheader("Content-Encoding") == "gzip"
        assert gzip.decompress(answer.read()).startswith(f"dynamic {path} ".encode())
    finally:
        conn.close()


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_one_gibibyte_file_streams_with_flat_memory(program, tmp_path) -> None:
    root = tmp_path / "big"
    root.mkdir()
    size = 1 << 30
    tail = b"--the last bytes"
    with open(root / "huge.bin", "wb") as f:  # sparse: no disk blocks but the tail's
        f.truncate(size - len(tail))
        f.seek(size - len(tail))
        f.write(tail)
    proc = program(root, "--mode", "base", "--workers", "1")
    proc.wait_ready(1)
    before = rss(proc.proc.pid)
    peak = before
    with socket.create_connection(("127.0.0.1", proc.port), timeout=30) as sock:
        sock.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        head = b""
        while b"\r\n\r\n" not in head:
            n = sock.recv_into(view)
            assert n, "closed before the head"
            head += bytes(view[:n])
        header, _, got = head.partition(b"\r\n\r\n")
        assert f"Content-Length: {size}".encode() in header
        received = len(got)
        last = got[-len(tail) :]
        deadline = time.monotonic() + 120
        samples = 0
        while received < size:
            assert time.monotonic() < deadline, f"only {received} bytes in 120 s"
            n = sock.recv_into(view)
            assert n, f"closed after {received} bytes"
            received += n
            last = (last + bytes(view[max(0, n - len(tail)) : n]))[-len(tail) :]
            if received >> 26 != (received - n) >> 26:  # every 64 MiB
                peak = max(peak, rss(proc.proc.pid))
                samples += 1
    assert received == size
    assert last == tail
    assert samples >= 15
    assert peak - before < 48 * (1 << 20), f"RSS grew by {(peak - before) >> 20} MiB"
    # ...and a cut download resumes from where it stopped.
    status, body = get(proc.port, "/huge.bin", {"Range": f"bytes={size - 100}-"})
    assert status == 206 and body == bytes(100 - len(tail)) + tail
