"""Callbacks mypy must reject: each line marked ``# error`` is reported by
``mypy --strict`` (tests/test_typing.py checks that exactly these lines fail)."""

from __future__ import annotations

from pyswoole import Frame, Request, Response, WebSocketServer

server = WebSocketServer("127.0.0.1", 0)


@server.on("message")  # error
def message_as_str(server: WebSocketServer, frame: str) -> None:
    del server, frame


@server.on("message")  # error
def message_extra(server: WebSocketServer, frame: Frame, extra: int) -> None:
    del server, frame, extra


@server.on("open")  # error
def open_fd(server: WebSocketServer, fd: int) -> None:
    del server, fd


@server.on("request")  # error
def request_swapped(response: Response, request: Request) -> None:
    del response, request


@server.on("close")  # error
def close_fd_as_str(server: WebSocketServer, fd: str) -> None:
    del server, fd


@server.on("worker_start")  # error
def worker_id_as_str(server: WebSocketServer, worker_id: str) -> None:
    del server, worker_id
