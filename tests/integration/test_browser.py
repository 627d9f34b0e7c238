"""Interoperability with a real browser: headless Chromium's WebSocket client.

Each test starts a real ``WebSocketServer`` (the ``serve`` fixture) that also answers
``GET /`` with an HTML page holding the JavaScript helpers below. The browser navigates to
that page, so the WebSocket is opened by a page whose origin is the server itself, as in a
real deployment (Chromium then sends ``Origin: http://127.0.0.1:PORT``, which the server
records). The tests evaluate the helpers through the DevTools protocol and check both ends:
what the browser received and what the server received.

Chromium is Debian's ``chromium`` package, installed by ``scripts/setup``; it is required,
so without it these tests fail (they do not skip). One browser serves the whole module.
"""

from __future__ import annotations

import json
import queue
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pyswoole import (
    SWOOLE_WEBSOCKET_FLAG_COMPRESS,
    WEBSOCKET_OPCODE_BINARY,
    WEBSOCKET_OPCODE_TEXT,
    Frame,
    WebSocketServer,
)
from tests.integration.browser import Browser, BrowserError, launch

JS_TIMEOUT = 15.0
TIMEOUT = 5.0
SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20]
TIMER_TEXT = "from-timer"
TIMER_BINARY = bytes(range(256)) * 3

