"""Property-based fuzzing of permessage-deflate (``pyswoole.protocol.deflate``, RFC 7692).

* ``parse_extensions``: any header values give a parse or ``HttpProtocolError(400)``;
  generated ``Sec-WebSocket-Extensions`` values (random case, OWS, quoting, escapes, empty
  list elements, spread over several headers) parse to exactly what was generated;
* ``negotiate``: any offers and server configs give None or the response and the agreed
  parameters of the first acceptable permessage-deflate offer (sections 5, 7 and 7.1),
  and the response says exactly what was agreed;
* ``PerMessageDeflate.inflate``: any bytes and limits give at most ``limit`` bytes, equal to
  what zlib itself makes of them, or ``ValueError``/``OverflowError``; calls in any order;
* deflate then inflate gives the messages back, with or without context takeover, for
  every window, fragmented anywhere; ``shared_deflate`` gives ``deflate``'s bytes.
"""

from __future__ import annotations

import zlib
from typing import Any

import pytest
from hypothesis import event as tally
from hypothesis import example, given
from hypothesis import strategies as st

from pyswoole.exceptions import HttpProtocolError
from pyswoole.protocol.deflate import (
    DeflateConfig,
    DeflateParams,
    PerMessageDeflate,
    negotiate,
    parse_extensions,
    shared_deflate,
)
from tests.protocol.strategies import TCHAR, budget, client_compress

TAIL = b"\x00\x00\xff\xff"
PMD = "permessage-deflate"
PARAMS = [
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
]

Extension = tuple[str, list[tuple[str, Any]]]

# -- parse_extensions ---------------------------------------------------------------------


@given(st.lists(st.text(TCHAR[:20] + ' \t,;="\\=é\x00', max_size=40), max_size=3))
@example(['a; b="c'])  # unterminated quoted-string
@example(['a; b="\\'])  # an escape at the very end
def test_parse_extensions_arbitrary(values: list[str]) -> None:
    try:
        parsed = parse_extensions(values)
    except HttpProtocolError as error:
        assert error.status == 400
        return
    for name, params in parsed:
        assert name and name == name.lower() and set(name) <= set(TCHAR)
        for pname, pvalue in params:
            assert pname and pname == pname.lower() and set(pname) <= set(TCHAR)
            assert pvalue is None or (pvalue and set(pvalue) <= set(TCHAR))


tokens = st.text(TCHAR, min_size=1, max_size=10)


@st.composite
def case(draw: st.DrawFn, text: str) -> str:
    """``text`` in random letter case (names are case-insensitive)."""
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if f else c for c, f in zip(text, flips, strict=True))


@st.composite
def extension_offers(draw: st.DrawFn) -> tuple[list[str], list[Extension]]:
    """Header values and their parse: mostly permessage-deflate offers with its parameters
    (valid values or not), other extensions, random parameters."""
    ows = st.sampled_from(["", "", " ", "\t", "  "])
    extensions: list[Extension] = []
    rendered: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from([PMD, PMD, "x-webkit-deflate-frame"]) | tokens)
        text = draw(case(name))
        params: list[tuple[str, Any]] = []
        for _ in range(draw(st.integers(0, 4))):
            pname = draw(st.sampled_from(PARAMS) | tokens)
            ptext = draw(ows) + ";" + draw(ows) + draw(case(pname))
            value = draw(st.none() | st.sampled_from(["8", "9", "12", "15", "16", "08"]) | tokens)
            if value is not None:
                if draw(st.booleans()):  # a quoted-string, some characters escaped
                    escaped = "".join(("\\" + c) if draw(st.booleans()) else c for c in value)
                    ptext += draw(ows) + "=" + draw(ows) + '"' + escaped + '"'
                else:
                    ptext += draw(ows) + "=" + draw(ows) + value
            text += ptext + draw(ows)
            params.append((pname.lower(), value))
        extensions.append((name.lower(), params))
        rendered.append(text)
    # spread over header values, with empty list elements here and there
    values: list[str] = []
    for text in rendered:
        if values and draw(st.booleans()):
            values[-1] += draw(st.sampled_from([",", ", ", " ,, "])) + text
        else:
            values.append(draw(st.sampled_from(["", "", ", "])) + text)
    return values, extensions


