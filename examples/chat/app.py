"""A chat server with its web page: rooms, nicknames, typing, history and presence.

    python examples/chat/app.py [--host 127.0.0.1] [--port 9501] [--workers 4]
                                [--task-workers 1] [--mode process|base]

Open ``http://127.0.0.1:9501/`` in a few browser tabs. The page (``static/``: HTML, CSS and
plain JavaScript) is served by the static file handler of the very server that carries the
WebSocket (``ws://host:port/ws``), on the same port.

How the work is shared between processes (Swoole's model, ``--workers 4`` by default):

* Who is in which room is a :class:`pyswoole.Table` made before the server forks: a row per
  connection (``fd`` -> room, nickname). Every worker reads and writes it, so a message
  received by one worker reaches the members of its room whatever worker owns their
  connection: ``server.broadcast(data, fds)`` hands the others' fds to their owners.
* The history of each room (its last :data:`HISTORY` messages) lives in a task worker. A
  message is first recorded there (``await server.task_async(...)``), which gives it its
  sequence number, and only then broadcast; a joiner gets the room's history from there.
  Every room's tasks go to the same task worker (``crc32(room) % task workers``), so a room's
  messages are numbered and kept in the order they were said.

The protocol: JSON text messages, each an object with a ``type``.

Client -> server:
    ``{"type": "join", "room": "lobby", "nick": "ann"}`` (again to rename or change room),
    ``{"type": "leave"}``, ``{"type": "say", "text": "hi"}``,
    ``{"type": "typing", "typing": true}``, ``{"type": "ping", "id": 1}``.
Server -> client:
    ``hello`` (on connect: ``id``, ``limits``), ``joined``, ``left``, ``history``
    (``messages``), ``presence`` (``members``: ``[{"id", "nick"}]``), ``message`` (``seq``,
    ``id``, ``nick``, ``text``, ``ts``), ``typing`` (``id``, ``nick``, ``typing``),
    ``pong``, ``error`` (``code``, ``message``).

Every client message is checked; anything else (not JSON, binary, an unknown type, a
nickname or text too long, ``say`` before ``join``) gets an ``error`` message back and the
connection stays open.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import zlib
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

from pyswoole import (
    SWOOLE_BASE,
    SWOOLE_LOG_WARNING,
    SWOOLE_PROCESS,
    Atomic,
    Frame,
    Request,
    Response,
    Table,
    TaskError,
    WebSocketServer,
)

STATIC = Path(__file__).resolve().parent / "static"
MODES = {"base": SWOOLE_BASE, "process": SWOOLE_PROCESS}

#: characters in a nickname and a message
MAX_NICK = 32
MAX_TEXT = 2000
#: messages a room remembers (sent to whoever joins it)
HISTORY = 50
#: rooms whose history a task worker keeps (the least recently used ones are forgotten)
MAX_ROOMS = 1000
#: rows of the member table (one per joined connection)
MAX_MEMBERS = 4096
#: the largest frame a client may send (a 2000-character message escaped as \\uXXXX fits)
MAX_FRAME = 64 * 1024
#: how long a worker waits for the task worker that keeps the history
TASK_TIMEOUT = 5.0
ROOM = re.compile(r"[A-Za-z0-9_-]{1,32}")
LIMITS = {"nick": MAX_NICK, "room": 32, "text": MAX_TEXT, "history": HISTORY}


class BadMessage(Exception):
    """A client message that is refused: ``code`` and ``message`` go back in an error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _room(value: Any) -> str:
    if not isinstance(value, str) or not ROOM.fullmatch(value):
        raise BadMessage("bad_room", "room: 1 to 32 letters, digits, '-' or '_'")
    return value


def _nick(value: Any) -> str:
    if not isinstance(value, str):
        raise BadMessage("bad_nick", "nick: a string")
    nick = value.strip()
    if not nick:
        raise BadMessage("bad_nick", "nick: empty")
    if len(nick) > MAX_NICK:
        raise BadMessage("nick_too_long", f"nick: at most {MAX_NICK} characters")
    if not nick.isprintable():
        raise BadMessage("bad_nick", "nick: no control characters")
    return nick


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise BadMessage("bad_text", "text: a string")
    if len(value) > MAX_TEXT:
        raise BadMessage("text_too_long", f"text: at most {MAX_TEXT} characters")
    if not value.strip():
        raise BadMessage("bad_text", "text: empty")
    return value


