"""pyswoole.server.static: path resolution (traversal in every encoding), Swoole's fall-through
rules, conditional and range requests, the directory listing -- through a recording writer."""

from __future__ import annotations

import os
from email.utils import formatdate
from pathlib import Path

import pytest

from pyswoole.protocol.http import ParsedRequest
from pyswoole.server.response import Response
from pyswoole.server.static import (
    FORBIDDEN,
    NOT_FOUND,
    UNSATISFIABLE,
    Listing,
    StaticFile,
    StaticHandler,
    parse_range,
)
from tests.server.test_response import FakeWriter, Parsed

CSS = b"body { color: red; }\n" * 10
MTIME = 1_700_000_000


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """document_root with files, a directory with an index, one without, symlinks in and out,
    and a secret next to the root."""
    root = tmp_path / "public"
    (root / "css").mkdir(parents=True)
    (root / "css" / "site.css").write_bytes(CSS)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "docs").mkdir()
    (root / "docs" / "index.htm").write_text("<h1>docs</h1>")
    (root / "empty").mkdir()
    (root / "empty" / "b.txt").write_text("b")
    (root / "empty" / "<a>&.txt").write_text("x")
    (root / "data.unknownext").write_bytes(b"\x00\x01")
    (root / "a+b.txt").write_text("plus")
    (root / "space here.txt").write_text("space")
    (tmp_path / "secret.txt").write_text("SECRET")
    (root / "link-out.txt").symlink_to(tmp_path / "secret.txt")
    (root / "dir-out").symlink_to(tmp_path)
    (root / "link-in.css").symlink_to(root / "css" / "site.css")
    for path in [root / "css" / "site.css", root / "index.html"]:
        os.utime(path, (MTIME, MTIME))
    return root


def handler(root: Path, **kwargs: object) -> StaticHandler:
    return StaticHandler(str(root), **kwargs)  # type: ignore[arg-type]


# -- resolution ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/css/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e./secret.txt",
        "/css/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/css%2f..%2f..%2fsecret.txt",
        "/%2F..%2Fsecret.txt",
        "/..\\secret.txt",
        "/css\\..\\..\\secret.txt",
        "/..%5csecret.txt",
        "/..%5Csecret.txt",
        "/css/site.css%00.html",
        "/css/site.css\x00",
        "/css/..",
        "/link-out.txt",  # a symlink out of the root
        "/dir-out/secret.txt",  # through a symlinked directory
    ],
)
def test_traversal_in_every_encoding_is_forbidden(site: Path, target: str) -> None:
    assert handler(site).resolve(target) == FORBIDDEN
    assert handler(site, locations=["/"]).resolve(target) == FORBIDDEN


@pytest.mark.parametrize(
    "target",
    [
        "/%252e%252e/secret.txt",  # double encoding is a name, not a traversal
        "/%c0%ae%c0%ae/secret.txt",  # overlong UTF-8 dots are not dots
        "/..;/secret.txt",
        "/" + "a" * 300,  # a segment over NAME_MAX
        "/" + "a/" * 3000,  # over PATH_MAX
        "/css/site.css/",
        "/nothing-here.css",
    ],
)
def test_odd_paths_that_cannot_exist_are_absent(site: Path, target: str) -> None:
    assert handler(site).resolve(target) is None  # on("request") gets them
    assert handler(site, locations=["/"]).resolve(target) == NOT_FOUND


def test_a_file_resolves_with_its_mime_type(site: Path) -> None:
    found = handler(site).resolve("/css/site.css?v=3")
    assert isinstance(found, StaticFile)
    assert found.path == str(site / "css" / "site.css")
    assert found.mime == "text/css"
    assert found.st.st_size == len(CSS)


def test_percent_decoding_follows_rfc3986(site: Path) -> None:
    found = handler(site).resolve("/space%20here.txt")
    assert isinstance(found, StaticFile) and found.path.endswith("space here.txt")
    found = handler(site).resolve("/a+b.txt")  # "+" is a plus in a path
    assert isinstance(found, StaticFile) and found.path.endswith("a+b.txt")


def test_a_symlink_inside_the_root_is_served(site: Path) -> None:
    assert isinstance(handler(site).resolve("/link-in.css"), StaticFile)


def test_unknown_types_fall_through_unless_a_location_matches(site: Path) -> None:
    assert handler(site).resolve("/data.unknownext") is None
    found = handler(site, locations=["/data"]).resolve("/data.unknownext")
    assert isinstance(found, StaticFile) and found.mime == "application/octet-stream"


