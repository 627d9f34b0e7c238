"""SWOOLE_PROCESS mode: the master owns every socket, the workers only run callbacks.

The master process runs the event loop with the listeners and every connection: HTTP
parsing, the WebSocket handshake and protocol all happen there. Each event is forwarded over
IPC to worker ``fd % worker_num`` (so one connection's events stay in order), whose loop
runs the user's callback. What a callback does to a connection (``push``, ``disconnect``,
``close``, an HTTP ``Response``) goes back to the master as IPC messages, the same ones
SWOOLE_BASE workers send each other.

Its point: ``reload()`` replaces the workers (new code) while every connection stays open
in the master, keeping its fd.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..exceptions import HttpProtocolError
from ..process import messages as msg
from ..protocol.frames import Frame
from ..protocol.http import ParsedRequest
from ..runtime.connection import Connection
from ..runtime.worker import Worker
from .request import Request
from .response import Response

if TYPE_CHECKING:
    from .base import Server
    from .processes import ProcessModel

__all__ = ["MasterApp", "ResponseRelay", "WorkerEvents"]

log = logging.getLogger("pyswoole")


class _Status:
    """What ``Connection.finish_response`` needs of a relayed response."""

    __slots__ = ("status_code",)

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


class MasterApp:
    """The master's ``Application``: the server's own HTTP and handshake handling, with the
    user's callbacks replaced by forwarding to the workers."""

    def __init__(self, server: Server, procs: ProcessModel, worker: Worker) -> None:
        self.server = server
        self.procs = procs
        self.worker = worker
        self.user_events = set(server._callbacks)
        callbacks = server._callbacks
        # In the master, "calling" a callback forwards it. HTTP requests and the built-in
        # handshake still run the server's code (parsing, 101, errors), then forward.
        if "request" in callbacks:
            callbacks["request"] = self._forward_request
        if "open" in callbacks:
            callbacks["open"] = self._forward_open
        callbacks.pop("connect", None)
        worker.on_message = self._forward_message
        if "connect" in self.user_events:
            worker.on_connect = self._forward_connect
        else:
            worker.on_connect = None

    def worker_for(self, fd: int) -> int:
        return fd % self.procs.worker_num

    def _send(self, fd: int, kind: int, body: bytes) -> None:
        if not self.procs.send(self.worker_for(fd), kind, body):
            log.error("could not hand event %d of fd %d to its worker", kind, fd)

    # -- forwarded events ----------------------------------------------------------------

    def _forward_connect(self, conn: Connection) -> None:
        self._send(conn.fd, msg.EV_CONNECT, msg.pack_close(conn.fd, False))

    def _forward_open(self, server: Server, request: Request) -> None:
        self._send(request.fd, msg.EV_OPEN, self._hand_over(request))

    def _forward_message(self, app: object, frame: Frame) -> None:
        data = frame.data
        payload = data.encode() if isinstance(data, str) else data
        self._send(
            frame.fd, msg.EV_MESSAGE, msg.pack_push(frame.fd, frame.opcode, frame.flags, payload)
        )

    def _forward_request(self, request: Request, response: Response) -> None:
        # The worker answers; this response object only stands for the connection here.
        response.ended = True
        body = msg.encode_object((request, response._method, response.version, response.keep_alive))
        request._tmpfiles.clear()  # the uploaded files now belong to the worker
        self._send(request.fd, msg.EV_REQUEST, body)

    @staticmethod
    def _hand_over(request: Request) -> bytes:
        """Pickle ``request``; its uploaded files now belong to the worker (it deletes them)."""
        data = msg.encode_object(request)
        request._tmpfiles.clear()
        return data

    # -- runtime.connection.Application --------------------------------------------------

    def http_request(self, conn: Connection, request: ParsedRequest) -> None:
        self.server.http_request(conn, request)

    def upgrade(self, conn: Connection, request: ParsedRequest) -> None:
        self.server.upgrade(conn, request)

    def http_error(self, conn: Connection, error: HttpProtocolError) -> bytes:
        return self.server.http_error(conn, error)

    def handshake_accepted(self, conn: Connection, response: object) -> None:
        self.server.handshake_accepted(conn, response)

    def callback_result(self, result: Any) -> Any:
        return result  # the master's message callback only forwards (and returns None)

    def close_barrier(self, conn: Connection) -> asyncio.Future[Any] | None:
        return None

    def receive(self, conn: Connection, data: bytes) -> None:
        conn.close()  # raw TCP is not served in SWOOLE_PROCESS mode (refused at start)

    def connection_lost(self, conn: Connection) -> None:
        if "close" in self.user_events or "disconnect" in self.user_events:
            websocket = conn.ws is not None
            self._send(conn.fd, msg.EV_CLOSE, msg.pack_ev_close(conn.fd, websocket))

    # -- answers from the workers ----------------------------------------------------------

    def on_reply(self, kind: int, body: bytes) -> bool:
        """Apply a worker's RESP_* message; False if ``kind`` is not one."""
        if kind == msg.RESP_DATA:
            fd, data = msg.unpack_send(body)
            conn = self.worker.connections.get(fd)
            if conn is not None:
                conn.write_response(data)
        elif kind == msg.RESP_FILE:
            fd, offset, length, path = msg.unpack_resp_file(body)
            conn = self.worker.connections.get(fd)
            if conn is not None:
                conn.send_file(path, offset, length)
        elif kind == msg.RESP_END:
            fd, keep_alive, status = msg.unpack_resp_end(body)
            conn = self.worker.connections.get(fd)
            if conn is not None and conn.busy:
                conn.finish_response(_Status(status), keep_alive)
        else:
            return False
        return True


