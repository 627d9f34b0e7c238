"""pyswoole.protocol.http_compression: negotiation (RFC 9110 12.5.3), the rules of a body,
one-shot and streamed coding; and Response.end()/write() using them."""

from __future__ import annotations

import gzip
import importlib.util
import zlib

import pytest

from pyswoole.protocol import http_compression as hc
from pyswoole.protocol.http_compression import (
    HttpCompression,
    StreamCompressor,
    clamp_level,
    compress,
    parse_accept_encoding,
    select_encoding,
)
from pyswoole.server.response import Response
from tests.server.test_response import FakeWriter, Parsed

ZLIB_ONLY = ("gzip", "deflate")
HAVE_BROTLI = importlib.util.find_spec("brotli") is not None
TEXT = b"<html><body>" + b"<p>hello compressed world</p>" * 40 + b"</body></html>"


def decode(data: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)  # RFC 1950 zlib format (RFC 9110 8.4.1.2)
    import brotli  # type: ignore[import-not-found]

    return bytes(brotli.decompress(data))


# -- negotiation ---------------------------------------------------------------------


def test_parse_accept_encoding_reads_q_values_and_ignores_malformed_elements() -> None:
    parsed = parse_accept_encoding("gzip;q=0.5, DEFLATE, br;q=0, x;q=2, y;q=abc, z;foo=1, *")
    assert parsed == {"gzip": 0.5, "deflate": 1.0, "br": 0.0, "*": 1.0}


def test_x_gzip_is_gzip() -> None:
    assert select_encoding("x-gzip", ZLIB_ONLY) == "gzip"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("identity", None),
        ("gzip", "gzip"),
        ("deflate", "deflate"),
        ("deflate, gzip", "gzip"),  # a tie: the server's order (Swoole's: gzip first)
        ("gzip;q=0.5, deflate", "deflate"),  # the higher q wins
        ("gzip;q=0, deflate;q=0", None),  # q=0: not acceptable (Swoole would still gzip)
        ("*", "gzip"),
        ("*;q=0.2, gzip;q=0", "deflate"),  # * covers the codings not named
        ("identity;q=0", None),  # nothing acceptable: identity anyway, never 406
        ("identity;q=0, *", "gzip"),
        ("br", None),  # not available here
        ("compress, zstd", None),
    ],
)
def test_select_encoding(header: str | None, expected: str | None) -> None:
    assert select_encoding(header, ZLIB_ONLY) == expected


def test_br_is_preferred_when_available() -> None:
    assert select_encoding("gzip, deflate, br", ("br", *ZLIB_ONLY)) == "br"
    assert select_encoding("gzip, br;q=0.9", ("br", *ZLIB_ONLY)) == "gzip"


def test_available_lists_br_only_with_the_brotli_package() -> None:
    assert hc.AVAILABLE[-2:] == ZLIB_ONLY
    assert ("br" in hc.AVAILABLE) == HAVE_BROTLI


def test_negotiate_caches_one_codec_per_coding() -> None:
    policy = HttpCompression(available=ZLIB_ONLY)
    first = policy.negotiate("gzip, deflate")
    assert first is not None and first.encoding == "gzip"
    assert policy.negotiate("gzip, deflate") is first
    assert policy.negotiate("deflate;q=1, gzip;q=0.1") is not first
    assert policy.negotiate(None) is None
    assert policy.negotiate("identity") is None


def test_negotiate_cache_is_bounded() -> None:
    policy = HttpCompression(available=ZLIB_ONLY)
    for i in range(2000):
        policy.negotiate(f"gzip;q=0.{i % 10}, x-{i}")
    assert len(policy._cache) <= hc._CACHE_LIMIT


# -- levels and coding ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "zlib_level", "br_level"),
    [(-5, -1, 0), (0, 1, 0), (1, 1, 1), (9, 9, 9), (11, 9, 11), (255, 9, 11)],
)
def test_levels_are_clamped_as_swoole(level: int, zlib_level: int, br_level: int) -> None:
    assert clamp_level("gzip", level) == zlib_level
    assert clamp_level("br", level) == br_level


