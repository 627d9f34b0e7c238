"""``WebSocketServer``: Swoole's ``Swoole\\WebSocket\\Server``.

The opening handshake is the built-in one (RFC 6455 section 4.2, with
``beforeHandshakeResponse`` to add headers and cookies to the 101) unless
``on("handshake")`` replaces it: then the callback answers with ``response.status(101)``
and ``response.end()`` and ``open`` is not called, exactly as in Swoole.

``push`` is the hot path: encode once (``encode_frame``) and write; ``broadcast`` encodes a
message once for every receiver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ..constants import (
    SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW,
    SWOOLE_ERROR_SESSION_NOT_EXIST,
    SWOOLE_ERROR_WEBSOCKET_PACK_FAILED,
    SWOOLE_ERROR_WEBSOCKET_UNCONNECTED,
    SWOOLE_WEBSOCKET_FLAG_COMPRESS,
    SWOOLE_WEBSOCKET_FLAG_FIN,
    SWOOLE_WEBSOCKET_FLAG_RSV1,
    SWOOLE_WEBSOCKET_FLAG_RSV2,
    SWOOLE_WEBSOCKET_FLAG_RSV3,
    WEBSOCKET_CLOSE_NORMAL,
    WEBSOCKET_OPCODE_BINARY,
    WEBSOCKET_OPCODE_CLOSE,
    WEBSOCKET_OPCODE_CONTINUATION,
    WEBSOCKET_OPCODE_PING,
    WEBSOCKET_OPCODE_PONG,
    WEBSOCKET_OPCODE_TEXT,
    WEBSOCKET_STATUS_ACTIVE,
)
from ..exceptions import PackError
from ..process import messages as msg
from ..process.table import FLOW_OVERFLOW
from ..protocol.deflate import (
    DeflateParams,
    PerMessageDeflate,
    shared_deflate,
)
from ..protocol.frames import (
    CloseFrame,
    Frame,
    close_frame_payload,
    encode_frame,
    encode_text,
    frame_flags,
    frame_header,
    is_valid_close_code,
    pack,
    unpack,
)
from ..protocol.websocket import MESSAGE, SENT, SENT_HEADER
from ..runtime.connection import Connection
from ..runtime.state import compiled_broadcast, compiled_push
from ..runtime.worker import Worker
from .control import check_fd
from .events import EVENTS
from .threads import from_thread, get_ident
from .topics import TopicServer

__all__ = ["WebSocketServer"]

log = logging.getLogger("pyswoole")

#: from this payload size on, push() sends header and payload with one writev instead of
#: copying them into one frame (below it, the copy is cheaper than the extra buffer)
_SPLIT_MIN = 16 * 1024

_broadcast_frame = compiled_broadcast()

_VALID_OPCODES = frozenset(
    (
        WEBSOCKET_OPCODE_CONTINUATION,
        WEBSOCKET_OPCODE_TEXT,
        WEBSOCKET_OPCODE_BINARY,
        WEBSOCKET_OPCODE_PING,
        WEBSOCKET_OPCODE_PONG,
    )
)


class WebSocketServer(TopicServer):
    """A WebSocket server (RFC 6455) that also serves HTTP on the same port."""

    _required_events: tuple[str, ...] = ("message",)

    pack = staticmethod(pack)
    unpack = staticmethod(unpack)

    def _supported_events(self) -> set[str]:
        return set(EVENTS) - {"receive"}

    def _configure_worker(self, worker: Worker) -> None:
        super()._configure_worker(worker)  # the handshake's settings (ws_handshake.py)
        self._compress_min: int = self._deflate_config.min_size
        self._offload_size: int = self._settings.get_value("websocket_compression_offload_size")
        # Connections call it as callback(server, frame) (they pass their app: this server);
        # exceptions are logged there, and a coroutine result comes to callback_result.
        worker.on_message = self._callbacks["message"]
        if type(self).push is WebSocketServer.push:  # a subclass's own push() stays in charge
            pusher = compiled_push(self._table, self._buffer_limit, self._push_local)
            if pusher is not None:
                # An instance attribute: callbacks' server.push(...) reaches C directly.
                self.__dict__["push"] = pusher

    # -- pushing --------------------------------------------------------------------------

    def _ws_conn(self, fd: int) -> Connection | None:
        """The connection of ``fd`` if it is an established WebSocket; else None with
        ``get_last_error()`` set."""
        conn = self._table.get(fd)
        if conn is not None and conn.status == WEBSOCKET_STATUS_ACTIVE:
            return conn
        self._last_error = (
            SWOOLE_ERROR_SESSION_NOT_EXIST
            if conn is None or conn.closed
            else SWOOLE_ERROR_WEBSOCKET_UNCONNECTED
        )
        return None

    def push(
        self,
        fd: int,
        data: str | bytes | Frame,
        opcode: int = WEBSOCKET_OPCODE_TEXT,
        flags: int = SWOOLE_WEBSOCKET_FLAG_FIN,
    ) -> bool:
        """Send a message to WebSocket client ``fd``; False (see ``get_last_error()``) if
        ``fd`` is not an open WebSocket connection or its send buffer is full.

        As Swoole's ``push``: ``flags`` carries FIN (``SWOOLE_WEBSOCKET_FLAG_FIN``), so
        ``push(fd, "Hel", OPCODE_TEXT, 0)`` then ``push(fd, "lo", OPCODE_CONTINUATION)``
        send one fragmented message (RFC 6455 section 5.4; fragments are never compressed).
        A :class:`Frame` brings its own opcode and flags (the arguments are ignored) and its
        ``finish``, when not None, sets or clears FIN (:func:`frame_flags`). A
        :class:`CloseFrame` (or ``opcode`` CLOSE with ``data`` as the reason and code 1000,
        as Swoole) sends that close frame and starts the closing handshake (section 7.1.2):
        no further push succeeds, and the client's close answer ends the connection (or
        the close timeout does). A close frame Swoole cannot pack (a reason over 123 bytes)
        is not sent: False, with ``SWOOLE_ERROR_WEBSOCKET_PACK_FAILED``. From another
        thread the call is handed to the event loop and its result returned (threads.py)."""
        if self._loop_thread and get_ident() != self._loop_thread:
            return from_thread(self._loop, "push", self._push_local, fd, data, opcode, flags)
        conn = self._table.get(fd)
        if conn is None or conn.status != WEBSOCKET_STATUS_ACTIVE or type(fd) is not int:
            check_fd(fd)  # "1", 1.0, True: TypeError (control.check_fd)
            if conn is None or conn.status != WEBSOCKET_STATUS_ACTIVE:
                if conn is None and self._procs is not None:
                    return self._push_remote(fd, data, opcode, flags)
                return self._ws_conn(fd) is not None  # sets the error, returns False
        tail: bytes | None = None  # a big payload sent after ``frame`` (the header), uncopied
        if type(data) is str and opcode == 1 and flags == 1 and conn.deflate is None:
            # The common case: a whole text message, encoded in one step (compiled).
            frame = encode_text(data)
        elif (
            type(data) is bytes
            and len(data) >= _SPLIT_MIN
            and (opcode == 2 or opcode == 1)
            and flags == 1
            and conn.deflate is None
            and not conn.has_jobs
        ):
            # A big whole message: header and payload go out in one writev, uncopied.
            frame = frame_header(opcode, len(data))
            tail = data
        else:
            if isinstance(data, CloseFrame) or (
                opcode == WEBSOCKET_OPCODE_CLOSE and not isinstance(data, Frame)
            ):
                return self._push_close(conn, _as_close_frame(data))
            encoded = self._encode(data, opcode, flags, conn.deflate, conn.has_jobs)
            assert encoded is not None
            if not isinstance(encoded, bytes):  # compress off the loop, in order
                return self._send_off_loop(conn, encoded, data)
            frame = encoded
        if conn.send_message(frame, tail, self._buffer_limit):
            # (pyswoole.metrics: by opcode, the payload's bytes; a tail is the whole payload)
            SENT[frame[0]] += MESSAGE + len(tail) if tail else SENT_HEADER[frame[1]] + len(frame)
            return True
        return self._refused(conn)

    def _refused(self, conn: Connection) -> bool:
        """A push to ``conn`` of this process failed: set the error; False. At
        ``socket_buffer_size`` a SWOOLE_BASE worker of several marks it overflowing for
        the others (``base_flow.BaseFlow.overflowed``: Swoole's ``conn->overflow``)."""
        if conn.closed:
            self._last_error = SWOOLE_ERROR_SESSION_NOT_EXIST
            return False
        self._last_error = SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW
        procs = self._procs
        if procs is not None and procs.base_flow is not None:
            procs.base_flow.overflowed(conn)
        return False

    def _push_close(self, conn: Connection, frame: CloseFrame | None) -> bool:
        """``push(fd, CloseFrame(code, reason))``: send that close frame and nothing else,
        and enter the closing handshake (RFC 6455 sections 5.5.1, 7.1.2): the status becomes
        CLOSING, so further pushes fail; the client's close answer closes the connection
        normally (``on("close")`` once), or the close timeout does. Unlike ``disconnect``,
        nothing closes TCP from the server's side meanwhile."""
        if not self._close_packable(frame, conn.fd):
            return False
        assert frame is not None
        if conn.close_websocket(frame.code, frame.reason):
            return True
        self._last_error = (
            SWOOLE_ERROR_SESSION_NOT_EXIST if conn.closed else SWOOLE_ERROR_WEBSOCKET_UNCONNECTED
        )
        return False

    def _close_packable(self, frame: CloseFrame | None, fd: int) -> bool:
        """Whether ``frame`` packs; if not, warn and set the error, as Swoole's push does
        ("the max length of close reason is 123", ``SW_ERROR_WEBSOCKET_PACK_FAILED``)."""
        try:
            if frame is None:
                raise PackError("a close reason must be text")
            close_frame_payload(frame)
        except PackError as error:
            log.warning("push(%d, CloseFrame): %s", fd, error)
            self._last_error = SWOOLE_ERROR_WEBSOCKET_PACK_FAILED
            return False
        return True

    def _send_off_loop(
        self, conn: Connection, job: Callable[[], bytes], data: str | bytes | Frame
    ) -> bool:
        """Queue a message compressed off the loop, unless the buffer is already full."""
        if conn.queued_bytes() >= self._buffer_limit:
            return self._refused(conn)
        raw = data.data if isinstance(data, Frame) else data
        conn.send_off_loop(job, len(raw))
        return True

    async def push_async(
        self,
        fd: int,
        data: str | bytes | Frame,
        opcode: int = WEBSOCKET_OPCODE_TEXT,
        flags: int = SWOOLE_WEBSOCKET_FLAG_FIN,
        timeout: float | None = None,
    ) -> bool:
        """``await server.push_async(fd, data)``: ``push()`` that waits while the client's
        buffer is full (until it drains to ``buffer_low_watermark``: Swoole's
        ``send_yield``) instead of failing. False if the connection closed, ``timeout``
        seconds passed, or ``send_yield`` is off and the buffer is full. For an fd another
        process owns (the SWOOLE_PROCESS master, another SWOOLE_BASE worker) it waits while
        the owner marks ``fd`` full or overflowing in the shared table and while this
        process's own IPC queue to the owner is not empty, then sends the push marked
        (PUSH_YIELD) so that the owner queues it whatever arrived meanwhile: a loop of
        ``push_async`` holds the owner to about ``socket_buffer_size`` plus what the IPC
        socket holds."""
        if not await self._wait_for_room(fd, timeout):
            return False
        procs = self._procs
        if procs is not None and fd not in self._table:
            # another process's fd: waited for its owner's room (_wait_for_room); marked,
            # so that the owner queues it even if others filled it meanwhile
            return self._push_remote(fd, data, opcode, flags, msg.PUSH_YIELD)
        return self.push(fd, data, opcode, flags)

    _push_local = push

    def _push_unlimited(self, conn: Connection, data: bytes, opcode: int, flags: int) -> bool:
        """Queue another process's push past ``socket_buffer_size`` (``MasterApp.refused``
        in the SWOOLE_PROCESS master, ``BaseFlow.refused`` in a SWOOLE_BASE worker decided
        it may)."""
        encoded = self._encode(data, opcode, flags, conn.deflate, conn.has_jobs)
        if encoded is None:
            return False
        if not isinstance(encoded, bytes):  # compressed off the loop, in order
            conn.send_off_loop(encoded, len(data))
            return True
        return conn.send_message(encoded, None, 1 << 62)

    def _push_remote(
        self, fd: int, data: str | bytes | Frame, opcode: int, flags: int, kind: int = msg.PUSH
    ) -> bool:
        """Hand a push to the worker that owns ``fd`` (kept in order per sender). Refused
        while the owner marks ``fd`` overflowing in the shared table, unless it is a
        ``push_async`` that waited for room (``kind`` PUSH_YIELD)."""
        procs = self._procs
        assert procs is not None
        closing = isinstance(data, CloseFrame) or (
            opcode == WEBSOCKET_OPCODE_CLOSE and not isinstance(data, Frame)
        )
        owner = procs.remote(fd, True, not closing and kind == msg.PUSH)
        if owner < 0:
            return False
        if closing:
            close = _as_close_frame(data)
            if not self._close_packable(close, fd):
                return False
            assert close is not None
            # the owner's close_websocket, as for a local push (see _push_close)
            return procs.send(
                owner, msg.DISCONNECT, msg.pack_disconnect(fd, close.code, close.reason)
            )
        if isinstance(data, Frame):
            opcode = data.opcode
            flags = frame_flags(data)
            data = data.data
        self._encode(data, opcode, flags)  # validate here: errors belong to the caller
        payload = data.encode() if isinstance(data, str) else bytes(data)
        return procs.send(owner, kind, msg.pack_push(fd, opcode, flags, payload))

    def _encode_plain(self, data: str | bytes | Frame, opcode: int, flags: int) -> bytes | None:
        """``_encode`` without compression: always bytes (None for a ``CloseFrame``)."""
        encoded = self._encode(data, opcode, flags)
        assert encoded is None or isinstance(encoded, bytes)
        return encoded

    def _encode(
        self,
        data: str | bytes | Frame,
        opcode: int,
        flags: int,
        deflate: PerMessageDeflate | None = None,
        defer: bool = False,
    ) -> bytes | Callable[[], bytes] | None:
        """The frame bytes for ``push``; None for a ``CloseFrame`` (it means disconnect).

        With a negotiated ``deflate``, whole text/binary messages are compressed when asked
        (``SWOOLE_WEBSOCKET_FLAG_COMPRESS``) or when at least the minimum size (RFC 7692
        section 6: RSV1 on the first and only frame). Control frames never are. A message of
        at least ``websocket_compression_offload_size`` bytes (or any, with ``defer``, when
        earlier ones are still being compressed) comes back as a job to run in a thread, so
        a big compression does not stall the loop and the compressor is used in order.
        """
        if type(data) is str:
            payload = data.encode()
        elif type(data) is bytes:
            payload = data
        elif isinstance(data, Frame):
            if isinstance(data, CloseFrame):
                return None
            opcode = data.opcode
            flags = frame_flags(data)
            raw = data.data
            payload = raw.encode() if isinstance(raw, str) else bytes(raw)
        elif isinstance(data, (bytearray, memoryview)):
            payload = bytes(data)
        else:
            raise TypeError(f"push() data must be str, bytes or Frame, not {type(data).__name__}")
        if opcode not in _VALID_OPCODES:
            if opcode == WEBSOCKET_OPCODE_CLOSE:
                raise ValueError("push() cannot send close frames: use disconnect(fd, code)")
            raise ValueError(f"invalid opcode {opcode!r}")
        rsv = 0
        if flags & ~SWOOLE_WEBSOCKET_FLAG_FIN:
            if flags & SWOOLE_WEBSOCKET_FLAG_RSV1:
                rsv |= 0x40
            if flags & SWOOLE_WEBSOCKET_FLAG_RSV2:
                rsv |= 0x20
            if flags & SWOOLE_WEBSOCKET_FLAG_RSV3:
                rsv |= 0x10
        fin = bool(flags & SWOOLE_WEBSOCKET_FLAG_FIN)
        if opcode >= WEBSOCKET_OPCODE_PING:
            if len(payload) > 125 or not fin:
                raise ValueError("control frames carry at most 125 bytes and cannot be fragmented")
        elif (
            deflate is not None
            and fin
            and opcode
            and (flags & SWOOLE_WEBSOCKET_FLAG_COMPRESS or len(payload) >= self._compress_min)
            and deflate.compressible(len(payload))
        ):
            if defer or (self._offload_size and len(payload) >= self._offload_size):
                compress = deflate.deflate
                return lambda: encode_frame(opcode, compress(payload), True, rsv | 0x40)
            return encode_frame(opcode, deflate.deflate(payload), True, rsv | 0x40)
        return encode_frame(opcode, payload, fin, rsv)

    def broadcast(
        self,
        data: str | bytes,
        fds: Iterable[int] | None = None,
        opcode: int = WEBSOCKET_OPCODE_TEXT,
        flags: int = SWOOLE_WEBSOCKET_FLAG_FIN,
        cluster: bool = False,
    ) -> int:
        """Push one message to many clients, encoding the frame once.

        ``fds=None`` means every established WebSocket connection (of every worker).
        Returns how many connections it was queued on here, plus, in a multi-process
        server, the established connections of the other workers it was handed to
        (closed, non-WebSocket and full ones are skipped). ``cluster=True`` (with the
        ``cluster`` setting and ``fds=None``) also queues it for every other node's
        connections, not counted (server/topics.py).
        """
        if self._loop_thread and get_ident() != self._loop_thread:
            call = self.broadcast
            return from_thread(self._loop, "broadcast", call, data, fds, opcode, flags, cluster)
        if cluster and fds is None:
            self.broadcast_cluster(data, opcode)
        procs = self._procs
        if procs is None or procs.process_id < 0:
            return self._broadcast_local(data, fds, opcode, flags)
        payload = data.encode() if isinstance(data, str) else bytes(data)
        if fds is None:
            sent = self._broadcast_local(data, None, opcode, flags)
            for owner in procs.other_workers():
                procs.send(owner, msg.BROADCAST, msg.pack_broadcast(opcode, flags, None, payload))
            # the other workers' connections, counted from the shared table
            return sent + max(0, len(procs.table) - len(self._table))
        local: list[int] = []
        by_owner: dict[int, list[int]] = {}
        for fd in fds:
            if fd in self._table:
                local.append(fd)
            else:
                rec = procs.record(fd)
                if (
                    rec is not None
                    and rec.status == WEBSOCKET_STATUS_ACTIVE
                    and not rec.flow & FLOW_OVERFLOW  # (skipped as a full local one is)
                ):
                    by_owner.setdefault(rec.owner, []).append(fd)
        sent = self._broadcast_local(data, local, opcode, flags)
        for owner, owned in by_owner.items():
            if procs.send(owner, msg.BROADCAST, msg.pack_broadcast(opcode, flags, owned, payload)):
                sent += len(owned)
        return sent

    def _broadcast_local(
        self,
        data: str | bytes,
        fds: Iterable[int] | None = None,
        opcode: int = WEBSOCKET_OPCODE_TEXT,
        flags: int = SWOOLE_WEBSOCKET_FLAG_FIN,
    ) -> int:
        worker = self._worker
        if worker is None:
            return 0
        frame = self._encode_plain(data, opcode, flags)
        if frame is None:
            raise ValueError("broadcast() cannot send close frames")
        limit = self._buffer_limit
        table = worker.connections
        targets: Iterable[Connection | None]
        targets = table.values() if fds is None else (table.get(fd) for fd in fds)
        sent = 0
        if _broadcast_frame is not None:  # compiled: all but compressed connections
            sent, targets = _broadcast_frame(targets, frame, limit)
        # Compressed variants, encoded once per agreed parameter set (RFC 7692 without
        # context takeover gives the same bytes for every such connection).
        shared: dict[tuple[bool, int], bytes | None] = {}
        plain = 0  # (sent the uncompressed frame here)
        for conn in targets:
            if conn is None or conn.status != WEBSOCKET_STATUS_ACTIVE or conn.closed:
                continue
            out = frame
            deflate = conn.deflate
            if deflate is not None and frame[0] & 0x0F in (1, 2) and frame[0] & 0x80:
                key = deflate.params.key
                if key not in shared:
                    shared[key] = self._shared_frame(data, opcode, flags, deflate.params)
                cached = shared[key]
                if cached is not None:
                    out = cached
                else:  # context takeover: each connection compresses with its own state
                    job = self._encode(data, opcode, flags, deflate, conn.has_jobs)
                    if job is not None and not isinstance(job, bytes):
                        sent += self._send_off_loop(conn, job, data)
                        continue
                    out = job or frame
            if not conn.send_message(out, None, limit):
                continue
            sent += 1
            if out is frame:
                plain += 1
            else:  # (pyswoole.metrics: by opcode, the payload's bytes)
                SENT[out[0]] += SENT_HEADER[out[1]] + len(out)
        if plain:  # (the same frame, counted once for all)
            SENT[frame[0]] += (SENT_HEADER[frame[1]] + len(frame)) * plain
        return sent

    def _shared_frame(
        self, data: str | bytes, opcode: int, flags: int, params: DeflateParams
    ) -> bytes | None:
        """The compressed frame for every connection with ``params``; None if the
        connections keep their context (then each compresses its own)."""
        payload = data.encode() if isinstance(data, str) else bytes(data)
        if not flags & SWOOLE_WEBSOCKET_FLAG_COMPRESS and len(payload) < self._compress_min:
            return self._encode_plain(data, opcode, flags)
        compressed = shared_deflate(payload, params, self._deflate_config)
        if compressed is None:
            return None
        return encode_frame(opcode, compressed, True, 0x40)

    def disconnect(self, fd: int, code: int = WEBSOCKET_CLOSE_NORMAL, reason: str = "") -> bool:
        """Close WebSocket ``fd`` with a close frame; TCP closes once the client answers."""
        if not isinstance(code, int) or not is_valid_close_code(code):
            raise ValueError(f"invalid close code {code!r} (1000-1003, 1007-1014, 3000-4999)")
        if len(reason.encode()) > 123:
            raise ValueError("close reason longer than 123 bytes")
        if self._loop_thread and get_ident() != self._loop_thread:
            return from_thread(self._loop, "disconnect", self.disconnect, fd, code, reason)
        conn = self._table.get(check_fd(fd))
        if conn is None and self._procs is not None:
            owner = self._procs.remote(fd, need_websocket=True)
            return owner >= 0 and self._procs.send(
                owner, msg.DISCONNECT, msg.pack_disconnect(fd, code, reason)
            )
        return self._disconnect_local(fd, code, reason)

    def _disconnect_local(self, fd: int, code: int, reason: str) -> bool:
        conn = self._ws_conn(fd)
        if conn is None:
            return False
        self._closed_actively.add(fd)  # on("close") gets reactor_id -1, as in Swoole
        if conn.close_websocket(code, reason):
            return True
        self._closed_actively.discard(fd)
        return False

    def ping(self, fd: int, data: str | bytes = "") -> bool:
        """Send a ping; the client's pong goes to on('message') with open_websocket_pong_frame."""
        return self.push(fd, data, WEBSOCKET_OPCODE_PING)

    def is_established(self, fd: int) -> bool:
        """True if ``fd`` is a WebSocket connection past its handshake and not closing."""
        conn = self._table.get(check_fd(fd))
        if conn is None and self._procs is not None:
            rec = self._procs.record(fd)
            return rec is not None and rec.status == WEBSOCKET_STATUS_ACTIVE
        return conn is not None and not conn.closed and conn.status == WEBSOCKET_STATUS_ACTIVE

    isEstablished = is_established


def _as_close_frame(data: object) -> CloseFrame | None:
    """What ``push`` sends for a close: a :class:`CloseFrame` as it is; other data (with
    opcode CLOSE) as the reason of a 1000 close, as Swoole packs it (``FrameObject`` with
    its default code ``CLOSE_NORMAL``); None if that reason is not text."""
    if isinstance(data, CloseFrame):
        return data
    if isinstance(data, str):
        return CloseFrame(WEBSOCKET_CLOSE_NORMAL, data)
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            return CloseFrame(WEBSOCKET_CLOSE_NORMAL, bytes(data).decode())
        except UnicodeDecodeError:
            return None
    return None
