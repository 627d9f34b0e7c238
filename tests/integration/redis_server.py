"""A real ``redis-server`` (Debian's package, installed by ``scripts/setup --test``) on a free
port, no persistence, for the cluster tests; never a mock."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from typing import IO

import pytest

READY_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


READY = "Ready to accept connections"


class RedisServer:
    """One ``redis-server`` process; ``restart()`` keeps its port (a Redis restart).
    ``head``/``tail``: arguments before / after the standard ones (a config file, cluster
    options); ``ready``: the line that says it serves (a Sentinel prints another one)."""

    def __init__(
        self,
        binary: str,
        head: Sequence[str] = (),
        tail: Sequence[str] = (),
        ready: str = READY,
    ) -> None:
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.head, self.tail, self.ready = list(head), list(tail), ready

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                *self.head,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                *self.tail,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()
        seen: list[str] = []

        def read(stream: IO[str]) -> None:  # the "ready" line, then drain (never blocks it)
            for line in stream:
                if len(seen) < 50:
                    seen.append(line)
                if self.ready in line:
                    ready.set()

        assert self.proc.stdout is not None
        threading.Thread(target=read, args=(self.proc.stdout,), daemon=True).start()
        if not ready.wait(READY_TIMEOUT):
            self.stop()
            raise AssertionError(f"redis-server did not start: {''.join(seen[-10:])}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def redis_binary() -> str:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not shutil.which(binary):
        pytest.fail("redis-server is missing: run scripts/setup --test (Debian's redis-server)")
    return binary


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(redis_binary())
    server.start()
    try:
        yield server
    finally:
        server.stop()
