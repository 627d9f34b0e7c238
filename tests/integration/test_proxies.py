"""trusted_proxies and allowed_origins on a real server, over real sockets.

The test client connects from 127.0.0.1 and sends forwarding headers itself, playing the
proxy: trusted when 127.0.0.1 is in ``trusted_proxies``, an ordinary (lying) client when it
is not. The handler answers with what the server believes: the request's ``remote_addr`` /
``remote_port`` and ``get_client_info``. SWOOLE_PROCESS mode runs
``programs/proxy_server.py``: its worker reads the master's connection from the shared table.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import websockets

from pyswoole import WebSocketServer
from tests.conftest import RawClient, ws_url
from tests.integration.serverproc import ServerProcess
from tests.integration.test_http_server import read_response, request_bytes, upgrade_bytes

PROGRAM = Path(__file__).resolve().parent / "programs" / "proxy_server.py"
XFF = ("X-Forwarded-For", "6.6.6.6, 203.0.113.7, 10.1.1.1")


def reporting_server(**settings: Any) -> WebSocketServer:
    """Answers every request (and WebSocket message) with the client address it sees."""
    server = WebSocketServer("127.0.0.1", 0)
    server.set(settings)

    def seen(fd: int, **extra: Any) -> str:
        info = server.get_client_info(fd) or {}
        return json.dumps({"info": [info.get("remote_ip"), info.get("remote_port")], **extra})

    def on_request(request: Any, response: Any) -> None:
        addr = [request.server["remote_addr"], request.server["remote_port"]]
        response.end(seen(request.fd, request=addr))

    def on_message(server: WebSocketServer, frame: Any) -> None:
        server.push(frame.fd, seen(frame.fd))

    server.on("request", on_request)
    server.on("message", on_message)
    return server


def ask(client: RawClient, *headers: tuple[str, str]) -> dict[str, Any]:
    client.send(request_bytes("/", headers=headers))
    answer = read_response(client)
    assert answer.status == 200, answer
    result: dict[str, Any] = json.loads(answer.body)
    return result


def own_address(client: RawClient) -> list[Any]:
    host, port = client.sock.getsockname()[:2]
    return [host, port]


ALL_HEADERS = ["x-forwarded-for", "forwarded", "x-real-ip"]


def test_trusted_proxy_names_the_client(serve, raw_client) -> None:
    server = serve(
        reporting_server(trusted_proxies=["127.0.0.1", "10.0.0.0/8"], proxy_headers=ALL_HEADERS)
    )
    client = raw_client(server.port)
    # the chain is walked from the right: 10.1.1.1 is trusted, 203.0.113.7 is the client
    assert ask(client, XFF) == {"request": ["203.0.113.7", 0], "info": ["203.0.113.7", 0]}
    # the next request on the same (proxy's) connection is another client's
    got = ask(client, ("Forwarded", 'for="[2001:db8::7]:4711";proto=https'))
    assert got == {"request": ["2001:db8::7", 4711], "info": ["2001:db8::7", 4711]}
    assert ask(client, ("X-Real-IP", "198.51.100.9")) == {
        "request": ["198.51.100.9", 0],
        "info": ["198.51.100.9", 0],
    }
    # no forwarding header: the proxy itself
    me = own_address(client)
    assert ask(client) == {"request": me, "info": me}


def test_untrusted_peer_cannot_choose_its_address(serve, raw_client) -> None:
    server = serve(reporting_server(trusted_proxies=["10.0.0.0/8"]))
    client = raw_client(server.port)
    me = own_address(client)
    assert ask(client, XFF, ("X-Real-IP", "9.9.9.9")) == {"request": me, "info": me}
    assert ask(client, ("Forwarded", "for=9.9.9.9")) == {"request": me, "info": me}


def test_no_proxy_is_trusted_by_default(serve, raw_client) -> None:
    server = serve(reporting_server())
    client = raw_client(server.port)
    me = own_address(client)
    assert ask(client, XFF, ("X-Real-IP", "9.9.9.9"), ("Forwarded", "for=9.9.9.9")) == {
        "request": me,
        "info": me,
    }


def test_by_default_only_x_forwarded_for_is_believed(serve, raw_client) -> None:
    # a proxy that sets X-Forwarded-For passes the client's own X-Real-IP/Forwarded through
    server = serve(reporting_server(trusted_proxies=["127.0.0.1"]))
    client = raw_client(server.port)
    me = own_address(client)
    assert ask(client, ("X-Real-IP", "9.9.9.9"), ("Forwarded", "for=9.9.9.9"))["request"] == me
    got = ask(client, ("X-Real-IP", "9.9.9.9"), ("X-Forwarded-For", "203.0.113.70"))
    assert got["request"] == ["203.0.113.70", 0]


def test_only_the_configured_header_is_believed(serve, raw_client) -> None:
    server = serve(reporting_server(trusted_proxies="127.0.0.1", proxy_headers=["x-real-ip"]))
    client = raw_client(server.port)
    got = ask(client, ("X-Forwarded-For", "6.6.6.6"), ("X-Real-IP", "198.51.100.3"))
    assert got["request"] == ["198.51.100.3", 0]
    assert ask(client, ("X-Forwarded-For", "6.6.6.6"))["request"] == own_address(client)


def test_websocket_through_a_trusted_proxy(serve) -> None:
    server = serve(reporting_server(trusted_proxies=["127.0.0.1"]))

    async def main() -> dict[str, Any]:
        async with websockets.connect(
            ws_url(server), additional_headers={"X-Forwarded-For": "203.0.113.50"}
        ) as ws:
            await ws.send("who")
            reply = await asyncio.wait_for(ws.recv(), 5)
            return json.loads(reply)  # type: ignore[no-any-return]

    assert asyncio.run(main()) == {"info": ["203.0.113.50", 0]}


# -- allowed_origins ---------------------------------------------------------------------------


ORIGINS = ["https://app.example.com", "https://*.example.org"]


@pytest.mark.parametrize("origin", ["https://app.example.com", "https://a.b.example.org", None])
def test_allowed_origin_or_none_gets_101(serve, origin: str | None) -> None:
    server = serve(reporting_server(allowed_origins=ORIGINS))

    async def main() -> dict[str, Any]:
        async with websockets.connect(ws_url(server), origin=origin) as ws:  # type: ignore[arg-type]
            await ws.send("who")
            return json.loads(await asyncio.wait_for(ws.recv(), 5))  # type: ignore[no-any-return]

    assert asyncio.run(main())["info"][0] == "127.0.0.1"


@pytest.mark.parametrize(
    "origin",
    ["https://evil.test", "http://app.example.com", "https://example.org", "null"],
)
def test_other_origin_gets_403_and_the_connection_closes(serve, raw_client, origin) -> None:
    server = serve(reporting_server(allowed_origins=ORIGINS))
    client = raw_client(server.port)
    client.send(upgrade_bytes(extra=(("Origin", origin),)))
    answer = read_response(client)
    assert answer.status == 403
    assert client.recv_all() == b""  # closed, no 101 behind it


def test_origins_do_not_concern_plain_http(serve, raw_client) -> None:
    server = serve(reporting_server(allowed_origins=ORIGINS))
    client = raw_client(server.port)
    assert ask(client, ("Origin", "https://evil.test"))["request"][0] == "127.0.0.1"


def test_refused_origin_never_reaches_the_handshake_callback(serve, raw_client) -> None:
    server = reporting_server(allowed_origins=ORIGINS)
    called: list[str] = []

    def handshake(request: Any, response: Any) -> bool:
        called.append(request.header.get("origin", ""))
        response.status(101)
        response.end()
        return True

    server.on("handshake", handshake)
    serve(server)
    client = raw_client(server.port)
    client.send(upgrade_bytes(extra=(("Origin", "https://evil.test"),)))
    assert read_response(client).status == 403
    assert called == []


# -- SWOOLE_PROCESS: the worker sees the master's connection through the shared table -------


def test_process_mode_workers_see_the_proxied_client(tmp_path: Path) -> None:
    settings = json.dumps({"trusted_proxies": ["127.0.0.1"]})
    server = ServerProcess(
        PROGRAM, tmp_path, "--mode", "process", "--workers", "2", "--settings", settings
    )
    try:
        server.wait_ready(2)
        client = RawClient(server.port)
        try:
            got = ask(client, ("X-Forwarded-For", "203.0.113.60"))
            assert got["request"] == ["203.0.113.60", 0]
            assert got["info"] == ["203.0.113.60", 0]
            me = own_address(client)
            got = ask(client)
            assert got["request"] == me and got["info"] == me
        finally:
            client.sock.close()
    finally:
        server.stop()
