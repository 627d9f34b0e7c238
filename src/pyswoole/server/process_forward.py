"""SWOOLE_PROCESS mode, the master's forwarders: each event of a connection becomes an
EV_* message to the connection's worker (:mod:`.process_mode` routes it, in order, with its
flow control; :mod:`.process_worker` runs the callback).

In the master, "calling" a callback forwards it: the server's ``request`` and ``open``
callbacks are replaced by forwarders (the HTTP parsing, the built-in handshake and its 101
still run here, in the server's code), the worker's ``on_message``, ``on_connect`` and
``on_buffer`` hooks forward, and so do ``receive`` (raw TCP, as Swoole's master hands
``onReceive`` data to a worker) and ``connection_lost``. The handshakes the application
answers go to the worker too: ``on("handshake")`` gets the upgrade request and answers it
through the master (a 101 makes the connection a WebSocket there, in ``finish_response``;
the permessage-deflate the master agreed travels both ways); ``on("beforeHandshakeResponse")``
sends back the headers and cookies it set, which the master's 101 waits for (at most
``max_wait_time``). Swoole runs both callbacks in the worker as well.

Ports with their own callbacks (``Port::on``): the profile of such a port (its callbacks
merged over the server's, built before the fork) gets forwarders that wrap each event in
EV_PORT with the port's index, so the worker runs that port's callbacks. A connection of
the main port, or of a port with only its own settings, costs nothing more: its events go
as before, and only the connect, close and buffer forwarders look its port up.

``on("close")``'s reactor_id: Swoole passes -1 when the server closed the connection
itself (``Server::close``, ``disconnect``: ``Factory::end`` with ``CLOSE_ACTIVELY``), the
reactor's id otherwise. The master runs every ``close()``/``disconnect()`` of its
connections (the workers ask it over IPC), which records the fd
(:meth:`.connections.ConnectionApi._close_local`); EV_CLOSE carries the flag.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from ..process import messages as msg
from ..protocol.frames import Frame
from ..runtime.connection import Connection
from ..runtime.listener import PortProfile
from .request import Request
from .response import Response

if TYPE_CHECKING:
    from ..runtime.worker import Worker
    from .base import Server
    from .process_certs import MasterCertificates
    from .processes import ProcessModel

__all__ = ["MasterForwarders"]

log = logging.getLogger("pyswoole")


class MasterForwarders:
    """Mixin of :class:`.process_mode.MasterApp`: the events it forwards."""

    if TYPE_CHECKING:
        server: Server
        procs: ProcessModel
        worker: Worker
        user_events: set[str]
        certs: MasterCertificates | None
        _forwarded: set[int]
        received: dict[int, int]
        _route: dict[int, int]
        _barriers: dict[int, asyncio.Future[None]]
        _paused: dict[int, dict[int, Connection]]

        def buffer_changed(self, conn: Connection, full: bool) -> None: ...

        def _send(
            self, fd: int, kind: int, body: bytes, pause: bool = True, first: Any = None
        ) -> None: ...

        def _assign(self, fd: int, kind: int, first: Any) -> int: ...

        def _release(self, fd: int) -> None: ...

    def _forward_events(self) -> None:
        """Replace the callbacks by forwarders, in this process (the master) only."""
        server = self.server
        worker = self.worker
        self.user_events = set(server._callbacks)
        #: on("connect") on the server or a port (looked up before the master drops it)
        self.wants_connect = server._wants("connect")
        callbacks = server._callbacks
        if "request" in callbacks:
            callbacks["request"] = self._forward_request
        if "open" in callbacks:
            callbacks["open"] = self._forward_open
        if "handshake" in callbacks:
            callbacks["handshake"] = partial(self._forward_handshake, -1)
        if "beforeHandshakeResponse" in callbacks:
            callbacks["beforeHandshakeResponse"] = partial(self._forward_before_handshake, -1)
        callbacks.pop("connect", None)
        #: fd -> (its 101's headers waiting for the worker, the response they go in, timer)
        self._before: dict[int, tuple[asyncio.Future[None], Response, asyncio.TimerHandle]] = {}
        worker.on_message = self._forward_message
        #: a port with its own callbacks (its profile) -> its index in ``server.ports``
        self._port_of: dict[PortProfile, int] = {}
        #: per port index: the events its connections have callbacks for (else None)
        self._port_events: list[frozenset[str] | None] = []
        for index, port in enumerate(server._ports):
            profile = port._listener.profile
            if not port._callbacks or profile is None:
                self._port_events.append(None)
                continue
            port_callbacks = profile.callbacks  # (its own copy: the port's over the server's)
            self._port_events.append(frozenset(port_callbacks))
            self._port_of[profile] = index
            if "request" in port_callbacks:
                port_callbacks["request"] = partial(self._forward_port_request, index)
            if "open" in port_callbacks:
                port_callbacks["open"] = partial(self._forward_port_open, index)
            if "handshake" in port_callbacks:
                port_callbacks["handshake"] = partial(self._forward_handshake, index)
            if "beforeHandshakeResponse" in port_callbacks:
                port_callbacks["beforeHandshakeResponse"] = partial(
                    self._forward_before_handshake, index
                )
            port_callbacks.pop("connect", None)
            profile.on_message = partial(self._forward_port_message, index)
        worker.on_connect = self._forward_connect if self.wants_connect else None
        #: bufferFull/bufferEmpty go to the fd's worker (the state goes to the shared
        #: table in any case: MasterApp.buffer_changed)
        self.wants_buffer = server._wants("bufferFull", "bufferEmpty")
        worker.on_buffer = self.buffer_changed

    def _port_index(self, conn: Connection) -> int:
        """The index of ``conn``'s port if that port has its own callbacks, else -1."""
        port_of = self._port_of
        if not port_of:
            return -1
        profile = conn.profile
        return -1 if profile is None else port_of.get(profile, -1)

    def _send_port(self, fd: int, index: int, kind: int, body: bytes, first: Any = None) -> None:
        """Hand event ``kind`` of ``fd`` (of port ``index``) over as EV_PORT."""
        if fd not in self._route:  # its first event chooses its worker, by what it is
            self._assign(fd, kind, first)
        self._send(fd, msg.EV_PORT, msg.pack_port(index, kind, body))

    def _events_of(self, index: int) -> frozenset[str] | set[str]:
        events = self._port_events[index] if index >= 0 else None
        return self.user_events if events is None else events

    # -- the server's events ---------------------------------------------------------------

    def _forward_connect(self, conn: Connection) -> None:
        index = self._port_index(conn)
        if "connect" not in self._events_of(index):
            return
        body = msg.pack_close(conn.fd, False)
        if index < 0:
            self._send(conn.fd, msg.EV_CONNECT, body)
        else:
            self._send_port(conn.fd, index, msg.EV_CONNECT, body)

    def _forward_open(self, server: Server, request: Request) -> None:
        self._forwarded.add(request.fd)
        self._send(request.fd, msg.EV_OPEN, self._hand_over(request), first=request)

    def _forward_message(self, app: object, frame: Frame) -> None:
        fd = frame.fd
        data = frame.data
        payload = data.encode() if isinstance(data, str) else data
        self._forwarded.add(fd)  # its worker may be answering: a close waits (close_barrier)
        received = self.received  # (replies to it may pass socket_buffer_size: refused())
        received[fd] = received.get(fd, 0) + len(payload)
        self._send(
            fd, msg.EV_MESSAGE, msg.pack_push(fd, frame.opcode, frame.flags, payload), first=payload
        )

    def _forward_request(self, request: Request, response: Response) -> None:
        self._send(request.fd, msg.EV_REQUEST, self._request_body(request, response), first=request)

    @staticmethod
    def _request_body(request: Request, response: Response) -> bytes:
        # The worker answers; this response object only stands for the connection here.
        response.ended = True
        body = msg.encode_object((request, response._method, response.version, response.keep_alive))
        request._tmpfiles.clear()  # the uploaded files now belong to the worker
        return body

    def _forward_buffer(self, conn: Connection, full: bool) -> None:
        """``worker.on_buffer``: the worker of the fd calls bufferFull/bufferEmpty."""
        index = self._port_index(conn)
        body = msg.pack_ev_buffer(conn.fd, full)
        if index < 0:
            self._send(conn.fd, msg.EV_BUFFER, body)
        else:
            self._send_port(conn.fd, index, msg.EV_BUFFER, body)

    @staticmethod
    def _hand_over(request: Request) -> bytes:
        """Pickle ``request``; its uploaded files now belong to the worker (it deletes them)."""
        data = msg.encode_object(request)
        request._tmpfiles.clear()
        return data

    # -- a port's own events (EV_PORT) -------------------------------------------------------

    def _forward_port_open(self, index: int, server: Server, request: Request) -> None:
        self._forwarded.add(request.fd)
        self._send_port(request.fd, index, msg.EV_OPEN, self._hand_over(request), request)

    def _forward_port_message(self, index: int, app: object, frame: Frame) -> None:
        fd = frame.fd
        data = frame.data
        payload = data.encode() if isinstance(data, str) else data
        self._forwarded.add(fd)
        received = self.received
        received[fd] = received.get(fd, 0) + len(payload)
        body = msg.pack_push(fd, frame.opcode, frame.flags, payload)
        self._send_port(fd, index, msg.EV_MESSAGE, body, payload)

    def _forward_port_request(self, index: int, request: Request, response: Response) -> None:
        body = self._request_body(request, response)
        self._send_port(request.fd, index, msg.EV_REQUEST, body, request)

    # -- the WebSocket handshakes the application answers --------------------------------

    def _forward_handshake(self, index: int, request: Request, response: Response) -> None:
        """``on("handshake")``: the worker answers (its 101 makes a WebSocket here, in
        ``finish_response``); the extension the master agreed goes along, as in SWOOLE_BASE
        (added unless the callback sets the header)."""
        extensions = next(
            (v for k, v in response.headers.items() if k.lower() == "sec-websocket-extensions"),
            None,
        )
        response.ended = True  # the worker's response answers; this one only stands for it
        body = msg.encode_object(
            (request, response._method, response.version, response.keep_alive, extensions)
        )
        request._tmpfiles.clear()
        if index < 0:
            self._send(request.fd, msg.EV_HANDSHAKE, body, first=request)
        else:
            self._send_port(request.fd, index, msg.EV_HANDSHAKE, body, request)

    def _forward_before_handshake(
        self, index: int, server: Server, request: Request, response: Response
    ) -> asyncio.Future[None]:
        """``on("beforeHandshakeResponse")``: the worker's callback sets headers and cookies;
        the master's 101 waits for them (RESP_HEADERS), at most ``max_wait_time``."""
        fd = request.fd
        loop = self.worker.loop
        future: asyncio.Future[None] = loop.create_future()
        wait = self.worker.reply_wait if self.worker.reply_wait > 0 else 3.0
        timer = loop.call_later(wait, self._before_late, fd)
        self._before[fd] = (future, response, timer)
        body = self._hand_over(request)
        if index < 0:
            self._send(fd, msg.EV_BEFORE_HANDSHAKE, body, first=request)
        else:
            self._send_port(fd, index, msg.EV_BEFORE_HANDSHAKE, body, request)
        return future

    def _before_late(self, fd: int) -> None:
        pending = self._before.pop(fd, None)
        if pending is not None and not pending[0].done():
            log.warning("fd %d: no beforeHandshakeResponse answer within max_wait_time", fd)
            pending[0].set_result(None)

    def before_handshake_answered(self, body: bytes) -> None:
        """RESP_HEADERS: the headers and cookies of the 101 of ``fd``."""
        fd, data = msg.unpack_send(body)
        pending = self._before.pop(fd, None)
        if pending is None:
            return
        future, response, timer = pending
        timer.cancel()
        headers, cookies = msg.decode_object(data)
        response.headers = headers
        response._cookies = list(cookies)
        if not future.done():
            future.set_result(None)

    # -- runtime.connection.Application ----------------------------------------------------

    def receive(self, conn: Connection, data: bytes) -> None:
        """Raw TCP bytes: to the fd's worker (``on("receive")``), read no further while its
        IPC queue is past the high water mark, as every other event."""
        fd = conn.fd
        body = msg.pack_send(fd, data)
        received = self.received
        received[fd] = received.get(fd, 0) + len(data)
        index = self._port_index(conn)
        if index < 0:
            self._send(fd, msg.EV_RECEIVE, body, first=data)
        else:
            self._send_port(fd, index, msg.EV_RECEIVE, body, data)

    def connection_lost(self, conn: Connection) -> None:
        fd = conn.fd
        self._forwarded.discard(fd)
        server = self.server
        topic_closed = getattr(server, "_topic_closed", None)
        if topic_closed is not None:  # it leaves its topics (subscriptions live here)
            topic_closed(fd)
        barrier = self._barriers.pop(fd, None)
        if barrier is not None and not barrier.done():
            barrier.set_result(None)  # nobody can be answered any more
        for paused in self._paused.values():
            paused.pop(fd, None)
        before = self._before.pop(fd, None) if self._before else None
        if before is not None:  # (its 101 is not sent: the connection is gone)
            before[2].cancel()
            if not before[0].done():
                before[0].set_result(None)
        actively = server._closed_actively
        if actively:  # close()/disconnect() ran here: reactor_id -1
            active = fd in actively
            actively.discard(fd)
        else:
            active = False
        index = self._port_index(conn)
        events = self._events_of(index)
        if "close" in events or "disconnect" in events:
            body = msg.pack_ev_close(fd, conn.ws is not None, active)
            if index < 0:
                self._send(fd, msg.EV_CLOSE, body)
            else:
                self._send_port(fd, index, msg.EV_CLOSE, body)
        if self.certs is not None:
            self.certs.closed(fd)
        self._release(fd)
