"""A SWOOLE_PROCESS WebSocket + HTTP server driven by its clients, for
tests/integration/test_process_mode.py.

    python tests/integration/programs/process_mode_server.py --port 0 --workers 4
        --logic-dir DIR [--task-workers N] [--file PATH] [--upload-dir DIR]
        [--max-wait-time S] [--worker-timeout S]

The master owns every socket; the workers run the callbacks below. ``workerStart`` puts
``--logic-dir`` first on ``sys.path`` and imports ``logic`` from it, so a reloaded worker runs
whatever ``logic.py`` holds at that moment (bytecode caching is off: a rewritten file of the
same size within the same second must not be served from a stale ``.pyc``).
``logic.reply(server, frame)`` returns the text pushed back for ``r:<anything>``.

Standard output carries one event per line (one ``write`` per line, so lines of different
processes never interleave):

    READY <port>                                    the master's on("start"), once bound
    managerStart <pid>
    workerStart <id> <pid> worker|task
    workerStop <id> <pid>
    workerError <id> <pid> <exit_code> <signal>     in the manager
    connect <fd> <worker_id>
    open <fd> <worker_id> <request.fd> <path> <x-probe header or ->
    close <fd> <worker_id>
    disconnect <fd> <worker_id>                     a connection that never became a WebSocket
    request <fd> <worker_id> <method> <path>
    upload <tmp_name> <exists-after-cleanup>        printed (deferred) after the handler ran
    task <task_id> <src_worker_id> <id> <pid>
    managerStop / shutdown

Text messages are commands; replies are JSON objects ``{"re": <command>, ...}``; other
texts are pushes, broadcasts or echoes:

    r:<x>                       the text returned by logic.reply(server, frame)
    a:<x>                       the same from an async callback, after awaiting 50 ms
    whoami                      {"worker", "pid", "fd"}
    e:<x>                       the same text back
    count:<fd,...>              {"n": len(connections), "exist": {fd: bool},
                                 "info": {fd: get_client_info(fd)}, "worker"}
    broadcast:<x>               server.broadcast(x) -> {"n"}
    push:<fd,...>:<x>           server.push(fd, x) for each -> {"ok": {fd: bool}, "worker"}
    disconnect:<fd>:<code>:<r>  server.disconnect(fd, code, r) -> {"ok", "worker"}
    task:<n>                    server.task(n, finish_callback=...) -> {"result", ...}
    taskwait:<n>                server.taskwait(n, 5.0) -> {"result", ...}
    reload                      server.reload() -> {"ok"}

HTTP (on("request"), in worker ``fd % worker_num``), every JSON body carries the worker:

    /info?...       {"get", "cookie", "method", "fd", "worker", "probe": x-probe header}
    /form           POST: {"post", "files": {name: {name, type, size, error, content,
                    tmp_name}}, ...}; the upload's content is read from tmp_name here
    /chunked        write() "one-", "two-", "three" then end()
    /file           sendfile(--file)
    /raise          raises (-> 500)
    anything else   status(404), "no such page"
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from typing import Any

from events import emit, emit_lifecycle, reply

from pyswoole import SWOOLE_PROCESS, WebSocketServer
from pyswoole.server import Frame

sys.dont_write_bytecode = True

TASK_TIMEOUT = 5.0
ASYNC_WORK = 0.05  # seconds an async message callback awaits before it replies
logic: Any = None  # the module imported in workerStart


def build(args: argparse.Namespace) -> WebSocketServer:
    server = WebSocketServer(args.host, args.port, SWOOLE_PROCESS)
    settings: dict[str, Any] = {
        "worker_num": args.workers,
        "task_worker_num": args.task_workers,
        "max_wait_time": args.max_wait_time,
        "worker_timeout": args.worker_timeout,
        "log_level": args.log_level,
    }
    if args.upload_dir:
        settings["upload_tmp_dir"] = args.upload_dir
    server.set(settings)
    emit_lifecycle(server)

    # -- lifecycle -----------------------------------------------------------------------------

    @server.on("managerStart")
    def on_manager_start(server: WebSocketServer) -> None:
        emit("managerStart", os.getpid())

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        global logic
        if not server.taskworker:
            if args.logic_dir not in sys.path:
                sys.path.insert(0, args.logic_dir)
            importlib.invalidate_caches()
            logic = importlib.import_module("logic")
        emit("workerStart", worker_id, os.getpid(), "task" if server.taskworker else "worker")

    # -- connection events ---------------------------------------------------------------------

    @server.on("connect")
    def on_connect(server: WebSocketServer, fd: int) -> None:
        emit("connect", fd, server.worker_id)

    @server.on("open")
    def on_open(server: WebSocketServer, request: Any) -> None:
        path = request.server.get("request_uri", "?")
        emit(
            "open",
            request.fd,
            server.worker_id,
            request.fd,
            path,
            request.header.get("x-probe", "-"),
        )

    @server.on("disconnect")
    def on_disconnect(server: WebSocketServer, fd: int) -> None:
        emit("disconnect", fd, server.worker_id)

    # -- tasks --------------------------------------------------------------------------------

    if args.task_workers:

        @server.on("task")
        def on_task(server: WebSocketServer, task_id: int, src: int, data: Any) -> Any:
            emit("task", task_id, src, server.worker_id, os.getpid())
            return {"n": data, "square": data * data, "by": server.worker_id, "pid": os.getpid()}

    # -- HTTP ---------------------------------------------------------------------------------

    @server.on("request")
    def on_request(request: Any, response: Any) -> None:
        path = request.server["request_uri"]
        emit("request", request.fd, server.worker_id, request.get_method(), path)
        common = {"fd": request.fd, "worker": server.worker_id, "pid": os.getpid()}
        if path == "/info":
            body = {
                "get": request.get,
                "cookie": request.cookie,
                "method": request.get_method(),
                "probe": request.header.get("x-probe"),
                **common,
            }
            response.header("Content-Type", "application/json")
            response.end(json.dumps(body))
        elif path == "/form":
            files: dict[str, Any] = {}
            for name, info in (request.files or {}).items():
                with open(info["tmp_name"], "rb") as f:
                    content = f.read()
                files[name] = {
                    "name": info["name"],
                    "type": info["type"],
                    "size": info["size"],
                    "error": info["error"],
                    "tmp_name": info["tmp_name"],
                    "content": content.decode("latin-1"),
                }
                tmp_name = info["tmp_name"]
                server.defer(lambda t=tmp_name: emit("upload", t, os.path.exists(t)))
            body = {"post": request.post, "files": files, **common}
            response.header("Content-Type", "application/json")
            response.end(json.dumps(body))
        elif path == "/chunked":
            response.header("X-Worker", str(server.worker_id))
            for part in ("one-", "two-", "three"):
                response.write(part)
            response.end()
        elif path == "/file":
            response.header("Content-Type", "application/octet-stream")
            response.header("X-Worker", str(server.worker_id))
            response.sendfile(args.file)
        elif path == "/raise":
            raise RuntimeError(f"boom from the request handler (fd {request.fd})")
        else:
            response.status(404)
            response.header("X-Worker", str(server.worker_id))
            response.end("no such page")

    # -- WebSocket commands ------------------------------------------------------------------

    async def later(server: WebSocketServer, frame: Frame) -> None:
        await asyncio.sleep(ASYNC_WORK)  # stands for awaiting a database
        server.push(frame.fd, logic.reply(server, frame))

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> Any:
        fd = frame.fd
        text = frame.data if isinstance(frame.data, str) else frame.data.decode()
        command, _, rest = text.partition(":")
        if command == "r":
            server.push(fd, logic.reply(server, frame))
        elif command == "a":
            return later(server, frame)  # a coroutine: the server runs it
        elif command == "e":
            server.push(fd, text)
        elif command == "whoami":
            reply(server, fd, "whoami", worker=server.worker_id, pid=os.getpid(), fd=fd)
        elif command == "count":
            fds = [int(x) for x in rest.split(",") if x]
            reply(
                server,
                fd,
                "count",
                n=len(server.connections),
                exist={str(x): server.exist(x) for x in fds},
                info={str(x): server.get_client_info(x) for x in fds},
                worker=server.worker_id,
            )
        elif command == "broadcast":
            reply(server, fd, "broadcast", n=server.broadcast(rest))
        elif command == "push":
            targets, _, data = rest.partition(":")
            ok = {x: server.push(int(x), data) for x in targets.split(",") if x}
            reply(server, fd, "push", ok=ok, worker=server.worker_id)
        elif command == "disconnect":
            target, code, reason = rest.split(":", 2)
            ok = server.disconnect(int(target), int(code), reason)
            reply(server, fd, "disconnect", ok=ok, worker=server.worker_id)
        elif command == "task":
            n = int(rest)

            def finished(server: WebSocketServer, task_id: int, result: Any) -> None:
                reply(server, fd, "task", task_id=task_id, result=result, worker=server.worker_id)

            task_id = server.task(n, finish_callback=finished)
            if task_id is False:
                reply(server, fd, "task", error=task_id)
        elif command == "taskwait":
            result = server.taskwait(int(rest), TASK_TIMEOUT)
            reply(server, fd, "taskwait", result=result, worker=server.worker_id)
        elif command == "reload":
            reply(server, fd, "reload", ok=server.reload())
        else:
            reply(server, fd, "error", error=f"unknown command {command!r}")
        return None

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=4, help="worker_num")
    parser.add_argument("--task-workers", type=int, default=0, help="task_worker_num")
    parser.add_argument("--logic-dir", required=True)
    parser.add_argument("--file", default="")
    parser.add_argument("--upload-dir", default="")
    parser.add_argument("--max-wait-time", type=float, default=3.0)
    parser.add_argument("--worker-timeout", type=float, default=30.0)
    parser.add_argument("--log-level", type=int, default=2)
    args = parser.parse_args(argv)
    ok = build(args).start()
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