class ResponseRelay:
    """A worker's ``ResponseWriter``: the response's bytes go to the master, which owns the
    connection."""

    __slots__ = ("fd", "procs")

    def __init__(self, procs: ProcessModel, fd: int) -> None:
        self.procs = procs
        self.fd = fd

    def write_response(self, data: bytes) -> bool:
        return self.procs.send(self.procs.master_id, msg.RESP_DATA, msg.pack_send(self.fd, data))

    def send_file(self, path: str, offset: int, length: int) -> bool:
        body = msg.pack_resp_file(self.fd, offset, length, path)
        return self.procs.send(self.procs.master_id, msg.RESP_FILE, body)

    def finish_response(self, response: Response, keep_alive: bool) -> None:
        body = msg.pack_resp_end(self.fd, keep_alive, response.status_code)
        self.procs.send(self.procs.master_id, msg.RESP_END, body)

    def close(self) -> None:
        self.procs.send(self.procs.master_id, msg.CLOSE, msg.pack_close(self.fd, False))


class WorkerEvents:
    """In a SWOOLE_PROCESS worker: run the user's callbacks for the master's events."""

    def __init__(self, server: Server, procs: ProcessModel) -> None:
        self.server = server
        self.procs = procs

    def on_event(self, kind: int, body: bytes) -> bool:
        """Handle an EV_* message; False if ``kind`` is not one."""
        server = self.server
        if kind == msg.EV_MESSAGE:
            fd, opcode, flags, data = msg.unpack_push(body)
            payload: str | bytes = data.decode() if opcode == 1 else data
            server.call_event("message", server, Frame(fd, payload, opcode, True, flags))
        elif kind == msg.EV_OPEN:
            server.call_event("open", server, msg.decode_object(body))
        elif kind == msg.EV_CONNECT:
            fd, _ = msg.unpack_close(body)
            server.call_event("connect", server, fd, 0)
        elif kind == msg.EV_CLOSE:
            fd, websocket = msg.unpack_ev_close(body)
            if not websocket and "disconnect" in server._callbacks:
                server.call_event("disconnect", server, fd)
            else:
                server.call_event("close", server, fd, 0)
        elif kind == msg.EV_REQUEST:
            self._request(body)
        else:
            return False
        return True

    def _request(self, body: bytes) -> None:
        server = self.server
        request, method, version, keep_alive = msg.decode_object(body)
        relay = ResponseRelay(self.procs, request.fd)
        response = Response(
            request.fd,
            relay,
            method=method,
            version=version,
            keep_alive=keep_alive,
            server_name=server._settings.get_value("server_name"),
        )
        callback = server._callbacks.get("request")
        if callback is None:
            response.status(400)
            response.end()
            return
        server.run_handler(callback, request, response, relay)  # type: ignore[attr-defined]
