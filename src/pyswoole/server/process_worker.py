"""SWOOLE_PROCESS mode, the worker's side: run the user's callbacks for the events the
master forwards (:mod:`.process_mode`), and send what they answer back to it.

A connection of a port with its own callbacks (``Port::on``) comes as EV_PORT, the event
wrapped with the port's index in ``server.ports``: the worker runs that port's callbacks
(its own, else the server's, as the port's profile merged them before the fork), exactly
as a SWOOLE_BASE worker picks them by ``conn.profile``. ``on("close")`` gets reactor_id
-1 when the server closed the connection itself (``close()``/``disconnect()``, the flag in
EV_CLOSE), 0 otherwise, as Swoole's ``Factory::end`` with ``CLOSE_ACTIVELY``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..process import messages as msg
from ..protocol.frames import Frame
from .access_log import request_writer
from .dispatch import LOAD_MODES
from .response import Response
from .ws_handshake import DiscardWriter

if TYPE_CHECKING:
    from .base import Server
    from .processes import ProcessModel

__all__ = ["ResponseRelay", "WorkerEvents"]

log = logging.getLogger("pyswoole")

Callbacks = dict[str, Callable[..., Any]]


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
        extensions = ""
        if response.status_code == 101:  # a custom handshake: what it kept of compression
            extensions = next(
                (
                    str(v)
                    for k, v in response.headers.items()
                    if k.lower() == "sec-websocket-extensions"
                ),
                "",
            )
        body = msg.pack_resp_end(self.fd, keep_alive, response.status_code, extensions)
        self.procs.send(self.procs.master_id, msg.RESP_END, body)

    def close(self) -> None:
        self.procs.send(self.procs.master_id, msg.CLOSE, msg.pack_close(self.fd, False))


class WorkerEvents:
    """In a SWOOLE_PROCESS worker: run the user's callbacks for the master's events, and
    answer its barriers once the callbacks of a closing fd have finished."""

    def __init__(self, server: Server, procs: ProcessModel) -> None:
        self.server = server
        self.procs = procs
        #: fd -> ``async def`` open/message callbacks of that fd still running
        self._running: dict[int, set[asyncio.Future[Any]]] = {}
        #: fd -> its client's TLS certificate (PEM), from the master (process_certs.py)
        self.certs: dict[int, str] = {}
        #: dispatch_mode 3/7(/9/10): the master reads what this worker is doing
        get = server._settings.get_value
        self._load = procs.load if get("dispatch_mode") in LOAD_MODES else None
        self._id = procs.process_id
        if self._load is not None:
            self._load.recover(self._id)
        #: the server's callbacks; per port index, that port's (None: it has none of its own)
        self._callbacks: Callbacks = server._callbacks
        self._ports: list[Callbacks | None] = [
            port._listener.profile.callbacks
            if port._callbacks and port._listener.profile is not None
            else None
            for port in server._ports
        ]

    def on_event(self, kind: int, body: bytes) -> bool:
        """Handle an EV_* message; False if ``kind`` is not one."""
        load = self._load
        if load is None:
            return self._handle(kind, body, self._callbacks)
        load.begin(self._id)  # (dispatch_mode 3/7: the master sees this worker busy)
        try:
            return self._handle(kind, body, self._callbacks)
        finally:
            load.end(self._id)

    def _handle(self, kind: int, body: bytes, callbacks: Callbacks) -> bool:
        """Run the callback of event ``kind`` from ``callbacks`` (the server's, or a port's)."""
        server = self.server
        if kind == msg.EV_MESSAGE:
            fd, opcode, flags, data = msg.unpack_push(body)
            callback = callbacks.get("message")
            if callback is not None:
                payload: str | bytes = data.decode() if opcode == 1 else data
                result = server._call(callback, server, Frame(fd, payload, opcode, True, flags))
                if result is not None:
                    self._track(fd, result)
        elif kind == msg.EV_RECEIVE:
            fd, data = msg.unpack_send(body)
            callback = callbacks.get("receive")
            if callback is not None:
                server._call(callback, server, fd, 0, data)
        elif kind == msg.EV_PORT:
            index, kind, body = msg.unpack_port(body)
            port_callbacks = self._ports[index] if index < len(self._ports) else None
            return self._handle(kind, body, callbacks if port_callbacks is None else port_callbacks)
        elif kind == msg.EV_OPEN:
            request = msg.decode_object(body)
            callback = callbacks.get("open")
            if callback is not None:
                result = server._call(callback, server, request)
                if result is not None:
                    self._track(request.fd, result)
        elif kind == msg.EV_CONNECT:
            fd, _ = msg.unpack_close(body)
            callback = callbacks.get("connect")
            if callback is not None:
                server._call(callback, server, fd, 0)
        elif kind == msg.EV_CLOSE:
            fd, websocket, actively = msg.unpack_ev_close(body)
            disconnect = None if websocket else callbacks.get("disconnect")
            if disconnect is not None:
                server._call(disconnect, server, fd)
            elif (close := callbacks.get("close")) is not None:
                server._call(close, server, fd, -1 if actively else 0)
        elif kind == msg.EV_REQUEST:
            self._request(body, callbacks)
        elif kind == msg.EV_HANDSHAKE:
            self._handshake(body, callbacks)
        elif kind == msg.EV_BEFORE_HANDSHAKE:
            self._before_handshake(msg.decode_object(body), callbacks)
        elif kind == msg.EV_BARRIER:
            self._barrier(msg.unpack_fd(body))
        elif kind == msg.EV_BUFFER:
            fd, full = msg.unpack_ev_buffer(body)
            callback = callbacks.get("bufferFull" if full else "bufferEmpty")
            if callback is not None:
                server._call(callback, server, fd)
        elif kind == msg.EV_CERT:  # (process_certs.py) kept for get_client_info
            fd, pem = msg.unpack_send(body)
            if pem:
                self.certs[fd] = pem.decode()
            else:
                self.certs.pop(fd, None)
        else:
            return False
        return True

    def bind(self, fd: int, uid: int) -> bool:
        """``bind(fd, uid)`` here: the master owns ``fd`` and records the uid (BIND), in
        order with this worker's later replies; False if ``fd`` is not open or already
        bound (as far as the shared table shows: a second bind before the master applied
        the first also returns True, and the first wins)."""
        procs = self.procs
        rec = procs.record(fd)
        if rec is None or rec.uid:
            return False
        return procs.send(procs.master_id, msg.BIND, msg.pack_bind(fd, uid))

    def _track(self, fd: int, result: Any) -> None:
        """A callback of ``fd`` runs as a task (``callback_result``): a barrier waits for it."""
        if not isinstance(result, asyncio.Future) or result.done():
            return
        running = self._running.get(fd)
        if running is None:
            running = self._running[fd] = set()
        running.add(result)
        result.add_done_callback(lambda task: self._untrack(fd, task))

    def _untrack(self, fd: int, task: asyncio.Future[Any]) -> None:
        running = self._running.get(fd)
        if running is not None:
            running.discard(task)
            if not running:
                del self._running[fd]

    def _barrier(self, fd: int) -> None:
        """EV_BARRIER: every event of ``fd`` before it has been handled (the inbox is read in
        order); ack once its callbacks still running are done, bounded by max_wait_time."""
        running = self._running.get(fd)
        worker = self.server._worker
        if not running or worker is None or worker.reply_wait <= 0:  # 0: no waiting
            self._ack(fd)
            return
        worker.loop.create_task(self._ack_after(fd, list(running), worker.reply_wait))

    async def _ack_after(self, fd: int, tasks: list[asyncio.Future[Any]], timeout: float) -> None:
        _, late = await asyncio.wait(tasks, timeout=timeout)
        if late:
            log.warning(
                "fd %d: %d callbacks still running after max_wait_time: closing", fd, len(late)
            )
        self._ack(fd)

    def _ack(self, fd: int) -> None:
        if not self.procs.send(self.procs.master_id, msg.BARRIER_ACK, msg.pack_fd(fd)):
            log.error("could not acknowledge the barrier of fd %d", fd)

    def _request(self, body: bytes, callbacks: Callbacks) -> None:
        server = self.server
        request, method, version, keep_alive = msg.decode_object(body)
        relay = ResponseRelay(self.procs, request.fd)
        writer: Any = relay
        if server._settings.get_value("access_log"):  # server/access_log.py
            writer = request_writer(relay, request, version)
        response = Response(
            request.fd,
            writer,
            method=method,
            version=version,
            keep_alive=keep_alive,
            server_name=server._settings.get_value("server_name"),
        )
        callback = callbacks.get("request")
        if callback is None:
            response.status(400)
            response.end()
            return
        server._run_handler(callback, request, response, relay)  # type: ignore[attr-defined]

    def _handshake(self, body: bytes, callbacks: Callbacks) -> None:
        """EV_HANDSHAKE: ``on("handshake")`` answers (SWOOLE_BASE's ``_custom_handshake``):
        a 101 it ends makes a WebSocket in the master; a callback that returns without
        ending the response (or returns False) closes the connection."""
        server = self.server
        request, method, version, keep_alive, extensions = msg.decode_object(body)
        relay = ResponseRelay(self.procs, request.fd)
        response = Response(
            request.fd,
            relay,
            method=method,
            version=version,
            keep_alive=keep_alive,
            server_name=server._settings.get_value("server_name"),
        )
        if extensions:
            response.header("Sec-WebSocket-Extensions", extensions)
        callback = callbacks.get("handshake")
        if callback is None:
            relay.close()
            return

        def after(result: Any) -> None:
            if response.ended:
                return
            if result is not False:
                log.warning(
                    "handshake callback returned without response.end(); closing fd %d",
                    request.fd,
                )
            relay.close()

        server._run_handler(callback, request, response, relay, after)  # type: ignore[attr-defined]

    def _before_handshake(self, request: Any, callbacks: Callbacks) -> None:
        """EV_BEFORE_HANDSHAKE: run ``on("beforeHandshakeResponse")`` and send the master
        the headers and cookies it set (RESP_HEADERS), for its 101."""
        server = self.server
        procs = self.procs
        fd = request.fd
        response = Response(fd, DiscardWriter(), server_name="")

        def answer(_: Any = None) -> None:
            data = msg.encode_object((dict(response.headers), response.cookies))
            procs.send(procs.master_id, msg.RESP_HEADERS, msg.pack_send(fd, data))

        callback = callbacks.get("beforeHandshakeResponse")
        result = None if callback is None else server._call(callback, server, request, response)
        if isinstance(result, asyncio.Future) and not result.done():
            result.add_done_callback(answer)
        else:
            answer()
