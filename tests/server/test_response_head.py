"""Tests of pyswoole.server.response_head: a head made from the cache is byte for byte the
head made afresh, and what decides a head (status, headers, method, framing, keep-alive,
Connection: close) is in its key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pyswoole.server import response_head
from pyswoole.server.response import Response
from tests.server.test_response import FakeWriter


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    response_head._CACHE.clear()
    yield
    response_head._CACHE.clear()


def answer(
    body: bytes = b"hi",
    *,
    method: str = "GET",
    keep_alive: bool = True,
    status: int = 200,
    headers: tuple[tuple[str, object], ...] = (("Content-Type", "text/plain"),),
    cookie: bool = False,
) -> tuple[bytes, Response, FakeWriter]:
    writer = FakeWriter()
    response = Response(1, writer, method=method, keep_alive=keep_alive)
    response.status(status)
    for key, value in headers:
        response.header(key, value)  # type: ignore[arg-type]
    if cookie:
        response.cookie("a", "b")
    response.end(body)
    return writer.data, response, writer


def fresh(**kwargs: object) -> bytes:
    response_head._CACHE.clear()
    data = answer(**kwargs)[0]  # type: ignore[arg-type]
    response_head._CACHE.clear()
    return data


CASES: list[dict[str, object]] = [
    {},
    {"body": b""},
    {"body": b"x" * 1000},
    {"method": "HEAD"},
    {"method": "HEAD", "body": b""},
    {"keep_alive": False},
    {"status": 204, "body": b""},
    {"status": 304, "body": b""},
    {"status": 404, "body": b"no"},
    {"headers": ()},
    {"headers": (("Server", "mine"), ("Date", "Tue, 14 Nov 2023 22:13:20 GMT"))},
    {"headers": (("Connection", "close"),)},
    {"headers": (("X-Name", "caf\u00e9"),)},
    {"headers": (("X-Name", "\u20ac"),)},
    {"headers": (("X-Many", ["1", "2"]),)},
    {"cookie": True},
]


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_a_cached_head_is_the_head_made_afresh(case: dict[str, object]) -> None:
    expected = fresh(**case)
    first = answer(**case)[0]  # type: ignore[arg-type]
    second, response, writer = answer(**case)  # type: ignore[arg-type]
    assert first == second == expected
    assert writer.finished == [(response, response.keep_alive)]


def test_connection_close_ends_keep_alive_on_a_cache_hit_too() -> None:
    for _ in range(2):
        data, response, writer = answer(headers=(("Connection", "close"),))
        assert response.keep_alive is False
        assert writer.finished[0][1] is False
        assert b"Connection: close\r\n" in data
    assert len(response_head._CACHE) == 1


def test_the_length_and_the_date_are_not_cached() -> None:
    short = answer(b"a")[0]
    long = answer(b"abc")[0]
    assert b"Content-Length: 1\r\n" in short
    assert b"Content-Length: 3\r\n" in long
    assert len(response_head._CACHE) == 1
    response_head._date_line = (0, b"")  # a new second
    assert b"Date: " in answer(b"a")[0]


def test_what_decides_a_head_is_in_its_key() -> None:
    answer()
    answer(status=201)
    answer(method="HEAD")
    answer(keep_alive=False)
    answer(headers=(("Content-Type", "text/html"),))
    assert len(response_head._CACHE) == 5


def test_cookies_and_multi_valued_headers_are_not_cached() -> None:
    answer(cookie=True)
    answer(headers=(("X-Many", ["1", "2"]),))
    assert response_head._CACHE == {}


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(response_head, "_CACHE_MAX", 4)
    for i in range(10):
        answer(headers=(("X-Request", str(i)),))
        assert len(response_head._CACHE) <= 4