@given(extension_offers())
def test_parse_extensions_generated(offers: tuple[list[str], list[Extension]]) -> None:
    values, extensions = offers
    assert parse_extensions(values) == extensions


# -- negotiate -------------------------------------------------------------------------------


def accepted(params: list[tuple[str, Any]], config: DeflateConfig) -> DeflateParams | None:
    """The parameters agreed for one offer (RFC 7692 sections 7 and 7.1), None if declined:
    an unknown or repeated parameter, a value where none belongs, bits outside 8-15."""
    names = [n for n, _ in params]
    if len(set(names)) != len(names) or not set(names) <= set(PARAMS):
        return None
    offer = dict(params)

    def bits(value: Any) -> int | None:
        valid = isinstance(value, str) and value.isascii() and value.isdigit()
        if not valid or value[0] == "0" or not 8 <= int(value) <= 15:
            return None
        return int(value)

    for flag in PARAMS[:2]:
        if flag in offer and offer[flag] is not None:
            return None
    server_bits = config.server_max_window_bits
    if "server_max_window_bits" in offer:
        offered = bits(offer["server_max_window_bits"])
        if offered is None:
            return None
        server_bits = 8 if offered == 8 else min(offered, server_bits)
    client_bits = 15
    if "client_max_window_bits" in offer:
        value = offer["client_max_window_bits"]
        offered = 15 if value is None else bits(value)
        if offered is None:
            return None
        client_bits = min(offered, config.client_max_window_bits or offered)
    return DeflateParams(
        "server_no_context_takeover" in offer or config.server_no_context_takeover,
        "client_no_context_takeover" in offer or config.client_no_context_takeover,
        server_bits,
        client_bits,
    )


configs = st.builds(
    DeflateConfig,
    server_max_window_bits=st.integers(9, 15),
    server_no_context_takeover=st.booleans(),
    client_no_context_takeover=st.booleans(),
    client_max_window_bits=st.none() | st.integers(9, 15),
)


@budget(1)
@given(extension_offers(), configs)
def test_negotiate(offers: tuple[list[str], list[Extension]], config: DeflateConfig) -> None:
    values, extensions = offers
    chosen = [
        (params, agreed)
        for name, params in extensions
        if name == PMD and (agreed := accepted(params, config)) is not None
    ]
    result = negotiate(values, config)
    tally(f"{len(chosen)} acceptable offers")
    if not chosen:
        assert result is None
        return
    offer, expected = chosen[0]
    assert result is not None
    response, agreed = result
    assert agreed == expected
    # the response states exactly what was agreed, and parses
    [(name, params)] = parse_extensions([response])
    said = dict(params)
    assert name == PMD and len(said) == len(params)
    assert ("server_no_context_takeover" in said) == agreed.server_no_context_takeover
    assert ("client_no_context_takeover" in said) == agreed.client_no_context_takeover
    assert int(said.get("server_max_window_bits") or 15) == agreed.server_max_window_bits
    assert int(said.get("client_max_window_bits") or 15) == agreed.client_max_window_bits
    if "client_max_window_bits" in said:  # only if offered (section 7.1.2.2)
        assert "client_max_window_bits" in dict(offer)


@given(st.lists(st.text(TCHAR[:30] + ' \t,;="\\', max_size=40), max_size=3), configs)
def test_negotiate_arbitrary(values: list[str], config: DeflateConfig) -> None:
    try:
        result = negotiate(values, config)
    except HttpProtocolError as error:
        assert error.status == 400
        return
    assert result is None or isinstance(result[1], DeflateParams)


# -- inflate ------------------------------------------------------------------------------------


def zlib_inflate(data: bytes, wbits: int) -> bytes | None:
    """What zlib makes of one whole compressed message (section 7.2.2), None if invalid."""
    d = zlib.decompressobj(-wbits)
    try:
        out = d.decompress(data)
        if not d.eof:
            out += d.decompress(TAIL)
    except zlib.error:
        return None
    if d.eof and d.unused_data not in (b"", TAIL):
        return None  # data after a final block
    return out