def test_locations_limit_what_is_static_case_insensitively(site: Path) -> None:
    static = handler(site, locations=["/css/"])
    assert static.resolve("/index.html") is None  # not under a location: on("request")
    assert isinstance(static.resolve("/CSS/site.css"), StaticFile) is False  # no such dir
    assert static.resolve("/CSS/site.css") == NOT_FOUND  # prefix matched, file absent
    assert isinstance(static.resolve("/css/site.css"), StaticFile)
    assert static.resolve("/css/missing.css") == NOT_FOUND


def test_directories(site: Path) -> None:
    assert handler(site).resolve("/docs/") is None  # no index files configured
    with_index = handler(site, index_files=["index.html", "index.htm"])
    found = with_index.resolve("/docs")
    assert isinstance(found, StaticFile) and found.path.endswith("docs/index.htm")
    found = with_index.resolve("/")
    assert isinstance(found, StaticFile) and found.path.endswith("public/index.html")
    assert with_index.resolve("/empty/") is None  # no index, no autoindex: on("request")
    listing = handler(site, index_files=["index.html"], autoindex=True).resolve("/empty")
    assert isinstance(listing, Listing) and listing.url == "/empty/"


# -- ranges -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", [(0, 9)]),
        ("bytes=5-", [(5, 99)]),
        ("bytes=-10", [(90, 99)]),
        ("bytes=-1000", [(0, 99)]),
        ("bytes=90-1000", [(90, 99)]),
        ("BYTES = 1-2", [(1, 2)]),
        ("bytes=100-", UNSATISFIABLE),
        ("bytes=200-300", UNSATISFIABLE),
        ("bytes=-0", UNSATISFIABLE),
        ("bytes=100-, 200-", UNSATISFIABLE),
        ("bytes=5-6,0-1", [(5, 6), (0, 1)]),  # several ranges, in the order asked
        ("bytes=0-1, 500-", [(0, 1)]),  # only one of them is satisfiable
        ("bytes=5-1", None),  # invalid: ignored
        ("bytes=a-b", None),
        ("bytes=1", None),
        ("bytes=", None),
        ("items=0-1", None),
        ("bytes=-", None),
        ("bytes=\u0661-\u0662", None),  # non-ASCII digits (str.isdigit() accepts them)
    ],
)
def test_parse_range(header: str, expected: object) -> None:
    assert parse_range(header, 100) == expected


def test_no_range_of_an_empty_file_is_satisfiable() -> None:
    assert parse_range("bytes=0-", 0) == UNSATISFIABLE
    assert parse_range("bytes=-5", 0) == UNSATISFIABLE


# -- answers ------------------------------------------------------------------------------


def request(
    target: str, method: str = "GET", **headers: str
) -> tuple[ParsedRequest, Response, FakeWriter]:
    fields = [(k.replace("_", "-").lower(), v) for k, v in headers.items()]
    parsed = ParsedRequest(method, target, "1.1", fields, b"", True, False)
    writer = FakeWriter()
    return parsed, Response(1, writer, method=method), writer


def serve(static: StaticHandler, target: str, method: str = "GET", **headers: str) -> Parsed:
    parsed, response, writer = request(target, method, **headers)
    assert static.serve(parsed, lambda: response)
    assert response.ended
    return Parsed(writer.data)


LAST_MODIFIED = formatdate(MTIME, usegmt=True)
ETAG = f'"{MTIME:x}-{len(CSS):x}"'


def test_a_file_is_sent_with_its_validators(site: Path) -> None:
    answer = serve(handler(site), "/css/site.css")
    assert answer.status == 200
    assert answer.body == CSS
    assert answer.header("content-type") == "text/css"
    assert answer.header("content-length") == str(len(CSS))
    assert answer.header("last-modified") == LAST_MODIFIED
    assert answer.header("etag") == ETAG
    assert answer.header("accept-ranges") == "bytes"
    assert answer.header("content-encoding") is None  # static files are never compressed


def test_head_has_the_get_length_and_no_body(site: Path) -> None:
    parsed, response, writer = request("/css/site.css", "HEAD")
    assert handler(site).serve(parsed, lambda: response)
    head, _, body = writer.data.partition(b"\r\n\r\n")
    assert body == b""
    assert f"Content-Length: {len(CSS)}".encode() in head
    assert writer.files == []


