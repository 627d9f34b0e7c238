"""SWOOLE_PROCESS mode end to end: the master owns every socket, workers run callbacks.

Every test runs ``tests/integration/programs/process_mode_server.py`` as a subprocess in a
new session (it forks; the pytest process never does) and talks to it over real WebSocket
and HTTP connections. The program's stdout is a stream of event lines (``READY``,
``workerStart``, ``open``, ``close`` ...) read by a thread; tests wait for lines, never
sleep. Teardown: SIGTERM to the master, a bounded wait, then SIGKILL to the process group
this test created.

The message callback delegates ``r:<x>`` to ``logic.reply``, imported in ``workerStart``
from a directory the test writes, so a reload visibly swaps the code while every client
keeps its connection (and its fd) in the master.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.conftest import ROOT
from tests.integration.serverproc import (
    EVENT_TIMEOUT,
    REPLY_TIMEOUT,
    STOP_TIMEOUT,
    Client,
    Disconnected,
    Progress,
    ServerProcess,
    client_pool,
    connect,
    connect_many,
    fd_list,
    wait_gone,
)

PROGRAM = ROOT / "tests" / "integration" / "programs" / "process_mode_server.py"
WORKERS = 4

LOGIC = """\
import json
import os

VERSION = {version}


def reply(server, frame):
    return json.dumps(
        {{
            "re": "r",
            "v": VERSION,
            "code": "{code}",
            "fd": frame.fd,
            "x": frame.data[2:],
            "pid": os.getpid(),
            "worker": server.worker_id,
        }}
    )
"""


def write_logic(directory: Path, version: int) -> None:
    """(Re)write ``logic.py`` atomically: a worker importing it sees one version whole."""
    directory.mkdir(exist_ok=True)
    tmp = directory / "logic.py.tmp"
    tmp.write_text(LOGIC.format(version=version, code=f"logic-v{version}" + "!" * version))
    os.replace(tmp, directory / "logic.py")


# -- the server process ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, *args: str, workers: int = WORKERS, task_workers: int = 0
) -> AsyncIterator[ServerProcess]:
    """Start the program (logic v1 in ``tmp_path/logic``); yield once every process runs."""
    logic_dir = tmp_path / "logic"
    if not (logic_dir / "logic.py").exists():
        write_logic(logic_dir, 1)
    server = ServerProcess(
        PROGRAM,
        tmp_path,
        "--workers",
        str(workers),
        "--task-workers",
        str(task_workers),
        "--logic-dir",
        str(logic_dir),
        *args,
    )
    try:
        await asyncio.to_thread(server.wait_ready, workers + task_workers, True)
        yield server
    finally:
        await asyncio.to_thread(server.stop)


# -- clients --------------------------------------------------------------------------------


def one_per_worker(clients: list[Client]) -> dict[int, Client]:
    found: dict[int, Client] = {}
    for client in clients:
        found.setdefault(client.worker, client)
    assert sorted(found) == list(range(WORKERS)), f"workers seen: {sorted(found)}"
    return found


def check_routing(clients: list[Client]) -> None:
    """Every event of fd goes to worker fd % worker_num."""
    wrong = [(c.fd, c.worker) for c in clients if c.worker != c.fd % WORKERS]
    assert not wrong, f"(fd, worker) not routed to fd % {WORKERS}: {wrong}"


# -- 1. the acceptance test: reload under load keeps every connection --------------------------


@dataclass
class Chat:
    """One client's numbered ``r:`` exchanges: what it sent, and what came back."""

    client: Client
    sent: int = 0
    #: (reply, sent after the reload had completed)
    replies: list[tuple[dict[str, Any], bool]] = field(default_factory=list)
    outcome: str = "running"


