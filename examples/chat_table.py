"""Chat rooms kept in shared memory, with a user process that posts to every room.

    python examples/chat_table.py [--host 127.0.0.1] [--port 9501] [--workers 4]
                                  [--mode process|base] [--announce-interval 60]

The Swoole way, in Python: who is who and in which room lives in two ``Table``\\ s made
before ``start()``, so every worker (and the user process) reads and writes the same rows;
a message reaches the members of its room through ``server.push``, whatever worker owns
each connection; a user process added with ``server.add_process`` posts a message to every
room with members every ``--announce-interval`` seconds (a minute by default).

Clients speak JSON. They send ``{"type": "nick", "nick": "ann"}``, ``{"type": "join",
"room": "lobby"}`` and ``{"type": "say", "text": "hello"}``; they receive ``{"type":
"joined", "room", "nick", "members"}`` (to themselves), ``{"type": "message", "room",
"nick", "text"}`` (to the room), ``{"type": "announce", "room", "text", "members"}`` (from
the user process) and ``{"type": "error", "error"}``.

The first output line names the address (useful with ``--port 0``). Ctrl-C or SIGTERM stops
it gracefully.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from pyswoole import SWOOLE_BASE, SWOOLE_PROCESS, Process, Table, Timer, WebSocketServer
from pyswoole.server import Frame, Request

MODES = {"base": SWOOLE_BASE, "process": SWOOLE_PROCESS}
MAX_NAME = 32  # bytes of a nick or a room name (Table string columns are fixed-size)


def make_tables(size: int) -> tuple[Table, Table]:
    """``users``: fd -> nick, room; ``rooms``: room -> members (incr/decr, atomic)."""
    users = Table(size)
    users.column("nick", Table.TYPE_STRING, MAX_NAME)
    users.column("room", Table.TYPE_STRING, MAX_NAME)
    users.create()
    rooms = Table(256)
    rooms.column("members", Table.TYPE_INT)
    rooms.create()
    return users, rooms


def build(
    host: str, port: int, workers: int, mode: int, announce_interval: float
) -> WebSocketServer:
    server = WebSocketServer(host, port, mode)
    server.set(worker_num=workers)
    users, rooms = make_tables(4096)

    def send(fd: int, **message: Any) -> bool:
        return server.push(fd, json.dumps(message))

    def members(room: str) -> list[int]:
        return [int(fd) for fd, row in users if row["room"] == room]

    def to_room(room: str, message: dict[str, Any]) -> None:
        data = json.dumps(message)
        for fd in members(room):
            server.push(fd, data)

    def leave(fd: int) -> None:
        row = users.get(str(fd))
        if row and row["room"]:
            rooms.decr(str(row["room"]), "members")

    @server.on("start")
    def on_start(server: WebSocketServer) -> None:
        print(f"chat_table listening on ws://{host}:{server.port}", flush=True)

    @server.on("open")
    def on_open(server: WebSocketServer, request: Request) -> None:
        users.set(str(request.fd), {"nick": f"guest{request.fd}", "room": ""})

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        fd = frame.fd
        try:
            message = json.loads(frame.data)
            kind = message["type"]
        except (ValueError, TypeError, KeyError):
            send(fd, type="error", error="send JSON with a type")
            return
        found = users.get(str(fd)) or {}
        nick, room = str(found.get("nick", f"guest{fd}")), str(found.get("room", ""))
        if kind == "nick":
            nick = str(message.get("nick", ""))
            if not nick or len(nick.encode()) > MAX_NAME:
                send(fd, type="error", error=f"a nick is 1 to {MAX_NAME} bytes")
                return
            users.set(str(fd), {"nick": nick})
            send(fd, type="nick", nick=nick)
        elif kind == "join":
            room = str(message.get("room", ""))
            if not room or len(room.encode()) > MAX_NAME:
                send(fd, type="error", error=f"a room is 1 to {MAX_NAME} bytes")
                return
            leave(fd)
            users.set(str(fd), {"room": room})
            count = rooms.incr(room, "members")
            send(fd, type="joined", room=room, nick=nick, members=count)
        elif kind == "say":
            if not room:
                send(fd, type="error", error="join a room first")
                return
            text = str(message.get("text", ""))[:2000]
            to_room(room, {"type": "message", "room": room, "nick": nick, "text": text})
        else:
            send(fd, type="error", error=f"unknown type {kind!r}")

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int) -> None:
        leave(fd)
        users.delete(str(fd))

    def announcer(process: Process) -> None:
        """The user process: every interval, a message to every room with members."""
        process.name("chat_table: announcer")

        def announce() -> None:
            stamp = time.strftime("%H:%M:%S")
            for key, row in rooms:
                room = key.decode() if isinstance(key, bytes) else str(key)
                count = int(row["members"])
                if count > 0:
                    text = f"{stamp}: {count} in {room} (pid {os.getpid()})"
                    to_room(
                        room, {"type": "announce", "room": room, "text": text, "members": count}
                    )

        Timer.tick(int(announce_interval * 1000), announce)

    server.add_process(Process(announcer))
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--workers", type=int, default=4, help="worker_num")
    parser.add_argument("--mode", choices=sorted(MODES), default="process")
    parser.add_argument(
        "--announce-interval",
        type=float,
        default=60.0,
        help="seconds between the user process's posts to every room (default 60)",
    )
    args = parser.parse_args(argv)
    server = build(args.host, args.port, args.workers, MODES[args.mode], args.announce_interval)
    server.start()


if __name__ == "__main__":
    main()
