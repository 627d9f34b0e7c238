"""The static file handler: Swoole 6.2's ``enable_static_handler`` and its settings.

As Swoole (``Server::select_static_handler``, ``StaticHandler`` in swoole-src
``src/server/static_handler.cc``, called from ``Port_onRead_http``), a request that
carries no body is looked up under ``document_root`` *before* ``on("request")``: in the
process that owns the connection (a SWOOLE_PROCESS master, like Swoole's reactor
threads; the worker in SWOOLE_BASE).  What happens to a request:

* ``static_handler_locations`` set and no prefix matches (case-insensitively, on the raw
  target, as Swoole): not static, ``on("request")`` gets it.
* Nothing at that path: ``on("request")`` gets it -- unless a location matched, then
  ``404``.  Without locations, only files whose type ``mimetypes`` knows are served (Swoole:
  ``mime_type::exists``); with a matching location any regular file is, unknown types as
  ``application/octet-stream``.
* A directory: the first of ``http_index_files`` that is a regular file in it; else, with
  ``http_autoindex``, an HTML listing (Swoole's page: ``Index of /dir/``, a list of links;
  ``..`` except at the root); else ``on("request")``.  No redirect to add a slash.
* Anything else that is not a regular file (device, FIFO): ``on("request")``.
* Every bodiless method is served, as Swoole; a request with a body goes to ``on("request")``.
* ``url_rewrite_rules`` (:mod:`pyswoole.server.static_rewrite`) rewrite the path looked up
  first; every check below applies to the rewritten path, and ``on("request")`` still gets
  the request as sent.

Where pyswoole differs, and why:

* Path traversal is refused with ``403`` before the file system is touched: a ``..``
  segment (also ``%2e%2e`` and any other encoding of it), an encoded slash (``%2f``, which
  would change the segments the client meant), a backslash (raw or ``%5c``), a NUL byte
  (raw or ``%00``); and after resolution, a path whose real location (symlinks followed)
  is outside the real ``document_root`` -- for a file, the location of the descriptor
  opened (``/proc/self/fd``), which is then the one read: no window for a swapped link.
  Swoole follows symlinks out of the root and hands ``..`` paths that leave it to
  ``on("request")``.  A path too long for the file system (``PATH_MAX``, a segment over
  ``NAME_MAX``) cannot exist: treated as absent.
* The target is percent-decoded as RFC 3986 says (``+`` stays ``+``); Swoole's decoder
  turns ``+`` into a space.
* ``ETag`` (``"<mtime hex>-<size hex>"``, strong, as nginx) with ``If-None-Match``
  (weak comparison, RFC 9110 section 13.1.2; it takes precedence over
  ``If-Modified-Since``, section 13.2.2).  Swoole sends no ETag.  ``If-Modified-Since``
  (any of the three HTTP-date forms) gives ``304`` when the file is not newer, as Swoole;
  both only for GET and HEAD (sections 13.1.2, 13.1.3).
* ``Range`` (GET only, RFC 9110 section 14.2): one satisfiable range gives ``206`` with
  ``Content-Range``; a range set of which no range is satisfiable gives ``416`` with
  ``Content-Range: bytes */size`` (section 15.5.17); a malformed header is ignored (a
  ``200``), where Swoole answers 416 to bad syntax and 200 to an unsatisfiable range.
  Several ranges get ``206`` with ``multipart/byteranges`` as in Swoole, up to 64 ranges
  and 1 MiB in all (the parts are built in memory); more get the whole file with ``200``
  (section 14.2 lets a server ignore ``Range``).  ``If-Range`` compares an
  entity-tag strongly or a date exactly with ``Last-Modified`` (section 13.1.5); Swoole
  reads the date form only.
* ``HEAD`` gets the ``Content-Length`` the GET would have (RFC 9110 section 9.3.2);
  Swoole sends ``Content-Length: 0``.
* The directory listing escapes names and percent-encodes links (Swoole writes them raw).
* The body leaves through ``Response.sendfile``: streamed by the connection in a small
  window under flow control (a 1 GiB file holds ~256 KiB of memory); a body of at most
  64 KiB is read at once and leaves in the head's write.  Static responses are never
  compressed (nor are they in Swoole).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from datetime import timezone
from urllib.parse import quote, unquote_to_bytes

from ..protocol.http import ParsedRequest
from .response import Response
from .static_rewrite import RewriteRules

__all__ = ["FORBIDDEN", "NOT_FOUND", "Listing", "StaticFile", "StaticHandler", "parse_range"]

FORBIDDEN = 403
NOT_FOUND = 404
#: a range header with one satisfiable range -> (first, last); these two are the others
UNSATISFIABLE = -1
_PATH_MAX = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096
_NAME_MAX = 255
_CONDITIONAL = ("GET", "HEAD")
#: bodies up to this size are read at once and sent with the head (bigger: sendfile)
_INLINE_LIMIT = 64 * 1024
#: a multipart/byteranges answer is built in memory: at most this many ranges and bytes
_MULTIPART_RANGES = 64
_MULTIPART_LIMIT = 1 << 20


_OPEN_FLAGS = os.O_RDONLY | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
_PROC_FD = "/proc/self/fd/"
_HAVE_PROC = os.path.isdir(_PROC_FD)


class StaticFile:
    """A regular file to serve, open (``fd``; :meth:`close` it) and checked to be in the
    root: ``st`` is the open file's."""

    __slots__ = ("fd", "mime", "path", "st")

    def __init__(self, path: str, fd: int, st: os.stat_result, mime: str) -> None:
        self.path = path
        self.fd = fd
        self.st = st
        self.mime = mime

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()


