"""The ``chroot`` setting (Swoole: workers ``chroot()`` after the ports are bound): each
worker sees the jail as ``/``, and still serves its clients."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
import websockets

from tests.integration.serverproc import ServerProcess

PROGRAM = Path(__file__).parent / "programs" / "chroot_server.py"
TIMEOUT = 10.0


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot() needs root")
@pytest.mark.parametrize("workers", [1, 2])
async def test_workers_serve_from_inside_the_jail(tmp_path: Path, workers: int) -> None:
    jail = tmp_path / "jail"
    jail.mkdir()
    (jail / "only-in-the-jail").write_text("")
    server = ServerProcess(PROGRAM, tmp_path, "--root", str(jail), "--workers", str(workers))
    try:
        server.wait_ready(workers)
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("ls")
            answer = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert answer == {"re": "ls", "root": ["only-in-the-jail"], "cwd": "/"}
    finally:
        server.stop()
