"""The messages processes send each other, as bytes (Sans-I/O).

Every message is ``(kind, src, body)`` on the IPC channel (:mod:`.ipc`). Connection
operations have fixed binary bodies (no pickling on the push path); pipe messages, tasks and
their results are pickled, so they may be any picklable object.

Order is kept per sender and destination, so two pushes from one worker to one connection
arrive in the order they were made.

In SWOOLE_PROCESS mode the master forwards each connection's events to its worker (EV_*),
the worker answers HTTP requests with RESP_* messages and WebSocket messages with the PUSH /
DISCONNECT / CLOSE messages SWOOLE_BASE workers send each other. EV_BARRIER is the master
asking the worker to say (BARRIER_ACK) when the callbacks of every event it forwarded
before for that fd have finished: since the worker reads its inbox in order and the ack
travels behind the pushes those callbacks made, everything they pushed has reached the
master when the ack does. EV_RECEIVE carries raw TCP bytes; EV_PORT wraps any EV_* of a
connection of a port with its own callbacks, with the port's index (the worker runs that
port's callbacks).
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

__all__ = [
    "BARRIER_ACK",
    "BIND",
    "BROADCAST",
    "CERTS",
    "CLOSE",
    "DISCONNECT",
    "EV_BARRIER",
    "EV_BEFORE_HANDSHAKE",
    "EV_BUFFER",
    "EV_CERT",
    "EV_CLOSE",
    "EV_CONNECT",
    "EV_HANDSHAKE",
    "EV_MESSAGE",
    "EV_OPEN",
    "EV_PORT",
    "EV_RECEIVE",
    "EV_REQUEST",
    "FINISH",
    "PIPE",
    "PUSH",
    "PUSH_YIELD",
    "RESP_DATA",
    "RESP_END",
    "RESP_FILE",
    "RESP_HEADERS",
    "SEND",
    "TASK",
    "TASK_ERROR",
    "TOPIC",
    "decode_object",
    "encode_object",
    "pack_bind",
    "pack_broadcast",
    "pack_close",
    "pack_disconnect",
    "pack_ev_buffer",
    "pack_ev_close",
    "pack_fd",
    "pack_port",
    "pack_push",
    "pack_resp_end",
    "pack_resp_file",
    "pack_send",
    "pack_task",
    "pack_task_reply",
    "unpack_bind",
    "unpack_broadcast",
    "unpack_close",
    "unpack_disconnect",
    "unpack_ev_buffer",
    "unpack_ev_close",
    "unpack_fd",
    "unpack_port",
    "unpack_push",
    "unpack_resp_end",
    "unpack_resp_file",
    "unpack_send",
    "unpack_task",
    "unpack_task_reply",
]

PUSH = 1  # push(fd, data, opcode, flags) to a connection the destination owns
BROADCAST = 2  # push to all (or listed) connections the destination owns
DISCONNECT = 3  # close handshake with code and reason
CLOSE = 4  # close TCP (reset or not)
SEND = 5  # raw bytes (Server.send)
PIPE = 6  # send_message() -> on("pipeMessage")
TASK = 7  # task() -> on("task") in a task worker
FINISH = 8  # a task's result -> on("finish") / finish_callback / taskwait
TASK_ERROR = 9  # a task failed (on("task") raised, result unpicklable) -> TaskError / logged
#: a push_async() that waited for room (push body layout): the SWOOLE_PROCESS master takes
#: it even past socket_buffer_size (the sender waits for room before each one)
PUSH_YIELD = 12

# SWOOLE_PROCESS mode: the master owns the sockets and forwards events to workers...
EV_CONNECT = 20  # fd connected -> on("connect")
EV_OPEN = 21  # WebSocket established (pickled Request) -> on("open")
EV_MESSAGE = 22  # a message (push body layout) -> on("message")
EV_CLOSE = 23  # fd closed (1: was a WebSocket) -> on("close") / on("disconnect")
EV_REQUEST = 24  # an HTTP request (pickled Request, method, version, keep_alive) -> on("request")
EV_BARRIER = 25  # fd is closing: answer BARRIER_ACK once its callbacks so far have finished
EV_BUFFER = 26  # fd's send buffer became full (1) or drained (0) -> on("bufferFull"/"bufferEmpty")
EV_CERT = 27  # fd's TLS client certificate (send body layout: fd, PEM; no PEM: forget it)
EV_RECEIVE = 28  # raw TCP bytes (send body layout: fd, data) -> on("receive")
EV_PORT = 29  # an EV_* of a connection of a port with its own callbacks (pack_port)
# ...and workers answer HTTP requests through it
RESP_DATA = 30  # bytes of the response of fd
RESP_FILE = 31  # stream a file as the body (fd, offset, length, path)
RESP_END = 32  # the response of fd is complete (keep_alive, status)
BARRIER_ACK = 33  # the answer to EV_BARRIER (fd): the replies before it have been sent
BIND = 34  # a worker's bind(fd, uid): the master records the uid (dispatch_mode 5 moves fd)
CERTS = 35  # a (re)started worker (pack_fd: its id) asks for its fds' certificates again
# ...and the WebSocket handshakes the application answers (master -> worker, worker -> master)
EV_HANDSHAKE = 36  # on("handshake"): as EV_REQUEST plus the agreed Sec-WebSocket-Extensions
EV_BEFORE_HANDSHAKE = 37  # on("beforeHandshakeResponse") (pickled Request)
RESP_HEADERS = 38  # its answer: fd + pickled (headers, cookies) for the master's 101
TOPIC = 11  # topics: subscribe/publish/push_user between processes (cluster/topics.py)

_PUSH = struct.Struct("<qBB")
_BROADCAST = struct.Struct("<BBq")
_DISCONNECT = struct.Struct("<qH")
_CLOSE = struct.Struct("<qB")
_FD = struct.Struct("<q")


def pack_push(fd: int, opcode: int, flags: int, data: bytes) -> bytes:
    return _PUSH.pack(fd, opcode, flags) + data


def unpack_push(body: bytes) -> tuple[int, int, int, bytes]:
    fd, opcode, flags = _PUSH.unpack_from(body)
    return fd, opcode, flags, body[_PUSH.size :]


def pack_broadcast(opcode: int, flags: int, fds: list[int] | None, data: bytes) -> bytes:
    """``fds=None``: every established connection of the destination."""
    if fds is None:
        return _BROADCAST.pack(opcode, flags, -1) + data
    return _BROADCAST.pack(opcode, flags, len(fds)) + struct.pack(f"<{len(fds)}q", *fds) + data


def unpack_broadcast(body: bytes) -> tuple[int, int, list[int] | None, bytes]:
    opcode, flags, count = _BROADCAST.unpack_from(body)
    at = _BROADCAST.size
    if count < 0:
        return opcode, flags, None, body[at:]
    fds = list(struct.unpack_from(f"<{count}q", body, at))
    return opcode, flags, fds, body[at + 8 * count :]


def pack_disconnect(fd: int, code: int, reason: str) -> bytes:
    return _DISCONNECT.pack(fd, code) + reason.encode()


def unpack_disconnect(body: bytes) -> tuple[int, int, str]:
    fd, code = _DISCONNECT.unpack_from(body)
    return fd, code, body[_DISCONNECT.size :].decode()


def pack_close(fd: int, reset: bool) -> bytes:
    return _CLOSE.pack(fd, 1 if reset else 0)


def unpack_close(body: bytes) -> tuple[int, bool]:
    fd, reset = _CLOSE.unpack_from(body)
    return fd, bool(reset)


def pack_fd(fd: int) -> bytes:
    """The body of EV_BARRIER and BARRIER_ACK."""
    return _FD.pack(fd)


def unpack_fd(body: bytes) -> int:
    fd: int = _FD.unpack_from(body)[0]
    return fd


_BIND = struct.Struct("<qq")


def pack_bind(fd: int, uid: int) -> bytes:
    return _BIND.pack(fd, uid)


def unpack_bind(body: bytes) -> tuple[int, int]:
    fd, uid = _BIND.unpack(body)
    return fd, uid


def pack_send(fd: int, data: bytes) -> bytes:
    return _FD.pack(fd) + data


def unpack_send(body: bytes) -> tuple[int, bytes]:
    return _FD.unpack_from(body)[0], body[_FD.size :]


_RESP_FILE = struct.Struct("<qqq")
_RESP_END = struct.Struct("<qBH")
_EV_CLOSE = struct.Struct("<qB")


def pack_resp_file(fd: int, offset: int, length: int, path: str) -> bytes:
    return _RESP_FILE.pack(fd, offset, length) + path.encode()


def unpack_resp_file(body: bytes) -> tuple[int, int, int, str]:
    fd, offset, length = _RESP_FILE.unpack_from(body)
    return fd, offset, length, body[_RESP_FILE.size :].decode()


def pack_resp_end(fd: int, keep_alive: bool, status: int, extensions: str = "") -> bytes:
    """RESP_END; ``extensions``: a custom handshake's 101 keeps this permessage-deflate."""
    return _RESP_END.pack(fd, 1 if keep_alive else 0, status) + extensions.encode()


