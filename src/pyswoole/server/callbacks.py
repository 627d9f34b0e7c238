"""``on()``, typed by event name: the mixin ``Server`` and ``Port`` share.

The overloads map each literal event name (Swoole's camelCase and its snake_case twin) to the
callback types of :mod:`pyswoole.typing`, so mypy checks ``@server.on("message")`` functions;
any other name falls back to ``Callable[..., Any]``. At run time ``on()`` checks the name
(``_event_name``: unknown or unsupported events raise ``ConfigError`` at once, also in the
decorator form, as Swoole's ``Server::on`` fails on an unknown event) and stores the callback
(``_register``); both are the class's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, overload

from ..typing import (
    AnyCallbackT,
    BeforeHandshakeResponseT,
    BufferT,
    ConnectT,
    DisconnectT,
    FinishT,
    HandshakeT,
    MessageT,
    OpenT,
    PipeMessageT,
    ReceiveT,
    RequestT,
    ServerEventT,
    TaskT,
    WorkerErrorT,
    WorkerEventT,
)

__all__ = ["EventRegistration"]


class EventRegistration:
    """``on(event, callback)``, or ``@on(event)`` as a decorator (returns the function)."""

    __slots__ = ()

    @overload
    def on(
        self,
        event: Literal[
            "start",
            "beforeShutdown",
            "before_shutdown",
            "shutdown",
            "beforeReload",
            "before_reload",
            "afterReload",
            "after_reload",
            "managerStart",
            "manager_start",
            "managerStop",
            "manager_stop",
        ],
    ) -> Callable[[ServerEventT], ServerEventT]: ...
    @overload
    def on(
        self,
        event: Literal[
            "start",
            "beforeShutdown",
            "before_shutdown",
            "shutdown",
            "beforeReload",
            "before_reload",
            "afterReload",
            "after_reload",
            "managerStart",
            "manager_start",
            "managerStop",
            "manager_stop",
        ],
        callback: ServerEventT,
    ) -> bool: ...
    @overload
    def on(
        self,
        event: Literal[
            "workerStart", "worker_start", "workerStop", "worker_stop", "workerExit", "worker_exit"
        ],
    ) -> Callable[[WorkerEventT], WorkerEventT]: ...
    @overload
    def on(
        self,
        event: Literal[
            "workerStart", "worker_start", "workerStop", "worker_stop", "workerExit", "worker_exit"
        ],
        callback: WorkerEventT,
    ) -> bool: ...
    @overload
    def on(
        self, event: Literal["workerError", "worker_error"]
    ) -> Callable[[WorkerErrorT], WorkerErrorT]: ...
    @overload
    def on(self, event: Literal["workerError", "worker_error"], callback: WorkerErrorT) -> bool: ...
    @overload
    def on(self, event: Literal["connect", "close"]) -> Callable[[ConnectT], ConnectT]: ...
    @overload
    def on(self, event: Literal["connect", "close"], callback: ConnectT) -> bool: ...
    @overload
    def on(self, event: Literal["receive"]) -> Callable[[ReceiveT], ReceiveT]: ...
    @overload
    def on(self, event: Literal["receive"], callback: ReceiveT) -> bool: ...
    @overload
    def on(self, event: Literal["disconnect"]) -> Callable[[DisconnectT], DisconnectT]: ...
    @overload
    def on(self, event: Literal["disconnect"], callback: DisconnectT) -> bool: ...
    @overload
    def on(self, event: Literal["handshake"]) -> Callable[[HandshakeT], HandshakeT]: ...
    @overload
    def on(self, event: Literal["handshake"], callback: HandshakeT) -> bool: ...
    @overload
    def on(
        self, event: Literal["beforeHandshakeResponse", "before_handshake_response"]
    ) -> Callable[[BeforeHandshakeResponseT], BeforeHandshakeResponseT]: ...
    @overload
    def on(
        self,
        event: Literal["beforeHandshakeResponse", "before_handshake_response"],
        callback: BeforeHandshakeResponseT,
    ) -> bool: ...
    @overload
    def on(self, event: Literal["open"]) -> Callable[[OpenT], OpenT]: ...
    @overload
    def on(self, event: Literal["open"], callback: OpenT) -> bool: ...
    @overload
    def on(self, event: Literal["message"]) -> Callable[[MessageT], MessageT]: ...
    @overload
    def on(self, event: Literal["message"], callback: MessageT) -> bool: ...
    @overload
    def on(self, event: Literal["request"]) -> Callable[[RequestT], RequestT]: ...
    @overload
    def on(self, event: Literal["request"], callback: RequestT) -> bool: ...
    @overload
    def on(self, event: Literal["task"]) -> Callable[[TaskT], TaskT]: ...
    @overload
    def on(self, event: Literal["task"], callback: TaskT) -> bool: ...
    @overload
    def on(self, event: Literal["finish"]) -> Callable[[FinishT], FinishT]: ...
    @overload
    def on(self, event: Literal["finish"], callback: FinishT) -> bool: ...
    @overload
    def on(
        self, event: Literal["pipeMessage", "pipe_message"]
    ) -> Callable[[PipeMessageT], PipeMessageT]: ...
    @overload
    def on(self, event: Literal["pipeMessage", "pipe_message"], callback: PipeMessageT) -> bool: ...
    @overload
    def on(
        self, event: Literal["bufferFull", "buffer_full", "bufferEmpty", "buffer_empty"]
    ) -> Callable[[BufferT], BufferT]: ...
    @overload
    def on(
        self,
        event: Literal["bufferFull", "buffer_full", "bufferEmpty", "buffer_empty"],
        callback: BufferT,
    ) -> bool: ...

    @overload
    def on(self, event: str) -> Callable[[AnyCallbackT], AnyCallbackT]: ...
    @overload
    def on(self, event: str, callback: AnyCallbackT) -> bool: ...

    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        """Register ``callback`` for ``event``; without ``callback``, a decorator."""
        name = self._event_name(event)
        if callback is None:

            def decorator(fn: AnyCallbackT) -> AnyCallbackT:
                self._register(name, fn)
                return fn

            return decorator
        return self._register(name, callback)

    def _event_name(self, event: str) -> str:
        """The canonical name of ``event``; ConfigError if unknown or not available here."""
        raise NotImplementedError

    def _register(self, name: str, callback: Callable[..., Any]) -> bool:
        """Store ``callback`` for the canonical event ``name``."""
        raise NotImplementedError
