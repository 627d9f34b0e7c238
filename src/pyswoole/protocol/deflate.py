"""permessage-deflate (RFC 7692): negotiation and per-message compression, Sans-I/O.

Theory of operation
-------------------
At the opening handshake :func:`negotiate` reads the client's ``Sec-WebSocket-Extensions``
offers (RFC 7692 section 5), picks the first permessage-deflate offer this server can
accept (section 7.1) and returns the response header value together with the agreed
:class:`DeflateParams`. The connection then builds one :class:`PerMessageDeflate` from the
agreed parameters and the server's :class:`DeflateConfig`:

* :meth:`PerMessageDeflate.inflate` is the parser's ``MessageInflater``: it decompresses a
  message frame by frame (section 7.2.2), never producing more than the caller's limit, so a
  small "deflate bomb" cannot make the server allocate a huge message.
* :meth:`PerMessageDeflate.deflate` compresses one whole outgoing message (section 7.2.1).
* :func:`shared_deflate` compresses a broadcast once for every connection whose agreed
  parameters have the same :attr:`DeflateParams.key` (only possible without context
  takeover: then the bytes do not depend on what a connection was sent before).

Memory
------
zlib's state is the cost of compression on a server holding many connections. Measured
with ``tracemalloc`` (CPython routes zlib's allocations through ``PyMem_RawMalloc``):

=====================================  ============
compressor, window 2**12, memLevel 5   38 KiB
compressor, window 2**15, memLevel 8   262 KiB
decompressor, window 2**12             11 KiB
decompressor, window 2**15             39 KiB
=====================================  ============

Hence the defaults of :class:`DeflateConfig`: no context takeover in either direction
(what Swoole itself answers), so no zlib object outlives the message it serves and an idle
connection holds no compression state at all; compressors and decompressors are created on
first use. Context takeover can be enabled per direction; the window and memory level then
bound what each connection keeps.

zlib cannot compress raw deflate with an 8-bit window (``deflateInit2`` rejects
``windowBits=-8``; with a zlib header it silently uses 9, see madler/zlib#171). An offer
that demands ``server_max_window_bits=8`` is accepted anyway: messages are then sent
uncompressed, except short ones that no window can get wrong (section 6 lets a sender
leave any message uncompressed; python-websockets declines such offers instead, which
leaves those clients without compression at all). The server never asks a client for an
8-bit window, and it inflates with at least a 9-bit window, which also reads data from a
client whose zlib quietly used 9 bits when it promised 8.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TypeAlias

from ..exceptions import ConfigError, HttpProtocolError

__all__ = [
    "COMPRESSED",
    "DEFAULT_CONFIG",
    "EXTENSION_NAME",
    "DeflateConfig",
    "DeflateParams",
    "PerMessageDeflate",
    "negotiate",
    "parse_extensions",
    "shared_deflate",
]

EXTENSION_NAME = "permessage-deflate"

#: the empty stored block a sync flush ends with (RFC 7692 section 7.2.1)
_TAIL = b"\x00\x00\xff\xff"
_MIN_WBITS = 9  # zlib's smallest raw-deflate window (see the module docstring)
_MAX_WBITS = 15
_FLUSH = zlib.Z_SYNC_FLUSH
_DEFLATED = zlib.DEFLATED

# -- Sec-WebSocket-Extensions grammar (RFC 6455 section 9.1, RFC 7230 section 3.2.6) -------

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_OWS = " \t"

ExtensionParams: TypeAlias = "list[tuple[str, str | None]]"


def _bad_header(reason: str) -> HttpProtocolError:
    return HttpProtocolError(400, f"invalid Sec-WebSocket-Extensions: {reason}")


def _skip_ows(value: str, pos: int) -> int:
    n = len(value)
    while pos < n and value[pos] in _OWS:
        pos += 1
    return pos


def _token(value: str, pos: int, what: str) -> tuple[str, int]:
    start = pos
    n = len(value)
    while pos < n and value[pos] in _TCHAR:
        pos += 1
    if pos == start:
        raise _bad_header(f"expected {what} at offset {start}")
    return value[start:pos], pos


def _quoted_string(value: str, pos: int) -> tuple[str, int]:
    """A quoted-string starting at the opening quote; return its unescaped text."""
    chars: list[str] = []
    pos += 1
    n = len(value)
    while pos < n:
        ch = value[pos]
        if ch == '"':
            text = "".join(chars)
            # RFC 6455 section 9.1: the unescaped value must still be a token.
            if not text or not _TCHAR.issuperset(text):
                raise _bad_header("quoted parameter value is not a token")
            return text, pos + 1
        if ch == "\\":
            pos += 1
            if pos == n:
                break
            ch = value[pos]
        chars.append(ch)
        pos += 1
    raise _bad_header("unterminated quoted-string")


def _parse_one(value: str, out: list[tuple[str, ExtensionParams]]) -> None:
    """Parse one header value (a comma-separated list) into ``out``."""
    n = len(value)
    pos = 0
    while True:
        pos = _skip_ows(value, pos)
        if pos == n:
            return
        if value[pos] == ",":  # empty list element (RFC 7230 section 7)
            pos += 1
            continue
        name, pos = _token(value, pos, "an extension name")
        params: ExtensionParams = []
        pos = _skip_ows(value, pos)
        while pos < n and value[pos] == ";":
            pos = _skip_ows(value, pos + 1)
            pname, pos = _token(value, pos, "a parameter name")
            pos = _skip_ows(value, pos)
            pvalue: str | None = None
            if pos < n and value[pos] == "=":
                pos = _skip_ows(value, pos + 1)
                if pos < n and value[pos] == '"':
                    pvalue, pos = _quoted_string(value, pos)
                else:
                    pvalue, pos = _token(value, pos, "a parameter value")
                pos = _skip_ows(value, pos)
            params.append((pname.lower(), pvalue))
        out.append((name.lower(), params))
        if pos == n:
            return
        if value[pos] != ",":
            raise _bad_header(f"unexpected {value[pos]!r} at offset {pos}")
        pos += 1


def parse_extensions(values: list[str]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Parse ``Sec-WebSocket-Extensions`` header values (RFC 6455 section 9.1).

    ``values`` holds every such header of the request, in order; each is a comma-separated
    list of extensions, each ``name *( ";" param [ "=" (token | quoted-string) ] )``. The
    result keeps the client's order (its preference, RFC 7692 section 5) with extension and
    parameter names lower-cased, quoted values unescaped and ``None`` for a parameter
    without value. A value that breaks the grammar raises ``HttpProtocolError(400)``: the
    handshake does not match RFC 6455 section 4.2.1, and the server answers 400.
    """
    out: list[tuple[str, ExtensionParams]] = []
    for value in values:
        _parse_one(value, out)
    return out


