"""``Swoole\\Http\\Request``: the request object handed to ``on("request")`` and handshakes.

Built from a :class:`~pyswoole.protocol.http.ParsedRequest` by :meth:`Request.from_parsed`,
with Swoole's public properties as plain attributes (``fd``, ``stream_id``, ``header``,
``server``, ``get``, ``post``, ``cookie``, ``files``, ``tmpfiles``; the empty ones are
``None`` like PHP's ``null``).

What is decoded here, and where the rules come from:

* ``get`` and urlencoded ``post``: the ``application/x-www-form-urlencoded`` serialisation
  (WHATWG URL, section 5; ``+`` is a space), with PHP's bracket keys as Swoole inherits
  them from PHP: ``a[]=1&a[]=2`` gives a list, ``a[b]=1`` a nested dict, a repeated plain
  key keeps the last value, and ``.``/space in a top-level name become ``_``.
* ``cookie``: Swoole 6.2's ``swoole_php_treat_data(PARSE_COOKIE)`` (swoole-src
  ``thirdparty/php/main/SAPI``, PHP's ``php_default_treat_data``): pairs split at ``;``,
  leading white space dropped from names, the name kept as is (PHP key rules apply),
  the value decoded with ``rawurldecode`` (``%XX`` only: a ``+`` stays a ``+``), a name
  without ``=`` gets ``""``, and a name sent twice keeps its first value.
* ``post`` and ``files`` for ``multipart/form-data`` (RFC 7578, on RFC 2046 section
  5.1.1): see :func:`_parse_multipart`.
* ``header``: Swoole 6.2's ``http_request_on_header_value`` (``ext-src/
  swoole_http_request.cc``): names lower-cased; a repeated field becomes a list of its
  values (``zend::array_add_or_merge``), except ``host``, ``user-agent``, ``accept``,
  ``content-type``, ``content-length``, ``authorization``, ``connection`` and
  ``accept-encoding``, where the last one wins.  With ``http_parse_cookie`` (the default)
  the ``Cookie`` field goes to ``cookie`` only and is not in ``header``.
* ``server``: the keys and types of Swoole's ``$request->server``; ``path_info`` is the
  URL-decoded path (``php_url_decode``), ``request_uri`` the raw one.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from typing import Any
from urllib.parse import unquote, unquote_plus

from pyswoole.exceptions import HttpProtocolError
from pyswoole.protocol.http import HttpRequestParser, ParsedRequest

__all__ = ["Request", "parse_cookie", "parse_query"]

# PHP's max_input_vars: variables past this count are ignored (bounds the parsing work).
MAX_INPUT_VARS = 1000
# PHP's max_input_nesting_level: deeper bracket keys are dropped.
_MAX_NESTING = 64
# C's isspace(): what PHP strips from the start of a cookie name.
_SPACE = " \t\n\v\f\r"
# Request fields where Swoole keeps the last value instead of making a list.
_SINGLE_VALUED = frozenset(
    (
        "host",
        "user-agent",
        "accept",
        "content-type",
        "content-length",
        "authorization",
        "connection",
        "accept-encoding",
    )
)
_FORM_METHODS = frozenset(("POST", "PUT", "DELETE", "PATCH"))
# PHP's UPLOAD_ERR_NO_FILE: a file field that was sent empty, without a file name.
_UPLOAD_ERR_NO_FILE = 4


# -- application/x-www-form-urlencoded with PHP keys -------------------------------------


def _split_key(key: str) -> tuple[str, list[str]] | None:
    """Split ``a[b][]`` into ``("a", ["b", ""])`` as PHP's ``php_register_variable_ex``."""
    key = key.lstrip(" ")
    bracket = key.find("[")
    if bracket <= 0:
        if bracket == 0 or not key:
            return None  # PHP ignores variables whose name is empty
        return key.replace(".", "_").replace(" ", "_"), []
    base = key[:bracket].replace(".", "_").replace(" ", "_")
    subkeys: list[str] = []
    pos = bracket
    while pos < len(key) and key[pos] == "[":
        close = key.find("]", pos + 1)
        if close < 0:
            if not subkeys:
                # An unmatched "[" is kept as "_" and the rest of the name as is.
                return base + "_" + key[bracket + 1 :], []
            break
        subkeys.append(key[pos + 1 : close])
        pos = close + 1
    return base, subkeys[:_MAX_NESTING]


