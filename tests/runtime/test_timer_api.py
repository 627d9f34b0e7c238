"""The module-level ``Timer`` (Swoole's ``Swoole\\Timer``): on a running asyncio loop, in a
real server's worker (sharing ids with ``server.tick``), and in a plain script (run at exit).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
from typing import Any

import pytest
import websockets

from pyswoole import ConfigError, Timer, WebSocketServer
from pyswoole.runtime.timers import set_current
from tests.conftest import ws_url

TIMEOUT = 5.0


@pytest.fixture(autouse=True)
def no_current_timers() -> Any:
    set_current(None)
    yield
    Timer.clear_all()
    set_current(None)


async def test_tick_after_clear_info_list_stats_on_the_running_loop() -> None:
    ticked: list[tuple[int, str]] = []
    three = asyncio.Event()
    after: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()

    def on_tick(timer_id: int, label: str) -> None:
        ticked.append((timer_id, label))
        if len(ticked) == 3:
            three.set()

    tick_id = Timer.tick(5, on_tick, "t")
    after_id = Timer.after(10, lambda a, b: after.set_result((a, b)), "x", 2)
    assert tick_id != after_id
    assert Timer.exists(tick_id) and Timer.exists(after_id)
    assert set(Timer.list()) == {tick_id, after_id}
    info = Timer.info(tick_id)
    assert info is not None
    assert info["interval"] == 5 and info["exec_count"] == 0 and info["removed"] is False
    assert Timer.info(after_id)["interval"] == 0  # type: ignore[index]
    assert Timer.stats()["num"] == 2 and Timer.stats()["initialized"] is True

    assert await asyncio.wait_for(after, TIMEOUT) == ("x", 2)
    assert not Timer.exists(after_id)  # an after timer is gone once it fired
    await asyncio.wait_for(three.wait(), TIMEOUT)
    assert ticked[:3] == [(tick_id, "t")] * 3
    assert Timer.info(tick_id)["exec_count"] >= 3  # type: ignore[index]
    assert Timer.stats()["round"] >= 4

    assert Timer.clear(tick_id) is True
    assert Timer.clear(tick_id) is False
    assert Timer.info(tick_id) is None
    assert list(Timer.list()) == []


async def test_async_callbacks_exceptions_and_clear_all(caplog: pytest.LogCaptureFixture) -> None:
    done = asyncio.Event()
    calls = 0

    async def slow(timer_id: int) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls == 1:
            raise RuntimeError("first tick fails")
        if calls == 2:
            done.set()

    with caplog.at_level(logging.ERROR, logger="pyswoole"):
        timer_id = Timer.tick(5, slow)
        Timer.after(5, lambda: 1 / 0)
        await asyncio.wait_for(done.wait(), TIMEOUT)
    assert "first tick fails" in caplog.text  # logged, and the tick went on
    assert "ZeroDivisionError" in caplog.text
    assert Timer.exists(timer_id)
    Timer.after(1000, lambda: None)
    assert Timer.clear_all() is True
    assert Timer.stats()["num"] == 0 and not Timer.exists(timer_id)


def test_bad_intervals_are_refused() -> None:
    for bad in (0, -1, True, "10", None):
        with pytest.raises(ConfigError):
            Timer.tick(bad, lambda: None)  # type: ignore[arg-type]
        with pytest.raises(ConfigError):
            Timer.after(bad, lambda: None)  # type: ignore[arg-type]
    assert Timer.clear(12345) is False
    assert Timer.info(12345) is None


def test_a_plain_script_runs_its_timers_when_it_ends() -> None:
    """As a Swoole CLI script: the timers run after the script's last line."""
    script = (
        "from pyswoole import Timer\n"
        "n = 0\n"
        "def tick(timer_id):\n"
        "    global n\n"
        "    n += 1\n"
        "    print('tick', n, flush=True)\n"
        "    if n == 3:\n"
        "        Timer.clear(timer_id)\n"
        "Timer.tick(5, tick)\n"
        "Timer.after(1, print, 'after', 'fired')\n"
        "print('script end', flush=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    ).stdout.splitlines()
    assert out[0] == "script end"
    assert "after fired" in out
    assert [line for line in out if line.startswith("tick")] == ["tick 1", "tick 2", "tick 3"]


async def test_in_a_worker_timer_and_server_tick_share_ids(serve: Any) -> None:
    server = WebSocketServer("127.0.0.1", 0)
    seen: dict[str, Any] = {}
    ready = threading.Event()

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        a = server.tick(10_000, lambda: None)
        b = Timer.after(10_000, lambda: None)
        seen["ids"] = (a, b)
        seen["server_clears_timer"] = server.clear_timer(b)
        seen["timer_clears_server"] = Timer.clear(a)
        seen["left"] = list(Timer.list())

        def fired(label: str) -> None:
            seen["fired"] = label
            ready.set()

        Timer.after(5, fired, "from Timer")

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Any) -> None:
        server.push(frame.fd, str(seen.get("fired")))

    serve(server)
    assert await asyncio.to_thread(ready.wait, TIMEOUT)
    a, b = seen["ids"]
    assert b == a + 1  # one id sequence: the worker's timers
    assert seen["server_clears_timer"] is True and seen["timer_clears_server"] is True
    assert seen["left"] == []
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send("?")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "from Timer"
