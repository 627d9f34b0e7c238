"""Import and start-up time (issue 17: ``import pyswoole`` under 50 ms; a one-worker server
accepting within 100 ms of ``start()``).

Bytecode is cached (in a temporary directory, see :data:`PYCACHE`) and warmed up first, as
for an installed package.

* ``import``: ``import pyswoole`` and ``from pyswoole import WebSocketServer`` (what a server
  program does), each timed inside a fresh interpreter with ``time.perf_counter`` around
  the import alone (interpreter start-up excluded); best of ``--runs``.
* ``start``: a fresh interpreter makes a ``WebSocketServer`` (one worker) on a free port,
  prints ``time.monotonic()`` just before ``start()`` and starts it; this process connects
  in a loop (every 0.5 ms, at most 10 s) and reports when a TCP connect first succeeds and
  when the first WebSocket handshake is answered with 101, both from that stamp
  (``CLOCK_MONOTONIC`` is one clock for both processes). Best of ``--runs``, for
  SWOOLE_BASE (the server is the process) and SWOOLE_PROCESS (a master and one worker).

    .venv/bin/python bench/startup.py [--runs 5]

Only loopback addresses are used; every wait is bounded; each server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 10.0
#: where the children cache bytecode (a checkout run with PYTHONDONTWRITEBYTECODE=1 would
#: otherwise compile every module on every import: several times slower, and not what an
#: installed package does)
PYCACHE = os.path.join(tempfile.gettempdir(), "pyswoole-startup-pycache")

IMPORTS = {
    "import pyswoole": "import pyswoole",
    "from pyswoole import WebSocketServer": "from pyswoole import WebSocketServer",
}

SERVER = """
import sys, time
from pyswoole import SWOOLE_BASE, SWOOLE_LOG_WARNING, SWOOLE_PROCESS, WebSocketServer
mode = SWOOLE_PROCESS if sys.argv[2] == "process" else SWOOLE_BASE
server = WebSocketServer("127.0.0.1", int(sys.argv[1]), mode)
server.set({"worker_num": 1, "log_level": SWOOLE_LOG_WARNING})
server.on("message", lambda server, frame: server.push(frame.fd, frame.data))
print(time.monotonic(), flush=True)
server.start()
"""

UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def env() -> dict[str, str]:
    """The children's environment: ``src`` first on the path, and bytecode caching on (as
    in an installed package) but kept out of the tree, in :data:`PYCACHE`."""
    paths = [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    out = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONPYCACHEPREFIX": PYCACHE}
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    return out


def time_import(statement: str) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds) the import takes in a fresh interpreter. The CPU
    time is the steadier number on a busy machine."""
    code = (
        "import time; t = time.perf_counter(); c = time.process_time(); "
        f"{statement}; print(time.perf_counter() - t, time.process_time() - c)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env(), capture_output=True, text=True, timeout=60
    )
    out.check_returncode()
    wall, cpu = out.stdout.split()
    return float(wall), float(cpu)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def time_start(mode: str) -> tuple[float, float]:
    """(seconds to the first accepted connect, seconds to the first 101), from ``start()``."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), mode],
        env=env(),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        started = float(proc.stdout.readline())  # the child's stamp before start()
        deadline = time.monotonic() + TIMEOUT
        connected = answered = 0.0
        while not answered:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"no 101 within {TIMEOUT} s (exit {proc.returncode})")
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            except ConnectionRefusedError:
                time.sleep(0.0005)
                continue
            with sock:
                connected = connected or time.monotonic()
                sock.sendall(UPGRADE)
                head = sock.recv(4096)
                if head.startswith(b"HTTP/1.1 101 "):
                    answered = time.monotonic()
        return connected - started, answered - started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(TIMEOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--imports-only", action="store_true", help="skip the start() runs")
    args = parser.parse_args()
    time_import("from pyswoole import WebSocketServer")  # warm-up: fills the bytecode cache
    for label, statement in IMPORTS.items():
        runs = [time_import(statement) for _ in range(args.runs)]
        wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
        print(f"{label:<40} {wall * 1000:7.1f} ms   (CPU {cpu * 1000:.1f} ms)", flush=True)
    if args.imports_only:
        return
    for mode in ("base", "process"):
        runs = [time_start(mode) for _ in range(args.runs)]
        connect = min(r[0] for r in runs)
        answer = min(r[1] for r in runs)
        print(
            f"start() -> accepting, {mode:<7} 1 worker  {connect * 1000:7.1f} ms"
            f"   (-> first 101: {answer * 1000:.1f} ms)",
            flush=True,
        )


if __name__ == "__main__":
    main()
