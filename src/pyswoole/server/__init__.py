"""The Swoole surface: ``Server``, ``HttpServer``, ``WebSocketServer`` and their objects."""

from ..protocol.frames import CloseFrame, Frame
from .base import Server
from .cookie import Cookie
from .http_server import HttpServer
from .request import Request
from .response import Response
from .task import Task
from .websocket_server import WebSocketServer

__all__ = [
    "CloseFrame",
    "Cookie",
    "Frame",
    "HttpServer",
    "Request",
    "Response",
    "Server",
    "Task",
    "WebSocketServer",
]