def _next_index(container: dict[str, Any]) -> str:
    """PHP's next free integer key of an array used as a map."""
    top = -1
    for k in container:
        if k.isdigit() and int(k) > top:
            top = int(k)
    return str(top + 1)


def _assign(target: dict[str, Any], key: str, value: Any) -> None:
    """Store ``value`` under a PHP-style ``key`` (``a``, ``a[]``, ``a[b][]``...) in ``target``.

    Each level becomes a list while only appended to (``[]``) and a dict as soon as it
    gets a named key (a list turned into a dict keeps its indices as ``"0"``, ``"1"``...);
    ``[]`` on a dict uses PHP's next free integer key.
    """
    split = _split_key(key)
    if split is None:
        return
    base, subkeys = split
    container: dict[str, Any] | list[Any] = target
    slot = base  # "" means "append to container"
    for sub in subkeys:
        child: Any = None
        if slot and isinstance(container, dict):
            child = container.get(slot)
        if sub == "":
            if not isinstance(child, (list, dict)):
                child = []
        elif isinstance(child, list):
            child = {str(i): v for i, v in enumerate(child)}
        elif not isinstance(child, dict):
            child = {}
        _put(container, slot, child)
        container = child
        slot = sub
    _put(container, slot, value)


def _put(container: dict[str, Any] | list[Any], slot: str, value: Any) -> None:
    if isinstance(container, list):
        container.append(value)  # a list only ever gets "[]" (slot == "")
    elif slot:
        container[slot] = value
    else:
        container[_next_index(container)] = value


def parse_query(query: str) -> dict[str, Any]:
    """Parse a query string or urlencoded body the way PHP fills ``$_GET``.

    Like PHP, only the first :data:`MAX_INPUT_VARS` variables are kept.
    """
    result: dict[str, Any] = {}
    if not query:
        return result
    for pair in query.split("&", MAX_INPUT_VARS)[:MAX_INPUT_VARS]:
        if not pair:
            continue
        name, _, value = pair.partition("=")
        _assign(result, unquote_plus(name), unquote_plus(value))
    return result


def parse_cookie(header: str, into: dict[str, Any] | None = None) -> dict[str, Any]:
    """Parse a ``Cookie`` header as Swoole 6.2 (PHP's ``PARSE_COOKIE``) into ``into``.

    ``name=value`` pairs split at ``;``; leading white space of a name is dropped, an empty
    name is skipped, a missing ``=`` gives ``""``; values are ``rawurldecode``d (``+`` is
    kept); a name already present is not overwritten (the first one wins, RFC 6265 section
    5.4 sends the more specific cookie first); names follow PHP's key rules (``a[b]``).
    At most :data:`MAX_INPUT_VARS` pairs are read.
    """
    cookies: dict[str, Any] = {} if into is None else into
    count = 0
    for pair in header.split(";"):
        name, eq, value = pair.partition("=")
        name = name.lstrip(_SPACE)
        if not name:
            continue  # nothing, or "=value" without a name
        count += 1
        if count > MAX_INPUT_VARS:
            break
        if name not in cookies:
            _assign(cookies, name, unquote(value) if eq else "")
    return cookies