@pytest.mark.parametrize("encoding", ZLIB_ONLY)
@pytest.mark.parametrize("level", [-1, 0, 1, 6, 9, 100])
def test_compress_round_trips(encoding: str, level: int) -> None:
    out = compress(TEXT, encoding, level)
    assert len(out) < len(TEXT)
    assert decode(out, encoding) == TEXT


def test_gzip_and_deflate_use_their_rfc_wrappers() -> None:
    assert compress(TEXT, "gzip", 1)[:2] == b"\x1f\x8b"  # RFC 1952 magic
    assert (compress(TEXT, "deflate", 1)[0] & 0x0F) == 8  # RFC 1950 CMF: method 8


@pytest.mark.parametrize("encoding", ZLIB_ONLY)
def test_stream_pieces_decode_as_they_arrive(encoding: str) -> None:
    stream = StreamCompressor(encoding, 1)
    inflater = zlib.decompressobj(31 if encoding == "gzip" else 15)
    pieces = [b"first piece of text " * 3, b"second", b"x" * 5000]
    for piece in pieces:
        out = stream.compress(piece)
        assert out  # Z_SYNC_FLUSH: never held back
        assert inflater.decompress(out) == piece  # decodable at once
    tail = stream.finish(b"the end")
    assert inflater.decompress(tail) == b"the end"
    assert inflater.eof


@pytest.mark.skipif(not HAVE_BROTLI, reason="the brotli package is not installed")
def test_brotli_one_shot_and_stream() -> None:
    assert decode(compress(TEXT, "br", 1), "br") == TEXT
    stream = StreamCompressor("br", 1)
    data = stream.compress(b"abc" * 100) + stream.compress(b"def") + stream.finish(b"!")
    assert decode(data, "br") == b"abc" * 100 + b"def!"


def test_br_without_the_package_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hc, "_brotli", None)
    with pytest.raises(ValueError):
        compress(TEXT, "br", 1)
    with pytest.raises(ValueError):
        StreamCompressor("br", 1)


# -- which bodies ------------------------------------------------------------------------


def test_types_match_on_media_type_and_wildcards() -> None:
    policy = HttpCompression(types=["text/*", "application/json", "Image/SVG+XML; x=1"])
    assert policy.compressible("text/css")
    assert policy.compressible("text/html; charset=utf-8")
    assert policy.compressible("APPLICATION/JSON")
    assert policy.compressible("image/svg+xml")
    assert not policy.compressible("image/png")
    assert not policy.compressible("application/javascript")


@pytest.mark.parametrize("types", [None, [], ()])
def test_no_type_list_means_every_type(types: list[str] | None) -> None:
    assert HttpCompression(types=types).compressible("image/png")


def codec(**kwargs: object) -> hc.Codec:
    found = HttpCompression(available=ZLIB_ONLY, **kwargs).negotiate("gzip")  # type: ignore[arg-type]
    assert found is not None
    return found


def test_encode_adds_content_encoding_and_vary() -> None:
    headers: dict[str, str | list[str]] = {}
    out = codec().encode(200, headers, TEXT)
    assert gzip.decompress(out) == TEXT
    assert headers == {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}


@pytest.mark.parametrize(
    ("vary", "merged"),
    [
        ("Origin", "Origin, Accept-Encoding"),
        ("accept-encoding", "accept-encoding"),
        ("*", "*"),
        (["Origin", "Cookie"], "Origin, Cookie, Accept-Encoding"),
    ],
)
def test_encode_merges_into_the_applications_vary(vary: str | list[str], merged: str) -> None:
    headers: dict[str, str | list[str]] = {"vary": vary}
    codec().encode(200, headers, TEXT)
    assert headers["vary"] == merged


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (206, {}, TEXT),  # a range of the unencoded representation
        (200, {"Content-Encoding": "br"}, TEXT),  # already encoded by the application
        (200, {"content-encoding": "identity"}, TEXT),
        (200, {}, b"x" * 19),  # under http_compression_min_length (20)
        (200, {"Content-Type": "image/png"}, TEXT),  # not in the types list
    ],
)
def test_encode_leaves_these_bodies_alone(
    status: int, headers: dict[str, str | list[str]], body: bytes
) -> None:
    before = dict(headers)
    policy = codec(types=["text/html"])
    assert policy.encode(status, headers, body) is body
    assert headers == before


