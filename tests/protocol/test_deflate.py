"""permessage-deflate (RFC 7692): negotiation, compression, limits (pyswoole.protocol.deflate)."""

from __future__ import annotations

import gc
import os
import tracemalloc
import zlib

import pytest
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode

from pyswoole.constants import SWOOLE_WEBSOCKET_FLAG_COMPRESS, WEBSOCKET_OPCODE_TEXT
from pyswoole.exceptions import ConfigError, HttpProtocolError
from pyswoole.protocol.deflate import (
    DeflateConfig,
    DeflateParams,
    PerMessageDeflate,
    negotiate,
    parse_extensions,
    shared_deflate,
)
from pyswoole.protocol.frames import Frame, encode_frame
from pyswoole.protocol.websocket import CLOSED, WebSocket

TAIL = b"\x00\x00\xff\xff"
MASK = b"\x37\xfa\x21\x3d"
KiB = 1024
MiB = 1024 * 1024

#: a config that adds nothing to what the client offers: shows the bare RFC semantics
NEUTRAL = DeflateConfig(
    server_max_window_bits=15,
    server_no_context_takeover=False,
    client_no_context_takeover=False,
    client_max_window_bits=None,
)
#: context takeover both ways, zlib's full window (the RFC 7692 examples assume it)
TAKEOVER = NEUTRAL
TAKEOVER_PARAMS = DeflateParams(False, False, 15, 15)
NCT_PARAMS = DeflateParams(True, True, 15, 15)

# RFC 7692 section 7.2.3 examples
HELLO = bytes.fromhex("f248cdc9c90700")  # 7.2.3.1
HELLO_AGAIN = bytes.fromhex("f200110000")  # 7.2.3.2, with the first "Hello" in the window
HELLO_STORED = bytes.fromhex("0005 00faff 48656c6c6f 00")  # 7.2.3.3
HELLO_BFINAL = bytes.fromhex("f348cdc9c90700")  # 7.2.3.4
HELLO_TWO_BLOCKS = bytes.fromhex("f248050000 00ffff cac9c90700")  # 7.2.3.5

TEXT = (
    b'{"type":"tick","symbol":"BTC-USD","price":"64231.50","size":"0.0132",'
    b'"side":"buy","seq":1234567,"ts":"2024-05-01T12:00:00.123Z"}'
) * 4


def client_decompressor(params: DeflateParams) -> zlib._Decompress:
    """What a client inflates the server's messages with (section 7.2.2)."""
    return zlib.decompressobj(-params.server_max_window_bits)


def client_compressor(params: DeflateParams, level: int = 6) -> zlib._Compress:
    """What a client compresses with: no larger window than agreed (section 7.1.2.2)."""
    return zlib.compressobj(level, zlib.DEFLATED, -max(params.client_max_window_bits, 9))


def client_deflate(c: zlib._Compress, payload: bytes) -> bytes:
    data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(TAIL)
    return data[:-4]


# -- parse_extensions ---------------------------------------------------------------------


def test_parse_keeps_order_across_headers_and_commas() -> None:
    values = [
        "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame",
        "Permessage-Deflate ;Server_Max_Window_Bits = 10 ; server_no_context_takeover",
    ]
    assert parse_extensions(values) == [
        ("permessage-deflate", [("client_max_window_bits", None)]),
        ("x-webkit-deflate-frame", []),
        (
            "permessage-deflate",
            [("server_max_window_bits", "10"), ("server_no_context_takeover", None)],
        ),
    ]


def test_parse_quoted_string_values_and_empty_elements() -> None:
    assert parse_extensions([' , foo; a="1\\0"; b=x ,, bar ,', ""]) == [
        ("foo", [("a", "10"), ("b", "x")]),
        ("bar", []),
    ]
    assert parse_extensions([]) == []


