"""``server/access_log.py``: the writer that counts a response's bytes and logs its line
(the real server's lines: tests/integration/test_cli.py)."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from pyswoole.server.access_log import access_writer, request_writer
from pyswoole.server.response import Response


class Sink:
    """A ResponseWriter that keeps what it is given."""

    def __init__(self) -> None:
        self.data = b""
        self.files: list[tuple[str, int, int]] = []
        self.finished = 0
        self.closed = False

    def write_response(self, data: bytes) -> bool:
        self.data += data
        return True

    def send_file(self, path: str, offset: int, length: int) -> bool:
        self.files.append((path, offset, length))
        return True

    def finish_response(self, response: Response, keep_alive: bool) -> None:
        self.finished += 1

    def close(self) -> None:
        self.closed = True


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pyswoole.access"]


def test_a_response_is_logged_once_with_its_status_and_bytes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pyswoole.access")
    sink = Sink()
    writer = access_writer(sink, 7, "10.0.0.1:5000", "POST", "/a?b=1", "1.1")
    response = Response(7, writer)  # type: ignore[arg-type]
    response.status(404)
    response.end("not here")
    assert sink.finished == 1 and sink.data.endswith(b"not here")
    (line,) = access_lines(caplog)
    expected = rf'10\.0\.0\.1:5000 fd 7 "POST /a\?b=1 HTTP/1\.1" 404 {len(sink.data)} [\d.]+ms'
    assert re.fullmatch(expected, line), line


def test_a_file_counts_its_length_and_other_calls_reach_the_writer(
    caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    caplog.set_level(logging.INFO, logger="pyswoole.access")
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100_000)
    sink = Sink()
    writer = access_writer(sink, 1, "-", "GET", "/f.bin", "1.1")
    writer.close()  # type: ignore[attr-defined]
    assert sink.closed
    response = Response(1, writer)  # type: ignore[arg-type]
    assert response.sendfile(str(path))
    (line,) = access_lines(caplog)
    assert line.startswith(f'- fd 1 "GET /f.bin HTTP/1.1" 200 {len(sink.data) + 100_000} ')


class _Request:
    fd = 9
    server = {
        "request_method": "GET",
        "request_uri": "/x",
        "query_string": "q=2",
        "remote_addr": "::1",
        "remote_port": 4000,
    }


def test_a_process_mode_response_is_described_from_the_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pyswoole.access")
    response = Response(9, request_writer(Sink(), _Request(), "1.0"))  # type: ignore[arg-type]
    response.end()
    (line,) = access_lines(caplog)
    assert line.startswith('[::1]:4000 fd 9 "GET /x?q=2 HTTP/1.0" 200 ')