def unpack_resp_end(body: bytes) -> tuple[int, bool, int, str]:
    fd, keep_alive, status = _RESP_END.unpack_from(body)
    return fd, bool(keep_alive), status, body[_RESP_END.size :].decode()


def pack_ev_close(fd: int, websocket: bool, actively: bool = False) -> bytes:
    """EV_CLOSE: ``websocket`` (it was one: close, not disconnect) and ``actively`` (the
    server closed it itself, ``close()``/``disconnect()``: Swoole's reactor_id -1)."""
    return _EV_CLOSE.pack(fd, (1 if websocket else 0) | (2 if actively else 0))


def unpack_ev_close(body: bytes) -> tuple[int, bool, bool]:
    fd, flags = _EV_CLOSE.unpack_from(body)
    return fd, bool(flags & 1), bool(flags & 2)


_PORT = struct.Struct("<HB")


def pack_port(index: int, kind: int, body: bytes) -> bytes:
    """EV_PORT: the event ``kind`` with ``body`` of a connection of port ``index`` (in
    ``server.ports``), whose own callbacks the worker runs (Swoole's ``Port::on``)."""
    return _PORT.pack(index, kind) + body


def unpack_port(body: bytes) -> tuple[int, int, bytes]:
    index, kind = _PORT.unpack_from(body)
    return index, kind, body[_PORT.size :]


