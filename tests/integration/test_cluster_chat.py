"""examples/cluster_chat.py over the wire: the same program started three times on three ports
against one real ``redis-server``; ``websockets`` clients on every node."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.integration.conftest import ROOT
from tests.integration.redis_server import redis_server
from tests.integration.serverproc import START_TIMEOUT, ServerProcess

pytest.importorskip("redis", reason="the cluster tests need redis-py (the test extra)")

EXAMPLE = ROOT / "examples" / "cluster_chat.py"
TIMEOUT = 10.0
ROUNDS = 100


class ChatClient:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, **message: Any) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))  # type: ignore[no-any-return]

    async def until(self, kind: str, text: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The first message of ``kind`` with ``text`` (probes are skipped)."""
        for _ in range(ROUNDS * 4):
            got = await self.receive(timeout)
            if got["type"] == kind and got.get("text") == text:
                return got
        raise AssertionError(f"no {kind} {text!r}")


@contextlib.asynccontextmanager
async def chat_node(tmp_path: Path, redis_url: str, node: str, mode: str) -> AsyncIterator[int]:
    server = ServerProcess(
        EXAMPLE, tmp_path, "--redis", redis_url, "--node", node, "--mode", mode
    )  # ServerProcess passes --port 0
    try:
        found = await asyncio.to_thread(
            server.wait_line,
            rf"cluster_chat node {node} on ws://127\.0\.0\.1:(\d+) .*",
            START_TIMEOUT,
        )
        yield int(found[1])
    finally:
        await asyncio.to_thread(server.stop)


async def test_cluster_chat_three_nodes(tmp_path: Path) -> None:
    with redis_server() as redis:
        async with contextlib.AsyncExitStack() as stack:
            ports = [
                await stack.enter_async_context(chat_node(tmp_path, redis.url, f"n{i}", mode))
                for i, mode in enumerate(("base", "process", "base"), start=1)
            ]
            clients: list[ChatClient] = []
            for i, port in enumerate(ports, start=1):
                ws = await stack.enter_async_context(
                    websockets.connect(f"ws://127.0.0.1:{port}/?name=c{i}&uid={i}&room=lobby")
                )
                client = ChatClient(ws)
                assert (await client.receive())["type"] == "joined"
                clients.append(client)
            ann, bob, cid = clients
            # probes until both other nodes get node 1's messages (their subscriptions are up)
            waiting = {1, 2}
            for n in range(ROUNDS):
                await ann.send(type="say", text=f"probe{n}")
                for index in list(waiting):
                    with contextlib.suppress(asyncio.TimeoutError):
                        if (await clients[index].receive(0.2))["type"] == "message":
                            waiting.discard(index)
                if not waiting:
                    break
            assert not waiting, "node 1's messages never reached the other nodes"
            await ann.send(type="say", text="hello from n1")
            for client in clients:  # to the room on every node, the sender included
                got = await client.until("message", "hello from n1")
                assert (got["name"], got["node"], got["room"]) == ("c1", "n1", "lobby")
            await cid.send(type="to", uid=2, text="psst")  # node 3 -> the user on node 2
            got = await bob.until("direct", "psst")
            assert (got["from"], got["node"]) == ("c3", "n3")
            await bob.send(type="who")
            for _ in range(ROUNDS):
                got = await bob.receive()
                if got["type"] == "online":
                    assert got["count"] == 3  # three users bound, one per node
                    break
            else:
                raise AssertionError("no answer to 'who'")
