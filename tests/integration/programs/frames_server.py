"""A multi-process WebSocket server for the frame tests of
tests/integration/test_swoole_frames.py: Swoole's frame behaviour across processes.

    python tests/integration/programs/frames_server.py --port 0 --workers 2 --mode process

In SWOOLE_PROCESS mode the master owns the sockets and parses the frames; a worker's push
travels to the master. Standard output: ``READY <port>``, ``workerStart <id> <pid> worker``,
``close <fd> <worker_id>`` and the other lifecycle lines of ``events.py``.

Text messages are commands, answered with JSON ``{"re": <command>, ...}``:

    flags               {"flags": frame.flags, "finish": frame.finish, "opcode"}
    frag                the text "Hello" pushed as two frames: Frame("Hel", finish=False),
                        then Frame("lo", CONTINUATION, finish=True) -> {"ok": [bool, bool]}
    close:<reason>      {"sending": true} first (nothing may follow a close frame), then
                        push(fd, CloseFrame(4001, reason)); stdout: ``pushed-close <fd>
                        <True|False> <last error>``
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from events import emit, emit_lifecycle, reply

from pyswoole import (
    SWOOLE_BASE,
    SWOOLE_PROCESS,
    WEBSOCKET_OPCODE_CONTINUATION,
    CloseFrame,
    Frame,
    WebSocketServer,
)

MODES = {"base": SWOOLE_BASE, "process": SWOOLE_PROCESS}


def build(args: argparse.Namespace) -> WebSocketServer:
    server = WebSocketServer(args.host, args.port, MODES[args.mode])
    server.set({"worker_num": args.workers, "log_level": 2})
    emit_lifecycle(server)

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "worker")

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> Any:
        fd = frame.fd
        command, _, arg = str(frame.data).partition(":")
        if command == "flags":
            reply(server, fd, "flags", flags=frame.flags, finish=frame.finish, opcode=frame.opcode)
        elif command == "frag":
            first = server.push(fd, Frame(data="Hel", finish=False))
            last = server.push(fd, Frame(data="lo", opcode=WEBSOCKET_OPCODE_CONTINUATION))
            reply(server, fd, "frag", ok=[first, last])
        elif command == "close":
            # the reply goes first: nothing can follow the close frame
            reply(server, fd, "close", sending=True)
            ok = server.push(fd, CloseFrame(4001, arg))
            error = 0 if ok else server.get_last_error()
            emit("pushed-close", fd, ok, error)
        return None

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="worker_num")
    parser.add_argument("--mode", choices=sorted(MODES), default="process")
    args = parser.parse_args(argv)
    ok = build(args).start()
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
