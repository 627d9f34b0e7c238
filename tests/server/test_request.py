"""Tests of pyswoole.server.request: Swoole's properties built from a parsed request."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pyswoole.exceptions import HttpProtocolError
from pyswoole.protocol.http import HttpRequestParser
from pyswoole.server.request import Request, parse_cookie, parse_query

BOUNDARY = "----pyswooleBoundary7MA4YWxk"


def build(raw: bytes, tmp_dir: Path | None = None, parse_cookie: bool = True) -> Request:
    [parsed] = HttpRequestParser().feed(raw)
    return Request.from_parsed(
        parsed,
        fd=3,
        remote_addr="127.0.0.1",
        remote_port=50000,
        server_port=9501,
        request_time=1700000000.25,
        upload_tmp_dir=str(tmp_dir) if tmp_dir else None,
        parse_cookie=parse_cookie,
    )


def post(content_type: str, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Type: "
        + content_type.encode()
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + b"\r\n"
        + body
    )


def multipart(*parts: bytes, boundary: str = BOUNDARY, preamble: bytes = b"") -> bytes:
    delimiter = b"--" + boundary.encode()
    out = preamble
    for part in parts:
        out += delimiter + b"\r\n" + part + b"\r\n"
    return out + delimiter + b"--\r\n"


def test_get_request_properties() -> None:
    req = build(
        b"GET /path/to?a=1&b[]=2&b[]=3 HTTP/1.1\r\nHost: example.com\r\n"
        b"Accept: text/html\r\nAccept: application/json\r\n"
        b"Cookie: sid=abc%20def; theme=dark\r\nCookie: lang=en\r\n\r\n"
    )
    assert req.fd == 3
    assert req.stream_id == req.streamId == 0
    # Swoole: "accept" keeps its last value; the Cookie field only fills req.cookie.
    assert req.header == {"host": "example.com", "accept": "application/json"}
    assert list(req.server) == [
        "query_string",
        "request_method",
        "request_uri",
        "path_info",
        "request_time",
        "request_time_float",
        "server_protocol",
        "server_port",
        "remote_port",
        "remote_addr",
        "master_time",
    ]
    assert req.server == {
        "request_method": "GET",
        "request_uri": "/path/to",
        "path_info": "/path/to",
        "query_string": "a=1&b[]=2&b[]=3",
        "request_time": 1700000000,
        "request_time_float": 1700000000.25,
        "server_protocol": "HTTP/1.1",
        "server_port": 9501,
        "remote_port": 50000,
        "remote_addr": "127.0.0.1",
        "master_time": 1700000000,
    }
    assert req.get == {"a": "1", "b": ["2", "3"]}
    assert req.cookie == {"sid": "abc def", "theme": "dark", "lang": "en"}
    assert req.post is None
    assert req.files is None
    assert req.get_method() == req.getMethod() == "GET"
    assert req.get_content() == req.getContent() == req.rawContent() == b""
    assert req.is_completed() and req.isCompleted()
    assert req.tmpfiles is None
    assert "GET /path/to" in repr(req)


def test_master_time_from_a_monotonic_receive_time() -> None:
    """``received`` (a time.monotonic() value: when the connection last received data)
    becomes Swoole's master_time on the wall clock at the first read of ``server``."""
    parsed = HttpRequestParser().feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")[0]
    now = time.time()
    common = {"fd": 1, "remote_addr": "127.0.0.1", "remote_port": 1, "server_port": 2}
    req = Request.from_parsed(parsed, request_time=now, received=time.monotonic() - 30.0, **common)
    assert abs(req.server["master_time"] - (now - 30.0)) <= 1.5
    req = Request.from_parsed(parsed, request_time=now, **common)  # none known: the request's
    assert req.server["master_time"] == int(now)


def test_repeated_header_fields_as_swoole_holds_them() -> None:
    """swoole_http_request.cc http_request_on_header_value: array_add_or_merge for most
    names (a list once repeated), last-wins for eight common ones."""
    req = build(
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-Dup: one\r\nx-dup: two\r\n"
        b"X-DUP: three\r\nX-Once: 1\r\nUser-Agent: u1\r\nUser-Agent: u2\r\n"
        b"Authorization: t1\r\nAuthorization: t2\r\nAccept-Encoding: gzip\r\n"
        b"Accept-Encoding: br\r\nConnection: keep-alive\r\nConnection: close\r\n"
        b"Via: p1\r\nVia: p2\r\n\r\n"
    )
    assert req.header == {
        "host": "b",
        "x-dup": ["one", "two", "three"],
        "x-once": "1",
        "user-agent": "u2",
        "authorization": "t2",
        "accept-encoding": "br",
        "connection": "close",
        "via": ["p1", "p2"],
    }


