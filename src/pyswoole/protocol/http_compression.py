"""HTTP response compression (Sans-I/O): which coding, whether a body qualifies, the bytes.

What it follows:

* RFC 9110 section 12.5.3 ``Accept-Encoding``: codings with q-values; ``*`` stands for
  every coding not named; ``q=0`` means "not acceptable"; ties go to the server's order,
  Swoole's: ``br`` (only when the ``brotli`` package is importable), ``gzip``, ``deflate``.
  ``x-gzip`` is ``gzip`` (section 8.4.1.3).  No header, an empty one, or nothing
  acceptable: no coding (identity is always sent then; never 406).  Swoole 6.2 instead
  looks for the substrings ``br``, ``gzip``, ``deflate`` in the header and ignores q-values
  (``HttpContext::set_compression_method``), so ``gzip;q=0`` still gets gzip there.
* RFC 9110 section 8.4.1: ``gzip`` is RFC 1952, ``deflate`` the zlib format (RFC 1950)
  -- Swoole 6.2 sends a raw deflate stream (``deflateInit2`` with ``-0xf``); RFC 7932 ``br``.
* Swoole's rules for a body (``HttpContext::compress``/``build_header``): only when at
  least ``http_compression_min_length`` bytes; only for the ``http_compression_types``
  when that list is set (every type when it is not; a response without ``Content-Type``
  is ``text/html``); levels clamped as Swoole (zlib: below 0 is the default level, 0 is 1,
  above 9 is 9; brotli quality 0..11).  Here a type matches on its media type, ignoring
  parameters and case (``text/html; charset=utf-8`` matches ``text/html``), and a listed
  ``text/*`` covers every ``text/`` type; Swoole compares the whole header value.
* Never for 206 (a range of the unencoded representation), nor when the application set
  ``Content-Encoding`` itself (RFC 9110 section 8.4: the coding would be applied twice),
  nor for 1xx/204/304 (no content).  A HEAD response sends no content but announces the
  coding and the compressed ``Content-Length`` a GET would get (RFC 9110 sections 8.6 and
  9.3.2), which is also what Swoole's ``build_header`` does.
* RFC 9110 section 12.5.5: a compressed response carries ``Vary: Accept-Encoding``
  (merged into a ``Vary`` the application set).  Swoole sends no ``Vary``.
* Streamed (chunked) bodies: one compressor per response; each piece is flushed
  (``Z_SYNC_FLUSH``; brotli's flush) so the client can decode it as soon as it arrives.
  Swoole never compresses ``write()`` bodies.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Iterable, MutableMapping
from typing import Any

_brotli: Any
try:  # optional: pip install pyswoole[brotli]
    _brotli = importlib.import_module("brotli")
except ImportError:  # pragma: no cover - depends on the environment
    _brotli = None

__all__ = [
    "AVAILABLE",
    "Codec",
    "HttpCompression",
    "StreamCompressor",
    "clamp_level",
    "compress",
    "parse_accept_encoding",
    "select_encoding",
]

#: the codings this process can produce, in the server's order of preference (Swoole's)
AVAILABLE: tuple[str, ...] = (("br",) if _brotli is not None else ()) + ("gzip", "deflate")

_WBITS = {"gzip": 31, "deflate": 15}  # RFC 1952 wrapper; RFC 1950 (zlib) wrapper
_ALIASES = {"x-gzip": "gzip"}
_CACHE_LIMIT = 512


def parse_accept_encoding(value: str) -> dict[str, float]:
    """``Accept-Encoding`` as ``{coding: q}`` (lower-case; RFC 9110 section 12.5.3).

    A malformed weight makes its element ignored; a coding listed twice keeps the first.
    """
    result: dict[str, float] = {}
    for element in value.split(","):
        coding, _, params = element.partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        coding = _ALIASES.get(coding, coding)
        q = 1.0
        if params:
            name, _, weight = params.partition("=")
            if name.strip().lower() != "q":
                continue
            try:
                q = float(weight.strip())
            except ValueError:
                continue
            if not 0.0 <= q <= 1.0:
                continue
        result.setdefault(coding, q)
    return result


def select_encoding(value: str | None, available: Iterable[str] = AVAILABLE) -> str | None:
    """The coding to use for a request's ``Accept-Encoding`` ``value``, or None (identity).

    The highest q above 0 wins; on a tie the earlier coding of ``available``.
    """
    if not value:
        return None
    weights = parse_accept_encoding(value)
    star = weights.get("*", 0.0)
    best: str | None = None
    best_q = 0.0
    for coding in available:
        q = weights.get(coding, star)
        if q > best_q:
            best, best_q = coding, q
    return best


def clamp_level(encoding: str, level: int) -> int:
    """Swoole's clamping of ``http_compression_level`` for ``encoding``."""
    if encoding == "br":
        return min(max(level, 0), 11)
    if level < 0:
        return -1  # Z_DEFAULT_COMPRESSION
    return min(max(level, 1), 9)


def compress(data: bytes, encoding: str, level: int) -> bytes:
    """``data`` encoded with ``encoding`` (``gzip``, ``deflate`` or ``br``) in one call."""
    if encoding == "br":
        if _brotli is None:
            raise ValueError("br needs the brotli package")
        return bytes(_brotli.compress(data, quality=clamp_level("br", level)))
    z = zlib.compressobj(clamp_level(encoding, level), zlib.DEFLATED, _WBITS[encoding])
    out: bytes = z.compress(data) + z.flush()
    return out