@pytest.mark.parametrize(
    "value",
    [
        "permessage-deflate;",
        "; server_no_context_takeover",
        "permessage-deflate server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=",
        'permessage-deflate; server_max_window_bits="10',
        'permessage-deflate; server_max_window_bits="1 0"',
        'permessage-deflate; server_max_window_bits=""',
        "permessage-deflate; a=b=c",
        "permessage-deflate; é",
    ],
)
def test_parse_grammar_errors_answer_400(value: str) -> None:
    with pytest.raises(HttpProtocolError) as info:
        parse_extensions([value])
    assert info.value.status == 400
    with pytest.raises(HttpProtocolError):
        negotiate([value])


# -- negotiate ----------------------------------------------------------------------------


def test_no_offer_or_only_other_extensions_gives_none() -> None:
    assert negotiate([]) is None
    assert negotiate([""]) is None
    assert negotiate(["x-webkit-deflate-frame", "foo; bar=1"]) is None


def test_default_config_answers_a_bare_offer() -> None:
    assert negotiate(["permessage-deflate"]) == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=12",
        DeflateParams(True, True, 12, 15),
    )


def test_chromium_offer_with_default_config() -> None:
    # What Chromium and Firefox send.
    assert negotiate(["permessage-deflate; client_max_window_bits"]) == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=12; client_max_window_bits=12",
        DeflateParams(True, True, 12, 12),
    )


def test_other_extensions_are_skipped() -> None:
    result = negotiate(["x-webkit-deflate-frame, permessage-deflate", "foo"], NEUTRAL)
    assert result == ("permessage-deflate", DeflateParams(False, False, 15, 15))


@pytest.mark.parametrize(
    ("offer", "response", "params"),
    [
        ("permessage-deflate", "permessage-deflate", (False, False, 15, 15)),
        (
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate",
            (False, False, 15, 15),
        ),
        (
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover",
            (True, False, 15, 15),
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate; client_no_context_takeover",
            (False, True, 15, 15),
        ),
        (
            "permessage-deflate; client_max_window_bits=10",
            "permessage-deflate; client_max_window_bits=10",
            (False, False, 15, 10),
        ),
        (
            "permessage-deflate; client_max_window_bits=8",
            "permessage-deflate; client_max_window_bits=8",
            (False, False, 15, 8),
        ),
        (
            'permessage-deflate; server_max_window_bits="11"',
            "permessage-deflate; server_max_window_bits=11",
            (False, False, 11, 15),
        ),
        (
            "permessage-deflate; server_max_window_bits=15",
            "permessage-deflate; server_max_window_bits=15",
            (False, False, 15, 15),
        ),
    ],
)
def test_neutral_config_agrees_to_exactly_the_offer(
    offer: str, response: str, params: tuple[bool, bool, int, int]
) -> None:
    assert negotiate([offer], NEUTRAL) == (response, DeflateParams(*params))


@pytest.mark.parametrize("bits", range(9, 16))
def test_server_max_window_bits_9_to_15(bits: int) -> None:
    offer = [f"permessage-deflate; server_max_window_bits={bits}"]
    assert negotiate(offer, NEUTRAL) == (
        f"permessage-deflate; server_max_window_bits={bits}",
        DeflateParams(False, False, bits, 15),
    )
    # The default config's own limit (12) wins when it is smaller (section 7.1.2.1).
    result = negotiate(offer)
    assert result is not None
    assert result[1].server_max_window_bits == min(bits, 12)
    assert result[0].endswith(f"server_max_window_bits={min(bits, 12)}")


def test_server_max_window_bits_8_is_accepted_and_only_safe_messages_compressed() -> None:
    # zlib cannot compress with a raw 8-bit window, but section 6 lets the server send any
    # message uncompressed: it agrees, and compresses only what an 8-bit window reads.
    result = negotiate(["permessage-deflate; server_max_window_bits=8"], NEUTRAL)
    assert result == (
        "permessage-deflate; server_max_window_bits=8",
        DeflateParams(False, False, 8, 15),
    )
    takeover = PerMessageDeflate(DeflateParams(False, False, 8, 15))
    assert not takeover.compressible(10)  # context may reach past 256 bytes: never
    fresh = PerMessageDeflate(DeflateParams(True, False, 8, 15))
    assert fresh.compressible(256)
    assert not fresh.compressible(257)
    message = (b"abcdefgh" * 32)[:256]
    decompressor = zlib.decompressobj(-8)  # what a client with an 8-bit window uses
    assert decompressor.decompress(fresh.deflate(message) + b"\x00\x00\xff\xff") == message
    assert shared_deflate(message * 2, DeflateParams(True, False, 8, 15)) is None
    assert shared_deflate(message, DeflateParams(True, False, 8, 15)) is not None


