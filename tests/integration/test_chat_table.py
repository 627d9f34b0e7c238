"""``examples/chat_table.py`` over the wire: 4 workers (SWOOLE_PROCESS and SWOOLE_BASE),
rooms and nicknames in a ``Table``, and the user process's posts to every room.

The program runs in its own session with a short ``--announce-interval``; the tests talk to
it with real ``websockets`` clients and wait for messages, never sleep.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.integration.conftest import ROOT
from tests.integration.serverproc import START_TIMEOUT, ServerProcess

PROGRAM = ROOT / "examples" / "chat_table.py"
TIMEOUT = 10.0


class ChatClient:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    async def connect(cls, port: int) -> ChatClient:
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT)
        return cls(ws)

    async def send(self, **message: Any) -> None:
        await self.ws.send(json.dumps(message))

    async def next(self, kind: str, limit: int = 500) -> dict[str, Any]:
        """The next message of type ``kind`` (others skipped, at most ``limit``)."""
        for _ in range(limit):
            message = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            if message["type"] == kind:
                return message  # type: ignore[no-any-return]
        raise AssertionError(f"no {kind!r} message among {limit}")

    async def join(self, nick: str, room: str) -> dict[str, Any]:
        await self.send(type="nick", nick=nick)
        assert (await self.next("nick"))["nick"] == nick
        await self.send(type="join", room=room)
        return await self.next("joined")


@pytest.mark.parametrize("mode", ["process", "base"])
async def test_rooms_nicknames_and_the_announcer(tmp_path: Path, mode: str) -> None:
    proc = ServerProcess(
        PROGRAM, tmp_path, "--workers", "4", "--mode", mode, "--announce-interval", "0.2"
    )
    clients: list[ChatClient] = []
    try:
        port = int(
            proc.wait_line(r"chat_table listening on ws://127.0.0.1:(\d+)", START_TIMEOUT)[1]
        )
        for i in range(6):
            client = await ChatClient.connect(port)
            clients.append(client)
            room = "red" if i % 2 == 0 else "blue"
            joined = await client.join(f"user{i}", room)
            assert joined["room"] == room and joined["nick"] == f"user{i}"
            assert joined["members"] == i // 2 + 1  # rooms.incr counted across workers
        red, blue = clients[0::2], clients[1::2]

        await red[0].send(type="say", text="hello red")
        for client in red:
            got = await client.next("message")
            assert got == {"type": "message", "room": "red", "nick": "user0", "text": "hello red"}
        await blue[2].send(type="say", text="hello blue")
        for client in blue:  # the first message a blue member sees is blue's, not red's
            got = await client.next("message")
            assert got["room"] == "blue" and got["nick"] == "user5" and got["text"] == "hello blue"

        # the user process posts to every room with members, to each member
        for client, room in [(c, "red") for c in red] + [(c, "blue") for c in blue]:
            announce = await client.next("announce")
            assert announce["room"] == room and announce["members"] == 3

        # a member leaves: the table says so, and the next posts count 2
        await red[2].ws.close()
        for _ in range(100):
            announce = await red[0].next("announce")
            if announce["members"] == 2:
                break
        else:
            raise AssertionError("the announcer never saw the member leave")

        await red[0].send(type="say")
        await red[0].send(type="dance")
        assert (await red[0].next("error"))["error"] == "unknown type 'dance'"
        await red[0].send(type="nick", nick="x" * 40)
        assert "1 to 32 bytes" in (await red[0].next("error"))["error"]
    finally:
        for client in clients:
            await client.ws.close()
        proc.stop()
