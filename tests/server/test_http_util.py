"""Tests of pyswoole.server.http_util: Swoole's reason table, the Date cache, safety checks."""

from __future__ import annotations

import re

import pytest

from pyswoole.server import http_util
from pyswoole.server.http_util import REASONS, UNKNOWN_REASON, error_response, http_date, unsafe


def test_reason_table_is_swooles() -> None:
    """src/protocol/http.cc get_status_message (where Python's http.HTTPStatus differs)."""
    assert REASONS[413] == "Payload Too Large" and REASONS[414] == "URI Too Long"
    assert REASONS[416] == "Range Not Satisfiable" and REASONS[306] == "(Unused)"
    assert 299 not in REASONS and UNKNOWN_REASON == "Unknown Status"
    assert error_response(299).startswith(b"HTTP/1.1 299 Unknown Status\r\n")


def test_http_date_cached_per_second(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_700_000_000.1]
    monkeypatch.setattr(http_util.time, "time", lambda: now[0])
    first = http_date()
    assert first == "Tue, 14 Nov 2023 22:13:20 GMT"
    now[0] += 0.5
    assert http_date() is first  # same second: the cached string
    now[0] += 1
    assert http_date() == "Tue, 14 Nov 2023 22:13:21 GMT"
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", http_date())


def test_unsafe() -> None:
    assert not unsafe("a b\tc")
    assert unsafe("a\r") and unsafe("a\nb") and unsafe("\0")