# -- multipart/form-data (RFC 7578) ------------------------------------------------------


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``type; a=1; b="x;y"`` into the lower-cased first token and its parameters.

    Quoted-strings (RFC 9110 section 5.6.4) may contain ``;`` and backslash escapes.
    """
    params: dict[str, str] = {}
    head, _, rest = value.partition(";")
    i, n = 0, len(rest)
    while i < n:
        eq = rest.find("=", i)
        semi = rest.find(";", i)
        if eq < 0 or (0 <= semi < eq):
            i = n if semi < 0 else semi + 1
            continue
        name = rest[i:eq].strip().lower()
        i = eq + 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            chars: list[str] = []
            i += 1
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            params[name] = "".join(chars)
            semi = rest.find(";", i)
            i = n if semi < 0 else semi + 1
        else:
            semi = rest.find(";", i)
            end = n if semi < 0 else semi
            params[name] = rest[i:end].strip()
            i = end + 1
    return head.strip().lower(), params


def _parse_multipart(
    body: bytes,
    boundary: str,
    post: dict[str, Any],
    files: dict[str, Any],
    tmpfiles: list[str],
    upload_tmp_dir: str,
) -> None:
    """Split a ``multipart/form-data`` body and fill ``post`` and ``files``.

    A small boundary splitter rather than :mod:`email`: the body is already in memory and
    bounded by the parser's limit, so parts are located with :meth:`bytes.find` and file
    contents are written from a :class:`memoryview` without further copies.  The grammar
    is RFC 2046 section 5.1.1: an optional preamble, ``--boundary`` at the start of a line,
    parts separated by ``CRLF--boundary``, the last delimiter followed by ``--``; each part
    has header fields, an empty line, then content.  RFC 7578 section 4.2: every part has
    ``Content-Disposition: form-data; name="..."``, a file part also ``filename``.
    Anything else raises :class:`HttpProtocolError` (400).
    """
    if not boundary or len(boundary) > 70:  # RFC 2046 section 5.1.1: 1..70 characters
        raise HttpProtocolError(400, "multipart body without a valid boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    if body.startswith(delimiter):
        pos = len(delimiter)
    else:
        found = body.find(b"\r\n" + delimiter)
        if found < 0:
            raise HttpProtocolError(400, "multipart body without its boundary")
        pos = found + 2 + len(delimiter)
    separator = b"\r\n" + delimiter
    view = memoryview(body)
    while True:
        if body.startswith(b"--", pos):
            return  # close-delimiter; the epilogue is ignored
        line_end = body.find(b"\r\n", pos)
        if line_end < 0 or body[pos:line_end].strip(b" \t"):
            raise HttpProtocolError(400, "malformed multipart delimiter line")
        start = line_end + 2
        end = body.find(separator, start)
        if end < 0:
            raise HttpProtocolError(400, "multipart body is truncated")
        _parse_part(view, start, end, post, files, tmpfiles, upload_tmp_dir)
        pos = end + len(separator)


def _parse_part(
    view: memoryview,
    start: int,
    end: int,
    post: dict[str, Any],
    files: dict[str, Any],
    tmpfiles: list[str],
    upload_tmp_dir: str,
) -> None:
    body = view.obj
    assert isinstance(body, bytes)
    if body.startswith(b"\r\n", start):
        head_end = start
        content_start = start + 2
    else:
        head_end = body.find(b"\r\n\r\n", start, end)
        if head_end < 0:
            raise HttpProtocolError(400, "multipart part without a header section")
        content_start = head_end + 4
    disposition = ""
    content_type = ""
    if head_end > start:
        for line in body[start:head_end].split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon:
                raise HttpProtocolError(400, "malformed multipart part header")
            lname = name.strip().lower()
            if lname == b"content-disposition":
                # RFC 7578 section 4.2: file names are commonly sent as raw UTF-8.
                disposition = value.decode("utf-8", "replace")
            elif lname == b"content-type":
                content_type = value.decode("latin-1").strip()
    kind, params = _header_params(disposition)
    field = params.get("name")
    if kind != "form-data" or field is None:
        raise HttpProtocolError(400, "multipart part without form-data name")
    filename = params.get("filename")
    if filename is None:
        _assign(post, field, body[content_start:end].decode("utf-8", "replace"))
        return
    # Swoole's keys, in its order (multipart_body_on_header_value).  A part without a file
    # name is UPLOAD_ERR_NO_FILE: nothing is stored, whatever it contained.
    info: dict[str, Any] = {"type": "", "tmp_name": "", "size": 0, "name": filename}
    if not filename:
        info["error"] = _UPLOAD_ERR_NO_FILE
    else:
        info["type"] = content_type
        info["error"] = 0
        import tempfile  # (imported on first use: start-up time)

        fd, tmp_name = tempfile.mkstemp(prefix="swoole.upfile.", dir=upload_tmp_dir)
        tmpfiles.append(tmp_name)
        try:
            chunk = view[content_start:end]
            while chunk:
                chunk = chunk[os.write(fd, chunk) :]
        finally:
            os.close(fd)
        info["tmp_name"] = tmp_name
        info["size"] = end - content_start
    _assign(files, field, info)


# -- the request object -----------------------------------------------------------------


#: the shared stand-ins of a request without uploads or options (most requests): never
#: written to (uploads and options get their own), so no list or dict is made per request
_NO_TMPFILES: list[str] = []
_NO_OPTIONS: dict[str, Any] = {}


def _server_keys(parsed: ParsedRequest, request_time: float) -> dict[str, object]:
    """The request's part of ``Request.server``, in Swoole's key order: query_string (from
    on_url) first, then the head's keys."""
    server: dict[str, object] = {}
    if parsed.query:
        server["query_string"] = parsed.query
    server["request_method"] = parsed.method
    path = server["request_uri"] = parsed.path
    server["path_info"] = unquote_plus(path) if "%" in path or "+" in path else path
    server["request_time"] = int(request_time)
    server["request_time_float"] = request_time
    server["server_protocol"] = "HTTP/1.1" if parsed.version == "1.1" else "HTTP/1.0"
    return server