compressed_or_not = st.one_of(
    st.binary(max_size=60),
    # a whole raw deflate stream, ending in a final block (allowed, section 7.2.3.4)
    st.builds(lambda b: zlib.compress(b, 6, -15), st.binary(max_size=200)),
    # what a client sends: a sync flush without its 00 00 ff ff (section 7.2.1); zeros
    # make a small deflate bomb
    st.builds(
        lambda b: client_compress(zlib.compressobj(6, zlib.DEFLATED, -15), b),
        st.binary(max_size=200) | st.builds(bytes, st.integers(0, 50_000)),
    ),
)


@given(compressed_or_not, st.integers(0, 300), st.integers(9, 15))
@example(b"\x03\x00", 10, 15)  # an empty final block
@example(b"\x03\x00\x00", 10, 15)  # something after the final block
def test_inflate_one_message(data: bytes, limit: int, wbits: int) -> None:
    """One whole message: zlib's answer if it fits the limit, OverflowError if it does not,
    ValueError (or OverflowError, when the output passed the limit before the bad byte) if
    zlib refuses it."""
    inflater = PerMessageDeflate(DeflateParams(True, True, 15, wbits))
    expected = zlib_inflate(data, max(wbits, 9))
    tally("invalid" if expected is None else "over" if len(expected) > limit else "fits")
    try:
        out = inflater.inflate(data, True, limit)
    except OverflowError:
        assert expected is None or len(expected) > limit
        return
    except ValueError:
        assert expected is None
        return
    assert out == expected and len(out) <= limit


@given(
    st.lists(st.tuples(compressed_or_not, st.booleans(), st.integers(-5, 400)), max_size=6),
    st.builds(DeflateParams, st.booleans(), st.booleans(), st.just(15), st.integers(8, 15)),
)
def test_inflate_any_calls(calls: list[tuple[bytes, bool, int]], params: DeflateParams) -> None:
    """Frames of messages in any order, valid or not, any limit: bytes within the limit or
    ValueError/OverflowError, never anything else."""
    inflater = PerMessageDeflate(params)
    for data, final, limit in calls:
        try:
            out = inflater.inflate(data, final, limit)
        except (ValueError, OverflowError):
            continue
        assert type(out) is bytes and len(out) <= max(limit, 0)


# -- round trips --------------------------------------------------------------------------------


@budget(1)
@given(
    st.lists(st.binary(max_size=300) | st.text(max_size=100).map(str.encode), max_size=5),
    st.builds(DeflateParams, st.booleans(), st.booleans(), st.integers(8, 15), st.integers(8, 15)),
    st.integers(1, 9),
    st.data(),
)
def test_deflate_inflate_round_trip(
    messages: list[bytes], params: DeflateParams, level: int, data: st.DataObject
) -> None:
    """What the server compresses, a peer with the mirrored parameters inflates back, each
    message cut into frames anywhere; a limit below a message's size is an OverflowError.
    Without server context takeover ``shared_deflate`` gives the same bytes and zlib alone
    inflates each message."""
    config = DeflateConfig(compression_level=level, server_max_window_bits=15)
    server = PerMessageDeflate(params, config)
    # the peer inflates with the server's window and context takeover
    peer = PerMessageDeflate(
        DeflateParams(False, params.server_no_context_takeover, 15, params.server_max_window_bits)
    )
    for message in messages:
        compressed = server.deflate(message)
        if params.server_no_context_takeover:
            assert shared_deflate(message, params, config) == compressed
            assert zlib_inflate(compressed, max(params.server_max_window_bits, 9)) == message
        points = sorted(data.draw(st.lists(st.integers(0, len(compressed)), max_size=3)))
        pieces = [
            compressed[a:b] for a, b in zip([0, *points], [*points, len(compressed)], strict=True)
        ]
        out = b"".join(
            peer.inflate(piece, i == len(pieces) - 1, len(message))
            for i, piece in enumerate(pieces)
        )
        assert out == message
    if messages and max(map(len, messages)) > 0 and params.server_no_context_takeover:
        big = max(messages, key=len)
        with pytest.raises(OverflowError):
            PerMessageDeflate(DeflateParams(True, True, 15, 15)).inflate(
                server.deflate(big), True, len(big) - 1
            )
