"""Settings that act on processes and sockets, checked in the running server: a worker
reports its uid, CPU affinity and loop debug mode, and the options of its sockets."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ROOT
from tests.integration.serverproc import Client, ServerProcess, client_pool

PROGRAM = ROOT / "tests" / "integration" / "programs" / "settings_server.py"


@asynccontextmanager
async def serving(tmp_path: Path, settings: dict[str, Any]) -> AsyncIterator[ServerProcess]:
    import asyncio

    server = ServerProcess(PROGRAM, tmp_path, "--settings", json.dumps(settings))
    processes = settings.get("worker_num", 1) + settings.get("task_worker_num", 0)
    try:
        await asyncio.to_thread(server.wait_ready, processes)
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def info(server: ServerProcess, pool: list[Client]) -> dict[str, Any]:
    client = await Client.connect(server.port)
    pool.append(client)
    return await client.request("info")


async def test_defaults_leave_nodelay_on_and_the_rest_off(tmp_path: Path) -> None:
    async with serving(tmp_path, {}) as server, client_pool() as pool:
        got = await info(server, pool)
    assert got["nodelay"] == 1, "Swoole's WebSocket server turns TCP_NODELAY on"
    assert got["keepalive"] == 0
    assert got["uid"] == os.getuid()
    assert got["debug"] is False
    assert got["defer_accept"] == 0


async def test_socket_options(tmp_path: Path) -> None:
    settings = {
        "open_tcp_nodelay": False,
        "open_tcp_keepalive": 1,  # PHP's 1 for true
        "tcp_keepidle": 7,
        "tcp_keepinterval": 3,
        "tcp_keepcount": 2,
        "tcp_defer_accept": 5,
        "tcp_fastopen": True,
    }
    async with serving(tmp_path, settings) as server, client_pool() as pool:
        got = await info(server, pool)
    assert got["nodelay"] == 0
    assert got["keepalive"] == 1
    assert got["keepidle"] == 7
    assert got["defer_accept"] > 0  # the kernel rounds it to its retransmission steps
    assert got["fastopen"] == 1024


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
@pytest.mark.parametrize("workers", [1, 2])
async def test_workers_run_as_user_and_group(tmp_path: Path, workers: int) -> None:
    """Bound as root, served as nobody:nogroup (Swoole applies user/group in workers)."""
    tmp_path.chmod(0o777)  # the program's stderr file stays writable after the drop
    settings = {"user": "nobody", "group": "nogroup", "worker_num": workers}
    async with serving(tmp_path, settings) as server, client_pool() as pool:
        got = await info(server, pool)
    import grp
    import pwd

    assert got["uid"] == pwd.getpwnam("nobody").pw_uid
    assert got["gid"] == grp.getgrnam("nogroup").gr_gid


async def test_cpu_affinity_and_debug_mode(tmp_path: Path) -> None:
    settings = {"open_cpu_affinity": True, "debug_mode": True, "worker_num": 2}
    async with serving(tmp_path, settings) as server, client_pool() as pool:
        got = await info(server, pool)
    available = sorted(os.sched_getaffinity(0))
    assert got["cpus"] == [available[got["worker"] % len(available)]]
    assert got["debug"] is True


def test_listener_option_constants_exist() -> None:
    """The options this file checks exist on this platform (Linux): a missing one would make
    the server skip the setting silently."""
    for name in ("TCP_KEEPIDLE", "TCP_DEFER_ACCEPT", "TCP_FASTOPEN", "TCP_USER_TIMEOUT"):
        assert hasattr(socket, name), name