def pack_ev_buffer(fd: int, full: bool) -> bytes:
    return _EV_CLOSE.pack(fd, 1 if full else 0)


def unpack_ev_buffer(body: bytes) -> tuple[int, bool]:
    fd, full = _EV_CLOSE.unpack_from(body)
    return fd, bool(full)


_TASK = struct.Struct("<qqId")  # task id, source worker, Swoole's task flags, dispatch time


def pack_task(task_id: int, src: int, flags: int, dispatch_time: float, data: bytes) -> bytes:
    """A TASK: its id and source worker travel outside the pickled ``data``, so a task
    worker can answer (and report a failure) even if ``data`` cannot be unpickled."""
    return _TASK.pack(task_id, src, flags, dispatch_time) + data


def unpack_task(body: bytes) -> tuple[int, int, int, float, bytes]:
    task_id, src, flags, dispatch_time = _TASK.unpack_from(body)
    return task_id, src, flags, dispatch_time, body[_TASK.size :]


def pack_task_reply(task_id: int, data: bytes) -> bytes:
    """The body of FINISH (pickled result) and TASK_ERROR (pickled (message, traceback))."""
    return _FD.pack(task_id) + data


def unpack_task_reply(body: bytes) -> tuple[int, bytes]:
    return _FD.unpack_from(body)[0], body[_FD.size :]


def encode_object(obj: Any) -> bytes:
    """Pickle a pipe message, task or task result (raises if it cannot be pickled)."""
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def decode_object(body: bytes) -> Any:
    return pickle.loads(body)


# -- connection control: pause/resume (confirm) and protect at the fd's owner -------------

CONTROL = 10  # pause(fd) / resume(fd) / confirm(fd) / protect(fd, value) (fd, op)
CONTROL_PAUSE = 1
CONTROL_RESUME = 2  # resume() and confirm() (one operation in Swoole)
CONTROL_PROTECT = 3
CONTROL_UNPROTECT = 4
CONTROL_CLOSE_IDLE = 5  # heartbeat(True) in another process found it idle: close it

__all__ += ["CONTROL", "pack_control", "unpack_control"]

_CONTROL = struct.Struct("<qB")


def pack_control(fd: int, op: int) -> bytes:
    return _CONTROL.pack(fd, op)


def unpack_control(body: bytes) -> tuple[int, int]:
    fd, op = _CONTROL.unpack_from(body)
    return fd, op
