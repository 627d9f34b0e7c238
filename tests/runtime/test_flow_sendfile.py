"""Flow control of ``Response.sendfile`` (runtime/http_phase.py ``_stream_file``).

A file is streamed in chunks; while it streams the transport's marks are a small window
(``FILE_WINDOW``, runtime/flow.py), and the stream waits for the transport to drain below it
before reading the next chunk. So a client that asks for a big file and never reads makes
the server hold about one window plus one chunk of it, not the file (issue 11: "this must
hold on every write path ... HTTP pipelining and sendfile"). Requests pipelined behind the
download wait for it.

The connection runs over ``FlowTransport`` (tests/runtime/fakes.py), whose buffer only
shrinks when the test drains it: the kernel of a client that does not read.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pyswoole.runtime.flow import FILE_WINDOW
from pyswoole.runtime.http_phase import _FILE_CHUNK
from tests.runtime.fakes import FlowHarness

FILE_SIZE = 8 * 1024 * 1024  # 32 file windows


async def settle(task: asyncio.Task[None] | None, turns: int = 20) -> None:
    """Let the stream run until it waits for the drain (or ends): a few loop turns."""
    for _ in range(turns):
        await asyncio.sleep(0)  # (a turn of the loop, not a time)
        if task is None or task.done():
            return


def test_a_file_for_a_client_that_does_not_read_is_held_one_window_at_a_time(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big.bin"
    content = bytes(range(256)) * (FILE_SIZE // 256)
    path.write_bytes(content)
    h = FlowHarness()
    requests: list[str] = []

    def on_request(request: Any, response: Any) -> None:
        requests.append(request.server["request_uri"])
        if request.server["request_uri"] == "/big":
            assert response.sendfile(str(path)) is True
        else:
            response.end(b"after")

    h.server.on("request", on_request)
    try:
        conn, t = h.connect()
        # the download, and a request pipelined behind it
        conn.data_received(
            b"GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        task = conn._file_task
        assert task is not None and requests == ["/big"]
        bound = FILE_WINDOW + _FILE_CHUNK + 1024  # (the head)
        assert bound < FILE_SIZE // 8  # (what the test can tell apart from the whole file)

        async def scenario() -> int:
            await settle(task)
            assert not task.done(), "the whole file was queued"
            assert 0 < t.buffered <= bound, t.buffered
            peak, rounds = t.buffered, 0
            while not task.done():
                rounds += 1
                assert rounds <= 1000, "the stream makes no progress"
                t.drain()  # the client reads what is queued
                await settle(task)
                peak = max(peak, t.buffered)
                assert requests == ["/big"] or task.done(), "the next request did not wait"
            return peak

        peak = h.run(scenario())
        assert peak <= bound, peak
        t.drain()
        head, _, rest = t.written.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: %d" % FILE_SIZE in head
        assert rest[:FILE_SIZE] == content  # whole and in order
        assert requests == ["/big", "/next"] and rest[FILE_SIZE:].endswith(b"after")
    finally:
        h.close()