class Request:
    """``Swoole\\Http\\Request``: one HTTP request with Swoole's properties.

    Methods with their Swoole names as aliases: :meth:`get_content` (``getContent``,
    ``rawContent``), :meth:`get_data` (``getData``), :meth:`get_method` (``getMethod``),
    :meth:`is_completed` (``isCompleted``), :meth:`create` and :meth:`parse`.

    Attributes:
        fd: the connection's fd.
        header: the request headers, names lower-cased; a header sent twice is a list.
        server: ``request_method``, ``request_uri``, ``path_info``, ``query_string``,
            ``server_protocol``, ``remote_addr``, ``remote_port``, ``server_port``,
            ``request_time``, ``request_time_float``, ``master_time`` (Swoole's keys).
        get: the query string's parameters, or None without a query string.
        post: the parameters of an urlencoded or multipart body, or None.
        cookie: the request's cookies, or None without a ``Cookie`` header.
        files: the uploads of a multipart body (``name``, ``type``, ``tmp_name``,
            ``error``, ``size``, as PHP's ``$_FILES``), or None.
        stream_id: Swoole's ``streamId``: HTTP/2 only, 0 for HTTP/1.x.
    """

    __slots__ = (
        "_body",
        "_completed",
        "_headers",
        "_lazy",
        "_method",
        "_options",
        "_parser",
        "_raw",
        "_server",
        "_target",
        "_tmpfiles",
        "_version",
        "cookie",
        "fd",
        "files",
        "get",
        "header",
        "post",
        "stream_id",
    )

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.stream_id = 0  # Swoole's streamId: HTTP/2 only, 0 for HTTP/1.x
        self.header: dict[str, str | list[str]] = {}
        self._server: dict[str, object] | None = None  # (made at the first read)
        # from_parsed: what ``server`` is made of, made at its first read (most handlers
        # never read it: ~7k instructions a request)
        self._lazy: tuple[ParsedRequest, float, int, int, str, int | None, float] | None = None
        self.get: dict[str, Any] | None = None
        self.post: dict[str, Any] | None = None
        self.cookie: dict[str, Any] | None = None
        self.files: dict[str, Any] | None = None
        self._method = "GET"
        self._target = "/"
        self._version = "1.1"
        self._headers: list[tuple[str, str]] = []
        self._body = b""
        self._tmpfiles: list[str] = _NO_TMPFILES  # (a list of its own for uploads)
        self._completed = True
        self._raw: bytes | None = None
        self._parser: Any = None
        self._options: dict[str, Any] = _NO_OPTIONS

    @property
    def streamId(self) -> int:
        return self.stream_id

    @property
    def tmpfiles(self) -> list[str] | None:
        """The temporary files of the uploads (Swoole's ``$request->tmpfiles``), or None."""
        return list(self._tmpfiles) if self._tmpfiles else None

    @classmethod
    def from_parsed(
        cls,
        parsed: ParsedRequest,
        fd: int,
        remote_addr: str,
        remote_port: int,
        server_port: int,
        request_time: float,
        upload_tmp_dir: str | None = None,
        parse_cookie: bool = True,
        master_time: int | None = None,
        received: float = 0.0,
    ) -> Request:
        """Build the request; raises :class:`HttpProtocolError` (400) on a bad form body.

        Uploaded files are written under ``upload_tmp_dir`` (default: the system temporary
        directory); call :meth:`cleanup` once the handler is done to delete them.
        ``parse_cookie`` is the ``http_parse_cookie`` setting. ``master_time`` (Swoole's:
        when the connection last received data) may be given as ``received``, a
        ``time.monotonic()`` value, turned into wall-clock seconds at the first read.
        """
        self = cls(fd)
        self._fill(parsed, upload_tmp_dir, parse_cookie, request_time, True)  # (lazy)
        self._lazy = (
            parsed,
            request_time,
            server_port,
            remote_port,
            remote_addr,
            master_time,
            received,
        )
        return self

    @property
    def server(self) -> dict[str, object]:
        """``request_method``, ``request_uri``, ``path_info``, ``query_string``,
        ``server_protocol``, ``request_time``, ``request_time_float``, ``server_port``,
        ``remote_port``, ``remote_addr``, ``master_time`` (Swoole's keys, in its order)."""
        lazy = self._lazy
        if lazy is not None:
            self._lazy = None
            parsed, request_time, server_port, remote_port, remote_addr, master_time, received = (
                lazy
            )
            if master_time is None:
                master_time = int(request_time)
                if received:  # a monotonic time: the same instant on the wall clock
                    master_time = int(time.time() - max(0.0, time.monotonic() - received))
            server = self._server = _server_keys(parsed, request_time)
            server["server_port"] = server_port
            server["remote_port"] = remote_port
            server["remote_addr"] = remote_addr
            server["master_time"] = master_time
            return server
        current = self._server
        if current is None:
            current = self._server = {}
        return current

    @server.setter
    def server(self, value: dict[str, object]) -> None:
        self._lazy = None
        self._server = value

    def _fill(
        self,
        parsed: ParsedRequest,
        upload_tmp_dir: str | None,
        parse_cookie: bool,
        request_time: float,
        lazy: bool = False,
    ) -> None:
        self._method = parsed.method
        self._target = parsed.target
        self._version = parsed.version
        self._headers = parsed.headers
        self._body = parsed.body
        header = self.header
        cookie: dict[str, Any] | None = None
        for name, value in parsed.headers:
            if name == "cookie" and parse_cookie:
                cookie = parse_cookie_header(value, {} if cookie is None else cookie)
                continue
            previous = header.get(name)
            if previous is None or name in _SINGLE_VALUED:
                header[name] = value
            elif isinstance(previous, list):
                previous.append(value)
            else:
                header[name] = [previous, value]
        # As Swoole: a Cookie field (or query, or urlencoded body) makes the property an
        # array even when nothing could be read from it; without one it stays null.
        self.cookie = cookie
        if parsed.query:
            self.get = parse_query(parsed.query)
        if not lazy:
            self._server = _server_keys(parsed, request_time)
        content_type = header.get("content-type")
        # Swoole parses form bodies of these methods only (http_request_on_header_value).
        if isinstance(content_type, str) and parsed.body and parsed.method in _FORM_METHODS:
            import tempfile

            self._parse_body(content_type, upload_tmp_dir or tempfile.gettempdir())

    def _parse_body(self, content_type: str, upload_tmp_dir: str) -> None:
        media_type, params = _header_params(content_type)
        if media_type == "application/x-www-form-urlencoded":
            self.post = parse_query(self._body.decode("utf-8", "replace"))
        elif media_type == "multipart/form-data":
            post: dict[str, Any] = {}
            files: dict[str, Any] = {}
            if self._tmpfiles is _NO_TMPFILES:
                self._tmpfiles = []
            try:
                _parse_multipart(
                    self._body,
                    params.get("boundary", ""),
                    post,
                    files,
                    self._tmpfiles,
                    upload_tmp_dir,
                )
            except BaseException:
                self.cleanup()
                raise
            self.post = post or None
            self.files = files or None

    # -- Swoole's methods ----------------------------------------------------------------

    def get_content(self) -> bytes:
        """The raw request body (``getContent()``, alias ``rawContent()``)."""
        return self._body

    raw_content = get_content
    getContent = get_content
    rawContent = get_content

    def get_body_stream(self) -> io.BytesIO:
        """The body as a readable binary stream (``getBodyStream()``, Swoole 6.2)."""
        return io.BytesIO(self._body)

    getBodyStream = get_body_stream

    def get_method(self) -> str:
        """The request method, e.g. ``"GET"`` (``getMethod()``)."""
        return self._method

    getMethod = get_method

    def get_data(self) -> bytes:
        """The whole request: request line, header fields, body (``getData()``).

        A request given to :meth:`parse` returns the bytes it was given; one received by
        the server is re-serialised from what was parsed (names lower-cased, a chunked
        body de-chunked), where Swoole returns the received bytes.
        """
        if self._raw is not None:
            return self._raw
        lines = [f"{self._method} {self._target} HTTP/{self._version}"]
        lines.extend(f"{name}: {value}" for name, value in self._headers)
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1") + self._body

    getData = get_data

    def is_completed(self) -> bool:
        """True once the whole request was received (``isCompleted()``)."""
        return self._completed

    isCompleted = is_completed

    @classmethod
    def create(cls, options: dict[str, Any] | None = None) -> Request:
        """An empty request to fill with :meth:`parse` (``Request::create()``).

        Options as Swoole's: ``parse_cookie`` (default True), ``parse_body`` (True),
        ``upload_tmp_dir``; the compression options have no effect here.
        """
        self = cls(-1)
        self._completed = False
        self._raw = b""
        self._options = dict(options or {})
        self._parser = HttpRequestParser()
        return self

    def parse(self, data: str | bytes) -> int | bool:
        """Feed raw request bytes (``parse()``): the number of bytes taken, False on error.

        Only for a request from :meth:`create`, until it :meth:`is_completed`.
        """
        parser = self._parser
        if parser is None or self._completed:
            return False
        if isinstance(data, str):
            data = data.encode("latin-1")
        try:
            done = parser.feed(data)
        except HttpProtocolError:
            self._parser = None
            return False
        assert self._raw is not None
        self._raw += data
        if done:
            options = self._options
            self._parser = None
            self._completed = True
            self._fill(
                done[0],
                options.get("upload_tmp_dir"),
                bool(options.get("parse_cookie", True)),
                time.time(),
            )
            if not options.get("parse_body", True):
                self.post = None
        return len(data)

    def cleanup(self) -> None:
        """Delete the uploaded files' temporary copies; safe to call more than once."""
        tmpfiles = self._tmpfiles
        while tmpfiles:
            # FileNotFoundError: the handler moved the file away, or it is already gone.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmpfiles.pop())

    def __repr__(self) -> str:
        return f"<Request fd={self.fd} {self._method} {self._target}>"


parse_cookie_header = parse_cookie
