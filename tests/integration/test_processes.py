"""The multi-process server (SWOOLE_BASE: manager, workers, task workers), end to end.

Every test runs ``tests/integration/programs/multi_server.py`` as a subprocess in a new
session (it forks; the pytest process never does) and talks to it over real WebSocket
connections. The program's stdout is a stream of event lines (``READY``, ``workerStart``,
``workerError``, ``close`` ...) read by a thread; tests wait for lines, never sleep.
Teardown: SIGTERM to the manager, a bounded wait, then SIGKILL to the process group this
test created.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from websockets.exceptions import WebSocketException

from tests.integration.conftest import ROOT
from tests.integration.serverproc import (
    EVENT_TIMEOUT,
    STOP_TIMEOUT,
    Client,
    Disconnected,
    Progress,
    ServerProcess,
    client_pool,
    connect,
    connect_many,
    fd_list,
    option,
    started,
    wait_gone,
)

PROGRAM = ROOT / "tests" / "integration" / "programs" / "multi_server.py"
CONNECT_RETRIES = 5


# -- the server process ---------------------------------------------------------------------


def running(tmp_path: Path, *args: str) -> contextlib.AbstractAsyncContextManager[ServerProcess]:
    """Start the program with ``args``; yield once every process has started."""
    workers = int(option(args, "--workers", "2"))
    tasks = int(option(args, "--task-workers", "0"))
    return started(PROGRAM, tmp_path, *args, processes=workers + tasks)


# -- clients --------------------------------------------------------------------------------


async def connect_spread(
    server: ServerProcess, pool: list[Client], n: int, workers: int
) -> list[Client]:
    """``n`` clients, then more until every worker has one.

    In SWOOLE_BASE mode every worker accepts on the same socket and the kernel wakes all of
    them: the first to run takes every pending connection, so an idle machine may give all
    of them to one worker. The workers that already have clients are held busy (``hold``)
    while 10 more connect, so those can only land on the others."""
    clients = await connect_many(server, pool, n)
    for _ in range(workers):
        if len(by_worker(clients)) == workers:
            break
        clients.extend(await connect_held(server, pool, by_worker(clients), 10))
    assert len(by_worker(clients)) == workers, (
        f"{len(clients)} clients landed on workers {sorted(by_worker(clients))} only"
    )
    return clients


async def connect_held(
    server: ServerProcess, pool: list[Client], held: dict[int, list[Client]], n: int
) -> list[Client]:
    """Connect ``n`` clients while the workers in ``held`` block their loops (each through
    one of its clients), so that only the other workers can accept them."""
    release = server.tmp_path / f"release-{uuid.uuid4().hex[:8]}"
    mark = server.mark()
    try:
        for its_clients in held.values():
            await its_clients[0].send(f"hold:{release}")
        for worker in held:
            await server.expect(rf"held {worker}", EVENT_TIMEOUT, mark)
        return await connect_many(server, pool, n)
    finally:
        release.touch()


async def connect_to(
    server: ServerProcess, pool: list[Client], worker: int, pid: int, batches: int = 5
) -> Client:
    """Connect clients 10 at a time, the other workers held busy (see :func:`connect_spread`),
    until one is served by ``worker`` with ``pid``; the others are closed (and gone from the
    server)."""
    seen = Counter[tuple[int, int]]()
    for _ in range(batches):
        alive = [c for c in pool if not c.closed.is_set() and c.pid]
        held = {w: cs for w, cs in by_worker(alive).items() if w != worker}
        batch = await connect_held(server, pool, held, 10)
        found = next((c for c in batch if (c.worker, c.pid) == (worker, pid)), None)
        rest = [c for c in batch if c is not found]
        mark = server.mark()
        await asyncio.gather(*(c.close() for c in rest))
        for c in rest:
            pool.remove(c)
            seen[c.worker, c.pid] += 1
            await server.expect(rf"close {c.fd} {c.worker}", EVENT_TIMEOUT, mark)
        if found is not None:
            return found
    raise AssertionError(
        f"no new client was served by worker {worker} (pid {pid}) in {batches * 10} "
        f"connections: {dict(seen)}"
    )


def by_worker(clients: list[Client]) -> dict[int, list[Client]]:
    groups: dict[int, list[Client]] = {}
    for client in clients:
        groups.setdefault(client.worker, []).append(client)
    return groups


# -- 1. broadcast, connections, exist, push across workers ------------------------------------


async def test_broadcast_count_exist_and_push_across_four_workers(tmp_path: Path) -> None:
    """200 clients on 4 workers: each broadcast reaches every client exactly once, every
    worker sees all 200 connections, closed fds are gone for every worker."""
    async with running(tmp_path, "--workers", "4") as server, client_pool() as pool:
        clients = await connect_many(server, pool, 200)
        assert len({c.fd for c in clients}) == 200, "fds are not unique across workers"
        groups = by_worker(clients)
        sizes = {w: len(members) for w, members in sorted(groups.items())}
        assert set(groups) <= {0, 1, 2, 3}
        assert len(groups) >= 2, f"all 200 clients were accepted by one worker: {sizes}"
        pids = server.pids()
        assert all(pids[c.worker] == c.pid for c in clients)

        # One sender per worker; each broadcasts a token, then an end marker. Per sender the
        # order is kept, so once a client has every end marker, every token (and any
        # duplicate of one) has arrived.
        senders = {w: members[0] for w, members in sorted(groups.items())}
        tokens = {w: f"token-{w}-{os.getpid()}" for w in senders}
        ends = {w: f"end-{w}" for w in senders}
        for w, sender in senders.items():
            await sender.send(f"broadcast:{tokens[w]}")
            await sender.send(f"broadcast:{ends[w]}")
        for w, sender in senders.items():
            for _ in range(2):
                answer = await sender.reply()
                assert answer == {"re": "broadcast", "n": 200}, f"worker {w}: {answer}"

        async def collect(client: Client) -> list[str]:
            got: list[str] = []
            try:
                while not set(ends.values()) <= set(got):
                    got.append(await client.message())
            except (asyncio.TimeoutError, Disconnected) as exc:
                got.append(f"<stopped: {exc!r}>")
            return got

        received = await asyncio.gather(*(collect(c) for c in clients))
        expected = Counter([*tokens.values(), *ends.values()])
        wrong = {
            c.fd: (c.worker, dict(Counter(got) - expected), dict(expected - Counter(got)))
            for c, got in zip(clients, received, strict=True)
            if Counter(got) != expected
        }
        assert not wrong, (
            f"fd: (worker, extra/duplicates, missing) for {len(wrong)} clients: "
            f"{dict(itertools.islice(wrong.items(), 10))}"
        )

        # connections and exist(), asked of every worker
        every_fd = fd_list(clients)
        for w, sender in senders.items():
            answer = await sender.request(f"count:{every_fd}")
            assert answer["n"] == 200, f"worker {w}: len(server.connections) = {answer['n']}"
            missing = [fd for fd, ok in answer["exist"].items() if not ok]
            assert not missing, f"worker {w}: exist() is False for open fds {missing}"

        # pipe messages between workers: the receiver pushes back to the sender's client
        for w, sender in senders.items():
            for other in range(4):
                if other == w:
                    continue
                answer = await sender.request(f"pipe:{other}:from-{w}-to-{other}")
                assert answer == {"re": "pipe", "x": f"from-{w}-to-{other}", "by": other, "src": w}

        # a push to a live client of another worker arrives
        for w, sender in senders.items():
            target = next(c for c in clients if c.worker != w and c not in senders.values())
            answer = await sender.request(f"push:{target.fd}:hello-from-{w}")
            assert answer["ok"] == {str(target.fd): True}, f"worker {w}: {answer}"
            assert await target.message() == f"hello-from-{w}"

        # close 10 clients (spread over the workers); every worker must see them gone
        others = [[c for c in members if c not in senders.values()] for members in groups.values()]
        spread = [c for row in itertools.zip_longest(*others) for c in row if c is not None]
        gone = spread[:10]
        mark = server.mark()
        await asyncio.gather(*(c.close() for c in gone))
        assert [c.close_code for c in gone] == [1000] * 10
        for c in gone:  # on("close") runs once the fd has left the shared table
            await server.expect(rf"close {c.fd} {c.worker}", EVENT_TIMEOUT, mark)
        gone_fds = fd_list(gone)
        for w, sender in senders.items():
            answer = await sender.request(f"push:{gone_fds}:ghost")
            assert answer["ok"] == {str(c.fd): False for c in gone}, (
                f"worker {w}: push() to closed fds returned {answer['ok']}"
            )
            answer = await sender.request(f"count:{gone_fds}")
            assert answer["n"] == 190, f"worker {w}: len(server.connections) = {answer['n']}"
            assert not any(answer["exist"].values()), f"worker {w}: exist() {answer['exist']}"


# -- 2. tasks --------------------------------------------------------------------------------


async def test_tasks_and_task_worker_replacement(tmp_path: Path) -> None:
    """task/finish callback, on('finish'), taskwait (handler and timer), task_wait_multi,
    task_async; data round-trips pickled; a killed task worker is replaced and serves."""
    async with (
        running(tmp_path, "--workers", "2", "--task-workers", "2") as server,
        client_pool() as pool,
    ):
        client = await connect(server, pool)
        task_ids = {2, 3}

        def check(answer: dict[str, Any], n: int) -> None:
            assert answer.get("n") == n and answer.get("square") == n * n, answer
            assert answer["roundtrip"] is True, f"task data did not round-trip: {answer}"
            assert answer["worker"] in task_ids, answer

        mark = server.mark()
        check(await client.request("task:3"), 3)  # finish_callback
        check(await client.request("task_finish:4"), 4)  # on("finish")
        check(await client.request("taskwait:5"), 5)
        check(await client.request("taskwait_timer:6"), 6)  # from server.after()
        answer = await client.request("multi:7,8,9")
        assert set(answer["results"]) == {"0", "1", "2"}, answer
        for index, n in enumerate((7, 8, 9)):
            check(answer["results"][str(index)], n)
        check(await client.request("task_async:10"), 10)
        for task_id in range(1, 9):  # on("task") ran 8 times, with this worker as the source
            await server.expect(rf"task {task_id} {client.worker} [23] \d+", EVENT_TIMEOUT, mark)

        # a task worker can push to a client of a worker (pipe message -> push over IPC)
        answer = await client.request("pipe:2:to-the-task-worker")
        assert answer == {"re": "pipe", "x": "to-the-task-worker", "by": 2, "src": client.worker}

        # SIGKILL task worker 0 (process id 2): replaced, and tasks keep running on it
        old_pid = server.pids()[2]
        mark = server.mark()
        os.kill(old_pid, signal.SIGKILL)
        await server.expect(rf"workerError 2 {old_pid} 0 9", EVENT_TIMEOUT, mark)
        new_pid = int((await server.expect(r"workerStart 2 (\d+) task", EVENT_TIMEOUT, mark))[1])
        assert new_pid != old_pid
        answer = await client.request("taskwait:11:0")  # dst_worker_id 0: that task worker
        check(answer, 11)
        assert (answer["worker"], answer["pid"]) == (2, new_pid)
        check(await client.request("task:12"), 12)
        check(await client.request("task_async:13"), 13)
        answer = await client.request("multi:14,15,16,17")
        assert sorted(answer["results"]) == ["0", "1", "2", "3"], answer
        assert {r["pid"] for r in answer["results"].values()} <= {new_pid, server.pids()[3]}


# -- 3. SIGKILL a worker under load ------------------------------------------------------------


async def exchange(
    client: Client, stop: asyncio.Event, progress: Progress, limit: int = 20_000
) -> tuple[str, int]:
    """Echo numbered messages one after another until ``stop`` (or ``limit``); each echo
    must be the message just sent. Returns (outcome, echoes received)."""
    n = 0
    try:
        while not stop.is_set() and n < limit:
            text = f"e:{client.fd}:{n}"
            await client.send(text)
            got = await client.message()
            if got != text:
                return (f"expected {text!r}, got {got!r}", n)
            n += 1
            progress.advance(client)
    except Disconnected:
        return ("closed", n)
    except asyncio.TimeoutError:
        return ("timeout", n)
    return ("ok", n)


async def test_sigkill_worker_under_load(tmp_path: Path) -> None:
    """A worker killed with SIGKILL while 40 clients exchange messages: its clients are
    disconnected, the others lose nothing, workerError fires, the worker comes back."""
    async with running(tmp_path, "--workers", "3") as server, client_pool() as pool:
        clients = await connect_spread(server, pool, 40, workers=3)
        groups = by_worker(clients)
        victim = 0
        victims = groups[victim]
        others = [c for c in clients if c.worker != victim]
        victim_pid = victims[0].pid

        progress = Progress()
        stop = asyncio.Event()
        runs = {c: asyncio.create_task(exchange(c, stop, progress)) for c in clients}
        try:
            await progress.wait(
                lambda: all(progress.count[c] >= 10 for c in clients), 20, "10 echoes each"
            )
            mark = server.mark()
            os.kill(victim_pid, signal.SIGKILL)
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(runs[c] for c in victims)), EVENT_TIMEOUT
            )
            assert all(outcome == "closed" for outcome, _ in outcomes), outcomes
            await server.expect(rf"workerError {victim} {victim_pid} 0 9", EVENT_TIMEOUT, mark)
            match = await server.expect(rf"workerStart {victim} (\d+) worker", EVENT_TIMEOUT, mark)
            new_pid = int(match[1])
            assert new_pid != victim_pid
            base = {c: progress.count[c] for c in others}
            await progress.wait(
                lambda: all(progress.count[c] >= base[c] + 20 for c in others),
                20,
                "20 more echoes for every surviving client",
            )
        finally:
            stop.set()
            results = await asyncio.wait_for(asyncio.gather(*runs.values()), EVENT_TIMEOUT)
        survivors = {c.fd: r for c, r in zip(runs, results, strict=True) if c.worker != victim}
        assert all(outcome == "ok" for outcome, _ in survivors.values()), survivors

        # the replacement accepts and serves new clients
        newcomer = await connect_to(server, pool, victim, new_pid)
        await newcomer.echo("after the respawn")

        # the dead worker's connections are gone from every other worker's view
        connected = [c for c in pool if not c.closed.is_set()]
        dead = fd_list(victims)
        problems = []
        answer = await others[0].request(f"count:{dead}")
        stale = [fd for fd, ok in answer["exist"].items() if ok]
        if stale:
            problems.append(f"exist() is True for {len(stale)} of the killed worker's fds")
        if answer["n"] != len(connected):
            problems.append(
                f"len(server.connections) = {answer['n']} with {len(connected)} clients connected"
            )
        answer = await others[0].request(f"push:{dead}:ghost")
        pushed = [fd for fd, ok in answer["ok"].items() if ok]
        if pushed:
            problems.append(f"push() returned True for {len(pushed)} of the killed worker's fds")
        assert not problems, "; ".join(problems)


# -- 4. a stuck worker --------------------------------------------------------------------------


async def test_stuck_worker_is_killed_and_replaced(tmp_path: Path) -> None:
    """A worker spinning in a callback misses its heartbeats: after worker_timeout (2 s) the
    manager kills and replaces it; its clients are disconnected, the others are served.
    A worker that crashes (exit code 1) is replaced as well."""
    async with (
        running(tmp_path, "--workers", "2", "--worker-timeout", "2") as server,
        client_pool() as pool,
    ):
        clients = await connect_spread(server, pool, 8, workers=2)
        stuck = clients[0].worker
        stuck_clients = by_worker(clients)[stuck]
        others = [c for c in clients if c.worker != stuck]
        stuck_pid = stuck_clients[0].pid

        mark = server.mark()
        started = time.monotonic()
        await stuck_clients[0].send("spin")
        for i in range(20):  # served while the other worker spins
            await others[i % len(others)].echo(f"during {i}")
        await server.expect(rf"workerError {stuck} {stuck_pid} 0 9", 10, mark)
        match = await server.expect(rf"workerStart {stuck} (\d+) worker", 10, mark)
        elapsed = time.monotonic() - started
        assert int(match[1]) != stuck_pid
        assert elapsed < 2 + 4, f"the stuck worker was replaced after {elapsed:.1f} s"
        for c in stuck_clients:
            await c.wait_closed(EVENT_TIMEOUT)
        for i, c in enumerate(others):
            await c.echo(f"after {i}")
        replacement = int(match[1])
        newcomer = await connect_to(server, pool, stuck, replacement)
        await newcomer.echo("served by the replacement")

        # a crash (os._exit(1)) is a workerError with its exit code, and is replaced too
        mark = server.mark()
        await newcomer.send("exit")
        await server.expect(rf"workerError {stuck} {replacement} 1 0", EVENT_TIMEOUT, mark)
        await server.expect(rf"workerStart {stuck} \d+ worker", EVENT_TIMEOUT, mark)
        assert await newcomer.wait_closed() == 1006


# -- 5. reload --------------------------------------------------------------------------------


async def reload_while_connecting(
    server: ServerProcess,
    pool: list[Client],
    trigger: Callable[[], Awaitable[None]],
    process_ids: list[int],
    old: dict[int, int],
) -> dict[int, int]:
    """Run ``trigger`` while new clients keep connecting; wait for every process in
    ``process_ids`` to start again; returns their new pids."""
    mark = server.mark()
    done = asyncio.Event()
    tries: list[int] = []
    failures: list[str] = []

    async def connector() -> None:
        while not done.is_set():
            errors: list[str] = []
            for attempt in range(CONNECT_RETRIES):
                try:
                    client = await connect(server, pool)
                    await client.echo("during the reload")
                except (OSError, WebSocketException, Disconnected, asyncio.TimeoutError) as exc:
                    errors.append(repr(exc))
                    continue
                await client.close()
                pool.remove(client)
                tries.append(attempt + 1)
                break
            else:
                failures.append(f"no connection in {CONNECT_RETRIES} tries: {errors}")

    task = asyncio.create_task(connector())
    try:
        await trigger()
        new: dict[int, int] = {}
        for process_id in process_ids:
            match = await server.expect(rf"workerStart {process_id} (\d+) \w+", 15, mark)
            new[process_id] = int(match[1])
    finally:
        done.set()
        await asyncio.wait_for(task, 30)
    assert not failures, failures
    assert tries, "no client connected during the reload"
    stops = [int(m[1]) for m in server.matching(r"workerStop (\d+) \d+", mark)]
    assert stops == process_ids, f"workers stopped in the order {stops}, not one by one"
    assert all(new[i] != old[i] for i in process_ids), (old, new)
    still = await wait_gone([old[i] for i in process_ids])
    assert not still, f"old pids still alive after the reload: {still}"
    return new


async def test_reload_replaces_workers_one_by_one(tmp_path: Path) -> None:
    """SIGUSR1 and server.reload() replace every process one at a time while new clients
    keep being served; SIGUSR2 replaces only the task worker."""
    async with (
        running(tmp_path, "--workers", "2", "--task-workers", "1") as server,
        client_pool() as pool,
    ):
        all_ids = [0, 1, 2]
        first = server.pids()

        async def sigusr1() -> None:
            os.kill(server.proc.pid, signal.SIGUSR1)

        second = await reload_while_connecting(server, pool, sigusr1, all_ids, first)

        caller = await connect(server, pool)

        async def reload_call() -> None:
            answer = await caller.request("reload")
            assert answer["ok"] is True

        third = await reload_while_connecting(server, pool, reload_call, all_ids, second)

        async def sigusr2() -> None:
            os.kill(server.proc.pid, signal.SIGUSR2)

        # Swoole's beforeReload/afterReload, in the manager, around each whole reload: every
        # old process stopped in between (their replacements start on their own time)
        marks = server.matching(r"(beforeReload|afterReload|workerStop \d+ \d+)")
        lifecycle = [m[0].split()[0] for m in marks]
        assert lifecycle == ["beforeReload", *["workerStop"] * 3, "afterReload"] * 2, lifecycle

        mark = server.mark()
        fourth = await reload_while_connecting(server, pool, sigusr2, [2], third)
        restarted = {int(m[1]) for m in server.matching(r"workerStart (\d+) \d+ \w+", mark)}
        assert restarted == {2}, f"SIGUSR2 restarted processes {restarted}"
        client = await connect(server, pool)
        assert client.pid == third[client.worker], "a worker was replaced by SIGUSR2"
        answer = await client.request("taskwait:1")
        assert answer["pid"] == fourth[2]


# -- 6. max_request ---------------------------------------------------------------------------


async def test_max_request_recycles_the_worker(tmp_path: Path) -> None:
    """With max_request=50, a worker that handled 200 messages is replaced (no
    workerError), and clients that reconnect are served."""
    async with (
        running(tmp_path, "--workers", "2", "--max-request", "50") as server,
        client_pool() as pool,
    ):
        first = await connect(server, pool)
        worker, old_pid = first.worker, first.pid
        # forked with the manager's heap frozen (process/manager.py freeze_for_fork), so
        # that the worker's collector leaves it shared (copy-on-write)
        assert (await first.request("whoami"))["frozen"] > 0
        mark = server.mark()
        client, sent, reconnects = first, 0, 0
        while sent < 200:
            try:
                await client.echo(f"message {sent}")
                sent += 1
            except Disconnected:
                reconnects += 1
                assert reconnects <= 10, "reconnected 10 times"
                client = await connect(server, pool)
        match = await server.expect(rf"workerStart {worker} (\d+) worker", 5, mark)
        new_pid = int(match[1])
        assert new_pid != old_pid
        await server.expect(rf"workerStop {worker} {old_pid}", EVENT_TIMEOUT, mark)
        assert await first.wait_closed() == 1001, "a recycled worker closes with 1001"
        assert not server.matching(r"workerError .*", mark), "recycling is not an error"
        newcomer = await connect_to(server, pool, worker, new_pid)
        await newcomer.echo("served after the recycle")
        # the replacement, like the first fork, inherits the manager's heap frozen
        assert (await newcomer.request("whoami"))["frozen"] > 0


# -- 7. SIGTERM -------------------------------------------------------------------------------


async def test_sigterm_stops_everything(tmp_path: Path) -> None:
    """SIGTERM to the manager: clients get 1001, every process exits, exit code 0;
    pid_file exists only while running; log_file receives the log."""
    pid_file = tmp_path / "server.pid"
    log_file = tmp_path / "server.log"
    args = ("--workers", "2", "--task-workers", "1")
    files = ("--pid-file", str(pid_file), "--log-file", str(log_file), "--log-level", "0")
    async with running(tmp_path, *args, *files) as server, client_pool() as pool:
        clients = await connect_spread(server, pool, 6, workers=2)
        assert pid_file.read_text().strip() == str(server.proc.pid)
        pids = list(server.pids().values())
        assert len(pids) == 3

        # something for the log: an exception in a callback (logged before the next message)
        await clients[0].send("raise")
        await clients[0].identify()

        mark = server.mark()
        os.kill(server.proc.pid, signal.SIGTERM)
        codes = await asyncio.gather(*(c.wait_closed(EVENT_TIMEOUT) for c in clients))
        assert codes == [1001] * len(clients)
        code = await asyncio.to_thread(server.proc.wait, STOP_TIMEOUT)
        assert code == 0, f"manager exit code {code}; stderr: {server.stderr()[-2000:]}"
        still = await wait_gone([server.proc.pid, *pids])
        assert not still, f"processes still alive after the manager exited: {still}"
        await server.expect("shutdown", EVENT_TIMEOUT, mark)
        events = [m[0] for m in server.matching(".*", mark)]
        for process_id, pid in server.pids().items():
            assert f"workerStop {process_id} {pid}" in events, events
        assert events[-2:] == ["managerStop", "shutdown"], events
        assert events[0] == "beforeShutdown", events
        assert not pid_file.exists(), "pid_file left behind"
        log = log_file.read_text()
        assert "boom from the message handler" in log, log
