"""``examples/porting_chat.py``, the porting guide's translation of a PHP Swoole chat server,
run as a real process (SWOOLE_PROCESS, 2 workers, 1 task worker) and used by real clients."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import websockets

from tests.integration.conftest import ROOT, read_line, stop

CHAT = ROOT / "examples" / "porting_chat.py"
TIMEOUT = 10.0


async def receive(ws: Any) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))


async def test_the_translated_chat_server(tmp_path: Path) -> None:
    history = tmp_path / "history.log"
    stderr = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(CHAT), "--port", "0", "--history", str(history)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        line = await asyncio.to_thread(read_line, proc.stdout, TIMEOUT)
        match = re.fullmatch(r"chat server listening on ws://127\.0\.0\.1:(\d+)/\n", line)
        assert match, line
        url = f"ws://127.0.0.1:{match[1]}/"
        async with websockets.connect(url + "?name=ann", open_timeout=TIMEOUT) as ann:
            welcome = await receive(ann)
            assert welcome["type"] == "welcome" and welcome["name"] == "ann"
            async with websockets.connect(url, open_timeout=TIMEOUT) as guest:
                hello = await receive(guest)
                assert hello["name"] == f"guest{hello['fd']}", hello
                assert await receive(ann) == {
                    "type": "join",
                    "fd": hello["fd"],
                    "name": hello["name"],
                }
                await guest.send(json.dumps({"text": "hi all"}))
                said = {"type": "say", "from": hello["fd"], "text": "hi all"}
                assert await receive(ann) == said
                assert await receive(guest) == said
                await ann.send("not json")
                assert await receive(ann) == {"type": "error", "error": "bad message"}
            assert await receive(ann) == {"type": "leave", "fd": hello["fd"]}
        # the task worker wrote the history: read it once the server has stopped
    finally:
        code = await asyncio.to_thread(stop, proc)
        stderr.close()
    assert code == 0, (tmp_path / "stderr.txt").read_text()
    assert [json.loads(line) for line in history.read_text().splitlines()] == [
        {"fd": hello["fd"], "text": "hi all"}
    ]
