"""Callbacks mypy must accept (tests/test_typing.py runs ``mypy --strict`` on this file)."""

from __future__ import annotations

from typing import Any

from pyswoole import Frame, HttpServer, Request, Response, Server, Task, WebSocketServer
from pyswoole.typing import OnMessage, OnOpen

server = WebSocketServer("127.0.0.1", 0)


@server.on("open")
def on_open(server: WebSocketServer, request: Request) -> None:
    server.push(request.fd, "hello")


@server.on("message")
def on_message(server: WebSocketServer, frame: Frame) -> None:
    server.push(frame.fd, frame.data)


@server.on("close")
def on_close(server: WebSocketServer, fd: int) -> None:  # reactor_id left out: allowed
    del server, fd


@server.on("request")
async def on_request(request: Request, response: Response) -> None:  # async def: allowed
    response.end("ok")


@server.on("handshake")
def on_handshake(request: Request, response: Response) -> bool:
    response.status(101)
    return response.end()


@server.on("workerStart")
def on_worker_start(server: Server, worker_id: int) -> None:  # a base class: allowed
    del server, worker_id


@server.on("worker_stop")
def on_worker_stop(server: WebSocketServer) -> None:
    del server


@server.on("workerError")
def on_worker_error(server: Any, worker_id: int, pid: int, code: int, signal: int) -> None:
    del server, worker_id, pid, code, signal


@server.on("task")
def on_task(server: WebSocketServer, task_id: int, src_worker_id: int, data: Any) -> Any:
    return data


@server.on("finish")
def on_finish(server: WebSocketServer, task_id: int, data: Any) -> None:
    del server, task_id, data


@server.on("pipeMessage")
def on_pipe_message(server: WebSocketServer, src_worker_id: int, message: Any) -> None:
    del server, src_worker_id, message


@server.on("bufferFull")
def on_buffer_full(server: WebSocketServer, fd: int) -> None:
    del server, fd


@server.on("start")
def on_start() -> None:  # no parameters: allowed
    pass


http = HttpServer("127.0.0.1", 0)


@http.on("request")
def on_http_request(request: Request, response: Response) -> None:
    response.end(f"{request.fd}")


tasks = WebSocketServer("127.0.0.1", 0)
tasks.set({"task_worker_num": 1, "task_enable_coroutine": True})


@tasks.on("task")
def on_task_object(server: WebSocketServer, task: Task) -> None:
    task.finish(task.data)


raw = Server("127.0.0.1", 0)


@raw.on("receive")
def on_receive(server: Server, fd: int, reactor_id: int, data: bytes) -> None:
    server.send(fd, data)


port = server.listen("127.0.0.1", 0)


@port.on("message")
def on_port_message(server: WebSocketServer, frame: Frame) -> None:
    del server, frame


# the two-argument form, and the types as annotations
server.on("message", on_message)
registry: dict[str, OnMessage] = {"echo": on_message}
opener: OnOpen = on_open
# decorated functions keep their own type
on_message(server, Frame(1, "x"))
