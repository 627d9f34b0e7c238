"""What both multi-process test programs share: their stdout event lines and JSON replies.

Each program runs as a script, so this module is imported from the programs' folder.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pyswoole import WebSocketServer


def emit(*parts: object) -> None:
    """One stdout line, one write() (atomic on a pipe), never buffered across fork()."""
    os.write(1, (" ".join(str(p) for p in parts) + "\n").encode())


def reply(server: WebSocketServer, fd: int, command: str, /, **fields: Any) -> bool:
    return server.push(fd, json.dumps({"re": command, **fields}))


def emit_lifecycle(server: WebSocketServer) -> None:
    """Print the lifecycle events the tests wait for: READY <port>, managerStop, shutdown,
    beforeShutdown, beforeReload, afterReload, workerStop, workerError and close
    (workerStart is each program's own)."""

    @server.on("start")
    def on_start(server: WebSocketServer) -> None:
        emit("READY", server.port)

    @server.on("managerStop")
    def on_manager_stop(server: WebSocketServer) -> None:
        emit("managerStop")

    @server.on("shutdown")
    def on_shutdown(server: WebSocketServer) -> None:
        emit("shutdown")

    @server.on("beforeShutdown")
    def on_before_shutdown(server: WebSocketServer) -> None:
        emit("beforeShutdown")

    @server.on("beforeReload")
    def on_before_reload(server: WebSocketServer) -> None:
        emit("beforeReload")

    @server.on("afterReload")
    def on_after_reload(server: WebSocketServer) -> None:
        emit("afterReload")

    @server.on("workerStop")
    def on_worker_stop(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStop", worker_id, os.getpid())

    @server.on("workerError")
    def on_worker_error(
        server: WebSocketServer, worker_id: int, worker_pid: int, exit_code: int, signal: int
    ) -> None:
        emit("workerError", worker_id, worker_pid, exit_code, signal)

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int) -> None:
        emit("close", fd, server.worker_id)
