"""``examples/chat``, the chat app, run as a real process and used by real clients.

The server is ``python examples/chat/app.py --port 0 --workers 4`` (SWOOLE_PROCESS, 4
workers, 1 task worker keeping the history), one for the module; each test uses rooms of
its own. Two kinds of clients:

* ``websockets`` clients speaking the JSON protocol: joins, presence lists, messages,
  typing, the history (the last 50 messages, in order), and an error message (never a
  traceback) for every bad input.
* headless Chromium (the driver of ``test_browser.py``) on the page the same server serves:
  two pages in a room chat, a third page in another room sees none of it, a reload keeps the
  nickname, a screenshot is a real picture. Each page has a browser context of its own (its
  own ``localStorage``), as three people's browsers.

"Sees nothing" is checked with a barrier: the client sends ``ping`` and everything it got
before the ``pong`` must be what the test expects, once the room's members received
everything the test did there. No sleeps: every wait is for a message, an output line or a
DOM condition, bounded in time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.sync.client import connect as sync_connect

from tests.integration.browser import Browser, BrowserError, launch
from tests.integration.conftest import ROOT, read_line, stop

APP = ROOT / "examples" / "chat" / "app.py"
TIMEOUT = 10.0
START_TIMEOUT = 20.0
JS_TIMEOUT = 15.0
_LISTENING = re.compile(r"^chat server listening on http://127\.0\.0\.1:(\d+)/ ")
_pings = itertools.count(1)


@dataclass
class ChatProcess:
    proc: subprocess.Popen[str]
    port: int
    stderr_path: Path
    first_line: str

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@contextlib.contextmanager
def chat_process(*command: str) -> Iterator[ChatProcess]:
    """Run ``command`` (the chat app, some way) from the repository's root; yield once it
    prints its "listening on" line; then stop it (SIGTERM): it must exit with code 0 and
    its stderr hold no traceback."""
    with tempfile.TemporaryDirectory(prefix="pyswoole-chat-") as tmp:
        stderr_path = Path(tmp) / "stderr.txt"
        with stderr_path.open("w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, *command],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=ROOT,
                start_new_session=True,
            )
        try:
            assert proc.stdout is not None
            port = 0
            for _ in range(20):  # the first line normally; tolerate a few before it
                line = read_line(proc.stdout, START_TIMEOUT)
                assert line, f"exited with {proc.poll()}: {stderr_path.read_text()[-2000:]}"
                match = _LISTENING.match(line)
                if match:
                    port = int(match[1])
                    break
            assert port, f"no 'listening on' line; stderr: {stderr_path.read_text()[-2000:]}"
            yield ChatProcess(proc, port, stderr_path, line)
        finally:
            code = stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()
        errors = stderr_path.read_text(errors="replace")
        assert code == 0, f"exit code {code}; stderr: {errors[-2000:]}"
        assert "Traceback" not in errors, errors[-4000:]


@pytest.fixture(scope="module")
def chat() -> Iterator[ChatProcess]:
    """``python examples/chat/app.py --port 0 --workers 4``, one for the module."""
    with chat_process(str(APP), "--port", "0", "--workers", "4") as server:
        assert "workers: 4, task workers: 1)" in server.first_line, server.first_line
        yield server


# -- the JSON protocol over the wire ----------------------------------------------------------


class Client:
    """A ``websockets`` client of the chat: messages by type, the others kept in order."""

    def __init__(self, ws: Any, hello: dict[str, Any]) -> None:
        self.ws = ws
        self.id: int = hello["id"]
        self.hello = hello
        self.backlog: list[dict[str, Any]] = []

    async def send(self, **msg: Any) -> None:
        await self.ws.send(json.dumps(msg))

    async def _recv(self, deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"nothing within {TIMEOUT} s; kept: {self.backlog}")
        try:
            data = await asyncio.wait_for(self.ws.recv(), remaining)
        except asyncio.TimeoutError:
            raise AssertionError(f"nothing within {TIMEOUT} s; kept: {self.backlog}") from None
        assert isinstance(data, str), f"a binary message: {data!r}"
        msg: dict[str, Any] = json.loads(data)
        return msg

    async def next(self, kind: str) -> dict[str, Any]:
        """The next message of type ``kind`` (earlier ones of other types stay kept)."""
        for i, msg in enumerate(self.backlog):
            if msg["type"] == kind:
                return self.backlog.pop(i)
        deadline = time.monotonic() + TIMEOUT
        while True:
            msg = await self._recv(deadline)
            if msg["type"] == kind:
                return msg
            self.backlog.append(msg)

    async def rest(self) -> list[dict[str, Any]]:
        """Everything not yet taken, up to the answer to a ping sent now (a barrier)."""
        ident = next(_pings)
        await self.send(type="ping", id=ident)
        got, self.backlog = self.backlog, []
        deadline = time.monotonic() + TIMEOUT
        while True:
            msg = await self._recv(deadline)
            if msg == {"type": "pong", "id": ident}:
                return got
            got.append(msg)

    async def error(self) -> dict[str, Any]:
        return await self.next("error")

    async def join(self, room: str, nick: str) -> dict[str, Any]:
        """Join; returns the history message (the joined one is checked here)."""
        await self.send(type="join", room=room, nick=nick)
        joined = await self.next("joined")
        assert joined == {"type": "joined", "room": room, "nick": nick, "id": self.id}
        history = await self.next("history")
        assert history["room"] == room
        return history

    async def presence(self) -> list[str]:
        msg = await self.next("presence")
        return [m["nick"] for m in msg["members"]]


@contextlib.asynccontextmanager
async def client(chat: ChatProcess) -> AsyncIterator[Client]:
    async with websockets.connect(
        chat.ws, open_timeout=TIMEOUT, close_timeout=TIMEOUT, ping_interval=None
    ) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert hello["type"] == "hello" and isinstance(hello["id"], int), hello
        assert hello["limits"] == {"nick": 32, "room": 32, "text": 2000, "history": 50}
        yield Client(ws, hello)


def test_the_page_is_served_on_the_websocket_port(chat: ChatProcess) -> None:
    def get(path: str) -> tuple[int, str, bytes]:
        try:
            with urllib.request.urlopen(chat.http + path, timeout=TIMEOUT) as answer:
                return answer.status, answer.headers["Content-Type"], answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read()

    status, kind, body = get("")
    assert (status, kind) == (200, "text/html"), (status, kind)
    assert b'<script src="chat.js"></script>' in body
    assert get("chat.js")[:2] in ((200, "text/javascript"), (200, "application/javascript"))
    assert get("chat.css")[:2] == (200, "text/css")
    assert get("nothing-here")[:2] == (404, "text/plain; charset=utf-8")


async def test_the_module_level_server_object_runs_under_the_cli() -> None:
    """``python -m pyswoole examples.chat.app:server`` (the issue's way to run it with
    ``--reload``) serves the same app; ``--workers`` reaches it."""
    args = ("-m", "pyswoole", "examples.chat.app:server", "--port", "0", "--workers", "2")
    with chat_process(*args) as server:
        assert "workers: 2, task workers: 1)" in server.first_line, server.first_line
        async with client(server) as ann, client(server) as bob:
            await ann.join("cli-room", "ann")
            await bob.join("cli-room", "bob")
            await bob.send(type="say", text="over the CLI")
            said = await ann.next("message")
            assert (said["nick"], said["text"]) == ("bob", "over the CLI")
            assert await bob.next("message") == said


async def test_join_presence_rename_and_leave(chat: ChatProcess) -> None:
    async with client(chat) as ann, client(chat) as cat:
        assert (await ann.join("p-room", "ann"))["messages"] == []
        assert await ann.presence() == ["ann"]
        async with client(chat) as bob:
            await bob.join("p-room", "bob")
            assert await bob.presence() == ["ann", "bob"]
            assert await ann.presence() == ["ann", "bob"]
            await cat.join("p-other", "cat")
            assert await cat.presence() == ["cat"]
            assert await ann.rest() == []  # nothing about the other room
            assert await bob.rest() == []
            # the ids are the connections' (the presence list names them)
            presence = await ann_presence_after(ann, bob, "p-room", "bobby")
            assert presence == [{"id": ann.id, "nick": "ann"}, {"id": bob.id, "nick": "bobby"}]
        # bob's connection closed: ann sees him go
        assert await ann.presence() == ["ann"]
        # joining another room leaves the first
        await ann.join("p-other", "ann")
        assert await ann.presence() == ["ann", "cat"]
        assert await cat.presence() == ["ann", "cat"]
        await ann.send(type="leave")
        assert await ann.next("left") == {"type": "left", "room": "p-other"}
        assert await cat.presence() == ["cat"]
        assert await ann.rest() == []
        assert await cat.rest() == []


async def ann_presence_after(ann: Client, bob: Client, room: str, nick: str) -> Any:
    """bob joins ``room`` again as ``nick`` (a rename): both get the new list."""
    await bob.join(room, nick)
    mine = await bob.next("presence")
    theirs = await ann.next("presence")
    assert mine == theirs
    return theirs["members"]


async def test_messages_reach_the_room_only(chat: ChatProcess) -> None:
    async with client(chat) as ann, client(chat) as bob, client(chat) as cat:
        await ann.join("m-room", "ann")
        await bob.join("m-room", "bob")
        await cat.join("m-other", "cat")
        await ann.send(type="say", text="hello, bob")
        got = [await ann.next("message"), await bob.next("message")]
        assert got[0] == got[1]
        first = got[0]
        assert {k: first[k] for k in ("room", "id", "nick", "text")} == {
            "room": "m-room",
            "id": ann.id,
            "nick": "ann",
            "text": "hello, bob",
        }
        assert isinstance(first["seq"], int) and abs(first["ts"] / 1000 - time.time()) < 60
        await bob.send(type="say", text="hi ann: ünïcödé ✓ 🎉")
        second = await ann.next("message")
        assert second == await bob.next("message")
        assert second["text"] == "hi ann: ünïcödé ✓ 🎉" and second["nick"] == "bob"
        assert second["seq"] > first["seq"]
        # a message of the largest size is fine (characters, not bytes)
        await ann.send(type="say", text="é" * 2000)
        assert (await bob.next("message"))["text"] == "é" * 2000
        assert (await ann.next("message"))["text"] == "é" * 2000
        # what is left: the presence lists of the joins (cat's: its own only)
        for who, lists in ((ann, 2), (bob, 1), (cat, 1)):
            assert [m["type"] for m in await who.rest()] == ["presence"] * lists


async def test_typing_reaches_the_others_in_the_room_only(chat: ChatProcess) -> None:
    async with client(chat) as ann, client(chat) as bob, client(chat) as cat:
        await ann.join("t-room", "ann")
        await bob.join("t-room", "bob")
        await cat.join("t-other", "cat")
        for who in (ann, bob, cat):
            await who.rest()  # the presence lists
        await ann.send(type="typing", typing=True)
        assert await bob.next("typing") == {
            "type": "typing",
            "room": "t-room",
            "id": ann.id,
            "nick": "ann",
            "typing": True,
        }
        await ann.send(type="typing", typing=False)
        assert (await bob.next("typing"))["typing"] is False
        assert await ann.rest() == []  # not sent back to the typist
        assert await cat.rest() == []  # nor to another room
        assert await bob.rest() == []


async def test_history_is_the_last_50_messages_in_order(chat: ChatProcess) -> None:
    async with client(chat) as ann:
        await ann.join("h-room", "ann")
        texts = [f"message {i:02}" for i in range(60)]
        for text in texts:
            await ann.send(type="say", text=text)
        said = [await ann.next("message") for _ in texts]
        assert [m["text"] for m in said] == texts  # broadcast in the order said
        seqs = [m["seq"] for m in said]
        assert seqs == sorted(seqs) and len(set(seqs)) == 60
        async with client(chat) as bob, client(chat) as cat:
            history = await bob.join("h-room", "bob")
            assert history["messages"] == said[-50:]
            assert [m["text"] for m in history["messages"]] == texts[10:]
            assert (await cat.join("h-other", "cat"))["messages"] == []
            # a joiner after one more message gets the window moved by one
            await bob.send(type="say", text="one more")
            more = await bob.next("message")
            assert await ann.next("message") == more
            async with client(chat) as dan:
                history = await dan.join("h-room", "dan")
                assert history["messages"] == [*said[-49:], more]


BAD_INPUTS: list[tuple[str | bytes, str]] = [
    ("not json", "bad_json"),
    ("{" * 20000, "bad_json"),
    ("[" * 20000 + "]" * 20000, "bad_json"),  # nested too deep for the parser
    ('{"type": "join", "room": "x", "nick": "y"', "bad_json"),
    ("[1, 2]", "bad_message"),
    ('"join"', "bad_message"),
    ("null", "bad_message"),
    ('{"type": "fly"}', "unknown_type"),
    ('{"type": 7}', "unknown_type"),
    ('{"kind": "join"}', "unknown_type"),
    ('{"type": "join", "room": "r", "nick": "' + "n" * 33 + '"}', "nick_too_long"),
    ('{"type": "join", "room": "r", "nick": "   "}', "bad_nick"),
    ('{"type": "join", "room": "r", "nick": "a\\u0000b"}', "bad_nick"),
    ('{"type": "join", "room": "r", "nick": 5}', "bad_nick"),
    ('{"type": "join", "room": "r"}', "bad_nick"),
    ('{"type": "join", "room": "two words", "nick": "ann"}', "bad_room"),
    ('{"type": "join", "room": "' + "r" * 33 + '", "nick": "ann"}', "bad_room"),
    ('{"type": "join", "nick": "ann"}', "bad_room"),
    ('{"type": "say", "text": "before joining"}', "not_joined"),
    ('{"type": "typing", "typing": true}', "not_joined"),
    ('{"type": "leave"}', "not_joined"),
    ('{"type": "typing", "typing": "yes"}', "bad_typing"),
    ('{"type": "ping", "id": [1]}', "bad_ping"),
    (b"\x00\x01binary", "binary"),
]


async def test_bad_input_gets_an_error_message(chat: ChatProcess) -> None:
    async with client(chat) as ann:
        for data, code in BAD_INPUTS:
            await ann.ws.send(data)
            error = await ann.error()
            assert error["code"] == code, (data[:60], error)
            assert isinstance(error["message"], str) and error["message"]
        await ann.join("e-room", "ann")
        for text, code in [("x" * 2001, "text_too_long"), ("  \n ", "bad_text"), (12, "bad_text")]:
            await ann.send(type="say", text=text)
            assert (await ann.error())["code"] == code
        await ann.send(type="join", room="e-room", nick="n" * 33)
        assert (await ann.error())["code"] == "nick_too_long"
        # still connected and still in the room under its name
        await ann.send(type="say", text="still here")
        message = await ann.next("message")
        assert (message["nick"], message["text"]) == ("ann", "still here")
        assert [m["type"] for m in await ann.rest()] == ["presence"]
    # a frame over the limit (64 KiB) closes with 1009, as any pyswoole server: no traceback
    async with client(chat) as big:
        await big.send(type="say", text="x" * 70000)
        with pytest.raises(websockets.ConnectionClosed):
            await big.next("error")
    assert big.ws.close_code == 1009
    assert "Traceback" not in chat.stderr()


# -- headless Chromium on the page -----------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Callable[[], Browser]]:
    """The module's Chromium, started on first use, in the test body: a missing browser
    FAILS the test (as in test_browser.py)."""
    state: dict[str, Any] = {}

    def get() -> Browser:
        if "error" in state:
            pytest.fail(state["error"], pytrace=False)
        if "browser" not in state:
            try:
                state["browser"] = launch()
            except BrowserError as exc:
                state["error"] = str(exc)
                pytest.fail(state["error"], pytrace=False)
        browser: Browser = state["browser"]
        return browser

    yield get
    if "browser" in state:
        state["browser"].close()


class Session(Browser):
    """One more CDP connection to the module's Chromium (the browser itself or one page),
    with ``Browser``'s commands; ``close()`` closes the connection only."""

    def __init__(self, browser: Browser, url: str) -> None:
        super().__init__(browser.proc, browser.tmp, browser.log_path)
        self.ws = self._stack.enter_context(
            sync_connect(url, open_timeout=TIMEOUT, max_size=None, compression=None)
        )

    def close(self) -> None:
        self._stack.close()

    def reload(self, timeout: float = TIMEOUT) -> None:
        self._events.clear()
        self.command("Page.reload", {"ignoreCache": True}, timeout)
        self.wait_event("Page.loadEventFired", timeout)

    def wait_for(self, condition: str, what: str, timeout: float = JS_TIMEOUT) -> Any:
        """The value of the JavaScript expression ``condition`` once truthy, polled in the
        page every 25 ms for at most ``timeout`` seconds."""
        expression = f"""new Promise((resolve, reject) => {{
          const deadline = Date.now() + {int(timeout * 1000)};
          const check = () => {{
            let value;
            try {{ value = ({condition}); }} catch (e) {{ value = undefined; }}
            if (value) resolve(value);
            else if (Date.now() > deadline) reject(new Error({json.dumps("timed out: " + what)}));
            else setTimeout(check, 25);
          }};
          check();
        }})"""
        return self.evaluate(expression, timeout + 5)


