"""Every method and event Swoole 6.2 documents for its servers, requests and responses is
in pyswoole (its camelCase name and its snake_case twin), or in the differences table of
docs/swoole-differences.md; and every test that table cites exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pyswoole import Request, Response, WebSocketServer
from pyswoole.server.events import EVENTS
from pyswoole.server.ports import Port

ROOT = Path(__file__).resolve().parents[2]
DIFFERENCES = (ROOT / "docs" / "swoole-differences.md").read_text()

#: Swoole 6.2's public methods (ext-src/stubs/*.stub.php; docs/research/swoole-api.md)
SERVER = [
    "__construct",
    "set",
    "on",
    "getCallback",
    "listen",
    "addlistener",
    "sendMessage",
    "addProcess",
    "addCommand",
    "command",
    "start",
    "stop",
    "shutdown",
    "reload",
    "send",
    "sendto",
    "sendwait",
    "sendfile",
    "exists",
    "exist",
    "protect",
    "close",
    "confirm",
    "pause",
    "resume",
    "task",
    "taskwait",
    "taskWaitMulti",
    "taskCo",
    "finish",
    "heartbeat",
    "getClientInfo",
    "connection_info",
    "getClientList",
    "connection_list",
    "getWorkerId",
    "getWorkerPid",
    "getWorkerStatus",
    "getManagerPid",
    "getMasterPid",
    "stats",
    "bind",
    "getSocket",
    "getLastError",
]
WEBSOCKET = ["push", "disconnect", "ping", "isEstablished", "pack", "unpack"]
PORT = ["set", "on", "getCallback", "getSocket"]
REQUEST = [
    "getContent",
    "rawContent",
    "getData",
    "create",
    "parse",
    "isCompleted",
    "getMethod",
    "getBodyStream",
]
RESPONSE = [
    "write",
    "end",
    "sendfile",
    "redirect",
    "status",
    "setStatusCode",
    "header",
    "setHeader",
    "cookie",
    "setCookie",
    "rawcookie",
    "setRawCookie",
    "trailer",
    "initHeader",
    "isWritable",
    "detach",
    "create",
    "upgrade",
    "push",
    "recv",
    "close",
    "ping",
    "goaway",
]
SWOOLE_EVENTS = [
    "start",
    "beforeShutdown",
    "shutdown",
    "workerStart",
    "workerStop",
    "workerExit",
    "workerError",
    "managerStart",
    "managerStop",
    "beforeReload",
    "afterReload",
    "task",
    "finish",
    "pipeMessage",
    "connect",
    "receive",
    "close",
    "packet",
    "bufferFull",
    "bufferEmpty",
    "request",
    "handshake",
    "beforeHandshakeResponse",
    "open",
    "message",
    "disconnect",
]

#: not methods in Python (the constructor), or cited in the differences table by name
NOT_A_METHOD = {"__construct"}


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z])([A-Z])", r"_\1", name).lower()


def listed_as_difference(name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", DIFFERENCES) is not None


@pytest.mark.parametrize(
    ("cls", "names"),
    [
        (WebSocketServer, SERVER + WEBSOCKET),
        (Port, PORT),
        (Request, REQUEST),
        (Response, RESPONSE),
    ],
    ids=["WebSocketServer", "Port", "Request", "Response"],
)
def test_every_swoole_method_is_here_or_a_documented_difference(
    cls: type, names: list[str]
) -> None:
    missing = [
        name
        for name in names
        if name not in NOT_A_METHOD
        and not (hasattr(cls, name) and hasattr(cls, snake(name)))
        and not listed_as_difference(name)
    ]
    assert not missing, f"{cls.__name__}: neither present nor in swoole-differences.md: {missing}"


def test_every_swoole_event_is_here_or_a_documented_difference() -> None:
    missing = [e for e in SWOOLE_EVENTS if e not in EVENTS and not listed_as_difference(e)]
    assert not missing


def test_every_test_the_differences_table_cites_exists() -> None:
    cited = re.findall(r"`((?:[\w]+/)*test_\w+\.py)(?:::(\w+))?`", DIFFERENCES)
    assert len(cited) >= 40
    for path, name in cited:
        file = ROOT / "tests" / path
        assert file.is_file(), f"swoole-differences.md cites a missing file: {path}"
        if name:
            tree = ast.parse(file.read_text())
            defined = {
                node.name
                for node in ast.walk(tree)
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
            assert name in defined, f"swoole-differences.md cites {path}::{name}, not defined"
