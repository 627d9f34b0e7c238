"""Compressed echo, side by side: permessage-deflate actually negotiated.

wsload never offers permessage-deflate, so the main table's "+deflate" rows only measure
having compression enabled. This program drives each server with the ``websockets`` client
(which offers ``permessage-deflate; client_max_window_bits``), so every message really is
compressed both ways:

* echo throughput: N connections, each with 1 message in flight, for a few seconds, with
  compressible JSON-like text messages of 1 KiB and 16 KiB;
* memory: server RSS per idle connection with compression negotiated, after one message
  each way on every connection (so lazily created compressors would show).

The client is Python, so it may be the limit: its CPU use is printed. Server pinned to CPU 0,
client on CPU 1, as in ``bench/run.py``. Usage::

    .venv/bin/python bench/compression.py [--servers pyswoole,websockets,aiohttp]
                                          [--duration 3] [--conns 20] [--idle 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import websockets
from harness import BenchError
from harness.contenders import (
    CONTENDERS,
    local_python,
    peers_python,
    server_command,
    server_env,
)
from harness.processes import (
    descendants,
    free_port,
    pick_cpus,
    raise_nofile_limit,
    spawn_server,
    stop_server,
    tree_rss_kib,
    wait_ready,
)


def message(size: int, seed: int) -> str:
    """Compressible, JSON-like text of ``size`` bytes (different per message)."""
    record = {"id": seed, "user": f"user{seed % 97}", "status": "active", "score": seed * 7}
    text = json.dumps([record] * (size // 60 + 1))
    return text[:size]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (from /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


async def echo_rate(
    port: int, conns: int, size: int, duration: float, server_pids: list[int]
) -> tuple[float, float, float]:
    """Messages/s echoed over ``conns`` compressed connections, the server's CPU µs per
    message, and the client's CPU %."""
    url = f"ws://127.0.0.1:{port}/"
    clients = [await websockets.connect(url, max_size=None) for _ in range(conns)]
    for ws in clients:
        if "permessage-deflate" not in (ws.response.headers.get("Sec-WebSocket-Extensions") or ""):
            raise BenchError("compression was not negotiated")
    payloads = [message(size, i) for i in range(16)]
    count = 0
    stop = time.monotonic() + duration

    async def loop(ws: websockets.ClientConnection, index: int) -> None:
        nonlocal count
        i = index
        while time.monotonic() < stop:
            sent = payloads[i % len(payloads)]
            await ws.send(sent)
            if await ws.recv() != sent:
                raise BenchError("echo mismatch")
            count += 1
            i += 1

    cpu0 = time.process_time()
    server0 = cpu_seconds(server_pids)
    start = time.monotonic()
    await asyncio.gather(*(loop(ws, n) for n, ws in enumerate(clients)))
    elapsed = time.monotonic() - start
    cpu = (time.process_time() - cpu0) / elapsed * 100
    server_us = (cpu_seconds(server_pids) - server0) / max(count, 1) * 1e6
    for ws in clients:
        await ws.close()
    return count / elapsed, server_us, cpu


async def idle_kib(server_rss: callable, port: int, conns: int) -> float:  # type: ignore[valid-type]
    """Server RSS KiB per idle compressed connection (after one message each way)."""
    before = server_rss()
    clients = []
    for _ in range(conns):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/", max_size=None)
        await ws.send(message(1024, len(clients)))
        await ws.recv()
        clients.append(ws)
    await asyncio.sleep(0.5)  # let the server settle (not a synchronisation: a measurement)
    after = server_rss()
    for ws in clients:
        await ws.close()
    return (after - before) / conns


def run_one(name: str, args: argparse.Namespace, cpus: tuple[int, int] | None) -> dict[str, str]:
    contender = CONTENDERS[name]
    python = str(peers_python()) if contender.peer else local_python()
    port = free_port()
    server = spawn_server(
        server_command(contender, python, port, fanout=False, compression=True),
        port,
        server_env(contender),
        cpus[0] if cpus else None,
    )
    row: dict[str, str] = {}
    try:
        wait_ready(server)
        pids = [server.pid, *descendants(server.pid)]
        for size in (1024, 16384):
            rate, server_us, cpu = asyncio.run(
                echo_rate(port, args.conns, size, args.duration, pids)
            )
            row[f"{size // 1024} KiB msg/s"] = f"{rate:.0f} (client {cpu:.0f}% CPU)"
            row[f"{size // 1024} KiB server µs/msg"] = f"{server_us:.1f}"
        kib = asyncio.run(idle_kib(lambda: tree_rss_kib(server), port, args.idle))
        row["idle KiB/conn"] = f"{kib:.2f}"
    except BenchError as exc:
        row["error"] = str(exc)
    finally:
        stop_server(server)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default="pyswoole,websockets,aiohttp")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--conns", type=int, default=20)
    parser.add_argument("--idle", type=int, default=1000)
    args = parser.parse_args()
    raise_nofile_limit()
    cpus = pick_cpus()
    if cpus:
        os.sched_setaffinity(0, {cpus[1]})
    resource.setrlimit(resource.RLIMIT_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE))
    names = [n for n in args.servers.split(",") if n]
    for name in names:
        if name not in CONTENDERS or not CONTENDERS[name].compression:
            parser.error(f"{name}: not a contender with compression")
    rows = {name: run_one(name, args, cpus) for name in names}
    columns = [
        "1 KiB server µs/msg",
        "16 KiB server µs/msg",
        "1 KiB msg/s",
        "16 KiB msg/s",
        "idle KiB/conn",
    ]
    print(f"| server (compression negotiated) | {' | '.join(columns)} |")
    print("|---|" + "---:|" * len(columns))
    for name, row in rows.items():
        if "error" in row:
            print(f"| {name} | error: {row['error']} |")
        else:
            print(f"| {name} | {' | '.join(row[c] for c in columns)} |")


if __name__ == "__main__":
    main()