@pytest.mark.parametrize(
    "headers",
    [
        {"if_none_match": ETAG},
        {"if_none_match": f'"other", W/{ETAG}'},  # weak comparison
        {"if_none_match": "*"},
        {"if_modified_since": LAST_MODIFIED},
        {"if_modified_since": formatdate(MTIME + 60, usegmt=True)},
        {"if_modified_since": "Tuesday, 14-Nov-23 22:13:20 GMT"},  # RFC 850 form
        {"if_modified_since": "Tue Nov 14 22:13:20 2023"},  # asctime form
    ],
)
def test_not_modified(site: Path, headers: dict[str, str]) -> None:
    for method in ("GET", "HEAD"):
        answer = serve(handler(site), "/css/site.css", method, **headers)
        assert answer.status == 304
        assert answer.body == b""
        assert answer.header("etag") == ETAG
        assert answer.header("last-modified") == LAST_MODIFIED
        assert answer.header("content-length") is None


@pytest.mark.parametrize(
    "headers",
    [
        {"if_none_match": '"other"'},
        {"if_none_match": '"other"', "if_modified_since": LAST_MODIFIED},  # INM wins
        {"if_modified_since": formatdate(MTIME - 1, usegmt=True)},
        {"if_modified_since": "not a date"},
    ],
)
def test_modified(site: Path, headers: dict[str, str]) -> None:
    answer = serve(handler(site), "/css/site.css", **headers)
    assert answer.status == 200 and answer.body == CSS


def test_conditionals_apply_to_get_and_head_only(site: Path) -> None:
    answer = serve(handler(site), "/css/site.css", "POST", if_none_match=ETAG)
    assert answer.status == 200 and answer.body == CSS  # Swoole serves any bodiless method


def test_a_single_range_is_206(site: Path) -> None:
    answer = serve(handler(site), "/css/site.css", range="bytes=5-14")
    assert answer.status == 206
    assert answer.body == CSS[5:15]
    assert answer.header("content-range") == f"bytes 5-14/{len(CSS)}"
    assert answer.header("content-length") == "10"
    assert answer.header("accept-ranges") is None


def test_a_suffix_range_resumes_the_end(site: Path) -> None:
    answer = serve(handler(site), "/css/site.css", range="bytes=-7")
    assert answer.status == 206 and answer.body == CSS[-7:]


def test_an_unsatisfiable_range_is_416(site: Path) -> None:
    answer = serve(handler(site), "/css/site.css", range=f"bytes={len(CSS)}-")
    assert answer.status == 416
    assert answer.header("content-range") == f"bytes */{len(CSS)}"
    assert answer.body == b""


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"range": "bytes=junk"}, 200),
        ({"range": "bytes=0-3", "if_range": ETAG}, 206),
        ({"range": "bytes=0-3", "if_range": LAST_MODIFIED}, 206),
        ({"range": "bytes=0-3", "if_range": '"stale"'}, 200),
        ({"range": "bytes=0-3", "if_range": f"W/{ETAG}"}, 200),  # weak never matches
        ({"range": "bytes=0-3", "if_range": formatdate(MTIME - 5, usegmt=True)}, 200),
    ],
)
def test_range_variants(site: Path, headers: dict[str, str], status: int) -> None:
    answer = serve(handler(site), "/css/site.css", **headers)
    assert answer.status == status
    assert answer.body == (CSS if status == 200 else CSS[:4])


def test_several_ranges_are_a_multipart_answer(site: Path) -> None:
    parsed, response, writer = request("/css/site.css", range="bytes=0-3, -5, 10-12")
    handler(site).serve(parsed, lambda: response)
    answer = Parsed(writer.data)
    assert answer.status == 206
    content_type = answer.header("content-type") or ""
    assert content_type.startswith("multipart/byteranges; boundary=")
    boundary = content_type.split("boundary=")[1]
    size = len(CSS)
    expected = (
        f"--{boundary}\r\nContent-Type: text/css\r\nContent-Range: bytes 0-3/{size}\r\n\r\n"
    ).encode() + CSS[:4]
    expected += (
        f"\r\n--{boundary}\r\nContent-Type: text/css\r\n"
        f"Content-Range: bytes {size - 5}-{size - 1}/{size}\r\n\r\n"
    ).encode() + CSS[-5:]
    expected += (
        f"\r\n--{boundary}\r\nContent-Type: text/css\r\nContent-Range: bytes 10-12/{size}\r\n\r\n"
    ).encode() + CSS[10:13]
    expected += f"\r\n--{boundary}--\r\n".encode()
    assert answer.body == expected
    assert answer.header("content-length") == str(len(expected))