class StreamCompressor:
    """One streamed response's compressor: every piece comes out flushed (decodable)."""

    __slots__ = ("_br", "_z")

    def __init__(self, encoding: str, level: int) -> None:
        self._z: Any = None
        self._br: Any = None
        if encoding == "br":
            if _brotli is None:
                raise ValueError("br needs the brotli package")
            self._br = _brotli.Compressor(quality=clamp_level("br", level))
        else:
            self._z = zlib.compressobj(
                clamp_level(encoding, level), zlib.DEFLATED, _WBITS[encoding]
            )

    def compress(self, data: bytes) -> bytes:
        """``data`` compressed and flushed (Z_SYNC_FLUSH: never empty for non-empty data)."""
        if self._z is not None:
            out: bytes = self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)
            return out
        return bytes(self._br.process(data)) + bytes(self._br.flush())

    def finish(self, data: bytes = b"") -> bytes:
        """The last piece: ``data`` (maybe empty) and the end of the compressed stream."""
        if self._z is not None:
            out: bytes = self._z.compress(data) + self._z.flush(zlib.Z_FINISH)
            return out
        return bytes(self._br.process(data)) + bytes(self._br.finish())


def _find(headers: MutableMapping[str, Any], lower: str) -> str | None:
    """The key of ``headers`` spelled ``lower`` in any case, or None."""
    for key in headers:
        if key.lower() == lower:
            return key
    return None


class Codec:
    """A server's compression settings together with one negotiated coding.

    The server keeps one per coding (see :meth:`HttpCompression.negotiate`), so a
    request costs a cached lookup, never an allocation.
    """

    __slots__ = ("encoding", "policy")

    def __init__(self, policy: HttpCompression, encoding: str) -> None:
        self.policy = policy
        self.encoding = encoding

    def _qualifies(self, status: int, headers: MutableMapping[str, Any]) -> bool:
        if status == 206 or _find(headers, "content-encoding") is not None:
            return False
        key = _find(headers, "content-type")
        content_type = headers[key] if key is not None else "text/html"
        if isinstance(content_type, list):
            content_type = content_type[0] if content_type else ""
        return self.policy.compressible(str(content_type))

    def _mark(self, headers: MutableMapping[str, Any]) -> None:
        headers["Content-Encoding"] = self.encoding
        key = _find(headers, "vary")
        if key is None:
            headers["Vary"] = "Accept-Encoding"
            return
        value = headers[key]
        text = ", ".join(value) if isinstance(value, list) else str(value)
        names = [part.strip().lower() for part in text.split(",")]
        if "accept-encoding" not in names and "*" not in names:
            headers[key] = f"{text}, Accept-Encoding" if text.strip() else "Accept-Encoding"

    def encode(self, status: int, headers: MutableMapping[str, Any], body: bytes) -> bytes:
        """The body to send for a whole (``end()``) response: compressed, with
        ``Content-Encoding`` and ``Vary`` added to ``headers``, or ``body`` untouched.
        The caller has checked that the response has content (not HEAD/1xx/204/304)."""
        policy = self.policy
        if len(body) < policy.min_length or not self._qualifies(status, headers):
            return body
        out = compress(body, self.encoding, policy.level)
        self._mark(headers)
        return out

    def stream(self, status: int, headers: MutableMapping[str, Any]) -> StreamCompressor | None:
        """A compressor for a streamed (``write()``) body, headers marked; None if the
        response does not qualify.  (The length is unknown: no minimum applies.)"""
        if not self._qualifies(status, headers):
            return None
        compressor = StreamCompressor(self.encoding, self.policy.level)
        self._mark(headers)
        return compressor


class HttpCompression:
    """The ``http_compression*`` settings of a server, ready for requests."""

    __slots__ = ("_cache", "_codecs", "_prefixes", "_types", "available", "level", "min_length")

    def __init__(
        self,
        level: int = 1,
        min_length: int = 20,
        types: Iterable[str] | None = None,
        available: Iterable[str] = AVAILABLE,
    ) -> None:
        self.level = level
        self.min_length = min_length
        self.available = tuple(available)
        self._types: frozenset[str] | None = None
        self._prefixes: tuple[str, ...] = ()
        if types:  # an empty list is no list (as Swoole): every type
            wanted = [t.split(";", 1)[0].strip().lower() for t in types]
            self._types = frozenset(t for t in wanted if not t.endswith("/*"))
            self._prefixes = tuple(t[:-1] for t in wanted if t.endswith("/*"))
        self._codecs = {coding: Codec(self, coding) for coding in self.available}
        self._cache: dict[str, Codec | None] = {}

    def negotiate(self, accept_encoding: str | None) -> Codec | None:
        """The codec for a request's ``Accept-Encoding`` (None: send identity)."""
        if not accept_encoding:
            return None
        cache = self._cache
        try:
            return cache[accept_encoding]
        except KeyError:
            pass
        coding = select_encoding(accept_encoding, self.available)
        codec = self._codecs[coding] if coding is not None else None
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[accept_encoding] = codec
        return codec

    def compressible(self, content_type: str) -> bool:
        """Whether a body of ``content_type`` may be compressed (``http_compression_types``)."""
        if self._types is None:
            return True
        media = content_type.split(";", 1)[0].strip().lower()
        return media in self._types or media.startswith(self._prefixes)
