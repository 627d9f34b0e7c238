"""A SWOOLE_PROCESS WebSocket server with two extra ports that called ``set()`` (their own
protocol settings, the server's callbacks), for tests/integration/test_process_ports.py.

    python tests/integration/programs/process_port_server.py --port 0

Standard output: ``PORTS <websocket port> <http port>`` (at start, in the master),
``READY <port>`` and ``workerStart <id> <pid> worker`` (programs/events.py). Messages are
echoed as ``main:<text>`` by the worker, except ``close me``: ``server.close(fd)``, then
``close-returned <fd> <result>``; ``onclose <fd> <reactor_id>`` is printed by on("close").
HTTP requests are answered ``http <uri> <pid>``.
"""

from __future__ import annotations

import argparse
import os

from events import emit, emit_lifecycle

from pyswoole import SWOOLE_PROCESS, SWOOLE_SOCK_TCP, Request, Response, WebSocketServer
from pyswoole.server import Frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = WebSocketServer("127.0.0.1", args.port, SWOOLE_PROCESS)
    server.set(worker_num=1, max_wait_time=1.0, log_level=4)
    ws_port = server.listen("127.0.0.1", 0, SWOOLE_SOCK_TCP)
    ws_port.set(open_websocket_protocol=True, package_max_length=100, websocket_subprotocol="chat")
    http_port = server.listen("127.0.0.1", 0, SWOOLE_SOCK_TCP)
    http_port.set(open_http_protocol=True)
    emit_lifecycle(server)

    @server.on("managerStart")
    def on_manager_start(server: WebSocketServer) -> None:
        emit("PORTS", ws_port.port, http_port.port)

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "worker")

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        if frame.data == "close me":
            emit("close-returned", frame.fd, server.close(frame.fd))
        else:
            server.push(frame.fd, f"main:{frame.data}")

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int, reactor_id: int) -> None:
        emit("onclose", fd, reactor_id)

    @server.on("request")
    def on_request(request: Request, response: Response) -> None:
        response.end(f"http {request.server['request_uri']} {os.getpid()}")

    server.start()


if __name__ == "__main__":
    main()
