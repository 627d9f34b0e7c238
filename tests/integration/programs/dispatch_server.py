"""A WebSocket server for tests/integration/test_dispatch.py: ``dispatch_mode``,
``dispatch_func`` and SWOOLE_PROCESS with one worker.

    python tests/integration/programs/dispatch_server.py --port 0 [--workers N]
        [--mode M] [--func none|path|raise|notint] [--base] [--max-wait-time S]

``--workers 0`` leaves ``worker_num`` unset (the default, one worker); ``--mode 0`` leaves
``dispatch_mode`` unset. ``--base`` runs SWOOLE_BASE instead of SWOOLE_PROCESS.
``--func``: ``path`` routes a connection by its request path ``/w<n>`` (returns n; another
path returns -3, Swoole's "use dispatch_mode"), ``raise`` raises, ``notint`` returns a str.

Standard output, one event per line (one ``write`` each):

    READY <port> / managerStart <pid> / workerStart <id> <pid> worker / workerStop ...
    dispatch <fd> <type> <first bytes of data, or None>   the master called dispatch_func
    bound <fd> <worker_id> <ok>                           a worker called bind()
    open <fd> <worker_id>
    close <fd> <worker_id>

Text messages are commands; replies are JSON objects ``{"re": <command>, ...}``:

    whoami                  {"worker", "pid", "fd"}
    seq:<n>                 {"n", "worker"}
    bind:<uid>[:<ms>]       server.bind(fd, uid); once get_client_info(fd) shows the uid (the
                            master applied it), prints ``bound <fd> <worker_id> <ok>``,
                            then blocks the loop <ms> ms -> {"ok", "worker"}
    info                    {"uid": get_client_info(fd)["uid"] or None, "worker"}
    hold:<path>             prints ``held <worker_id>``, blocks its loop until <path> exists
                            (at most HOLD_LIMIT s), then replies {"worker"}
    exit                    os._exit(1) inside the callback
    reload                  server.reload() -> {"ok"}
    e:<x>                   the same text back
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from events import emit, emit_lifecycle, reply

from pyswoole import SWOOLE_BASE, SWOOLE_PROCESS, WebSocketServer
from pyswoole.server import Frame

HOLD_LIMIT = 10.0
BIND_LIMIT = 5.0


def path_dispatch(server: WebSocketServer, fd: int, kind: int, data: Any) -> int:
    emit("dispatch", fd, kind, repr(data[:12]) if data is not None else None)
    if isinstance(data, bytes) and data.startswith(b"GET /w"):
        return int(data[6:7])
    return -3


def raising_dispatch(server: WebSocketServer, fd: int, kind: int, data: Any) -> int:
    raise RuntimeError(f"boom from dispatch_func (fd {fd})")


def notint_dispatch(server: WebSocketServer, fd: int, kind: int, data: Any) -> Any:
    return "one"


FUNCS = {"path": path_dispatch, "raise": raising_dispatch, "notint": notint_dispatch}


def build(args: argparse.Namespace) -> WebSocketServer:
    mode = SWOOLE_BASE if args.base else SWOOLE_PROCESS
    server = WebSocketServer(args.host, args.port, mode)
    settings: dict[str, Any] = {"max_wait_time": args.max_wait_time, "log_level": 2}
    if args.workers:
        settings["worker_num"] = args.workers
    if args.mode:
        settings["dispatch_mode"] = args.mode
    if args.func != "none":
        settings["dispatch_func"] = FUNCS[args.func]
    server.set(settings)
    emit_lifecycle(server)

    @server.on("managerStart")
    def on_manager_start(server: WebSocketServer) -> None:
        emit("managerStart", os.getpid())

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "worker")

    @server.on("open")
    def on_open(server: WebSocketServer, request: Any) -> None:
        emit("open", request.fd, server.worker_id)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        fd = frame.fd
        text = frame.data if isinstance(frame.data, str) else frame.data.decode()
        command, _, rest = text.partition(":")
        worker = server.worker_id
        if command == "whoami":
            reply(server, fd, "whoami", worker=worker, pid=os.getpid(), fd=fd)
        elif command == "seq":
            reply(server, fd, "seq", n=int(rest), worker=worker)
        elif command == "bind":
            uid, _, ms = rest.partition(":")
            ok = server.bind(fd, int(uid))
            # The master applies the bind (and moves fd): wait until the table shows it.
            deadline = time.monotonic() + BIND_LIMIT
            while ok and time.monotonic() < deadline:
                if (server.get_client_info(fd) or {}).get("uid") == int(uid):
                    break
                time.sleep(0.001)
            emit("bound", fd, worker, ok)
            if ms:
                time.sleep(int(ms) / 1000)  # keeps this worker busy: later events queue up
            reply(server, fd, "bind", ok=ok, worker=worker)
        elif command == "info":
            info = server.get_client_info(fd) or {}
            reply(server, fd, "info", uid=info.get("uid"), worker=worker)
        elif command == "hold":
            emit("held", worker)
            deadline = time.monotonic() + HOLD_LIMIT
            while not os.path.exists(rest) and time.monotonic() < deadline:
                time.sleep(0.005)
            reply(server, fd, "hold", worker=worker)
        elif command == "exit":
            os._exit(1)  # dies inside a callback (a crash, or a kill by worker_timeout)
        elif command == "reload":
            reply(server, fd, "reload", ok=server.reload())
        elif command == "e":
            server.push(fd, text)
        else:
            reply(server, fd, "error", error=f"unknown command {command!r}")

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="worker_num (0: unset)")
    parser.add_argument("--mode", type=int, default=0, help="dispatch_mode (0: unset)")
    parser.add_argument("--func", default="none", choices=["none", *FUNCS])
    parser.add_argument("--base", action="store_true")
    parser.add_argument("--max-wait-time", type=float, default=3.0)
    args = parser.parse_args(argv)
    ok = build(args).start()
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