async def chatter(
    chat: Chat, stop: asyncio.Event, reloaded: asyncio.Event, progress: Progress, command: str
) -> None:
    """Send ``<command>:<fd>:<n>`` and await its reply, one after another, until ``stop`` (bounded).
    The reply must be to exactly the message just sent."""
    client = chat.client
    try:
        while not stop.is_set() and chat.sent < 2_000:
            x = f"{client.fd}:{chat.sent}"
            after = reloaded.is_set()
            await client.send(f"{command}:{x}")
            chat.sent += 1
            answer = await client.reply()
            if answer.get("re") != "r" or answer.get("x") != x:
                chat.outcome = f"sent {command}:{x}, got {answer}"
                return
            chat.replies.append((answer, after))
            progress.advance()
        chat.outcome = "ok"
    except asyncio.TimeoutError:
        chat.outcome = f"no reply to message {chat.sent - 1} within {REPLY_TIMEOUT} s"
    except Disconnected as exc:
        chat.outcome = f"disconnected: {exc}"
    finally:
        progress.advance()


async def reload_under_load(
    tmp_path: Path,
    trigger: Callable[[ServerProcess, Client], Awaitable[None]],
    command: str = "r",
    n: int = 100,
) -> None:
    async with running(tmp_path) as server, client_pool() as pool:
        clients = await connect_many(server, pool, n)
        control = await connect(server, pool)
        # an HTTP keep-alive connection open across the reload
        http_conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REPLY_TIMEOUT)
        before = await asyncio.to_thread(_keep_alive_get, http_conn, "/info?when=before")
        assert len({c.fd for c in clients}) == n
        check_routing(clients)
        one_per_worker(clients)
        old = server.pids()
        assert sorted(old) == list(range(WORKERS))
        fds_before = {id(c): c.fd for c in clients}

        stop, reloaded, progress = asyncio.Event(), asyncio.Event(), Progress()
        chats = [Chat(c) for c in clients]
        tasks = [
            asyncio.create_task(chatter(chat, stop, reloaded, progress, command)) for chat in chats
        ]
        try:

            def each_has(n: int, after: bool) -> bool:
                if any(chat.outcome != "running" for chat in chats):
                    return True  # failed: reported below
                return all(sum(1 for _, a in chat.replies if a or not after) >= n for chat in chats)

            await progress.wait(lambda: each_has(3, False), 20, "3 replies per client")
            served_before = sum(len(chat.replies) for chat in chats)

            write_logic(tmp_path / "logic", 2)
            mark = server.mark()
            await trigger(server, control)
            new: dict[int, int] = {}
            for process_id in range(WORKERS):
                match = await server.expect(rf"workerStart {process_id} (\d+) worker", 20, mark)
                new[process_id] = int(match[1])
            reloaded.set()
            served_during = sum(len(chat.replies) for chat in chats) - served_before
            await progress.wait(lambda: each_has(3, True), 20, "3 replies per client after")
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), REPLY_TIMEOUT + 5)

        failed = {chat.client.fd: chat.outcome for chat in chats if chat.outcome != "ok"}
        assert not failed, f"{len(failed)} clients failed: {dict(list(failed.items())[:10])}"
        assert all(new[i] != old[i] for i in range(WORKERS)), f"pids {old} -> {new}"
        assert served_during > 0, "no message was answered while the workers were replaced"

        # every reply: this client's fd, and the code of the process that answered it
        problems: list[str] = []
        for chat in chats:
            c = chat.client
            for answer, after in chat.replies:
                pid, version, worker = answer["pid"], answer["v"], answer["worker"]
                if answer["fd"] != c.fd or worker != c.fd % WORKERS:
                    problems.append(f"fd {c.fd}: reply for fd {answer['fd']} from {worker}")
                elif pid == new[worker]:
                    if (version, answer["code"]) != (2, "logic-v2!!"):
                        problems.append(f"fd {c.fd}: new pid {pid} answered with v{version}")
                elif pid == old[worker]:
                    if after or (version, answer["code"]) != (1, "logic-v1!"):
                        problems.append(f"fd {c.fd}: old pid {pid} v{version} after={after}")
                else:
                    problems.append(f"fd {c.fd}: reply from unknown pid {pid} ({answer})")
        assert not problems, f"{len(problems)} bad replies: {problems[:10]}"

        # no connection dropped, none changed its fd; no stray (duplicate) reply is queued
        closed = [c.fd for c in [*clients, control] if c.closed.is_set()]
        assert not closed, f"connections closed during the reload: {closed}"
        for c in clients:
            assert c.replies.empty(), f"fd {c.fd}: unexpected extra replies"
        whos = await asyncio.gather(*(c.request("whoami") for c in clients))
        moved = [
            (fds_before[id(c)], who)
            for c, who in zip(clients, whos, strict=True)
            if who["fd"] != fds_before[id(c)] or who["pid"] != new[c.fd % WORKERS]
        ]
        assert not moved, f"fd or worker changed: {moved[:10]}"
        answer = await control.request(f"count:{fd_list(clients)}")
        assert answer["n"] == n + 2, answer["n"]  # + control + the HTTP connection
        try:
            after = await asyncio.to_thread(_keep_alive_get, http_conn, "/info?when=after")
        finally:
            http_conn.close()
        assert after["fd"] == before["fd"], f"the HTTP connection changed: {before} -> {after}"
        assert after["pid"] == new[after["fd"] % WORKERS], (after, new)
        assert all(answer["exist"].values())

        stopped = {int(m[2]) for m in server.matching(r"workerStop (\d+) (\d+)", mark)}
        assert stopped == set(old.values()), f"workerStop lines for {stopped}, old {old}"
        still = await wait_gone(list(old.values()))
        assert not still, f"old workers still alive after the reload: {still}"