@pytest.mark.parametrize(
    ("offered", "configured", "answered"),
    [(None, 12, 12), (10, 12, 10), (14, 12, 12), (8, 9, 8), (None, 15, None), (15, 15, 15)],
)
def test_client_max_window_bits_request(
    offered: int | None, configured: int, answered: int | None
) -> None:
    value = "" if offered is None else f"={offered}"
    config = DeflateConfig(client_max_window_bits=configured, client_no_context_takeover=False)
    result = negotiate([f"permessage-deflate; client_max_window_bits{value}"], config)
    assert result is not None
    response, params = result
    if answered is None:
        assert "client_max_window_bits" not in response
        assert params.client_max_window_bits == 15
    else:
        assert response.endswith(f"; client_max_window_bits={answered}")
        assert params.client_max_window_bits == answered


def test_client_max_window_bits_never_answered_when_not_offered() -> None:
    # Section 7.1.2.2: the server must not include it when the offer did not.
    result = negotiate(["permessage-deflate"], DeflateConfig(client_max_window_bits=9))
    assert result is not None
    assert "client_max_window_bits" not in result[0]
    assert result[1].client_max_window_bits == 15


@pytest.mark.parametrize(
    "bad",
    [
        "permessage-deflate; foo",
        "permessage-deflate; foo=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover=1",
        'permessage-deflate; client_no_context_takeover="x"',
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=99",
    ],
)
def test_invalid_offers_are_declined_not_failed(bad: str) -> None:
    # RFC 7692 section 7: "A server MUST decline an extension negotiation offer for this
    # extension if" a parameter is unknown, has an invalid value or appears twice.
    assert negotiate([bad]) is None
    result = negotiate([bad, "permessage-deflate; client_no_context_takeover"], NEUTRAL)
    assert result == ("permessage-deflate; client_no_context_takeover", DeflateParams(False, True))


def _autobahn_offer(no_context_takeover: bool, max_window_bits: int) -> str:
    """Autobahn's fuzzingclient offer (cases 12.x / 13.x): it accepts both client
    parameters and requests the server ones given as (requestNoContextTakeover,
    requestMaxWindowBits), 0 meaning not requested."""
    parts = ["permessage-deflate", "client_no_context_takeover", "client_max_window_bits"]
    if no_context_takeover:
        parts.append("server_no_context_takeover")
    if max_window_bits:
        parts.append(f"server_max_window_bits={max_window_bits}")
    return "; ".join(parts)


@pytest.mark.parametrize("nct", [False, True])
@pytest.mark.parametrize("bits", [0, 9, 10, 11, 12, 13, 14, 15])
def test_autobahn_offers_are_accepted(nct: bool, bits: int) -> None:
    for config in (DeflateConfig(), NEUTRAL):
        result = negotiate([_autobahn_offer(nct, bits)], config)
        assert result is not None
        response, params = result
        assert params.server_no_context_takeover == (nct or config.server_no_context_takeover)
        assert params.client_no_context_takeover  # the client offered it: agreed
        expected_bits = min(bits or 15, config.server_max_window_bits)
        assert params.server_max_window_bits == expected_bits
        assert parse_extensions([response])[0][0] == "permessage-deflate"


def test_autobahn_multiple_offers_first_is_taken() -> None:
    # Case 13.7.x offers [(True, 8), (True, 0), (False, 0)]: the first is acceptable (an
    # 8-bit server window is agreed; long messages then go uncompressed).
    offers = ", ".join(
        [_autobahn_offer(True, 8), _autobahn_offer(True, 0), _autobahn_offer(False, 0)]
    )
    result = negotiate([offers], NEUTRAL)
    assert result == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=8",
        DeflateParams(True, True, 8, 15),
    )


