"""The one exception tree of pyswoole.

::

    SwooleError
    ├── ConfigError            a setting or constructor argument is unknown or ill-typed (local)
    │   └── BindError          a listening address cannot be bound (also an OSError)
    ├── ServerStateError       an API call at the wrong time, e.g. set() after start() (local)
    ├── PackError              ``pack()``/``unpack()`` was given invalid input (local)
    ├── TaskError              a task failed in its task worker (``taskwait`` & co raise it)
    └── ProtocolError          the peer broke a protocol (remote)
        ├── WebSocketProtocolError   carries the RFC 6455 close ``code`` to answer with
        └── HttpProtocolError        carries the HTTP ``status`` to answer with

Local errors mean the caller misused the API; remote errors mean the peer sent something
invalid and carry what the server must answer with (the h11/wsproto split).
"""

from __future__ import annotations


class SwooleError(Exception):
    """Base class of every exception raised by pyswoole."""


class ConfigError(SwooleError, ValueError):
    """An unknown, ill-typed or out-of-range setting or argument."""


class BindError(ConfigError, OSError):
    """``start()`` could not listen on an address: in use (naming who holds it, where
    ``/proc`` tells), a privileged port, an unknown host. The message is one line naming
    the address; ``errno`` is the ``OSError``'s (``except OSError`` still catches it)."""


class ServerStateError(SwooleError, RuntimeError):
    """An API call that is not valid in the server's current state."""


class PackError(SwooleError, ValueError):
    """``pack()`` or ``unpack()`` got input that is not a valid WebSocket frame."""


class TaskError(SwooleError, RuntimeError):
    """A task failed in its task worker: ``on("task")`` raised, or its result could not be
    pickled. ``taskwait``, ``task_wait_multi``, ``task_co`` and ``task_async`` raise it as
    soon as the failure arrives (Swoole has no equivalent: there an exception in onTask is a
    PHP fatal error in the task worker, and the caller waits for its timeout).

    ``task_id`` is the id of the failed task, ``worker_id`` the task worker's process id,
    ``traceback`` the formatted traceback from the task worker (empty if there is none).
    """

    def __init__(
        self, task_id: int, message: str, worker_id: int = -1, traceback: str = ""
    ) -> None:
        where = f" in task worker {worker_id}" if worker_id >= 0 else ""
        super().__init__(f"task {task_id} failed{where}: {message}")
        self.task_id = task_id
        self.message = message
        self.worker_id = worker_id
        self.traceback = traceback

    def __reduce__(self) -> tuple[type[TaskError], tuple[int, str, int, str]]:
        return (TaskError, (self.task_id, self.message, self.worker_id, self.traceback))


class ProtocolError(SwooleError):
    """The peer violated a protocol."""


class WebSocketProtocolError(ProtocolError):
    """The peer violated RFC 6455; ``code`` is the close code to fail the connection with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class HttpProtocolError(ProtocolError):
    """The peer sent an invalid HTTP request; ``status`` is the response to answer with."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers or {}