class Listing:
    """A directory to list (``http_autoindex``): its path and its URL path."""

    __slots__ = ("path", "st", "url")

    def __init__(self, path: str, st: os.stat_result, url: str) -> None:
        self.path = path
        self.st = st
        self.url = url


def parse_range(value: str, size: int) -> list[tuple[int, int]] | int | None:
    """``Range`` (RFC 9110 section 14.1.2) against a representation of ``size`` bytes.

    The satisfiable ranges as ``(first, last)`` (inclusive), in the order asked (the
    unsatisfiable ones of a set are dropped); :data:`UNSATISFIABLE` when none is; None
    when the header is to be ignored: another unit, or malformed.
    """
    unit, _, ranges = value.partition("=")
    if unit.strip().lower() != "bytes" or not ranges.strip():
        return None
    found: list[tuple[int, int]] = []
    for spec in ranges.split(","):
        spec = spec.strip()
        if not spec:
            continue
        first_text, dash, last_text = spec.partition("-")
        first_text, last_text = first_text.strip(), last_text.strip()
        if not dash or not (first_text.isdigit() or first_text == ""):
            return None
        if last_text and not last_text.isdigit():
            return None
        if not first_text.isascii() or not last_text.isascii():
            return None
        if first_text == "":
            if not last_text:
                return None
            suffix = int(last_text)  # the last N bytes
            if suffix > 0 and size > 0:
                found.append((max(size - suffix, 0), size - 1))
            continue
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
        if last_text and last < first:
            return None  # invalid (section 14.1.1): the header is ignored
        if first < size:
            found.append((first, min(last, size - 1)))
    return found if found else UNSATISFIABLE


_DATES: dict[int, str] = {}


def _http_date(when: int) -> str:
    """``Last-Modified`` of a file (IMF-fixdate), remembered per timestamp."""
    text = _DATES.get(when)
    if text is None:
        from email.utils import formatdate  # (imported on first use: start-up time)

        if len(_DATES) >= 4096:
            _DATES.clear()
        text = _DATES[when] = formatdate(when, usegmt=True)
    return text


def _http_time(value: str) -> float | None:
    """An HTTP-date (any of RFC 9110 section 5.6.7's three forms) as a timestamp."""
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # asctime has no zone: it is GMT
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _etag_listed(header: str, etag: str, weak: bool) -> bool:
    """Whether ``etag`` is in an ``If-None-Match``/``If-Range`` list (``*`` matches)."""
    bare = etag[2:] if etag.startswith("W/") else etag
    for item in header.split(","):
        item = item.strip()
        if item == "*":
            return True
        if item.startswith("W/"):
            if not weak:
                continue
            item = item[2:]
        if item == bare:
            return True
    return False