@pytest.mark.parametrize(
    "ranges", [",".join(f"{i}-{i}" for i in range(65)), "0-10, 20-30", "0-, 1-"]
)
def test_too_many_or_too_big_multipart_ranges_get_the_whole_file(site: Path, ranges: str) -> None:
    (site / "big.txt").write_bytes(b"q" * (1 << 20))
    static = handler(site)
    if ranges == "0-10, 20-30":  # (the small file, for contrast: multipart)
        assert serve(static, "/css/site.css", range=f"bytes={ranges}").status == 206
        return
    answer = serve(static, "/big.txt", range=f"bytes={ranges}")
    assert answer.status == 200 and len(answer.body) == 1 << 20


def test_range_is_ignored_for_head(site: Path) -> None:
    parsed, response, writer = request("/css/site.css", "HEAD", range="bytes=0-3")
    handler(site).serve(parsed, lambda: response)
    assert writer.data.startswith(b"HTTP/1.1 200 OK")


def test_errors_have_pages(site: Path) -> None:
    answer = serve(handler(site), "/../secret.txt")
    assert answer.status == 403 and b"403" in answer.body and b"SECRET" not in answer.body
    answer = serve(handler(site, locations=["/css"]), "/css/none.css")
    assert answer.status == 404 and b"404" in answer.body


def test_not_static_is_left_to_on_request(site: Path) -> None:
    parsed, _, _ = request("/nothing.css")
    made: list[int] = []
    assert not handler(site).serve(parsed, lambda: made.append(1))  # type: ignore[arg-type,func-returns-value]
    assert made == []  # no response is made (dropped unanswered, it would be a 500)


def test_the_listing_escapes_names_and_links(site: Path) -> None:
    answer = serve(handler(site, autoindex=True), "/empty/")
    assert answer.status == 200
    assert answer.header("content-type") == "text/html"
    page = answer.body.decode()
    assert "<title>Index of /empty/</title>" in page
    assert '<a href="/empty/..">..</a>' in page
    assert '<a href="/empty/b.txt">b.txt</a>' in page
    assert '<a href="/empty/%3Ca%3E%26.txt">&lt;a&gt;&amp;.txt</a>' in page
    assert "<a>" not in page.replace("<a href", "")


def test_the_root_listing_has_no_parent_link(site: Path) -> None:
    page = serve(handler(site, autoindex=True), "/").body.decode()
    assert "Index of /" in page and ">..<" not in page
    assert '<a href="/css">css</a>' in page


def test_a_small_file_is_read_from_the_descriptor_that_was_checked(site: Path) -> None:
    static = handler(site)
    found = static.resolve("/css/site.css")
    assert isinstance(found, StaticFile) and found.fd >= 0
    parsed, response, writer = request("/css/site.css")
    (site / "css" / "site.css").unlink()  # (or swapped for a symlink: the open file is sent)
    static._file(parsed, found, response)
    found.close()
    assert found.fd == -1
    answer = Parsed(writer.data)
    assert answer.status == 200 and answer.body == CSS
    assert writer.files == []  # one write with the head, no file streaming


def test_a_big_file_gone_between_lookup_and_send_is_404(site: Path) -> None:
    (site / "big.txt").write_bytes(b"z" * 100_000)
    static = handler(site)
    found = static.resolve("/big.txt")
    assert isinstance(found, StaticFile)
    parsed, response, writer = request("/big.txt")
    (site / "big.txt").unlink()
    static._file(parsed, found, response)
    assert Parsed(writer.data).status == 404


def test_a_big_file_is_streamed_with_sendfile(site: Path) -> None:
    (site / "big.txt").write_bytes(b"z" * 100_000)
    answer = serve(handler(site), "/big.txt", range="bytes=10-70009")
    assert answer.status == 206 and answer.body == b"z" * 70_000


def test_an_index_file_linked_out_of_the_root_is_forbidden(site: Path) -> None:
    (site / "empty" / "index.html").symlink_to(site.parent / "secret.txt")
    assert handler(site, index_files=["index.html"]).resolve("/empty/") == FORBIDDEN


def test_served_descriptors_are_closed(site: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    static = handler(site, index_files=["index.html"])
    for target in ["/css/site.css", "/", "/link-out.txt", "/css/site.css"]:
        serve(static, target)
    assert len(os.listdir("/proc/self/fd")) == before