def parse(data: str | bytes) -> dict[str, Any]:
    """The command in a client message, checked; raises :class:`BadMessage`."""
    if not isinstance(data, str):
        raise BadMessage("binary", "send JSON text messages, not binary ones")
    try:
        msg = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep
        raise BadMessage("bad_json", "not valid JSON") from None
    if not isinstance(msg, dict):
        raise BadMessage("bad_message", "a message is a JSON object with a 'type'")
    kind = msg.get("type")
    if kind == "join":
        return {"type": kind, "room": _room(msg.get("room")), "nick": _nick(msg.get("nick"))}
    if kind == "say":
        return {"type": kind, "text": _text(msg.get("text"))}
    if kind == "typing":
        typing = msg.get("typing")
        if not isinstance(typing, bool):
            raise BadMessage("bad_typing", "typing: true or false")
        return {"type": kind, "typing": typing}
    if kind == "leave":
        return {"type": kind}
    if kind == "ping":
        ident = msg.get("id")
        if ident is not None and not (
            (isinstance(ident, int) and not isinstance(ident, bool))
            or (isinstance(ident, str) and len(ident) <= 64)
        ):
            raise BadMessage("bad_ping", "id: an integer or a short string")
        return {"type": kind, "id": ident}
    if isinstance(kind, str) and len(kind) <= 32:
        raise BadMessage("unknown_type", f"unknown message type {kind!r}")
    raise BadMessage("unknown_type", "a message has a 'type': join, leave, say, typing, ping")


def encode(msg: dict[str, Any]) -> str:
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))


class Histories:
    """The last :data:`HISTORY` messages of each room: kept in a task worker's memory."""

    def __init__(self, seq: Atomic) -> None:
        self.seq = seq  # shared: numbers stay increasing if the task worker restarts
        self.rooms: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()

    def _room(self, room: str) -> deque[dict[str, Any]]:
        kept = self.rooms.get(room)
        if kept is None:
            kept = self.rooms[room] = deque(maxlen=HISTORY)
            while len(self.rooms) > MAX_ROOMS:
                self.rooms.popitem(last=False)
        else:
            self.rooms.move_to_end(room)
        return kept

    def handle(self, task: dict[str, Any]) -> Any:
        room = task["room"]
        if task["op"] == "say":
            message = {
                "type": "message",
                "room": room,
                "seq": self.seq.add(1),
                "id": task["id"],
                "nick": task["nick"],
                "text": task["text"],
                "ts": int(time.time() * 1000),
            }
            self._room(room).append(message)
            return message
        if task["op"] == "history":
            return list(self.rooms.get(room, ()))
        raise ValueError(f"unknown task {task['op']!r}")


class Members:
    """Who is in which room: a :class:`pyswoole.Table` row per joined connection (``fd`` ->
    room, nickname), shared by every process forked after it is made.

    Each process also keeps the rooms as it last read them, valid while a shared version
    number (bumped after every change) stays the same: a message costs one atomic read, not a
    walk over the table's buckets (about 1 ms for 4096 of them).
    """

    def __init__(self, size: int) -> None:
        self.table = Table(size)
        self.table.column("room", Table.TYPE_STRING, 32)
        self.table.column("nick", Table.TYPE_STRING, MAX_NICK * 4)  # UTF-8: 4 bytes a char
        self.table.create()
        self.version = Atomic(0)
        self._seen = -1
        self._rooms: dict[str, list[tuple[int, str]]] = {}

    def get(self, fd: int) -> tuple[str, str] | None:
        """(room, nick) of ``fd``, None if it is in no room."""
        row = self.table.get(str(fd))
        return None if row is None else (str(row["room"]), str(row["nick"]))

    def set(self, fd: int, room: str, nick: str) -> bool:
        done = self.table.set(str(fd), {"room": room, "nick": nick})
        self.version.add(1)
        return done

    def delete(self, fd: int) -> bool:
        done = self.table.delete(str(fd))
        if done:
            self.version.add(1)
        return done

    def room(self, room: str) -> list[tuple[int, str]]:
        """(fd, nick) of the room's members, by nickname."""
        seen = self.version.get()  # read before the walk: a change during it bumps it again
        if seen != self._seen:
            rooms: dict[str, list[tuple[int, str]]] = {}
            for key, row in self.table.items():
                rooms.setdefault(str(row["room"]), []).append((int(key), str(row["nick"])))
            for people in rooms.values():
                people.sort(key=lambda member: (member[1].casefold(), member[0]))
            self._rooms, self._seen = rooms, seen
        return self._rooms.get(room, [])