@contextlib.contextmanager
def pages(browser: Browser, count: int) -> Iterator[list[Session]]:
    """``count`` new pages, each in a browser context of its own (own localStorage)."""
    lines = (browser.tmp / "profile" / "DevToolsActivePort").read_text().splitlines()
    port = int(lines[0])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=TIMEOUT) as a:
        browser_url = json.load(a)["webSocketDebuggerUrl"]
    root = Session(browser, browser_url)
    made: list[Session] = []
    contexts: list[str] = []
    try:
        for _ in range(count):
            context = root.command("Target.createBrowserContext")["browserContextId"]
            contexts.append(context)
            target = root.command(
                "Target.createTarget", {"url": "about:blank", "browserContextId": context}
            )["targetId"]
            made.append(Session(browser, f"ws://127.0.0.1:{port}/devtools/page/{target}"))
        yield made
    finally:
        for page in made:
            page.close()
        for context in contexts:
            with contextlib.suppress(Exception):
                root.command("Target.disposeBrowserContext", {"browserContextId": context})
        root.close()


MEMBERS = "[...document.querySelectorAll('#members li')].map(li => li.textContent)"
MESSAGES = (
    "[...document.querySelectorAll('#messages li')]"
    ".map(li => li.querySelector('.nick').textContent + ': ' +"
    " li.querySelector('.text').textContent)"
)