async def test_reload_call_under_load_keeps_connections_and_loads_new_code(
    tmp_path: Path,
) -> None:
    """The issue's acceptance test: 100 clients keep exchanging messages while logic.py is
    rewritten and a client's message calls server.reload(): no connection drops, no message
    is lost or duplicated, fds stay, 4 new workers run the new code."""

    async def reload_call(server: ServerProcess, control: Client) -> None:
        answer = await control.request("reload")
        assert answer["ok"] is True

    await reload_under_load(tmp_path, reload_call)


async def test_sigusr1_under_load_keeps_connections_and_loads_new_code(tmp_path: Path) -> None:
    """The same with SIGUSR1 sent to the master."""

    async def sigusr1(server: ServerProcess, control: Client) -> None:
        os.kill(server.proc.pid, signal.SIGUSR1)

    await reload_under_load(tmp_path, sigusr1)


async def test_reload_lets_async_callbacks_in_flight_finish(tmp_path: Path) -> None:
    """The same with an ``async def`` message callback that awaits 50 ms before replying:
    a worker being replaced finishes the callbacks it started (no reply is lost)."""

    async def reload_call(server: ServerProcess, control: Client) -> None:
        answer = await control.request("reload")
        assert answer["ok"] is True

    await reload_under_load(tmp_path, reload_call, command="a", n=40)


# -- 2. HTTP ------------------------------------------------------------------------------------


def _multipart(
    boundary: str, fields: dict[str, str], name: str, filename: str, data: bytes
) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"'
        f"\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)


def _keep_alive_get(conn: http.client.HTTPConnection, path: str) -> dict[str, Any]:
    """GET on an open keep-alive connection; its JSON body. Fails if the socket was
    closed (http.client would silently reconnect)."""
    sock_before = conn.sock
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, (response.status, body)
    assert sock_before is None or conn.sock is sock_before, "http.client had to reconnect"
    assert response.getheader("Connection") == "keep-alive"
    return dict(json.loads(body))


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[Any, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REPLY_TIMEOUT)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def _post(port: int, path: str, body: bytes, content_type: str) -> tuple[Any, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REPLY_TIMEOUT)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


