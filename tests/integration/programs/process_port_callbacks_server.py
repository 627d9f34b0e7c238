"""A SWOOLE_PROCESS WebSocket server (2 workers) whose extra ports have their own callbacks
(Swoole's ``Port::on``), for tests/integration/test_process_port_callbacks.py.

    python tests/integration/programs/process_port_callbacks_server.py --port 0

Ports: the main one (WebSocket, the server's callbacks), an HTTP port with its own
on("request"), a WebSocket port with its own on("open")/on("message") (the server's
on("close")), a raw TCP port with its own on("connect")/on("receive")/on("close"), a
WebSocket port with its own on("handshake") (101 for ``/ok``, else 403) and on("message").
With ``websocket_compression`` (a custom 101 keeps the extension the master agreed).
The server's on("beforeHandshakeResponse") adds ``X-Worker: <pid>`` and a cookie
``seen=<uri>`` to the built-in 101s.

Standard output: ``PORTS <http> <websocket> <raw> <handshake>`` (at managerStart), ``READY <port>``,
``workerStart <id> <pid> worker`` (programs/events.py), then per event:

- main port messages are echoed ``main:<text>``; ``close me``: ``server.close(fd)``;
  ``bye``: ``server.disconnect(fd, 4000, "bye")``; ``fd?`` is answered with the fd;
  on("close") prints ``onclose <fd> <reactor_id>``;
- main-port HTTP requests are answered ``main http <uri>``, the HTTP port's ``port http <uri>``;
- the WebSocket port prints ``wsopen <fd> <uri>`` and echoes ``wsport:<text>``;
- the handshake port prints ``handshake <fd> <pid>`` and echoes ``hs:<text>``;
- the raw port prints ``rawconnect <fd> <reactor_id>``, echoes what it gets (``close\\n``:
  ``server.close(fd)``), and its on("close") prints ``rawclose <fd> <reactor_id>``.
"""

from __future__ import annotations

import argparse
import os

from events import emit, emit_lifecycle

from pyswoole import SWOOLE_PROCESS, SWOOLE_SOCK_TCP, Request, Response, Server, WebSocketServer
from pyswoole.protocol.handshake import accept_key
from pyswoole.server import Frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--plain", action="store_true", help="a raw TCP Server instead")
    args = parser.parse_args()
    if args.plain:
        plain(args.port)
        return
    server = WebSocketServer("127.0.0.1", args.port, SWOOLE_PROCESS)
    server.set(worker_num=2, max_wait_time=1.0, log_level=4, websocket_compression=True)
    http_port = server.listen("127.0.0.1", 0, SWOOLE_SOCK_TCP)
    http_port.set(open_http_protocol=True)
    ws_port = server.listen("127.0.0.1", 0, SWOOLE_SOCK_TCP)
    ws_port.set(open_websocket_protocol=True)
    raw_port = server.listen("127.0.0.1", 0, SWOOLE_SOCK_TCP)
    raw_port.set(open_tcp_nodelay=True)  # (a port that called set() without HTTP: raw TCP)
    hs_port = server.listen("127.0.0.1", 0, SWOOLE_SOCK_TCP)
    hs_port.set(open_websocket_protocol=True)
    emit_lifecycle(server)

    @server.on("managerStart")
    def on_manager_start(server: WebSocketServer) -> None:
        emit("PORTS", http_port.port, ws_port.port, raw_port.port, hs_port.port)

    @server.on("beforeHandshakeResponse")
    def before_handshake(server: WebSocketServer, request: Request, response: Response) -> None:
        response.header("X-Worker", str(os.getpid()))
        response.cookie("seen", request.server["request_uri"])

    @hs_port.on("handshake")
    def on_port_handshake(request: Request, response: Response) -> bool:
        if request.server["request_uri"] != "/ok":
            response.status(403)
            response.end("no")
            return False
        response.status(101)
        response.header("Upgrade", "websocket")
        response.header("Connection", "Upgrade")
        response.header("Sec-WebSocket-Accept", accept_key(request.header["sec-websocket-key"]))
        response.header("X-Worker", str(os.getpid()))
        response.end()
        emit("handshake", request.fd, os.getpid())
        return True

    @hs_port.on("message")
    def on_hs_message(server: WebSocketServer, frame: Frame) -> None:
        server.push(frame.fd, f"hs:{frame.data}")

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "worker")

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        if frame.data == "close me":
            server.close(frame.fd)
        elif frame.data == "bye":
            server.disconnect(frame.fd, 4000, "bye")
        elif frame.data == "fd?":
            server.push(frame.fd, str(frame.fd))
        else:
            server.push(frame.fd, f"main:{frame.data}")

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int, reactor_id: int) -> None:
        emit("onclose", fd, reactor_id)

    @server.on("request")
    def on_request(request: Request, response: Response) -> None:
        response.end(f"main http {request.server['request_uri']}")

    @http_port.on("request")
    def on_port_request(request: Request, response: Response) -> None:
        response.end(f"port http {request.server['request_uri']}")

    @ws_port.on("open")
    def on_port_open(server: WebSocketServer, request: Request) -> None:
        emit("wsopen", request.fd, request.server["request_uri"])

    @ws_port.on("message")
    def on_port_message(server: WebSocketServer, frame: Frame) -> None:
        server.push(frame.fd, f"wsport:{frame.data}")

    @raw_port.on("connect")
    def on_raw_connect(server: WebSocketServer, fd: int, reactor_id: int) -> None:
        emit("rawconnect", fd, reactor_id)

    @raw_port.on("receive")
    def on_raw_receive(server: WebSocketServer, fd: int, reactor_id: int, data: bytes) -> None:
        if data == b"close\n":
            server.close(fd)
        else:
            server.send(fd, data)

    @raw_port.on("close")
    def on_raw_close(server: WebSocketServer, fd: int, reactor_id: int) -> None:
        emit("rawclose", fd, reactor_id)

    server.start()


def plain(port: int) -> None:
    """``--plain``: a ``Server`` (raw TCP on its main port) in SWOOLE_PROCESS mode, 2
    workers: echoes what it gets, ``close\\n`` closes; on("close") prints ``close <fd>
    <reactor_id> <pid>`` and on("receive") ``receive <fd> <pid>`` (which worker)."""
    server = Server("127.0.0.1", port, SWOOLE_PROCESS)
    server.set(worker_num=2, max_wait_time=1.0, log_level=4)
    emit_lifecycle(server)  # type: ignore[arg-type]

    @server.on("workerStart")
    def on_worker_start(server: Server, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "worker")

    @server.on("receive")
    def on_receive(server: Server, fd: int, reactor_id: int, data: bytes) -> None:
        emit("receive", fd, os.getpid())
        if data == b"close\n":
            server.close(fd)
        else:
            server.send(fd, data)

    @server.on("close")
    def on_close(server: Server, fd: int, reactor_id: int) -> None:
        emit("close", fd, reactor_id, os.getpid())

    server.start()


if __name__ == "__main__":
    main()