def same(expression: str, value: Any) -> str:
    """A JavaScript condition: ``expression`` is JSON-equal to ``value``."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return f"JSON.stringify({expression}) === {json.dumps(text)}"


def join(page: Session, nick: str, room: str) -> None:
    page.evaluate(
        f"""(() => {{
          document.getElementById('nick').value = {json.dumps(nick)};
          document.getElementById('room').value = {json.dumps(room)};
          document.getElementById('join-form').requestSubmit();
          return true;
        }})()"""
    )
    joined(page, nick, room)


def joined(page: Session, nick: str, room: str) -> None:
    page.wait_for(
        f"document.body.dataset.state === 'joined' && document.body.dataset.room === "
        f"{json.dumps(room)} && document.getElementById('nick').value === {json.dumps(nick)}",
        f"{nick} in {room}",
    )


def type_text(page: Session, text: str) -> None:
    """Type into the message box (an input event, as a keystroke makes)."""
    page.evaluate(
        f"""(() => {{
          const box = document.getElementById('text');
          box.value = {json.dumps(text)};
          box.dispatchEvent(new Event('input', {{bubbles: true}}));
          return true;
        }})()"""
    )


def say(page: Session, text: str) -> None:
    type_text(page, text)
    page.evaluate("document.getElementById('say-form').requestSubmit(), true")


def test_two_pages_chat_a_third_in_another_room_sees_nothing(
    chat: ChatProcess, chromium: Callable[[], Browser], tmp_path: Path
) -> None:
    with pages(chromium(), 3) as (ann, bob, cat):
        for page in (ann, bob, cat):
            page.navigate(chat.http, TIMEOUT)
            page.wait_for("document.body.dataset.state === 'online'", "connected")
        join(ann, "ann", "team")
        join(bob, "bob", "team")
        join(cat, "cat", "elsewhere")
        ann.wait_for(same(MEMBERS, ["ann (you)", "bob"]), "ann sees bob")
        bob.wait_for(same(MEMBERS, ["ann", "bob (you)"]), "bob sees ann")

        say(ann, "hello from ann")
        bob.wait_for(same(MESSAGES, ["ann: hello from ann"]), "bob gets ann's message")
        type_text(bob, "typing a reply")
        ann.wait_for(
            "document.getElementById('typing').textContent === 'bob is typing\u2026'", "typing"
        )
        say(bob, "hi ann")
        ann.wait_for(same(MESSAGES, ["ann: hello from ann", "bob: hi ann"]), "ann gets bob's reply")
        ann.wait_for("document.getElementById('typing').textContent === ''", "typing is over")

        # cat, in another room: its own message comes back, nothing of the team's is there
        say(cat, "anyone?")
        cat.wait_for(same(MESSAGES, ["cat: anyone?"]), "cat's own message")
        assert cat.evaluate(MEMBERS) == ["cat (you)"]
        assert cat.evaluate("document.getElementById('typing').textContent") == ""
        say(ann, "after cat spoke")
        expected = ["ann: hello from ann", "bob: hi ann", "ann: after cat spoke"]
        bob.wait_for(same(MESSAGES, expected), "the room's messages, in order")
        ann.wait_for(same(MESSAGES, expected), "the room's messages, in order")
        assert cat.evaluate(MESSAGES) == ["cat: anyone?"]

        # a reload keeps the nickname (localStorage) and the room; the history comes back
        assert ann.evaluate("localStorage.getItem('pyswoole-chat.nick')") == "ann"
        ann.reload()
        joined(ann, "ann", "team")
        ann.wait_for(same(MESSAGES, expected), "the history after a reload")
        ann.wait_for(same(MEMBERS, ["ann (you)", "bob"]), "presence after a reload")
        bob.wait_for(same(MEMBERS, ["ann", "bob (you)"]), "ann back, once")
        assert ann.evaluate("document.getElementById('nick').value") == "ann"

        shot = base64.b64decode(ann.command("Page.captureScreenshot", {"format": "png"})["data"])
        (tmp_path / "chat.png").write_bytes(shot)
        width, height, colours = png_colours(shot)
        assert width > 0 and height > 0
        assert colours > 1, "the screenshot is one flat colour"


def png_colours(data: bytes, enough: int = 16) -> tuple[int, int, int]:
    """(width, height, distinct colours up to ``enough``) of an 8-bit RGB(A) PNG, decoded
    here (RFC 2083: chunks with CRCs, zlib data, the five row filters)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    pos, idat, header = 8, [], b""
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0) and colour_type in (2, 6), header
    bpp = 3 if colour_type == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    assert len(raw) == height * (stride + 1)
    prev = bytearray(stride)
    colours: set[bytes] = set()
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        else:
            assert kind == 0, f"unknown filter {kind}"
        if len(colours) < enough:
            colours.update(bytes(line[i : i + bpp]) for i in range(0, stride, bpp * 7))
        prev = line
    return width, height, len(colours)