async def test_http_in_process_mode(tmp_path: Path) -> None:
    """GET with query and cookies, POST urlencoded and multipart (the worker reads the
    uploaded file; it is deleted afterwards), keep-alive, chunked write(), sendfile(), a
    handler that raises, status(404) — all answered by worker fd % worker_num."""
    payload = os.urandom(256 * 1024)
    big = tmp_path / "big.bin"
    big.write_bytes(payload)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    args = ("--file", str(big), "--upload-dir", str(uploads))
    async with running(tmp_path, *args) as server:
        port = server.port

        def check_worker(body: dict[str, Any]) -> None:
            assert body["worker"] == body["fd"] % WORKERS, body

        # GET with a query string and cookies
        response, raw = await asyncio.to_thread(
            _get, port, "/info?a=1&list[]=x&list[]=y&q=hello%20world", {"Cookie": "k=v; s=2"}
        )
        assert response.status == 200
        body = json.loads(raw)
        assert body["get"] == {"a": "1", "list": ["x", "y"], "q": "hello world"}, body
        assert body["cookie"] == {"k": "v", "s": "2"}, body
        assert body["method"] == "GET"
        check_worker(body)

        # POST urlencoded
        response, raw = await asyncio.to_thread(
            _post,
            port,
            "/form",
            b"name=ada&langs[]=py&langs[]=c",
            "application/x-www-form-urlencoded",
        )
        assert response.status == 200
        body = json.loads(raw)
        assert body["post"] == {"name": "ada", "langs": ["py", "c"]}, body
        assert body["files"] == {}
        check_worker(body)

        # POST multipart with a file: the worker reads the file the master wrote
        content = bytes(range(256)) * 40
        boundary = "----pyswoole" + uuid.uuid4().hex
        data = _multipart(boundary, {"title": "report"}, "doc", "a.bin", content)
        mark = server.mark()
        response, raw = await asyncio.to_thread(
            _post, port, "/form", data, f"multipart/form-data; boundary={boundary}"
        )
        assert response.status == 200, raw
        body = json.loads(raw)
        check_worker(body)
        assert body["post"] == {"title": "report"}, body
        doc = body["files"]["doc"]
        assert (doc["name"], doc["size"], doc["error"]) == ("a.bin", len(content), 0), doc
        assert doc["content"].encode("latin-1") == content, "the worker read other bytes"
        assert Path(doc["tmp_name"]).parent == uploads, doc["tmp_name"]
        # printed (deferred) in the worker once the handler returned and cleanup ran
        line = await server.expect(rf"upload {re.escape(doc['tmp_name'])} (\w+)", start=mark)
        assert line[1] == "False", "the uploaded file still existed after the handler"
        assert list(uploads.iterdir()) == [], "uploaded files left behind"

        # keep-alive: 3 requests on one connection, one fd, one connect event
        def keep_alive() -> list[tuple[int, str, dict[str, Any]]]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REPLY_TIMEOUT)
            got = []
            try:
                for i in range(3):
                    conn.request("GET", f"/info?i={i}")
                    response = conn.getresponse()
                    got.append(
                        (
                            response.status,
                            response.getheader("Connection"),
                            json.loads(response.read()),
                        )
                    )
            finally:
                conn.close()
            return got

        mark = server.mark()
        answers = await asyncio.to_thread(keep_alive)
        assert [status for status, _, _ in answers] == [200] * 3
        assert [b["get"] for _, _, b in answers] == [{"i": "0"}, {"i": "1"}, {"i": "2"}]
        fds = {b["fd"] for _, _, b in answers}
        assert len(fds) == 1, f"keep-alive requests came on fds {fds}"
        fd = fds.pop()
        await server.expect(rf"disconnect {fd} {fd % WORKERS}", start=mark)
        connects = server.matching(r"connect (\d+) \d+", mark)
        assert [int(m[1]) for m in connects] == [fd], "keep-alive opened several connections"

        # chunked write()
        response, raw = await asyncio.to_thread(_get, port, "/chunked")
        assert response.status == 200
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert raw == b"one-two-three"

        # sendfile() of 256 KiB
        response, raw = await asyncio.to_thread(_get, port, "/file")
        assert response.status == 200
        assert int(response.getheader("Content-Length")) == len(payload)
        assert raw == payload, f"sendfile: {len(raw)} bytes, equal={raw == payload}"

        # a handler that raises: 500
        response, raw = await asyncio.to_thread(_get, port, "/raise")
        assert response.status == 500, (response.status, raw)

        # status(404)
        response, raw = await asyncio.to_thread(_get, port, "/nowhere")
        assert (response.status, raw) == (404, b"no such page")

        # every request ran in worker fd % worker_num
        requests = server.matching(r"request (\d+) (\d+) \w+ \S+")
        assert len(requests) == 10, [m[0] for m in requests]
        assert all(int(m[2]) == int(m[1]) % WORKERS for m in requests), [m[0] for m in requests]


