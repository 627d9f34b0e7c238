"""Callback types: one :class:`~typing.Protocol` per Swoole event, for mypy and editors.

``server.on()`` is overloaded by the literal event name, so a decorated callback is checked
against the arguments Swoole passes for that event (the table ``pyswoole.server.events.EVENTS``
and Swoole 6.2's ``Server::on`` documentation)::

    from pyswoole import Frame, WebSocketServer

    server = WebSocketServer("127.0.0.1", 9501)

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:  # checked
        server.push(frame.fd, frame.data)

A callback may declare fewer positional parameters than Swoole passes (``on_close(server,
fd)`` without ``reactor_id``; pyswoole cuts the argument list, ``events.cut_arguments``), so
each event accepts its full signature or any prefix of it; ``async def`` callbacks are accepted
everywhere (what a callback returns is typed ``object``). The server argument is typed
``Any``: it is the server (or port's server) the callback was registered on, whichever class
the function annotates.

Checked: the decorator form with a literal name (``@server.on("message")``, camelCase or
snake_case: ``"workerStart"``/``"worker_start"``), and ``server.on("message", callback)`` when
the callback matches. A name mypy cannot see (a variable) or another spelling
(``"onMessage"``) falls back to an unchecked ``Callable[..., Any]``; so does the two-argument
form with a wrong callback (mypy then picks the ``str`` overload): prefer the decorator.

The types can also annotate your own registries::

    from pyswoole.typing import OnMessage

    handlers: dict[str, OnMessage] = {}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from .protocol.frames import Frame
    from .server.request import Request
    from .server.response import Response
    from .server.task import Task

__all__ = [
    "OnAfterReload",
    "OnBeforeHandshakeResponse",
    "OnBeforeReload",
    "OnBeforeShutdown",
    "OnBufferEmpty",
    "OnBufferFull",
    "OnClose",
    "OnConnect",
    "OnDisconnect",
    "OnFinish",
    "OnHandshake",
    "OnManagerStart",
    "OnManagerStop",
    "OnMessage",
    "OnOpen",
    "OnPipeMessage",
    "OnReceive",
    "OnRequest",
    "OnServerEvent",
    "OnShutdown",
    "OnStart",
    "OnTask",
    "OnTaskObject",
    "OnWorkerError",
    "OnWorkerEvent",
    "OnWorkerExit",
    "OnWorkerStart",
    "OnWorkerStop",
]


# -- the full signatures (positional-only: a callback's parameter names are free) -------------


class OnServerEvent(Protocol):
    """``start``, ``shutdown``, ``beforeShutdown``, ``beforeReload``, ``afterReload``,
    ``managerStart``, ``managerStop``: ``(server)``."""

    def __call__(self, server: Any, /) -> object: ...


class OnWorkerEvent(Protocol):
    """``workerStart``, ``workerStop``, ``workerExit``: ``(server, worker_id)``."""

    def __call__(self, server: Any, worker_id: int, /) -> object: ...


class OnWorkerError(Protocol):
    """``workerError`` (in the manager): ``(server, worker_id, worker_pid, exit_code,
    signal)``."""

    def __call__(
        self, server: Any, worker_id: int, worker_pid: int, exit_code: int, signal: int, /
    ) -> object: ...


class OnConnect(Protocol):
    """``connect`` and ``close``: ``(server, fd, reactor_id)``."""

    def __call__(self, server: Any, fd: int, reactor_id: int, /) -> object: ...


class OnReceive(Protocol):
    """``receive`` (a plain ``Server``, raw TCP): ``(server, fd, reactor_id, data)``."""

    def __call__(self, server: Any, fd: int, reactor_id: int, data: bytes, /) -> object: ...


class OnDisconnect(Protocol):
    """``disconnect`` (a WebSocket server's HTTP connection closed before the upgrade, or
    any close when set): ``(server, fd)``."""

    def __call__(self, server: Any, fd: int, /) -> object: ...


class OnHandshake(Protocol):
    """``handshake`` (a custom handshake replaces the built-in one): ``(request,
    response)``; it ends the response with status 101 to accept."""

    def __call__(self, request: Request, response: Response, /) -> object: ...


class OnBeforeHandshakeResponse(Protocol):
    """``beforeHandshakeResponse``: ``(server, request, response)`` before the 101 goes out."""

    def __call__(self, server: Any, request: Request, response: Response, /) -> object: ...


class OnOpen(Protocol):
    """``open``: ``(server, request)`` once the WebSocket handshake is done."""

    def __call__(self, server: Any, request: Request, /) -> object: ...


class OnMessage(Protocol):
    """``message``: ``(server, frame)`` for each complete message (a
    :class:`~pyswoole.CloseFrame` with ``open_websocket_close_frame``)."""

    def __call__(self, server: Any, frame: Frame, /) -> object: ...


class OnRequest(Protocol):
    """``request`` (``HttpServer``, and a ``WebSocketServer`` for plain HTTP):
    ``(request, response)``."""

    def __call__(self, request: Request, response: Response, /) -> object: ...


class OnTask(Protocol):
    """``task`` (in a task worker): ``(server, task_id, src_worker_id, data)``; what it
    returns is the task's result."""

    def __call__(self, server: Any, task_id: int, src_worker_id: int, data: Any, /) -> object: ...