def build(
    host: str = "127.0.0.1",
    port: int = 9501,
    workers: int = 4,
    task_workers: int = 1,
    mode: int = SWOOLE_PROCESS,
) -> WebSocketServer:
    """The chat server, not started."""
    server = WebSocketServer(host, port, mode)
    server.set(
        {
            "worker_num": workers,
            "task_worker_num": task_workers,
            "enable_static_handler": True,
            "document_root": str(STATIC),
            "http_index_files": ["index.html"],
            "package_max_length": MAX_FRAME,
            "heartbeat_check_interval": 60,
            "heartbeat_idle_time": 150,  # the page pings every 45 s
            "log_level": SWOOLE_LOG_WARNING,
        }
    )
    # Made before start(): every worker and task worker forked from here shares them.
    members = Members(MAX_MEMBERS)
    histories = Histories(Atomic(0))
    # read again when a worker starts (a CLI's --task-workers may have changed it)
    conf = {"task_workers": task_workers}

    def shard(room: str) -> int:
        return zlib.crc32(room.encode()) % conf["task_workers"]

    def send(fd: int, msg: dict[str, Any]) -> None:
        server.push(fd, encode(msg))

    def error(fd: int, code: str, message: str) -> None:
        send(fd, {"type": "error", "code": code, "message": message})

    def to_room(room: str, msg: dict[str, Any], skip: int = 0) -> None:
        fds = [fd for fd, _ in members.room(room) if fd != skip]
        if fds:
            server.broadcast(encode(msg), fds)  # closed fds are skipped

    def presence(room: str) -> None:
        # exist(): not a connection that died with its worker (SWOOLE_BASE) without on_close
        people = [(fd, nick) for fd, nick in members.room(room) if server.exist(fd)]
        msg = {
            "type": "presence",
            "room": room,
            "members": [{"id": fd, "nick": nick} for fd, nick in people],
        }
        if people:
            server.broadcast(encode(msg), [fd for fd, _ in people])

    def leave(fd: int) -> str | None:
        """Take ``fd`` out of its room (the others get the new presence list)."""
        where = members.get(fd)
        if where is None or not members.delete(fd):
            return None
        presence(where[0])
        return where[0]

    async def join(fd: int, room: str, nick: str) -> None:
        before = members.get(fd)
        if before is not None and before[0] != room:
            leave(fd)
        if not members.set(fd, room, nick):
            error(fd, "full", "the server has no room for another member")
            return
        send(fd, {"type": "joined", "room": room, "nick": nick, "id": fd})
        presence(room)
        try:
            history = await server.task_async(
                {"op": "history", "room": room}, TASK_TIMEOUT, shard(room)
            )
        except TaskError:  # logged by the task worker
            history = False
        if history is False:
            error(fd, "unavailable", "the room's history did not come in time")
        elif (members.get(fd) or ("",))[0] == room:  # still there
            send(fd, {"type": "history", "room": room, "messages": history})

    async def say(fd: int, text: str) -> None:
        where = members.get(fd)
        if where is None:
            error(fd, "not_joined", "join a room first")
            return
        room, nick = where
        task = {"op": "say", "room": room, "id": fd, "nick": nick, "text": text}
        try:
            message = await server.task_async(task, TASK_TIMEOUT, shard(room))
        except TaskError:  # logged by the task worker
            message = False
        if message is False:
            error(fd, "unavailable", "the message could not be recorded; try again")
        else:
            to_room(room, message)

    def relay_typing(fd: int, flag: bool) -> None:
        where = members.get(fd)
        if where is None:
            error(fd, "not_joined", "join a room first")
            return
        room, nick = where
        msg = {"type": "typing", "room": room, "id": fd, "nick": nick, "typing": flag}
        to_room(room, msg, skip=fd)

    @server.on("start")
    def on_start(server: WebSocketServer) -> None:
        setting = server.setting
        where = f"{server.host}:{server.port}"
        print(
            f"chat server listening on http://{where}/ (WebSocket ws://{where}/ws; "
            f"workers: {setting['worker_num']}, task workers: {setting['task_worker_num']})",
            flush=True,
        )

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        conf["task_workers"] = max(1, int(server.setting.get("task_worker_num", 1)))

    @server.on("open")
    def on_open(server: WebSocketServer, request: Request) -> None:
        members.delete(request.fd)  # a row left by a worker that died with this fd
        send(request.fd, {"type": "hello", "id": request.fd, "limits": LIMITS})

    @server.on("message")
    async def on_message(server: WebSocketServer, frame: Frame) -> None:
        fd = frame.fd
        try:
            cmd = parse(frame.data)
        except BadMessage as bad:
            error(fd, bad.code, bad.message)
            return
        kind = cmd["type"]
        if kind == "join":
            await join(fd, cmd["room"], cmd["nick"])
        elif kind == "say":
            await say(fd, cmd["text"])
        elif kind == "typing":
            relay_typing(fd, cmd["typing"])
        elif kind == "leave":
            room = leave(fd)
            if room is None:
                error(fd, "not_joined", "not in a room")
            else:
                send(fd, {"type": "left", "room": room})
        else:
            send(fd, {"type": "pong", "id": cmd["id"]})

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int) -> None:
        leave(fd)

    @server.on("task")
    def on_task(server: WebSocketServer, task_id: int, src_worker_id: int, data: Any) -> Any:
        return histories.handle(data)

    @server.on("request")
    def on_request(request: Request, response: Response) -> None:
        # The static handler has served the page's files already; anything else:
        response.status(404)
        response.header("Content-Type", "text/plain; charset=utf-8")
        response.end("not found\n")

    return server


#: ``pyswoole examples.chat.app:server`` (127.0.0.1:9501, 4 workers, SWOOLE_PROCESS)
server = build()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501, help="0: any free port")
    parser.add_argument("--workers", type=int, default=4, help="worker_num (default 4)")
    parser.add_argument(
        "--task-workers", type=int, default=1, help="task_worker_num: history keepers"
    )
    parser.add_argument(
        "--mode",
        choices=sorted(MODES),
        default="process",
        help="process: SWOOLE_PROCESS (default); base: SWOOLE_BASE",
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or args.task_workers < 1:
        parser.error("--workers and --task-workers must be at least 1")
    build(args.host, args.port, args.workers, args.task_workers, MODES[args.mode]).start()


if __name__ == "__main__":
    main()