# -- 3. events ----------------------------------------------------------------------------------


async def test_events_run_in_worker_fd_mod_worker_num(tmp_path: Path) -> None:
    """connect, open (request.fd, headers), message, close in worker fd % worker_num; a
    connection that never upgrades gets disconnect (not close)."""
    async with running(tmp_path) as server, client_pool() as pool:
        mark = server.mark()
        clients: list[Client] = []
        for i in range(8):
            client = await Client.connect(server.port, f"/chat?room={i}", **{"X-Probe": f"p{i}"})
            pool.append(client)
            clients.append(await client.identify())
        check_routing(clients)  # message ran in fd % 4
        one_per_worker(clients)
        for i, c in enumerate(clients):
            w = c.fd % WORKERS
            await server.expect(rf"connect {c.fd} {w}", start=mark)
            await server.expect(rf"open {c.fd} {w} {c.fd} /chat p{i}", start=mark)

        mark = server.mark()
        await asyncio.gather(*(c.close() for c in clients))
        assert [c.close_code for c in clients] == [1000] * 8
        for c in clients:
            await server.expect(rf"close {c.fd} {c.fd % WORKERS}", start=mark)

        # an HTTP connection that never upgrades: connect, request, then disconnect
        mark = server.mark()
        _, raw = await asyncio.to_thread(_get, server.port, "/info")
        fd = json.loads(raw)["fd"]
        await server.expect(rf"disconnect {fd} {fd % WORKERS}", start=mark)
        assert server.matching(rf"connect {fd} {fd % WORKERS}", mark)

        # a TCP connection that sends nothing, then closes
        mark = server.mark()
        sock = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", server.port), 5)
        match = await server.expect(r"connect (\d+) (\d+)", start=mark)
        fd = int(match[1])
        assert int(match[2]) == fd % WORKERS
        sock.close()
        await server.expect(rf"disconnect {fd} {fd % WORKERS}", start=mark)

        # the two plain connections got no close/open; the websockets no disconnect
        all_lines = [m[0] for m in server.matching(r"(open|close|disconnect) .*")]
        ws_fds = {c.fd for c in clients}
        for line in all_lines:
            kind, line_fd = line.split()[0], int(line.split()[1])
            if kind == "disconnect":
                assert line_fd not in ws_fds, f"a WebSocket got {line!r}"
            else:
                assert line_fd in ws_fds, f"a plain HTTP connection got {line!r}"


# -- 4. the connection API from workers -------------------------------------------------------