class OnTaskObject(Protocol):
    """``task`` with ``task_enable_coroutine`` or ``task_use_object``: ``(server, task)``."""

    def __call__(self, server: Any, task: Task, /) -> object: ...


class OnFinish(Protocol):
    """``finish`` (in the worker that called ``task()``): ``(server, task_id, data)``."""

    def __call__(self, server: Any, task_id: int, data: Any, /) -> object: ...


class OnPipeMessage(Protocol):
    """``pipeMessage``: ``(server, src_worker_id, message)`` from ``send_message()``."""

    def __call__(self, server: Any, src_worker_id: int, message: Any, /) -> object: ...


class OnBufferFull(Protocol):
    """``bufferFull`` and ``bufferEmpty``: ``(server, fd)`` (the send buffer's high and low
    water marks)."""

    def __call__(self, server: Any, fd: int, /) -> object: ...


# one name per event, as Swoole's documentation names them
OnStart = OnServerEvent
OnShutdown = OnServerEvent
OnBeforeShutdown = OnServerEvent
OnBeforeReload = OnServerEvent
OnAfterReload = OnServerEvent
OnManagerStart = OnServerEvent
OnManagerStop = OnServerEvent
OnWorkerStart = OnWorkerEvent
OnWorkerStop = OnWorkerEvent
OnWorkerExit = OnWorkerEvent
OnClose = OnConnect
OnBufferEmpty = OnBufferFull


# -- what on() accepts: the full signature or a prefix of it (events.cut_arguments) -----------

_P0 = Callable[[], object]
_P1 = Callable[[Any], object]

ServerEventT = TypeVar("ServerEventT", bound="OnServerEvent | _P0")
WorkerEventT = TypeVar("WorkerEventT", bound="OnWorkerEvent | _P1 | _P0")
WorkerErrorT = TypeVar(
    "WorkerErrorT",
    bound="OnWorkerError | Callable[[Any, int, int, int], object] "
    "| Callable[[Any, int, int], object] | Callable[[Any, int], object] | _P1 | _P0",
)
ConnectT = TypeVar("ConnectT", bound="OnConnect | Callable[[Any, int], object] | _P1 | _P0")
ReceiveT = TypeVar(
    "ReceiveT",
    bound="OnReceive | Callable[[Any, int, int], object] | Callable[[Any, int], object] "
    "| _P1 | _P0",
)
DisconnectT = TypeVar("DisconnectT", bound="OnDisconnect | _P1 | _P0")
HandshakeT = TypeVar("HandshakeT", bound="OnHandshake | Callable[[Request], object] | _P0")
BeforeHandshakeResponseT = TypeVar(
    "BeforeHandshakeResponseT",
    bound="OnBeforeHandshakeResponse | Callable[[Any, Request], object] | _P1 | _P0",
)
OpenT = TypeVar("OpenT", bound="OnOpen | _P1 | _P0")
MessageT = TypeVar("MessageT", bound="OnMessage | _P1 | _P0")
RequestT = TypeVar("RequestT", bound="OnRequest | Callable[[Request], object] | _P0")
TaskT = TypeVar(
    "TaskT",
    bound="OnTask | OnTaskObject | Callable[[Any, int, int], object] "
    "| Callable[[Any, int], object] | _P1 | _P0",
)
FinishT = TypeVar("FinishT", bound="OnFinish | Callable[[Any, int], object] | _P1 | _P0")
PipeMessageT = TypeVar(
    "PipeMessageT", bound="OnPipeMessage | Callable[[Any, int], object] | _P1 | _P0"
)
BufferT = TypeVar("BufferT", bound="OnBufferFull | _P1 | _P0")
#: any callback (a name mypy cannot check)
AnyCallbackT = TypeVar("AnyCallbackT", bound=Callable[..., Any])