# -- configuration and agreed parameters ------------------------------------------------


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise ConfigError(f"{name} must be an int between {low} and {high}, got {value!r}")


def _check_bool(name: str, value: object) -> None:
    if type(value) is not bool:
        raise ConfigError(f"{name} must be a bool, got {value!r}")


@dataclass(frozen=True)
class DeflateConfig:
    """What the server is willing to do for permessage-deflate (RFC 7692).

    ``compression_level`` (1-9, default 1): zlib's level. Level 1 costs a fraction of the
    CPU of the default 6 for most of its ratio on typical JSON/text messages.

    ``memory_level`` (1-9, default 5) and ``server_max_window_bits`` (9-15, default 12):
    the size of zlib's compressor (38 KiB at 12/5, 262 KiB at zlib's 15/8). The window is
    also announced to the client (RFC 7692 section 7.1.2.1), so the client's decompressor
    is small too. 9 is the minimum: zlib has no raw 8-bit compressor.

    ``server_no_context_takeover`` (default True): compress every message afresh
    (section 7.1.1.1). The compressor then lives only while a message is compressed, an
    idle connection holds none, and a broadcast is compressed once for all connections
    (:func:`shared_deflate`). With False each connection keeps its compressor between
    messages, which compresses repetitive small messages better.

    ``client_no_context_takeover`` (default True): ask the client to compress every message
    afresh (section 7.1.1.2, a server may do so even if the client did not offer it), so
    the server's decompressor is dropped after each message. When the client offers it,
    the server always agrees.

    ``client_max_window_bits`` (9-15 or None, default 12): when the client allows it
    (section 7.1.2.2), limit the client's window to this, which bounds the server's
    decompressor (11 KiB at 12, 39 KiB at 15). None: do not ask.

    ``min_size`` (default 64): messages shorter than this are sent uncompressed; below it
    the deflate overhead usually exceeds the savings. Applying it is the sender's job.

    Out-of-range or ill-typed values raise :class:`~pyswoole.exceptions.ConfigError` (a
    ``ValueError``) naming the field.
    """

    compression_level: int = 1
    memory_level: int = 5
    server_max_window_bits: int = 12
    server_no_context_takeover: bool = True
    client_no_context_takeover: bool = True
    client_max_window_bits: int | None = 12
    min_size: int = 64

    def __post_init__(self) -> None:
        _check_int("compression_level", self.compression_level, 1, 9)
        _check_int("memory_level", self.memory_level, 1, 9)
        _check_int("server_max_window_bits", self.server_max_window_bits, _MIN_WBITS, 15)
        _check_bool("server_no_context_takeover", self.server_no_context_takeover)
        _check_bool("client_no_context_takeover", self.client_no_context_takeover)
        if self.client_max_window_bits is not None:
            _check_int("client_max_window_bits", self.client_max_window_bits, _MIN_WBITS, 15)
        _check_int("min_size", self.min_size, 0, 2**63 - 1)