async def test_connection_api_from_workers(tmp_path: Path) -> None:
    """push to another worker's fd, broadcast, disconnect with a code, exist/connections/
    get_client_info agreeing in every worker, push to a closed fd."""
    async with running(tmp_path) as server, client_pool() as pool:
        clients = await connect_many(server, pool, 12)
        check_routing(clients)
        senders = one_per_worker(clients)

        # push to a client handled by another worker
        for w, sender in senders.items():
            target = senders[(w + 1) % WORKERS]
            answer = await sender.request(f"push:{target.fd}:hello-from-{w}")
            assert answer["ok"] == {str(target.fd): True}, answer
            assert answer["worker"] == w
            assert await target.message() == f"hello-from-{w}"

        # big messages (several 64 KiB IPC chunks each way): an echo, a push across workers
        big = "".join(chr(0x41 + i % 26) for i in range(300_000)) + "\u00e9\u4e2d"
        await senders[1].send(f"e:{big}")
        assert await senders[1].message() == f"e:{big}", "a 300 kB echo came back changed"
        answer = await senders[1].request(f"push:{senders[2].fd}:{big}")
        assert answer["ok"] == {str(senders[2].fd): True}, answer
        assert await senders[2].message() == big, "a 300 kB push came back changed"

        # broadcast reaches everyone once
        answer = await senders[0].request("broadcast:to-all")
        assert answer["n"] == len(clients), answer
        got = await asyncio.gather(*(c.message() for c in clients))
        assert got == ["to-all"] * len(clients)

        # every worker sees the same connections and client info
        infos = {}
        for w, sender in senders.items():
            answer = await sender.request(f"count:{fd_list(clients)}")
            assert answer["worker"] == w
            assert answer["n"] == len(clients), f"worker {w}: len(connections) {answer['n']}"
            assert all(answer["exist"].values()), f"worker {w}: {answer['exist']}"
            infos[w] = answer["info"]
        for c in clients:
            info = infos[0][str(c.fd)]
            assert info is not None, f"worker 0: get_client_info({c.fd}) is None"
            assert info["remote_ip"] == "127.0.0.1", info
            assert info["remote_port"] == c.local_port, (info, c.local_port)
            assert info["server_port"] == server.port, info
            for w in range(1, WORKERS):
                other = infos[w][str(c.fd)]
                assert other is not None, f"worker {w}: get_client_info({c.fd}) is None"
                same = {k: v for k, v in other.items() if k != "last_time"}
                assert same == {k: v for k, v in info.items() if k != "last_time"}, (
                    f"get_client_info({c.fd}): worker 0 {info} vs worker {w} {other}"
                )

        # push to a plain HTTP (keep-alive, never upgraded) connection: False
        http_conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REPLY_TIMEOUT)
        mark = server.mark()
        try:
            http_fd = (await asyncio.to_thread(_keep_alive_get, http_conn, "/info"))["fd"]
            for w, s in senders.items():
                answer = await s.request(f"push:{http_fd}:not-a-websocket")
                assert answer["ok"] == {str(http_fd): False}, f"worker {w}: {answer}"
                answer = await s.request(f"count:{http_fd}")
                assert answer["exist"] == {str(http_fd): True}, f"worker {w}: {answer}"
            again = await asyncio.to_thread(_keep_alive_get, http_conn, "/info")
            assert again["fd"] == http_fd
        finally:
            http_conn.close()
        await server.expect(rf"disconnect {http_fd} {http_fd % WORKERS}", start=mark)

        # disconnect(fd, 4001, "x") from another worker
        victim = next(c for c in clients if c not in senders.values())
        sender = senders[(victim.worker + 1) % WORKERS]
        mark = server.mark()
        answer = await sender.request(f"disconnect:{victim.fd}:4001:x")
        assert answer["ok"] is True, answer
        assert await victim.wait_closed() == 4001
        assert victim.ws.close_reason == "x"
        await server.expect(rf"close {victim.fd} {victim.fd % WORKERS}", start=mark)

        # push to the closed fd: False in every worker; gone from exist/connections
        for w, s in senders.items():
            answer = await s.request(f"push:{victim.fd}:ghost")
            assert answer["ok"] == {str(victim.fd): False}, f"worker {w}: {answer}"
            answer = await s.request(f"count:{victim.fd}")
            assert answer["n"] == len(clients) - 1, f"worker {w}: {answer}"
            assert answer["exist"] == {str(victim.fd): False}, f"worker {w}: {answer}"
            assert answer["info"] == {str(victim.fd): None}, f"worker {w}: {answer}"
        assert victim.messages.get_nowait() is None  # nothing but the close arrived


# -- 5. tasks -----------------------------------------------------------------------------------


async def test_tasks_in_process_mode(tmp_path: Path) -> None:
    """task() with a finish callback and taskwait() from workers of a SWOOLE_PROCESS server."""
    async with running(tmp_path, task_workers=2) as server, client_pool() as pool:
        clients = await connect_many(server, pool, 8)
        senders = one_per_worker(clients)
        task_ids = {WORKERS, WORKERS + 1}
        for w, c in senders.items():
            answer = await c.request(f"task:{w + 3}")
            assert answer["worker"] == w, answer  # the finish callback ran in the caller
            result = answer["result"]
            assert result["square"] == (w + 3) ** 2 and result["by"] in task_ids, answer
            answer = await c.request(f"taskwait:{w + 10}")
            assert answer["worker"] == w, answer
            result = answer["result"]
            assert result["square"] == (w + 10) ** 2 and result["by"] in task_ids, answer
        assert len(server.matching(r"task \d+ [0-3] [45] \d+")) == 2 * WORKERS


