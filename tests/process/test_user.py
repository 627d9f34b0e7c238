"""``Process`` on its own, as Swoole's ``Swoole\\Process``: start, wait, kill, the pipe,
exit codes, ``async def`` callbacks with timers, signal, alarm, name, redirection.

Each test forks real children (whose callbacks only use the pipe and exit) and reaps them;
every read is bounded by a socket timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Iterator

import pytest

from pyswoole import Process, Timer

TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def reap() -> Iterator[None]:
    """Kill and reap whatever a failed test left."""
    started: list[int] = []
    original = Process.start

    def start(self: Process) -> int | bool:
        pid = original(self)
        if pid:
            started.append(int(pid))
        return pid

    Process.start = start  # type: ignore[method-assign]
    try:
        yield
    finally:
        Process.start = original  # type: ignore[method-assign]
        for pid in started:
            Process.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def bounded(process: Process) -> Process:
    assert process._master is not None
    process._master.settimeout(TIMEOUT)
    return process


def wait_for(pid: int) -> dict[str, int]:
    result = Process.wait()
    assert isinstance(result, dict)
    assert result["pid"] == pid
    return result


def test_start_exit_code_and_wait() -> None:
    process = Process(lambda p: p.exit(7))
    assert process.pid == 0
    pid = process.start()
    assert isinstance(pid, int) and pid > 0 and process.pid == pid
    assert wait_for(pid) == {"pid": pid, "code": 7, "signal": 0}
    assert Process.wait(blocking=False) is False  # nothing left to reap


def test_a_callback_that_returns_exits_0_and_one_that_raises_exits_1() -> None:
    ok = Process(lambda: None).start()
    assert wait_for(int(ok))["code"] == 0
    failing = Process(lambda p: 1 / 0).start()
    assert wait_for(int(failing))["code"] == 1


def test_the_pipe_both_ways() -> None:
    def child(process: Process) -> None:
        data = process.read()
        assert isinstance(data, bytes)
        process.write(data.upper())

    process = bounded(Process(child))
    pid = process.start()
    assert process.write("hello") == 5
    assert process.read() == b"HELLO"
    assert wait_for(int(pid))["code"] == 0


def test_a_stream_pipe_and_redirected_stdout() -> None:
    process = bounded(Process(lambda: print("printed by the child", flush=True), True))
    assert process.pipe_type == 1  # redirection needs a stream, as in Swoole
    pid = process.start()
    got = b""
    while not got.endswith(b"\n"):
        chunk = process.read()
        assert isinstance(chunk, bytes) and chunk
        got += chunk
    assert got == b"printed by the child\n"
    wait_for(int(pid))


def test_async_callback_runs_on_its_own_loop_with_timers() -> None:
    async def child(process: Process) -> None:
        ticks = 0
        done = asyncio.Event()

        def tick(timer_id: int) -> None:
            nonlocal ticks
            ticks += 1
            if ticks == 3:
                Timer.clear(timer_id)
                done.set()

        Timer.tick(5, tick)
        await done.wait()
        # a plain timer set here still runs: the loop goes on while timers are pending
        Timer.after(5, lambda: process.write(f"ticks={ticks}"))

    process = bounded(Process(child))
    pid = process.start()
    assert process.read() == b"ticks=3"
    assert wait_for(int(pid))["code"] == 0


def test_kill_and_the_signal_that_ended_it() -> None:
    process = bounded(Process(lambda p: p.read()))  # blocks until killed
    pid = int(process.start())
    assert Process.kill(pid, 0) is True
    assert Process.kill(pid, signal.SIGTERM) is True
    assert wait_for(pid) == {"pid": pid, "code": 0, "signal": signal.SIGTERM}
    assert Process.kill(pid, 0) is False


def test_signal_handlers_and_alarm_in_the_child() -> None:
    async def child(process: Process) -> None:
        got: list[int] = []
        done = asyncio.Event()

        def on_signal(signo: int) -> None:
            got.append(signo)
            if signo == signal.SIGUSR1:
                Process.alarm(2000)  # 2 ms, periodic
            elif got.count(signal.SIGALRM) == 3:
                Process.alarm(0)
                done.set()

        assert Process.signal(signal.SIGUSR1, on_signal)
        assert Process.signal(signal.SIGALRM, on_signal)
        process.write("ready")
        await done.wait()
        process.write(",".join(str(s) for s in got))

    process = bounded(Process(child))
    pid = int(process.start())
    assert process.read() == b"ready"
    Process.kill(pid, signal.SIGUSR1)
    alarm = int(signal.SIGALRM)
    assert process.read() == f"{int(signal.SIGUSR1)},{alarm},{alarm},{alarm}".encode()
    assert wait_for(pid)["code"] == 0


def test_name_sets_what_ps_shows() -> None:
    def child(process: Process) -> None:
        assert process.name("pyswoole-user")
        with open("/proc/self/comm") as f:
            process.write(f.read().strip())

    process = bounded(Process(child))
    pid = process.start()
    got = process.read()
    assert isinstance(got, bytes) and got.startswith(b"pyswoole-user")
    wait_for(int(pid))


def test_no_pipe_and_bad_arguments() -> None:
    process = Process(lambda: None, pipe_type=0)
    assert process.pipe == -1
    assert process.write("x") is False and process.read() is False
    with pytest.raises(TypeError):
        Process(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Process(lambda: None, pipe_type=5)
    pid = process.start()
    wait_for(int(pid))


def test_datagram_pipe_keeps_message_boundaries() -> None:
    def child(process: Process) -> None:
        for _ in range(3):
            message = process.read()
            assert isinstance(message, bytes)
            process.write(b"<" + message + b">")

    process = bounded(Process(child))
    pid = process.start()
    for word in (b"a", b"bb", b"ccc"):
        process.write(word)
    assert [process.read() for _ in range(3)] == [b"<a>", b"<bb>", b"<ccc>"]
    wait_for(int(pid))
    assert process._master is not None and process._master.type == socket.SOCK_DGRAM


def test_add_process_returns_its_id_and_refuses_what_is_not_a_process() -> None:
    from pyswoole import ConfigError, WebSocketServer

    server = WebSocketServer("127.0.0.1", 0)
    server.set(worker_num=2, task_worker_num=1)
    first, second = Process(lambda: None), Process(lambda: None)
    assert server.add_process(first) == 3  # after 2 workers and 1 task worker, as Swoole
    assert server.addProcess(second) == 4 and second.id == 4
    with pytest.raises(ConfigError):
        server.add_process(first)
    with pytest.raises(TypeError):
        server.add_process(lambda: None)  # type: ignore[arg-type]