@dataclass(frozen=True)
class DeflateParams:
    """The agreed parameters of one connection (RFC 7692 section 7.1).

    ``server_max_window_bits`` is the window the server compresses with;
    ``client_max_window_bits`` the largest window the client may compress with (15 when
    the response did not limit it).
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15

    @property
    def key(self) -> tuple[bool, int]:
        """What determines the bytes the server sends: connections of one server with equal
        keys get identical compressed messages from :func:`shared_deflate`."""
        return (self.server_no_context_takeover, self.server_max_window_bits)


DEFAULT_CONFIG = DeflateConfig()


# -- negotiation (RFC 7692 sections 5 and 7.1) ------------------------------------------


class _Decline(Exception):
    """Internal: this offer is declined (RFC 7692 section 7); try the next one."""


def _window_bits(name: str, value: str | None) -> int:
    """A window-bits value: 1*DIGIT without leading zero, 8-15 (section 7.1.2)."""
    if value is None or not value.isdigit() or not value.isascii() or value[0] == "0":
        raise _Decline(f"{name} needs a value 8-15, got {value!r}")
    bits = int(value)
    if not 8 <= bits <= 15:
        raise _Decline(f"{name} must be 8-15, got {bits}")
    return bits


def _accept(params: ExtensionParams, config: DeflateConfig) -> tuple[str, DeflateParams]:
    """Accept one offer or raise :class:`_Decline` (RFC 7692 sections 7 and 7.1)."""
    seen: set[str] = set()
    server_nct = client_nct = False
    server_bits: int | None = None
    client_bits: int | None = None
    client_bits_offered = False
    # Section 7: decline an offer with an unknown parameter, an invalid value, or the same
    # parameter twice.
    for name, value in params:
        if name in seen:
            raise _Decline(f"duplicate parameter {name}")
        seen.add(name)
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                raise _Decline(f"{name} takes no value")
            if name == "server_no_context_takeover":
                server_nct = True
            else:
                client_nct = True
        elif name == "server_max_window_bits":
            server_bits = _window_bits(name, value)
        elif name == "client_max_window_bits":
            client_bits_offered = True
            client_bits = None if value is None else _window_bits(name, value)
        else:
            raise _Decline(f"unknown parameter {name}")

    response = [EXTENSION_NAME]
    # 7.1.1.1: the server may always add server_no_context_takeover.
    server_nct = server_nct or config.server_no_context_takeover
    if server_nct:
        response.append("server_no_context_takeover")
    # 7.1.1.2: the server may always add client_no_context_takeover; when the client
    # offered it, agreeing costs nothing and frees the decompressor between messages.
    client_nct = client_nct or config.client_no_context_takeover
    if client_nct:
        response.append("client_no_context_takeover")
    # 7.1.2.1: accept a limit by answering the same or a smaller value; the server may
    # announce its window even if not asked.
    if server_bits is None:
        server_bits = config.server_max_window_bits
    elif server_bits < _MIN_WBITS:
        # zlib has no raw 8-bit compressor, but a sender may always leave a message
        # uncompressed (section 6): agree, and compress only what an 8-bit window can
        # read anyway (see PerMessageDeflate.compressible).
        server_bits = 8
    else:
        server_bits = min(server_bits, config.server_max_window_bits)
    if server_bits < _MAX_WBITS or "server_max_window_bits" in seen:
        response.append(f"server_max_window_bits={server_bits}")
    # 7.1.2.2: client_max_window_bits may be answered only if offered, with a value no
    # larger than the offered one (if any).
    agreed_client_bits = _MAX_WBITS
    if client_bits_offered:
        if config.client_max_window_bits is not None:
            agreed_client_bits = min(client_bits or _MAX_WBITS, config.client_max_window_bits)
        elif client_bits is not None:
            agreed_client_bits = client_bits  # the client's own limit: a smaller inflater
        if agreed_client_bits < _MAX_WBITS or client_bits is not None:
            response.append(f"client_max_window_bits={agreed_client_bits}")
    agreed = DeflateParams(server_nct, client_nct, server_bits, agreed_client_bits)
    return "; ".join(response), agreed


def negotiate(
    header_values: list[str], config: DeflateConfig = DEFAULT_CONFIG
) -> tuple[str, DeflateParams] | None:
    """Choose the permessage-deflate offer to accept (RFC 7692 sections 5 and 7).

    ``header_values`` holds every ``Sec-WebSocket-Extensions`` header of the request. Offers
    are tried in the client's order of preference; offers of other extensions are skipped.
    Following section 7 ("A server MUST decline an extension negotiation offer for this
    extension if ..."), an offer with an unknown, duplicate or invalid parameter is
    declined, not an error, exactly like an offer the server cannot support
    (``server_max_window_bits=8``): the next offer is tried. Returns the response header
    value (exactly the agreed parameters, e.g. ``permessage-deflate;
    server_no_context_takeover; client_max_window_bits=12``) and the agreed
    :class:`DeflateParams`, or None when no offer is acceptable: the connection then runs
    uncompressed. Only a header that breaks the RFC 6455 grammar raises
    ``HttpProtocolError(400)`` (see :func:`parse_extensions`).
    """
    for name, params in parse_extensions(header_values):
        if name != EXTENSION_NAME:
            continue
        try:
            return _accept(params, config)
        except _Decline:
            continue
    return None


# -- compression (RFC 7692 section 7.2) -------------------------------------------------


class CompressedCounts:
    """Bytes given to and made by this process's message compression (pyswoole.metrics:
    the compression ratio). Counted once per compressed message, never per frame."""

    __slots__ = ("deflated", "payload")

    def __init__(self) -> None:
        self.payload = 0
        self.deflated = 0


#: this process's compression counts
COMPRESSED = CompressedCounts()


def _compress(compressor: zlib._Compress, payload: bytes) -> bytes:
    """Compress with a sync flush and remove the trailing empty block (section 7.2.1)."""
    head = compressor.compress(payload)
    tail = compressor.flush(_FLUSH)
    # A sync flush always ends with the empty stored block 00 00 ff ff. For an empty
    # payload the stored block's header byte 00 remains: the empty message (see 7.2.3.6).
    out = head + tail[:-4] if head else tail[:-4]
    counts = COMPRESSED
    counts.payload += len(payload)
    counts.deflated += len(out)
    return out


class PerMessageDeflate:
    """Compression state of one connection (RFC 7692 section 7.2), a ``MessageInflater``.

    Built from the agreed :class:`DeflateParams` and the server's :class:`DeflateConfig`.
    zlib objects are created on first use and, in a direction without context takeover,
    dropped at the end of every message, so an idle connection costs only this object.
    Calls must be serialized per connection (the order of messages is the order of the
    compressed stream); the object is not thread-safe.
    """

    __slots__ = (
        "_compressor",
        "_decompressor",
        "_deflate_wbits",
        "_inflate_wbits",
        "_inflating",
        "_level",
        "_mem_level",
        "config",
        "params",
    )

    def __init__(self, params: DeflateParams, config: DeflateConfig = DEFAULT_CONFIG) -> None:
        self.params = params
        self.config = config
        self._level = config.compression_level
        self._mem_level = config.memory_level
        # Never below 9 bits: see the module docstring.
        self._deflate_wbits = -max(params.server_max_window_bits, _MIN_WBITS)
        self._inflate_wbits = -max(params.client_max_window_bits, _MIN_WBITS)
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        self._inflating = False  # compressed bytes of the current message were fed

    def inflate(self, data: bytes, final: bool, limit: int) -> bytes:
        """Decompress one frame of a compressed message (section 7.2.2).

        ``final`` marks the message's last frame: the ``00 00 ff ff`` the sender removed is
        put back. At most ``limit`` bytes are produced: more raises ``OverflowError`` after
        at most ``limit + 1`` bytes of output were allocated, whatever the ratio. Data that
        is not valid deflate raises ``ValueError``; the object is then unusable (the
        connection fails with 1007).
        """
        if final:
            started = self._inflating or bool(data)
            self._inflating = False
            if not started:
                # A message without compressed bytes (section 7.2.1 cannot produce one)
                # is empty: the tail alone would open a stored block that swallows the
                # next messages.
                return b""
        elif data:
            self._inflating = True
        else:
            return b""
        d = self._decompressor
        if d is None:
            d = self._decompressor = zlib.decompressobj(self._inflate_wbits)
        if limit < 0:
            limit = 0
        try:
            # max_length bounds the output; when it is reached the input left over
            # (unconsumed_tail) is never inflated: the message is already too big.
            out = d.decompress(data, limit + 1)
            if len(out) > limit:
                self._decompressor = None
                raise OverflowError(f"inflated message over {limit} bytes")
            if final and not d.eof:
                more = d.decompress(_TAIL, limit - len(out) + 1)
                if more:
                    if len(out) + len(more) > limit:
                        self._decompressor = None
                        raise OverflowError(f"inflated message over {limit} bytes")
                    out += more
        except zlib.error as exc:
            self._decompressor = None
            raise ValueError(f"invalid deflate data: {exc}") from None
        if d.eof:
            # The sender ended its stream with a BFINAL block (allowed, section 7.2.3.4):
            # nothing may follow it within the message, and the next message starts a
            # new stream.
            if d.unused_data and not (final and d.unused_data == _TAIL):
                self._decompressor = None
                raise ValueError("data after the final deflate block")
            if final:
                self._decompressor = None
        elif final and self.params.client_no_context_takeover:
            self._decompressor = None  # 7.1.1.2: the next message starts afresh
        return out

    def compressible(self, size: int) -> bool:
        """Whether a message of ``size`` bytes may be compressed on this connection.

        Always, except with an agreed 8-bit server window, which zlib cannot produce: then
        only messages of at most 256 bytes without context takeover, whose back-references
        cannot reach further than 256 bytes whatever window compressed them; the others
        are sent uncompressed (RSV1 clear), which section 6 allows.
        """
        return can_compress(self.params, size)

    def deflate(self, payload: bytes) -> bytes:
        """Compress one whole message (section 7.2.1): the payload of a frame with RSV1.

        A sync flush ends the message and its trailing ``00 00 ff ff`` is removed; an empty
        message compresses to ``b"\\x00"``. Without server context takeover every message
        is compressed by a fresh compressor, dropped afterwards.
        """
        c = self._compressor
        if c is None:
            c = zlib.compressobj(self._level, _DEFLATED, self._deflate_wbits, self._mem_level)
            if not self.params.server_no_context_takeover:
                self._compressor = c
        return _compress(c, payload)

    def reset(self) -> None:
        """Drop the zlib objects (e.g. when the connection closes)."""
        self._compressor = None
        self._decompressor = None
        self._inflating = False


def can_compress(params: DeflateParams, size: int) -> bool:
    """See :meth:`PerMessageDeflate.compressible`."""
    if params.server_max_window_bits >= _MIN_WBITS:
        return True
    return params.server_no_context_takeover and size <= 1 << params.server_max_window_bits


def shared_deflate(
    payload: bytes, params: DeflateParams, config: DeflateConfig = DEFAULT_CONFIG
) -> bytes | None:
    """Compress a broadcast message once for many connections (RFC 7692 section 7.2.1).

    Without server context takeover (section 7.1.1.1) a message's compressed bytes depend
    only on the payload, :attr:`DeflateParams.key` and the config, so every connection with
    the same key can be sent the same bytes: equal to what :meth:`PerMessageDeflate.deflate`
    would produce for each. With context takeover each connection's stream differs: None.
    """
    if not params.server_no_context_takeover or not can_compress(params, len(payload)):
        return None
    wbits = -max(params.server_max_window_bits, _MIN_WBITS)
    c = zlib.compressobj(config.compression_level, _DEFLATED, wbits, config.memory_level)
    return _compress(c, payload)
