"""Swoole's lifecycle events in one process: start, workerStart, beforeShutdown (before the
graceful stop begins), workerStop, shutdown -- in that order."""

from __future__ import annotations

import threading

from pyswoole import WebSocketServer

TIMEOUT = 5.0


def test_one_process_lifecycle_order() -> None:
    server = WebSocketServer("127.0.0.1", 0)
    seen: list[str] = []
    server.on("message", lambda server, frame: None)
    for event in ("start", "workerStart", "beforeShutdown", "workerStop", "shutdown"):
        server.on(event, lambda *args, event=event: seen.append(event))

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        seen.append("workerStart")
        server.shutdown()

    thread = threading.Thread(target=server.start)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert seen == ["start", "workerStart", "beforeShutdown", "workerStop", "shutdown"]