def test_min_length_is_inclusive_and_a_missing_type_is_text_html() -> None:
    headers: dict[str, str | list[str]] = {}
    out = codec(types=["text/html"], min_length=20).encode(200, headers, b"y" * 20)
    assert gzip.decompress(out) == b"y" * 20


# -- Response.end() and write() ------------------------------------------------------------


def response(method: str = "GET", version: str = "1.1") -> tuple[Response, FakeWriter]:
    writer = FakeWriter()
    resp = Response(3, writer, method=method, version=version)
    resp.codec = codec()
    return resp, writer


def test_end_compresses_once_with_the_compressed_length() -> None:
    resp, writer = response()
    assert resp.end(TEXT)
    parsed = Parsed(writer.data)
    assert parsed.complete
    assert parsed.header("content-encoding") == "gzip"
    assert parsed.header("vary") == "Accept-Encoding"
    assert int(parsed.header("content-length") or 0) == len(parsed.body) < len(TEXT)
    assert gzip.decompress(parsed.body) == TEXT


def test_end_without_codec_is_unchanged() -> None:
    writer = FakeWriter()
    Response(3, writer).end(TEXT)
    assert b"Content-Encoding" not in writer.data and writer.data.endswith(TEXT)


@pytest.mark.parametrize("status", [204, 304])
def test_no_compression_without_content(status: int) -> None:
    resp, writer = response()
    resp.status(status)
    resp.end(TEXT)
    assert b"Content-Encoding" not in writer.data


def test_head_announces_what_get_would_send_without_a_body() -> None:
    """RFC 9110 sections 8.6 and 9.3.2 (and Swoole's build_header): the same coding and
    the Content-Length of the compressed body, but no content."""
    resp, writer = response("HEAD")
    resp.end(TEXT)
    head, _, body = writer.data.partition(b"\r\n\r\n")
    assert body == b""
    assert b"Content-Encoding: gzip" in head
    assert f"Content-Length: {len(compress(TEXT, 'gzip', 1))}".encode() in head


def test_write_streams_one_compressed_chunked_body() -> None:
    resp, writer = response()
    resp.header("Content-Type", "text/plain")
    assert resp.write("part one, " * 10)
    assert resp.write(b"part two")
    assert resp.end("the end")
    parsed = Parsed(writer.data)
    assert parsed.complete
    assert parsed.header("transfer-encoding") == "chunked"
    assert parsed.header("content-encoding") == "gzip"
    assert parsed.header("content-length") is None
    assert gzip.decompress(parsed.body) == b"part one, " * 10 + b"part twothe end"


def test_write_to_http10_streams_compressed_until_close() -> None:
    resp, writer = response(version="1.0")
    resp.write(b"a" * 100)
    resp.end()
    head, _, body = writer.data.partition(b"\r\n\r\n")
    assert b"Content-Encoding: gzip" in head
    assert gzip.decompress(body) == b"a" * 100


def test_write_of_an_encoded_body_is_left_alone() -> None:
    resp, writer = response()
    resp.header("Content-Encoding", "br")
    resp.write(b"raw bytes the application encoded")
    resp.end()
    assert b"raw bytes the application encoded" in writer.data


def test_sendfile_is_never_compressed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "page.html"
    path.write_bytes(TEXT)
    resp, writer = response()
    assert resp.sendfile(str(path))
    assert b"Content-Encoding" not in writer.data
    assert writer.data.endswith(TEXT)
