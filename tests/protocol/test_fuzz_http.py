"""Property-based fuzzing of the HTTP/1.1 request parser (``pyswoole.protocol.http``).

* robustness: any bytes, cut anywhere, raise nothing but ``HttpProtocolError`` with a
  status of :data:`STATUSES`, and a failed parser keeps raising that same error;
* exactness: pipelines of generated well-formed requests (random methods, targets, field
  lines with random OWS, Content-Length and chunked bodies, Expect, upgrade requests),
  cut anywhere, parse to exactly the requests generated; an upgrade stops the parser with
  the rest of the bytes in ``trailing``;
* split invariance: damaged pipelines give the same requests and errors whole or cut;
* limits: a body over ``max_body_size`` is a 413 and a header section over
  ``max_header_size`` by the parser's count a 431, however the bytes arrive;
* the whole-head fast path (``_quick_upgrade``, with the compiled ``head_fields`` or its
  pure reference) gives what the callback parser gives.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import httptools
import pytest
from hypothesis import event as tally
from hypothesis import example, given
from hypothesis import strategies as st

from pyswoole.exceptions import HttpProtocolError
from pyswoole.protocol import frames, http
from pyswoole.protocol.http import HttpRequestParser, ParsedRequest, _quick_upgrade
from tests.protocol.strategies import (
    ExpectedRequest,
    budget,
    http_requests,
    http_streams,
    splits,
)

speedups: Any = importlib.import_module("pyswoole.protocol._speedups") if frames.SPEEDUPS else None

#: every status HttpRequestParser.feed may raise (see its docstring and on_headers_complete)
STATUSES = {400, 413, 417, 431, 501, 505}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass
class Parsed:
    requests: list[tuple[Any, ...]]
    status: int | None  # the error, if any
    trailing: bytes
    upgraded: bool
    interim: bytes


def fields(r: ParsedRequest) -> tuple[Any, ...]:
    return (
        r.method,
        r.target,
        r.version,
        r.headers,
        r.body,
        r.keep_alive,
        r.upgrade,
        *(r.path, r.query),
    )


def parse(chunks: list[bytes], **limits: int) -> Parsed:
    """A fresh parser fed ``chunks``; fails the test on any exception but the defined one."""
    parser = HttpRequestParser(**limits)
    requests: list[tuple[Any, ...]] = []
    for chunk in chunks:
        try:
            got = parser.feed(chunk)
        except HttpProtocolError as error:
            assert error.status in STATUSES, error
            for later in (b"", b"GET / HTTP/1.1\r\n\r\n"):  # dead: the same error again
                with pytest.raises(HttpProtocolError) as again:
                    parser.feed(later)
                assert again.value is error
            return Parsed(requests, error.status, parser.trailing, parser.upgraded, b"")
        assert type(got) is list and all(type(r) is ParsedRequest for r in got)
        assert not (got and parser.upgraded and not got[-1].upgrade)
        requests.extend(fields(r) for r in got)
    return Parsed(requests, None, parser.trailing, parser.upgraded, parser.interim)


# -- robustness ---------------------------------------------------------------------------------


@given(
    st.binary(max_size=300) | st.builds(bytes.__add__, st.just(b"GET / HTTP/1.1\r\n"), st.binary()),
    st.sampled_from([{}, {"max_header_size": 40}, {"max_body_size": 3}]),
    st.data(),
)
@example(b"\r\n" * 50, {}, None)
def test_random_bytes_raise_only_protocol_errors(
    data: bytes, limits: dict[str, int], draw: st.DataObject | None
) -> None:
    chunks = [data] if draw is None else draw.draw(splits(data))
    parse(chunks, **limits)


@budget(1)
@given(http_streams(), st.data())
def test_damaged_pipelines_raise_only_protocol_errors(data: bytes, draw: st.DataObject) -> None:
    limits = draw.draw(
        st.sampled_from(
            [{}, {}, {"max_header_size": 60}, {"max_body_size": 8}, {"max_body_size": 0}]
        )
    )
    parse(draw.draw(splits(data)), **limits)


# -- exactness ---------------------------------------------------------------------------------


def expected_fields(r: ExpectedRequest) -> tuple[Any, ...]:
    path, _, query = r.target.partition("?")
    if path.startswith("http://"):
        slash = path.find("/", len("http://"))
        path = path[slash:] if slash >= 0 else "/"
    return (
        r.method,
        r.target,
        r.version,
        r.headers,
        r.body,
        r.keep_alive,
        r.upgrade,
        *(path, query),
    )


@budget(1)
@given(st.lists(http_requests(), min_size=1, max_size=4), st.data())
def test_generated_requests_parse_exactly(
    requests: list[ExpectedRequest], data: st.DataObject
) -> None:
    """Well-formed pipelined requests come out exactly as generated, however they are cut.
    The pipeline ends with the first upgrade request (the bytes after its head trail) or the
    first one that does not keep the connection alive (llhttp refuses anything after it)."""
    expected: list[ExpectedRequest] = []
    for r in requests:
        expected.append(r)
        if r.upgrade or not r.keep_alive:
            break
    wire = b"".join(r.wire for r in expected)
    upgraded = expected[-1].upgrade
    tail = data.draw(st.binary(max_size=10)) if upgraded else b""
    got = parse(data.draw(splits(wire + tail)))
    assert got.requests == [expected_fields(r) for r in expected]
    assert (got.status, got.upgraded, got.trailing) == (None, upgraded, tail)
    assert got.interim == CONTINUE * sum(r.expects_continue and not r.upgrade for r in expected)


# -- split invariance ------------------------------------------------------------------------


@budget(1)
@given(http_streams(), st.data())
def test_split_invariance(data: bytes, draw: st.DataObject) -> None:
    """Damaged pipelines, default limits: the same error, trailing bytes and interim answers
    whole or cut. Requests completed in the read that fails are not returned (the parser is
    dead after an error, ``feed`` raises instead), so with an error the requests of the
    whole read are a prefix of those of the cut reads; without one they are equal."""
    whole = parse([data])
    tally(f"status {whole.status}, {len(whole.requests)} requests, upgraded {whole.upgraded}")
    cut = parse(draw.draw(splits(data)))
    assert (cut.status, cut.upgraded, cut.trailing) == (
        whole.status,
        whole.upgraded,
        whole.trailing,
    )
    if whole.status is None:
        assert cut == whole
    else:
        assert cut.requests[: len(whole.requests)] == whole.requests


# -- limits -------------------------------------------------------------------------------------


def counted_head_size(r: ExpectedRequest) -> int:
    """The header section's size as HttpRequestParser counts it (its callbacks see the
    request-target and each field's name and value): 20 + target + 4 + name + value per
    field. Whole or cut, a head counted over the limit is a 431."""
    return 20 + len(r.target) + sum(len(k) + len(v.encode("latin-1")) + 4 for k, v in r.headers)


@budget(1)
@given(http_requests(upgrade=False), st.integers(0, 600), st.data())
def test_limits_are_enforced_however_the_bytes_arrive(
    request: ExpectedRequest, max_header: int, data: st.DataObject
) -> None:
    """A head counted over ``max_header_size`` is a 431, one well under it (counted plus raw
    size within the limit: the parser estimates a head that is still arriving by its raw
    bytes) is not; then a body over ``max_body_size`` is a 413 and one within it parses."""
    max_body = data.draw(st.integers(0, 2 * len(request.body) + 2))
    got = parse(data.draw(splits(request.wire)), max_header_size=max_header, max_body_size=max_body)
    counted = counted_head_size(request)
    tally(f"status {got.status}")
    if counted > max_header:
        assert got.status == 431
        return
    if counted + request.head_len > max_header:
        assert got.status in (None, 413, 431)  # the estimate's margin: either may happen
        return
    if len(request.body) > max_body:
        assert got.status == 413
    else:
        assert got.status is None and got.requests == [expected_fields(request)]


# -- the whole-head fast path ---------------------------------------------------------------


def llhttp_upgrade_end(data: bytes) -> int | None:
    """Where llhttp ends the upgrade head that starts ``data`` (None if it does not)."""
    parser = httptools.HttpRequestParser(http._SILENT)
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade as upgrade:
        return int(upgrade.args[0])
    except httptools.HttpParserError:
        return None
    return None


@st.composite
def upgrade_reads(draw: st.DrawFn) -> tuple[bytes, ExpectedRequest | None]:
    """A first read that starts with an upgrade request (damaged or not), and what it is."""
    request = draw(http_requests(upgrade=True))
    data = request.wire + draw(st.binary(max_size=12))
    if draw(st.integers(0, 2)):
        return data, request
    damaged = draw(http_streams())
    return request.wire[: draw(st.integers(0, len(request.wire)))] + damaged, None


@budget(0.75)
@given(upgrade_reads())
def test_quick_upgrade_matches_the_callback_parser(read: tuple[bytes, Any]) -> None:
    """A first read holding a whole upgrade head takes the fast path; it must give what the
    callback parser gives (forced by feeding one byte first), damaged or not; a well-formed
    GET ... HTTP/1.1 upgrade within the limits does take it."""
    data, request = read
    whole = parse([data])
    assert parse([data[:1], data[1:]]) == whole
    if request is not None and request.version == "1.1":
        quick = _quick_upgrade(data, 65536)
        assert quick is not None
        assert fields(quick[0]) == expected_fields(request)
        assert quick[1] == request.head_len


@budget(0.75)
@given(upgrade_reads())
def test_head_fields_compiled_matches_pure(read: tuple[bytes, Any]) -> None:
    """On heads llhttp validated: the pure ``_head_fields_py`` cuts a generated upgrade head
    into exactly its target and fields, and the compiled ``head_fields`` (when this build
    has it) gives what the pure one gives, for every validated head."""
    data, request = read
    end = llhttp_upgrade_end(data)
    if request is not None:
        assert end == request.head_len
        cut = http._head_fields_py(data, end)
        if request.version == "1.1":
            assert cut == (request.target, request.headers)
        else:
            assert cut is None
    if end is not None and speedups is not None:
        assert speedups.head_fields(data, end) == http._head_fields_py(data, end)