class StaticHandler:
    """Serves files under ``document_root`` (see the module docstring)."""

    __slots__ = ("autoindex", "index_files", "locations", "root", "root_real", "rules")

    def __init__(
        self,
        document_root: str,
        locations: list[str] | tuple[str, ...] = (),
        index_files: list[str] | tuple[str, ...] = (),
        autoindex: bool = False,
        rewrite_rules: dict[str, str] | None = None,
    ) -> None:
        self.root_real = os.path.realpath(document_root)
        self.root = self.root_real.rstrip("/")  # "/" itself becomes ""
        self.locations = tuple(loc.lower() for loc in locations)
        self.index_files = tuple(index_files)
        self.autoindex = autoindex
        #: ``url_rewrite_rules`` (server/static_rewrite.py); None: no rewriting
        self.rules = RewriteRules(rewrite_rules) if rewrite_rules else None

    # -- path resolution (no I/O until the path is known to stay in the root) -----------

    def resolve(self, target: str) -> StaticFile | Listing | int | None:
        """What the request target's path means here: a file, a listing, an error status
        (:data:`FORBIDDEN`, :data:`NOT_FOUND`) or None (not static: ``on("request")``)."""
        path = target.split("?", 1)[0].split("#", 1)[0]
        if self.rules is not None:  # url_rewrite_rules: before every check below
            path = self.rules.apply(path)
        if not path.startswith("/"):
            return None
        located = False
        if self.locations:
            lowered = path.lower()
            if not lowered.startswith(self.locations):
                return None
            located = True
        missing = NOT_FOUND if located else None
        if "%" in path:
            if "%2f" in path.lower():
                return FORBIDDEN
            name = os.fsdecode(unquote_to_bytes(path))
        else:
            name = path
        if "\x00" in name or "\\" in name or ".." in name.split("/"):
            return FORBIDDEN
        fs_path = self.root + name
        if len(fs_path) * 4 >= _PATH_MAX and (  # (UTF-8: at most 4 bytes a character)
            len(os.fsencode(fs_path)) >= _PATH_MAX
            or any(len(os.fsencode(part)) > _NAME_MAX for part in name.split("/"))
        ):
            return missing
        try:
            st = os.stat(fs_path)
        except (OSError, ValueError):
            return missing
        if stat.S_ISDIR(st.st_mode):
            if not self._inside(os.path.realpath(fs_path)):
                return FORBIDDEN
            return self._directory(fs_path, st, name)
        if not stat.S_ISREG(st.st_mode):
            return None  # (a device or FIFO is never opened)
        import mimetypes  # (the modules used per request are imported on first use)

        mime = mimetypes.guess_type(name)[0]
        if mime is None:
            if not located:
                return None
            mime = "application/octet-stream"
        return self._open(fs_path, mime, missing)

    def _inside(self, real: str) -> bool:
        return real == self.root_real or real.startswith(self.root + "/")

    def _open(self, fs_path: str, mime: str, missing: int | None) -> StaticFile | int | None:
        """Open the regular file at ``fs_path`` and check where it really is: the file
        opened is the one checked and sent (no window for a swapped symlink)."""
        try:
            fd = os.open(fs_path, _OPEN_FLAGS)
        except OSError:
            return missing
        try:
            # the open file's own path (/proc), else the path's resolution
            real = os.readlink(f"{_PROC_FD}{fd}") if _HAVE_PROC else os.path.realpath(fs_path)
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            return missing
        if not self._inside(real) or not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return FORBIDDEN
        return StaticFile(fs_path, fd, st, mime)

    def _directory(
        self, fs_path: str, st: os.stat_result, name: str
    ) -> StaticFile | Listing | int | None:
        base = fs_path.rstrip("/")
        for index in self.index_files:
            candidate = f"{base}/{index}"
            try:
                index_st = os.stat(candidate)
            except (OSError, ValueError):
                continue
            if stat.S_ISREG(index_st.st_mode):
                import mimetypes

                mime = mimetypes.guess_type(index)[0] or "application/octet-stream"
                found = self._open(candidate, mime, None)
                if found is not None:
                    return found
        if self.autoindex:
            return Listing(fs_path, st, name if name.endswith("/") else name + "/")
        return None

    # -- answering ------------------------------------------------------------------------

    def serve(self, parsed: ParsedRequest, make_response: Callable[[], Response]) -> bool:
        """Answer ``parsed`` from the disk if it is static; False if ``on("request")``
        should have it.  The response is only made for a static answer (a response
        dropped unanswered would be finished with a 500)."""
        found = self.resolve(parsed.path)
        if found is None:
            return False
        self.answer(parsed, found, make_response())
        return True

    def answer(
        self, parsed: ParsedRequest, found: StaticFile | Listing | int, response: Response
    ) -> None:
        """Answer ``parsed`` with what :meth:`resolve` found."""
        if isinstance(found, int):
            _error(response, found)
        elif isinstance(found, Listing):
            self._listing(found, response)
        else:
            try:
                self._file(parsed, found, response)
            finally:
                found.close()

    def _file(self, parsed: ParsedRequest, found: StaticFile, response: Response) -> None:
        st = found.st
        size = st.st_size
        mtime = int(st.st_mtime)
        etag = f'"{mtime:x}-{size:x}"'
        last_modified = _http_date(mtime)
        # (a new response: its headers dict is filled directly, names already formatted)
        headers = response.headers
        headers["Last-Modified"] = last_modified
        headers["ETag"] = etag
        method = parsed.method
        fields = dict(parsed.headers) if method in _CONDITIONAL else {}
        if _not_modified(fields, etag, mtime):
            response.status(304)
            response.end()
            return
        offset, length = 0, size
        ranged = fields.get("range") if method == "GET" else None
        if ranged is not None and _if_range_holds(fields.get("if-range"), etag, last_modified):
            spans = parse_range(ranged, size)
            if spans == UNSATISFIABLE:
                response.status(416)
                headers["Content-Range"] = f"bytes */{size}"
                response.end()
                return
            if isinstance(spans, list) and len(spans) > 1:
                if _multipart(spans, found, response):
                    return
            elif isinstance(spans, list):
                span = spans[0]
                offset, length = span[0], span[1] - span[0] + 1
                response.status(206)
                headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{size}"
        if response.status_code == 200:
            headers["Accept-Ranges"] = "bytes"
        headers["Content-Type"] = found.mime
        if length <= _INLINE_LIMIT and method != "HEAD":
            # A small body leaves with the head in one write: no file task for it.
            try:
                data = os.pread(found.fd, length, offset)
            except OSError:
                data = b""
            if len(data) == length:
                response.end(data)
                return
        sent = response.sendfile(found.path, offset, length if response.status_code == 206 else 0)
        if not sent and response.is_writable():  # the file changed under us (shorter, gone)
            response.status(404)
            response.header("Content-Type", "text/html")
            response.end(_page(404, response.server_name))

    def _listing(self, found: Listing, response: Response) -> None:
        import html

        try:
            names = sorted(os.listdir(found.path))
        except OSError:
            _error(response, NOT_FOUND)
            return
        if found.url != "/":
            names.insert(0, "..")
        url = html.escape(found.url)
        items = "".join(
            f'\t\t<li><a href="{html.escape(quote(found.url + name))}">'
            f"{html.escape(name)}</a></li>\n"
            for name in names
        )
        page = (
            f"<html>\n<head>\n\t<meta charset='UTF-8'>\n<title>Index of {url}</title></head>\n"
            f"<body>\n<h1>Index of {url}</h1>\t<ul>\n{items}\t</ul>\n"
            f"<footer><i>Powered by {html.escape(response.server_name)}</i></footer>"
            "</body>\n</html>\n"
        )
        response.header("Content-Type", "text/html")
        response.header("Last-Modified", _http_date(int(found.st.st_mtime)))
        response.end(page)