@pytest.mark.parametrize(
    "client_kwargs",
    [
        {},
        {"client_max_window_bits": None},
        {"client_max_window_bits": 10},
        {"server_no_context_takeover": True},
        {"client_no_context_takeover": True},
        {"server_max_window_bits": 10, "client_max_window_bits": 11},
    ],
)
@pytest.mark.parametrize("config", [DeflateConfig(), NEUTRAL], ids=["default", "neutral"])
def test_responses_satisfy_a_strict_client_and_interoperate(
    client_kwargs: dict[str, object], config: DeflateConfig
) -> None:
    """python-websockets' client validates the response and then talks to us."""
    factory = ClientPerMessageDeflateFactory(**client_kwargs)  # type: ignore[arg-type]
    offer = "; ".join(
        ["permessage-deflate"]
        + [n if v is None else f"{n}={v}" for n, v in factory.get_request_params()]
    )
    result = negotiate([offer], config)
    assert result is not None
    response, params = result
    [(name, response_params)] = parse_extensions([response])
    assert name == "permessage-deflate"
    client_ext = factory.process_response_params(response_params, [])  # raises if invalid
    server = PerMessageDeflate(params, config)
    for i in range(5):
        payload = TEXT + str(i).encode()
        # server -> client
        frame = client_ext.decode(WsFrame(Opcode.TEXT, server.deflate(payload), rsv1=True))
        assert frame.data == payload
        # client -> server
        sent = client_ext.encode(WsFrame(Opcode.TEXT, payload))
        assert sent.rsv1
        assert server.inflate(bytes(sent.data), True, MiB) == payload


# -- DeflateConfig ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("compression_level", 0),
        ("compression_level", 10),
        ("compression_level", True),
        ("memory_level", 0),
        ("memory_level", 10),
        ("server_max_window_bits", 8),
        ("server_max_window_bits", 16),
        ("server_max_window_bits", 12.0),
        ("client_max_window_bits", 8),
        ("client_max_window_bits", 16),
        ("server_no_context_takeover", 1),
        ("client_no_context_takeover", None),
        ("min_size", -1),
    ],
)
def test_config_validates_ranges(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        DeflateConfig(**{field: value})  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_config_defaults() -> None:
    config = DeflateConfig()
    assert (config.compression_level, config.memory_level, config.server_max_window_bits) == (
        1,
        5,
        12,
    )
    assert config.server_no_context_takeover and config.client_no_context_takeover
    assert (config.client_max_window_bits, config.min_size) == (12, 64)
    assert DeflateConfig(client_max_window_bits=None).client_max_window_bits is None


def test_params_key_groups_by_what_the_server_sends() -> None:
    a = DeflateParams(True, False, 12, 15)
    assert a.key == DeflateParams(True, True, 12, 9).key  # client side does not matter
    assert a.key != DeflateParams(True, False, 11, 15).key
    assert a.key != DeflateParams(False, False, 12, 15).key
    assert hash(a.key) == hash(DeflateParams(True, True, 12, 9).key)


# -- deflate (server -> client) ----------------------------------------------------------


def test_rfc_7692_hello_compresses_byte_for_byte() -> None:
    pmd = PerMessageDeflate(TAKEOVER_PARAMS, TAKEOVER)
    assert pmd.deflate(b"Hello") == HELLO
    # 7.2.3.2: the second "Hello" refers to the first through the shared window.
    assert pmd.deflate(b"Hello") == HELLO_AGAIN


def test_server_no_context_takeover_compresses_each_message_afresh() -> None:
    pmd = PerMessageDeflate(NCT_PARAMS, TAKEOVER)
    assert pmd.deflate(b"Hello") == HELLO
    assert pmd.deflate(b"Hello") == HELLO


def test_empty_message_compresses_to_one_zero_byte() -> None:
    for params in (TAKEOVER_PARAMS, NCT_PARAMS):
        pmd = PerMessageDeflate(params, TAKEOVER)
        assert pmd.deflate(b"") == b"\x00"
        pmd.deflate(TEXT)
        assert pmd.deflate(b"") == b"\x00"
        assert zlib.decompressobj(-15).decompress(b"\x00" + TAIL) == b""


@pytest.mark.parametrize("server_nct", [False, True])
@pytest.mark.parametrize("bits", [9, 12, 15])
def test_client_inflates_what_we_deflate(server_nct: bool, bits: int) -> None:
    params = DeflateParams(server_nct, False, bits, 15)
    pmd = PerMessageDeflate(params, DeflateConfig())
    d = client_decompressor(params)
    payloads = [TEXT, b"", TEXT[:10], os.urandom(3000), TEXT * 50, b"Hello", b"Hello"]
    for payload in payloads:
        if server_nct:
            d = client_decompressor(params)  # a client resets too (7.1.1.1)
        assert d.decompress(pmd.deflate(payload) + TAIL) == payload


def test_context_takeover_compresses_repeats_smaller() -> None:
    takeover = PerMessageDeflate(TAKEOVER_PARAMS)
    afresh = PerMessageDeflate(NCT_PARAMS)
    takeover.deflate(TEXT)
    afresh.deflate(TEXT)
    assert len(takeover.deflate(TEXT)) < len(afresh.deflate(TEXT)) // 4


def test_shared_deflate_equals_every_connections_bytes() -> None:
    params = DeflateParams(True, True, 12, 15)
    config = DeflateConfig()
    shared = shared_deflate(TEXT, params, config)
    assert shared is not None
    conns = [
        PerMessageDeflate(DeflateParams(True, c, 12, b), config)
        for c in (False, True)
        for b in (9, 15)
    ]
    for conn in conns:
        conn.deflate(b"something else first")
        assert conn.deflate(TEXT) == shared
    assert client_decompressor(params).decompress(shared + TAIL) == TEXT
    assert shared_deflate(TEXT, DeflateParams(False, True, 12, 15), config) is None


# -- inflate (client -> server) ----------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [HELLO, HELLO_STORED, HELLO_BFINAL, HELLO_TWO_BLOCKS],
    ids=["7.2.3.1", "7.2.3.3", "7.2.3.4", "7.2.3.5"],
)
def test_rfc_7692_examples_inflate(data: bytes) -> None:
    pmd = PerMessageDeflate(TAKEOVER_PARAMS)
    assert pmd.inflate(data, True, 100) == b"Hello"
    assert pmd.inflate(HELLO, True, 100) == b"Hello"  # the next message still works


