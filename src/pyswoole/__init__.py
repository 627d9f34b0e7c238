"""pyswoole: Swoole's WebSocket server model in Python.

Write a few event callbacks, call ``start()``::

    from pyswoole import WebSocketServer

    server = WebSocketServer("127.0.0.1", 9501)

    @server.on("message")
    def on_message(server, frame):
        server.push(frame.fd, frame.data)

    server.start()
"""

from . import constants
from .constants import *  # noqa: F403 - Swoole's constants, by Swoole's names
from .exceptions import (
    ConfigError,
    HttpProtocolError,
    PackError,
    ProtocolError,
    ServerStateError,
    SwooleError,
    TaskError,
    WebSocketProtocolError,
)

# Not ``typing.TYPE_CHECKING``: importing typing (with re and enum) would double the time
# ``import pyswoole`` takes; mypy treats any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .memory import Atomic, Lock, Table
    from .process.user import Process
    from .server import (
        CloseFrame,
        Cookie,
        Frame,
        HttpServer,
        Request,
        Response,
        Server,
        Task,
        WebSocketServer,
    )
    from .server.timer import Timer
del TYPE_CHECKING

# The classes load on first use (PEP 562): ``import pyswoole`` alone (a script reading the
# constants, ``python -m pyswoole --help``) does not pay for asyncio, ssl and the server.
_LAZY = {
    "Atomic": "memory",
    "Lock": "memory",
    "Table": "memory",
    "Process": "process.user",
    "CloseFrame": "server",
    "Cookie": "server",
    "Frame": "server",
    "HttpServer": "server",
    "Request": "server",
    "Response": "server",
    "Server": "server",
    "Task": "server",
    "WebSocketServer": "server",
    "Timer": "server.timer",
}


def __getattr__(name: str) -> object:
    """Import a public class on first access (``from pyswoole import WebSocketServer``)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "Atomic",
    "CloseFrame",
    "ConfigError",
    "Cookie",
    "Frame",
    "HttpProtocolError",
    "HttpServer",
    "Lock",
    "PackError",
    "Process",
    "ProtocolError",
    "Request",
    "Response",
    "Server",
    "ServerStateError",
    "SwooleError",
    "Table",
    "Task",
    "TaskError",
    "Timer",
    "WebSocketProtocolError",
    "WebSocketServer",
    "__version__",
]
__all__ += constants.__all__  # a literal list there: mypy sees every name
