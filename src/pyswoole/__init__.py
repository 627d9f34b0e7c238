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