def test_rfc_7692_fragmented_example() -> None:
    # 7.2.3.1, second part: the same message in two fragments
    pmd = PerMessageDeflate(TAKEOVER_PARAMS)
    assert (
        pmd.inflate(bytes.fromhex("f248cd"), False, 100)
        + pmd.inflate(bytes.fromhex("c9c90700"), True, 100)
        == b"Hello"
    )


def test_shared_window_needs_client_context_takeover() -> None:
    takeover = PerMessageDeflate(TAKEOVER_PARAMS)
    assert takeover.inflate(HELLO, True, 100) == b"Hello"
    assert takeover.inflate(HELLO_AGAIN, True, 100) == b"Hello"  # 7.2.3.2
    # With client_no_context_takeover agreed the window is dropped after each message, so
    # a reference into the previous message is invalid data.
    afresh = PerMessageDeflate(DeflateParams(False, True, 15, 15))
    assert afresh.inflate(HELLO, True, 100) == b"Hello"
    with pytest.raises(ValueError):
        afresh.inflate(HELLO_AGAIN, True, 100)


@pytest.mark.parametrize("client_nct", [False, True])
@pytest.mark.parametrize(
    "second", [TEXT[::-1], TEXT, os.urandom(200)], ids=["text", "repeat", "random"]
)
def test_inflate_split_at_every_byte_boundary(client_nct: bool, second: bytes) -> None:
    """The second message of a connection, cut in two fragments at every byte."""
    params = DeflateParams(False, client_nct, 15, 12)
    c = client_compressor(params)
    first = client_deflate(c, TEXT)
    if client_nct:
        c = client_compressor(params)
    data = client_deflate(c, second)
    for cut in range(len(data) + 1):
        pmd = PerMessageDeflate(params)
        assert pmd.inflate(first, True, MiB) == TEXT
        head = pmd.inflate(data[:cut], False, MiB)
        assert head + pmd.inflate(data[cut:], True, MiB - len(head)) == second