# -- 6. a killed worker -------------------------------------------------------------------------


async def test_killed_worker_is_replaced_and_connections_stay(tmp_path: Path) -> None:
    """SIGKILL a worker: the master keeps its clients' connections; the replacement serves
    every message sent after its workerStart."""
    async with running(tmp_path) as server, client_pool() as pool:
        clients = await connect_many(server, pool, 12)
        senders = one_per_worker(clients)
        victim_worker = 2
        victims = [c for c in clients if c.worker == victim_worker]
        others = [c for c in clients if c.worker != victim_worker]
        old_pid = server.pids()[victim_worker]

        mark = server.mark()
        os.kill(old_pid, signal.SIGKILL)
        # while it is dead (or already replaced): messages may be lost, never duplicated
        await victims[0].send("e:while-dead")
        await server.expect(rf"workerError {victim_worker} {old_pid} 0 9", start=mark)
        match = await server.expect(rf"workerStart {victim_worker} (\d+) worker", start=mark)
        new_pid = int(match[1])
        assert new_pid != old_pid
        assert not await wait_gone([old_pid])

        closed = [c.fd for c in clients if c.closed.is_set()]
        assert not closed, f"connections closed when a worker died: {closed}"
        for c in victims:
            answer = await c.request("whoami")
            assert (answer["fd"], answer["worker"], answer["pid"]) == (c.fd, c.worker, new_pid)
            answer = await c.request(f"r:{c.fd}:after")
            assert (answer["x"], answer["pid"], answer["v"]) == (f"{c.fd}:after", new_pid, 1)
        for c in others:
            answer = await c.request("whoami")
            assert (answer["fd"], answer["pid"]) == (c.fd, c.pid), answer
        # the replacement sees every connection; a push through it arrives
        answer = await victims[0].request(f"count:{fd_list(clients)}")
        assert answer["n"] == len(clients) and all(answer["exist"].values()), answer
        target = senders[0]
        answer = await victims[0].request(f"push:{target.fd}:from-the-replacement")
        assert answer["ok"] == {str(target.fd): True}
        assert await target.message() == "from-the-replacement"
        # at most one echo of the message sent while the worker was dead
        echoes = []
        while not victims[0].messages.empty():
            echoes.append(victims[0].messages.get_nowait())
        assert echoes in ([], ["e:while-dead"]), echoes


# -- 7. SIGTERM ---------------------------------------------------------------------------------


async def test_sigterm_to_the_master_stops_everything(tmp_path: Path) -> None:
    """SIGTERM to the master: clients get 1001, master, manager and workers exit, code 0."""
    async with running(tmp_path, task_workers=1) as server, client_pool() as pool:
        clients = await connect_many(server, pool, 8)
        pids = [server.proc.pid, server.manager_pid, *server.pids().values()]
        assert len(set(pids)) == 2 + WORKERS + 1
        mark = server.mark()
        os.kill(server.proc.pid, signal.SIGTERM)
        codes = await asyncio.gather(*(c.wait_closed(EVENT_TIMEOUT) for c in clients))
        assert codes == [1001] * len(clients)
        code = await asyncio.to_thread(server.proc.wait, STOP_TIMEOUT)
        assert code == 0, f"master exit code {code}; stderr: {server.stderr()[-2000:]}"
        still = await wait_gone(pids)
        assert not still, f"processes still alive after the master exited: {still}"
        await server.expect("shutdown", start=mark)
        events = [m[0] for m in server.matching(".*", mark)]
        for process_id, pid in server.pids().items():
            assert f"workerStop {process_id} {pid}" in events, events