# The page's helpers. Text messages are ASCII (so characters == bytes), binary ones are
# pseudo-random (incompressible); both sides' bytes are compared and CRC-32'd in the page.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>pyswoole browser test</title></head>
<body><script>
"use strict";
const enc = new TextEncoder();
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(bytes) {
  let c = 0xFFFFFFFF;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xFF] ^ (c >>> 8);
  return (c ^ 0xFFFFFFFF) >>> 0;
}
function makeText(n) {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = i % 61 === 60 ? 10 : 32 + ((i * 7 + (i >> 6)) % 95);
  return new TextDecoder().decode(b);
}
function makeBytes(n, seed) {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xFF;
  }
  return b;
}
function same(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
function bytesOf(data) {
  return typeof data === "string" ? enc.encode(data) : new Uint8Array(data);
}
function typeOf(data) {
  return typeof data === "string" ? "string" : Object.prototype.toString.call(data);
}
// Opens a WebSocket; resolves once open. ws.next() is the next message (rejects on close),
// ws.closed resolves with the close event's {code, reason, wasClean}.
function openSocket(url, protocols) {
  return new Promise((resolve, reject) => {
    const ws = protocols === undefined ? new WebSocket(url) : new WebSocket(url, protocols);
    ws.binaryType = "arraybuffer";
    const inbox = [], waiting = [];
    ws.closed = new Promise(done => ws.addEventListener("close", e => {
      const info = {code: e.code, reason: e.reason, wasClean: e.wasClean};
      for (const w of waiting.splice(0)) w.reject(new Error("closed: " + JSON.stringify(info)));
      reject(new Error("closed before open: " + JSON.stringify(info)));
      done(info);
    }));
    ws.addEventListener("message", e => {
      const w = waiting.shift();
      if (w) w.resolve(e.data); else inbox.push(e.data);
    });
    ws.next = () => inbox.length ? Promise.resolve(inbox.shift())
      : new Promise((resolve, reject) => waiting.push({resolve, reject}));
    ws.addEventListener("open", () => resolve(ws));
  });
}
async function closeSocket(ws) {
  ws.close(1000, "done");
  return await ws.closed;
}
async function echoAll(url, sizes, protocols) {
  const ws = await openSocket(url, protocols);
  const results = [];
  for (const kind of ["text", "binary"]) {
    for (const size of sizes) {
      let data, sent;
      if (kind === "text") { data = makeText(size); sent = enc.encode(data); }
      else { sent = makeBytes(size, size + 1); data = sent.buffer; }
      const reply = ws.next();
      ws.send(data);
      const got = await reply;
      const bytes = bytesOf(got);
      results.push({kind, size, sentLength: sent.length, length: bytes.length,
                    type: typeOf(got), sentCrc: crc32(sent), crc: crc32(bytes),
                    equal: same(sent, bytes)});
    }
  }
  const info = {extensions: ws.extensions, protocol: ws.protocol, results};
  info.close = await closeSocket(ws);
  return info;
}
async function closedByServer(url) {
  const ws = await openSocket(url);
  ws.send("close-me");
  return await ws.closed;
}
async function timerPush(url) {
  const ws = await openSocket(url);
  ws.send("later");
  const got = [];
  for (let i = 0; i < 2; i++) {
    const data = await ws.next();
    got.push({type: typeOf(data), length: bytesOf(data).length, crc: crc32(bytesOf(data)),
              text: typeof data === "string" ? data : null});
  }
  return {got, close: await closeSocket(ws)};
}
window.helpersReady = true;
</script></body></html>
"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Callable[[], Browser]]:
    """``chromium()`` is the module's browser, started on first use. Starting it happens in
    the test body, so a missing browser FAILS the tests (it is required, not optional)."""
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


class Events:
    """A thread-safe log the server's callbacks write and the test reads."""

    def __init__(self) -> None:
        self.q: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.backlog: list[tuple[str, Any]] = []

    def put(self, name: str, value: Any) -> None:
        self.q.put((name, value))

    def get(self, name: str, timeout: float = TIMEOUT) -> Any:
        """The next event called ``name``; others stay, in order, for later calls."""
        for i, (got, value) in enumerate(self.backlog):
            if got == name:
                del self.backlog[i]
                return value
        try:
            while True:
                got, value = self.q.get(timeout=timeout)
                if got == name:
                    return value
                self.backlog.append((got, value))
        except queue.Empty:
            raise AssertionError(f"no {name!r} event within {timeout} s") from None


def browser_server(events: Events, **settings: Any) -> WebSocketServer:
    """Serves the page at ``/``; echoes messages, except the commands ``close-me`` (the
    server disconnects with 4000 "bye") and ``later`` (pushes from a timer)."""
    server = WebSocketServer("127.0.0.1", 0)
    if settings:
        server.set(settings)

    @server.on("request")
    def on_request(request, response) -> None:
        if request.server["request_uri"] == "/":
            response.header("Content-Type", "text/html; charset=utf-8")
            response.end(PAGE)
        else:
            response.status(404)
            response.end("not found")

    @server.on("open")
    def on_open(server, request) -> None:
        events.put("open", (request.fd, request.header.get("origin")))

    @server.on("message")
    def on_message(server, frame: Frame) -> None:
        data = frame.data.encode() if isinstance(frame.data, str) else frame.data
        events.put("message", (frame.opcode, len(data), zlib.crc32(data), frame.flags))
        fd = frame.fd
        if frame.data == "close-me":
            events.put("disconnect", server.disconnect(fd, 4000, "bye"))
        elif frame.data == "later":

            def push() -> None:
                ok = server.push(fd, TIMER_TEXT)
                ok2 = server.push(fd, TIMER_BINARY, WEBSOCKET_OPCODE_BINARY)
                events.put("timer", (ok, ok2))

            server.after(50, push)
        else:
            events.put("echo", server.push(fd, frame.data, frame.opcode))

    @server.on("close")
    def on_close(server, fd) -> None:
        events.put("close", fd)

    return server


def open_page(chromium: Callable[[], Browser], server: WebSocketServer) -> Browser:
    """Navigate the browser to the server's page; its helpers are then defined."""
    browser = chromium()
    browser.navigate(f"http://127.0.0.1:{server.port}/", TIMEOUT)
    assert browser.evaluate("window.helpersReady === true", TIMEOUT) is True
    return browser


def call(browser: Browser, function: str, *args: Any) -> Any:
    arguments = ", ".join(json.dumps(arg) for arg in args)
    return browser.evaluate(f"{function}({arguments})", JS_TIMEOUT)


def assert_closed_normally(close: dict[str, Any]) -> None:
    """The browser's close(1000, "done") was answered: a clean close with code 1000. (The
    server echoes the status code only, as RFC 6455 section 5.5.1 allows, so the browser's
    reason is whatever the server's close frame says: not checked.)"""
    assert close["code"] == 1000, close
    assert close["wasClean"] is True, close


def check_echo(info: dict[str, Any], events: Events, port: int) -> list[tuple[int, int, int, int]]:
    """Every message came back intact, and the server received exactly what was sent.
    Returns the server's (opcode, length, crc32, flags) for each message."""
    results = info["results"]
    assert [(r["kind"], r["size"]) for r in results] == [
        (kind, size) for kind in ("text", "binary") for size in SIZES
    ]
    for r in results:
        where = f"{r['kind']} message of {r['size']} bytes"
        assert r["sentLength"] == r["size"], where
        assert r["length"] == r["size"], where
        assert r["equal"] is True, where
        assert r["crc"] == r["sentCrc"], where
        expected_type = "string" if r["kind"] == "text" else "[object ArrayBuffer]"
        assert r["type"] == expected_type, where
    assert_closed_normally(info["close"])

    fd, origin = events.get("open")
    assert origin == f"http://127.0.0.1:{port}"
    received = [events.get("message") for _ in results]
    assert [(op, n, crc) for op, n, crc, _flags in received] == [
        (
            WEBSOCKET_OPCODE_TEXT if r["kind"] == "text" else WEBSOCKET_OPCODE_BINARY,
            r["size"],
            r["sentCrc"],
        )
        for r in results
    ]
    assert all(events.get("echo") for _ in results), "a push() of an echo failed"
    assert events.get("close") == fd
    return received


def test_echo_text_and_binary(serve, chromium) -> None:
    events = Events()
    server = serve(browser_server(events))
    browser = open_page(chromium, server)
    info = call(browser, "echoAll", f"ws://127.0.0.1:{server.port}/", SIZES)
    assert info["extensions"] == ""
    assert info["protocol"] == ""
    received = check_echo(info, events, server.port)
    assert not any(flags & SWOOLE_WEBSOCKET_FLAG_COMPRESS for *_, flags in received)


def test_echo_with_permessage_deflate(serve, chromium) -> None:
    events = Events()
    server = serve(browser_server(events, websocket_compression=True))
    browser = open_page(chromium, server)
    info = call(browser, "echoAll", f"ws://127.0.0.1:{server.port}/", SIZES)
    assert info["extensions"].startswith("permessage-deflate"), info["extensions"]
    received = check_echo(info, events, server.port)
    # Chromium compressed what it sent (at least the 1 MiB text, which deflates well).
    one_mib_text = received[SIZES.index(1 << 20)]
    assert one_mib_text[3] & SWOOLE_WEBSOCKET_FLAG_COMPRESS, received


def test_subprotocol(serve, chromium) -> None:
    events = Events()
    server = serve(browser_server(events, websocket_subprotocol="chat"))
    browser = open_page(chromium, server)
    info = call(browser, "echoAll", f"ws://127.0.0.1:{server.port}/", SIZES, ["chat"])
    assert info["protocol"] == "chat"
    check_echo(info, events, server.port)


def test_server_disconnect_with_code_and_reason(serve, chromium) -> None:
    events = Events()
    server = serve(browser_server(events))
    browser = open_page(chromium, server)
    closed = call(browser, "closedByServer", f"ws://127.0.0.1:{server.port}/")
    assert closed == {"code": 4000, "reason": "bye", "wasClean": True}
    fd, _origin = events.get("open")
    assert events.get("disconnect") is True
    assert events.get("close") == fd


def test_push_from_timer(serve, chromium) -> None:
    events = Events()
    server = serve(browser_server(events))
    browser = open_page(chromium, server)
    result = call(browser, "timerPush", f"ws://127.0.0.1:{server.port}/")
    assert events.get("timer") == (True, True)
    text, binary = result["got"]
    assert text == {
        "type": "string",
        "length": len(TIMER_TEXT),
        "crc": zlib.crc32(TIMER_TEXT.encode()),
        "text": TIMER_TEXT,
    }
    assert binary == {
        "type": "[object ArrayBuffer]",
        "length": len(TIMER_BINARY),
        "crc": zlib.crc32(TIMER_BINARY),
        "text": None,
    }
    assert_closed_normally(result["close"])