def test_inflate_byte_by_byte() -> None:
    pmd = PerMessageDeflate(TAKEOVER_PARAMS)
    c = client_compressor(TAKEOVER_PARAMS)
    for payload in (TEXT, TEXT, b"", b"x"):
        data = client_deflate(c, payload)
        out = b"".join(pmd.inflate(data[i : i + 1], False, MiB) for i in range(len(data)))
        assert out + pmd.inflate(b"", True, MiB) == payload


def test_limit_is_exact() -> None:
    data = client_deflate(client_compressor(NCT_PARAMS), TEXT)
    assert PerMessageDeflate(NCT_PARAMS).inflate(data, True, len(TEXT)) == TEXT
    with pytest.raises(OverflowError):
        PerMessageDeflate(NCT_PARAMS).inflate(data, True, len(TEXT) - 1)
    with pytest.raises(OverflowError):
        PerMessageDeflate(NCT_PARAMS).inflate(data, True, 0)


def _bomb(size: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(MiB)
    parts = [c.compress(chunk) for _ in range(size // MiB)]
    parts.append(c.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(parts)[:-4]


def test_bomb_is_stopped_at_the_limit_without_allocating_it() -> None:
    bomb = _bomb(100 * MiB)
    assert len(bomb) < 110 * KiB  # deflate's best ratio is about 1:1000
    pmd = PerMessageDeflate(TAKEOVER_PARAMS)
    gc.collect()
    tracemalloc.start()
    try:
        with pytest.raises(OverflowError):
            pmd.inflate(bomb, True, MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * MiB


def test_bomb_in_fragments_is_stopped_by_the_remaining_limit() -> None:
    bomb = _bomb(100 * MiB)
    pmd = PerMessageDeflate(TAKEOVER_PARAMS)
    limit = MiB
    tracemalloc.start()
    try:
        with pytest.raises(OverflowError):
            for pos in range(0, len(bomb), KiB):
                limit -= len(pmd.inflate(bomb[pos : pos + KiB], False, limit))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * MiB
    assert pos < 10 * KiB  # stopped within the first few fragments


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xff\xff\xff",  # BTYPE 11: reserved
        bytes.fromhex("0005 00 0000 48656c6c6f"),  # stored block with LEN != ~NLEN
    ],
)
def test_bad_data_raises_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        PerMessageDeflate(TAKEOVER_PARAMS).inflate(data, True, MiB)


def test_a_message_without_compressed_bytes_is_empty_and_harmless() -> None:
    pmd = PerMessageDeflate(TAKEOVER_PARAMS)
    assert pmd.inflate(HELLO, True, MiB) == b"Hello"
    assert pmd.inflate(b"", True, MiB) == b""
    assert pmd.inflate(b"", False, MiB) + pmd.inflate(b"", True, MiB) == b""
    assert pmd.inflate(HELLO_AGAIN, True, MiB) == b"Hello"  # the window is intact


def test_reference_before_the_start_is_bad_data() -> None:
    # HELLO_AGAIN without the first message: distance too far back
    with pytest.raises(ValueError):
        PerMessageDeflate(TAKEOVER_PARAMS).inflate(HELLO_AGAIN, True, MiB)


def test_data_after_a_final_block_is_bad_data() -> None:
    pmd = PerMessageDeflate(TAKEOVER_PARAMS)
    with pytest.raises(ValueError, match="final"):
        pmd.inflate(HELLO_BFINAL + HELLO, True, MiB)
    pmd = PerMessageDeflate(TAKEOVER_PARAMS)
    assert pmd.inflate(HELLO_BFINAL, False, MiB) == b"Hello"
    with pytest.raises(ValueError):
        pmd.inflate(HELLO, True, MiB)


@pytest.mark.parametrize("client_nct", [False, True])
@pytest.mark.parametrize("bits", [8, 9, 12, 15])
def test_we_inflate_what_a_client_deflates(client_nct: bool, bits: int) -> None:
    params = DeflateParams(False, client_nct, 15, bits)
    pmd = PerMessageDeflate(params)
    c = client_compressor(params, level=9)
    for payload in [TEXT, b"", TEXT * 30, os.urandom(5000), TEXT]:
        if client_nct:
            c = client_compressor(params, level=9)
        assert pmd.inflate(client_deflate(c, payload), True, MiB) == payload


def test_inflate_window_is_at_least_9_bits() -> None:
    # A zlib client asked for 8 bits may really use 9 (madler/zlib#171): still readable,
    # also when the match reaches back into an earlier fragment (through the window).
    params = DeflateParams(False, False, 15, 8)
    c = zlib.compressobj(9, zlib.DEFLATED, -9)
    payload = os.urandom(300) * 3  # matches at distance 300 > 256
    data = client_deflate(c, payload)
    pmd = PerMessageDeflate(params)
    out = b"".join(pmd.inflate(data[i : i + 16], False, MiB) for i in range(0, len(data), 16))
    assert out + pmd.inflate(b"", True, MiB) == payload


# -- memory ------------------------------------------------------------------------------


def _retained_per_connection(params: DeflateParams, config: DeflateConfig, n: int = 200) -> float:
    """Bytes each connection keeps after one message each way."""
    client_c = client_compressor(params)
    incoming = client_deflate(client_c, TEXT)
    gc.collect()
    tracemalloc.start()
    try:
        conns = [PerMessageDeflate(params, config) for _ in range(n)]
        for conn in conns:
            conn.deflate(TEXT)
            conn.inflate(incoming, True, MiB)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(conns) == n
    return current / n


def test_idle_connections_keep_no_zlib_state_without_context_takeover() -> None:
    config = DeflateConfig()
    params = DeflateParams(True, True, 12, 12)
    assert _retained_per_connection(params, config) < 1 * KiB


def test_context_takeover_keeps_the_zlib_state() -> None:
    config = DeflateConfig(server_no_context_takeover=False, client_no_context_takeover=False)
    params = DeflateParams(False, False, 12, 12)
    # about 38 KiB (compressor 2**12 / memLevel 5) + 11 KiB (decompressor 2**12)
    assert 40 * KiB < _retained_per_connection(params, config, 50) < 64 * KiB


def test_zlib_objects_are_created_lazily() -> None:
    params = DeflateParams(False, False, 15, 15)
    gc.collect()
    tracemalloc.start()
    try:
        conns = [PerMessageDeflate(params) for _ in range(100)]
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(conns) == 100
    assert current / 100 < 512


# -- through the protocol core ------------------------------------------------------------


def test_the_parser_inflates_with_us() -> None:
    ws = WebSocket(1, inflater=PerMessageDeflate(TAKEOVER_PARAMS))
    stream = encode_frame(WEBSOCKET_OPCODE_TEXT, HELLO, True, 0x40, MASK) + encode_frame(
        WEBSOCKET_OPCODE_TEXT, HELLO_AGAIN[:2], False, 0x40, MASK
    )
    stream += encode_frame(0, HELLO_AGAIN[2:], True, 0, MASK)
    events = ws.receive_data(stream)
    assert all(isinstance(e, Frame) for e in events)
    frames = [e for e in events if isinstance(e, Frame)]
    assert [f.data for f in frames] == ["Hello", "Hello"]
    assert all(f.flags & SWOOLE_WEBSOCKET_FLAG_COMPRESS for f in frames)


def test_the_parser_fails_a_bomb_with_1009_and_bad_data_with_1007() -> None:
    ws = WebSocket(1, max_message_size=MiB, inflater=PerMessageDeflate(TAKEOVER_PARAMS))
    assert ws.receive_data(encode_frame(2, _bomb(8 * MiB), True, 0x40, MASK)) == []
    assert ws.state == CLOSED
    assert ws.close_code == 1009
    ws = WebSocket(1, inflater=PerMessageDeflate(TAKEOVER_PARAMS))
    assert ws.receive_data(encode_frame(2, b"\xff\xff", True, 0x40, MASK)) == []
    assert ws.close_code == 1007