def _multipart(spans: list[tuple[int, int]], found: StaticFile, response: Response) -> bool:
    """Several ranges: ``206`` with a ``multipart/byteranges`` body (RFC 9110 section
    14.6), as Swoole's static handler; each part has the file's ``Content-Type`` and its
    ``Content-Range``.  The parts are read into memory, so only up to
    :data:`_MULTIPART_LIMIT` bytes in at most :data:`_MULTIPART_RANGES` ranges; beyond, or
    if the file is shorter than when it was opened, False: the whole file is sent (RFC
    9110 section 14.2 lets a server ignore ``Range``; Swoole streams any number of parts)."""
    total = sum(last - first + 1 for first, last in spans)
    if len(spans) > _MULTIPART_RANGES or total > _MULTIPART_LIMIT:
        return False
    size = found.st.st_size
    import secrets

    boundary = secrets.token_hex(8)
    parts: list[bytes] = []
    for first, last in spans:
        data = os.pread(found.fd, last - first + 1, first)
        if len(data) != last - first + 1:
            return False
        lead = "\r\n" if parts else ""
        parts.append(
            f"{lead}--{boundary}\r\nContent-Type: {found.mime}\r\n"
            f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n".encode()
        )
        parts.append(data)
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    response.status(206)
    response.headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
    response.end(b"".join(parts))
    return True


def _not_modified(fields: dict[str, str], etag: str, mtime: int) -> bool:
    """RFC 9110 section 13.2.2: If-None-Match, else If-Modified-Since (GET/HEAD only)."""
    if_none_match = fields.get("if-none-match")
    if if_none_match is not None:
        return _etag_listed(if_none_match, etag, weak=True)
    since = fields.get("if-modified-since")
    if since is None:
        return False
    when = _http_time(since)
    return when is not None and mtime <= when


def _if_range_holds(if_range: str | None, etag: str, last_modified: str) -> bool:
    """RFC 9110 section 13.1.5: the range applies only if the validator still matches."""
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith('"') or if_range.startswith("W/"):
        return if_range == etag  # strong comparison: a weak tag never matches
    return if_range == last_modified


def _page(status: int, server_name: str) -> str:
    import html

    phrase = "Forbidden" if status == FORBIDDEN else "Not Found"
    return (
        f"<html><body><h1>HTTP {status} {phrase}</h1>"
        f"<footer><i>Powered by {html.escape(server_name)}</i></footer></body></html>"
    )


def _error(response: Response, status: int) -> None:
    response.status(status)
    response.header("Content-Type", "text/html")
    response.end(_page(status, response.server_name))