def test_cookie_field_kept_in_header_without_http_parse_cookie() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n"
    req = build(raw, parse_cookie=False)
    assert req.cookie is None
    assert req.header == {"host": "h", "cookie": ["a=1", "b=2"]}
    req = build(raw)
    assert req.cookie == {"a": "1", "b": "2"}
    assert "cookie" not in req.header


def test_path_info_is_url_decoded() -> None:
    req = build(b"GET /a%20b/c+d%2Fe?q=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert req.server["request_uri"] == "/a%20b/c+d%2Fe"
    assert req.server["path_info"] == "/a b/c d/e"  # php_url_decode: "+" is a space too


def test_query_string_absent_for_bare_question_mark() -> None:
    req = build(b"GET /x? HTTP/1.1\r\nHost: h\r\n\r\n")
    assert "query_string" not in req.server and req.get is None


def test_present_but_empty_sources_give_empty_dicts() -> None:
    """Swoole initialises get/cookie/post when the source is there, even if it holds no
    variable (swoole_http_init_and_read_property before treat_data)."""
    req = build(b"GET /x?& HTTP/1.1\r\nHost: h\r\nCookie: ;\r\n\r\n")
    assert (req.get, req.cookie) == ({}, {})
    assert req.server["query_string"] == "&"
    req = build(post("application/x-www-form-urlencoded", b"&&"))
    assert req.post == {}


def test_create_and_parse() -> None:
    """Request::create() + parse(): a request filled from raw bytes in pieces."""
    raw = (
        b"POST /p?x=1 HTTP/1.1\r\nHost: h\r\nCookie: c=v%21\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\na=1&b=2"
    )
    req = Request.create()
    assert req.is_completed() is False
    assert req.parse(raw[:20]) == 20
    assert req.is_completed() is False
    assert req.parse(raw[20:]) == len(raw) - 20
    assert req.isCompleted()
    assert req.getMethod() == "POST"
    assert req.get == {"x": "1"} and req.post == {"a": "1", "b": "2"}
    assert req.cookie == {"c": "v!"}
    assert req.getContent() == b"a=1&b=2"
    assert req.getData() == raw
    assert req.parse(b"more") is False  # already complete

    req = Request.create({"parse_cookie": False, "parse_body": False})
    assert req.parse(raw) == len(raw)
    assert req.cookie is None and req.header["cookie"] == "c=v%21"
    assert req.post is None

    bad = Request.create()
    assert bad.parse(b"NOT HTTP\r\n\r\n") is False
    assert bad.is_completed() is False
    assert build(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").parse(b"x") is False


def test_raw_utf8_in_body() -> None:
    req = build(post("application/x-www-form-urlencoded", "b=ü&c=%C3%BC".encode()))
    assert req.post == {"b": "ü", "c": "ü"}


def test_empty_properties_are_none() -> None:
    req = build(b"GET / HTTP/1.0\r\n\r\n")
    assert req.get is None and req.post is None and req.cookie is None and req.files is None
    assert "query_string" not in req.server
    assert req.server["server_protocol"] == "HTTP/1.0"
    assert req.header == {}


def test_parse_query_php_keys() -> None:
    assert parse_query("a[]=1&a[]=2") == {"a": ["1", "2"]}
    assert parse_query("a[b]=1&a[c][]=x&a[c][]=y") == {"a": {"b": "1", "c": ["x", "y"]}}
    assert parse_query("k=1&k=2") == {"k": "2"}
    assert parse_query("x=a+b%20c&y&z=") == {"x": "a b c", "y": "", "z": ""}
    assert parse_query("a.b=1&c d=2") == {"a_b": "1", "c_d": "2"}
    assert parse_query("=skip&[x]=skip&&ok=1") == {"ok": "1"}
    assert parse_query("m[]=1&m[k]=2&m[]=3") == {"m": {"0": "1", "k": "2", "1": "3"}}
    assert parse_query("n[][]=1&n[][]=2") == {"n": [["1"], ["2"]]}
    assert parse_query("u[=1") == {"u_": "1"}
    assert parse_query("p[a]b=1") == {"p": {"a": "1"}}
    assert parse_query("s=1&s[]=2") == {"s": ["2"]}
    assert parse_query("%61%5B%5D=enc") == {"a": ["enc"]}
    assert parse_query("") == {}


def test_parse_query_input_var_cap() -> None:
    parsed = parse_query("&".join(f"v{i}=1" for i in range(1500)))
    assert len(parsed) == 1000


def test_parse_cookie() -> None:
    """Swoole 6.2: swoole_php_treat_data(PARSE_COOKIE), i.e. PHP's cookie rules."""
    assert parse_cookie("a=1; b=x%3Dy; flag; a=2; =v; c = 3 ") == {
        "a": "1",
        "b": "x=y",
        "flag": "",
        "c_": " 3 ",  # the name keeps its trailing space (PHP makes it "_"), the value too
    }
    # rawurldecode: "+" stays; the name is not decoded; "." becomes "_" as in PHP.
    assert parse_cookie("p=a+b%2Bc; n%41=1; x.y=2") == {"p": "a+b+c", "n%41": "1", "x_y": "2"}
    # swoole-src tests/swoole_http_server/cookies_parse.phpt
    assert parse_cookie(
        "PHPSESSID=5359a08f4ddbf825f0e99a3393e5dc9e; HttpOnly; "
        "q=URVVma5UgEDm9RmQvBfXs7rCEG9hs9td9CXXmBRQ"
    ) == {
        "PHPSESSID": "5359a08f4ddbf825f0e99a3393e5dc9e",
        "HttpOnly": "",
        "q": "URVVma5UgEDm9RmQvBfXs7rCEG9hs9td9CXXmBRQ",
    }
    assert parse_cookie('t="quoted"; b64=YQ==; ;;  \tlead=1') == {
        "t": '"quoted"',
        "b64": "YQ==",
        "lead": "1",
    }
    assert parse_cookie("arr[]=1; arr[]=2; m[k]=v") == {"arr": ["1", "2"], "m": {"k": "v"}}
    assert len(parse_cookie("; ".join(f"k{i}=1" for i in range(1500)))) == 1000


def test_urlencoded_post() -> None:
    body = b"name=J%C3%BCrgen&tags[]=a&tags[]=b&profile[age]=42"
    req = build(post("application/x-www-form-urlencoded; charset=UTF-8", body))
    assert req.post == {"name": "Jürgen", "tags": ["a", "b"], "profile": {"age": "42"}}
    assert req.get_content() == body
    assert req.raw_content() == body


def test_form_body_parsed_for_swooles_methods_only() -> None:
    body = b"a=1"
    for method, expected in (("PUT", {"a": "1"}), ("PATCH", {"a": "1"}), ("GET", None)):
        raw = post("application/x-www-form-urlencoded", body).replace(b"POST", method.encode())
        req = build(raw)
        assert (req.post, req.get_content()) == (expected, body), method


def test_post_ignored_for_other_types() -> None:
    req = build(post("application/json", b'{"a": 1}'))
    assert req.post is None
    assert req.get_content() == b'{"a": 1}'


def test_multipart_fields_and_files(tmp_path: Path) -> None:
    body = multipart(
        b'Content-Disposition: form-data; name="title"\r\n\r\nHello, world',
        b'Content-Disposition: form-data; name="tags[]"\r\n\r\none',
        b'Content-Disposition: form-data; name="tags[]"\r\n\r\ntwo',
        b'Content-Disposition: form-data; name="avatar"; filename="me.png"\r\n'
        b"Content-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n\x00binary--",
        b'Content-Disposition: form-data; name="doc"; filename="r\xc3\xa9sum\xc3\xa9.txt"\r\n\r\n',
        b'Content-Disposition: form-data; name="empty"; filename=""\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n",
        preamble=b"This is the preamble.\r\n",
    )
    req = build(post(f'multipart/form-data; boundary="{BOUNDARY}"', body), tmp_path)
    assert req.post == {"title": "Hello, world", "tags": ["one", "two"]}
    assert req.files is not None
    avatar = req.files["avatar"]
    assert avatar["name"] == "me.png"
    assert avatar["type"] == "image/png"
    assert avatar["error"] == 0
    assert avatar["size"] == len(b"\x89PNG\r\n\x1a\n\x00binary--")
    assert os.path.dirname(avatar["tmp_name"]) == str(tmp_path)
    assert Path(avatar["tmp_name"]).read_bytes() == b"\x89PNG\r\n\x1a\n\x00binary--"
    doc = req.files["doc"]
    assert (doc["name"], doc["type"], doc["size"], doc["error"]) == ("résumé.txt", "", 0, 0)
    assert Path(doc["tmp_name"]).read_bytes() == b""
    # Swoole: UPLOAD_ERR_NO_FILE, and its Content-Type is not recorded; Swoole's key order.
    assert list(req.files["empty"].items()) == [
        ("type", ""),
        ("tmp_name", ""),
        ("size", 0),
        ("name", ""),
        ("error", 4),
    ]
    assert len(os.listdir(tmp_path)) == 2
    req.cleanup()
    assert os.listdir(tmp_path) == []
    req.cleanup()  # idempotent


def test_multipart_file_moved_by_handler(tmp_path: Path) -> None:
    body = multipart(b'Content-Disposition: form-data; name="f"; filename="a"\r\n\r\ndata')
    req = build(post(f"multipart/form-data; boundary={BOUNDARY}", body), tmp_path)
    assert req.files is not None
    moved = tmp_path / "kept"
    os.rename(req.files["f"]["tmp_name"], moved)
    req.cleanup()
    assert moved.read_bytes() == b"data"


def test_multipart_quoted_params_and_no_part_headers(tmp_path: Path) -> None:
    body = multipart(
        b'Content-Disposition: form-data; name="a;b"; filename="x\\"y.txt"\r\n\r\nq',
        b"Content-Disposition: form-data; name=plain\r\n\r\nvalue",
    )
    req = build(post(f"multipart/form-data; charset=utf-8; boundary={BOUNDARY}", body), tmp_path)
    assert req.post == {"plain": "value"}
    assert req.files is not None
    assert req.files["a;b"]["name"] == 'x"y.txt'
    req.cleanup()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n\r\n--x--"),  # no boundary parameter
        (f"multipart/form-data; boundary={BOUNDARY}", b"no delimiter at all"),
        (  # truncated: no closing delimiter
            f"multipart/form-data; boundary={BOUNDARY}",
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue".encode(),
        ),
        (  # part without a name
            f"multipart/form-data; boundary={BOUNDARY}",
            multipart(b"Content-Disposition: form-data\r\n\r\nx"),
        ),
        (  # not form-data
            f"multipart/form-data; boundary={BOUNDARY}",
            multipart(b'Content-Disposition: attachment; name="a"\r\n\r\nx'),
        ),
        (  # header line without a colon
            f"multipart/form-data; boundary={BOUNDARY}",
            multipart(b'Content-Disposition: form-data; name="a"\r\nbogus\r\n\r\nx'),
        ),
        (  # no blank line after the part's headers
            f"multipart/form-data; boundary={BOUNDARY}",
            multipart(b'Content-Disposition: form-data; name="a"'),
        ),
        (  # junk after the delimiter on its line
            f"multipart/form-data; boundary={BOUNDARY}",
            f"--{BOUNDARY}junk\r\n\r\nx\r\n--{BOUNDARY}--".encode(),
        ),
    ],
)
def test_malformed_multipart_400(content_type: str, body: bytes, tmp_path: Path) -> None:
    with pytest.raises(HttpProtocolError) as info:
        build(post(content_type, body), tmp_path)
    assert info.value.status == 400
    assert os.listdir(tmp_path) == []


def test_malformed_multipart_after_file_cleans_up(tmp_path: Path) -> None:
    body = (
        f"--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="f"; filename="a"\r\n\r\ndata\r\n'
        + f"--{BOUNDARY}\r\n".encode()
        + b"Content-Disposition: form-data\r\n\r\nx\r\n"
        + f"--{BOUNDARY}--".encode()
    )
    with pytest.raises(HttpProtocolError):
        build(post(f"multipart/form-data; boundary={BOUNDARY}", body), tmp_path)
    assert os.listdir(tmp_path) == []


def test_get_data_reserialises() -> None:
    raw = post("application/x-www-form-urlencoded", b"a=1", b"X-Extra:  v \r\n")
    req = build(raw)
    assert req.get_data() == (
        b"POST /form HTTP/1.1\r\nhost: h\r\ncontent-type: application/x-www-form-urlencoded\r\n"
        b"content-length: 3\r\nx-extra: v\r\n\r\na=1"
    )
    assert HttpRequestParser().feed(req.get_data())[0].body == b"a=1"


def test_get_body_stream_reads_the_body() -> None:
    """Swoole 6.2's ``getBodyStream()``: the raw body as a stream."""
    from pyswoole import Request

    request = Request.create()
    request.parse(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
    assert request.get_body_stream().read() == b"hello"
    assert request.getBodyStream().read(2) == b"he"
