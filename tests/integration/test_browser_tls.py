"""Headless Chromium over TLS: a page, its CSS, JavaScript and image served by the static
handler from ``document_root`` over ``https://``, then the page's script opens ``wss://`` to
the same port with permessage-deflate and echoes a 1 MiB message.

The certificate is made by the test (``openssl``, tests/runtime/certs.py). Chromium is told to
trust that one key and no other: ``--ignore-certificate-errors-spki-list`` with the SHA-256 of
the server certificate's SubjectPublicKeyInfo (browser.py ``spki_hash``). The negative control
launches Chromium with another certificate's key in that list: the page is then refused
(``net::ERR_CERT_AUTHORITY_INVALID``), so the flag is what makes the trust, not a blanket
ignore, and the port really speaks TLS.

Chromium is Debian's ``chromium`` package (scripts/setup); these tests fail without it.
"""

from __future__ import annotations

import hashlib
import queue
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyswoole import (
    SWOOLE_BASE,
    SWOOLE_SOCK_TCP,
    SWOOLE_SSL,
    SWOOLE_WEBSOCKET_FLAG_COMPRESS,
    SWOOLE_WEBSOCKET_FLAG_FIN,
    WEBSOCKET_OPCODE_TEXT,
    Frame,
    WebSocketServer,
)
from tests.integration.browser import Browser, BrowserError, chromium, spki_hash
from tests.runtime.certs import Authority, Pair, needs_openssl

pytestmark = needs_openssl

TIMEOUT = 10.0
JS_TIMEOUT = 30.0
MIB = 1024 * 1024
COLOR = "rgb(18, 52, 86)"  # #123456, set by site.css on #probe
IMAGE_SIZE = (7, 5)

INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><title>pyswoole over TLS</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/css/site.css">
<script src="/js/app.js"></script>
</head><body>
<p id="probe">styled by site.css</p>
<img id="picture" src="/img/picture.png" alt="a picture">
</body></html>
"""

CSS = "#probe { color: #123456; width: 321px; }\n"

# The script opens wss:// to the page's own host once the page (and so its image) loaded.
# Its 1 MiB text is the one message_text() makes; the SHA-256 of what was sent and of what
# came back are computed in the page (crypto.subtle, which a secure context has).
APP_JS = """"use strict";
window.appLoaded = true;
function makeText(n) {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = i % 61 === 60 ? 10 : 32 + ((i * 7 + (i >> 6)) % 95);
  return new TextDecoder().decode(b);
}
async function sha256(text) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), b => b.toString(16).padStart(2, "0")).join("");
}
function echoOverWss(size) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket("wss://" + location.host + "/echo");
    const text = makeText(size);
    const result = {url: ws.url, secure: window.isSecureContext};
    ws.onerror = () => reject(new Error("WebSocket error"));
    ws.onopen = () => {
      result.extensions = ws.extensions;
      ws.send(text);
    };
    ws.onmessage = async (e) => {
      result.type = typeof e.data;
      result.length = e.data.length;
      result.equal = e.data === text;
      result.sentSha256 = await sha256(text);
      result.sha256 = await sha256(e.data);
      ws.close(1000, "done");
    };
    ws.onclose = (e) => {
      result.close = {code: e.code, wasClean: e.wasClean};
      resolve(result);
    };
  });
}
window.echoResult = new Promise(resolve => window.addEventListener("load", () => {
  echoOverWss(1 << 20).then(resolve, e => resolve({error: String(e)}));
}));
"""

PAGE_STATE = """(() => {
  const img = document.getElementById("picture");
  const style = getComputedStyle(document.getElementById("probe"));
  return {
    appLoaded: window.appLoaded === true,
    secure: window.isSecureContext,
    protocol: location.protocol,
    color: style.color,
    width: style.width,
    image: {complete: img.complete, width: img.naturalWidth, height: img.naturalHeight},
    resources: performance.getEntriesByType("resource").map(
      e => ({path: new URL(e.name).pathname, status: e.responseStatus})),
  };
})()"""


def message_text(n: int) -> str:
    """The page's ``makeText(n)``: printable ASCII with a newline every 61 characters."""
    return "".join("\n" if i % 61 == 60 else chr(32 + (i * 7 + (i >> 6)) % 95) for i in range(n))


def png(width: int, height: int) -> bytes:
    """A valid RGB PNG (PNG specification: signature, IHDR, one IDAT, IEND)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 40 % 256, y * 50 % 256, 200)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pair, Pair]:
    """The server's certificate and an unrelated one (for the negative control)."""
    ca = Authority(tmp_path_factory.mktemp("browser-tls-ca"))
    return ca.issue("server"), ca.issue("other")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "public"
    for sub in ("css", "js", "img"):
        (root / sub).mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "css" / "site.css").write_text(CSS)
    (root / "js" / "app.js").write_text(APP_JS)
    (root / "img" / "picture.png").write_bytes(png(*IMAGE_SIZE))
    return root


class Events:
    """What the server's callbacks saw, for the test to read (bounded waits)."""

    def __init__(self) -> None:
        self.q: queue.Queue[tuple[str, Any]] = queue.Queue()

    def put(self, name: str, value: Any) -> None:
        self.q.put((name, value))

    def get(self, name: str) -> Any:
        try:
            got, value = self.q.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no {name!r} event within {TIMEOUT} s") from None
        assert got == name, (got, value)
        return value


def tls_site_server(pair: Pair, root: Path, events: Events) -> WebSocketServer:
    """A TLS-only server: static files from ``root``, WebSocket echo with compression."""
    server = WebSocketServer("127.0.0.1", 0, SWOOLE_BASE, SWOOLE_SOCK_TCP | SWOOLE_SSL)
    server.set(
        {
            "ssl_cert_file": str(pair.cert),
            "ssl_key_file": str(pair.key),
            "document_root": str(root),
            "enable_static_handler": True,
            "websocket_compression": True,
            "package_max_length": 4 * MIB,
        }
    )

    @server.on("request")
    def on_request(request: Any, response: Any) -> None:
        events.put("request", request.server["request_uri"])  # not a static file
        response.status(404)
        response.end("not found")

    @server.on("open")
    def on_open(server: WebSocketServer, request: Any) -> None:
        events.put("open", (request.server["request_uri"], request.header.get("origin")))

    @server.on("message")
    def on_message(server: WebSocketServer, frame: Frame) -> None:
        data = frame.data.encode() if isinstance(frame.data, str) else frame.data
        events.put("message", (frame.opcode, len(data), hashlib.sha256(data).hexdigest()))
        events.put("compressed", bool(frame.flags & SWOOLE_WEBSOCKET_FLAG_COMPRESS))
        flags = SWOOLE_WEBSOCKET_FLAG_FIN | SWOOLE_WEBSOCKET_FLAG_COMPRESS
        events.put("echo", server.push(frame.fd, frame.data, frame.opcode, flags))

    return server


@pytest.fixture
def trusting(pairs: tuple[Pair, Pair]) -> Iterator[Browser]:
    """Chromium trusting the server certificate's key (only)."""
    server_pair, _other = pairs
    flag = f"--ignore-certificate-errors-spki-list={spki_hash(server_pair.cert)}"
    with chromium(flags=[flag]) as browser:
        yield browser


def test_spki_hash_is_the_sha256_of_the_public_key(pairs: tuple[Pair, Pair]) -> None:
    server_pair, other = pairs
    first = spki_hash(server_pair.cert)
    assert len(first) == 44 and first.endswith("=")  # base64 of 32 bytes
    assert first == spki_hash(server_pair.cert)
    assert first != spki_hash(other.cert)


def test_page_assets_and_wss_echo_over_tls(
    serve: Any, trusting: Browser, pairs: tuple[Pair, Pair], site: Path
) -> None:
    events = Events()
    server = serve(tls_site_server(pairs[0], site, events))
    origin = f"https://127.0.0.1:{server.port}"
    trusting.navigate(f"{origin}/index.html", TIMEOUT)

    state = trusting.evaluate(PAGE_STATE, TIMEOUT)
    assert state["protocol"] == "https:"
    assert state["secure"] is True
    assert state["appLoaded"] is True, "js/app.js did not run"
    assert (state["color"], state["width"]) == (COLOR, "321px"), "css/site.css not applied"
    assert state["image"] == {"complete": True, "width": 7, "height": 5}, state["image"]
    statuses = {r["path"]: r["status"] for r in state["resources"]}
    assert statuses == {"/css/site.css": 200, "/js/app.js": 200, "/img/picture.png": 200}

    result = trusting.evaluate("window.echoResult", JS_TIMEOUT)
    assert "error" not in result, result
    assert result["url"] == f"wss://127.0.0.1:{server.port}/echo"
    assert result["extensions"].startswith("permessage-deflate"), result["extensions"]
    expected = hashlib.sha256(message_text(MIB).encode()).hexdigest()
    assert result["sentSha256"] == expected  # the page and the test made the same text
    assert result["type"] == "string"
    assert result["length"] == MIB
    assert result["equal"] is True
    assert result["sha256"] == expected
    assert result["close"] == {"code": 1000, "wasClean": True}

    # The server saw the WebSocket from the page's https origin, the 1 MiB text intact and
    # compressed by Chromium; it echoed it compressed; no asset fell through to on_request.
    assert events.get("open") == ("/echo", origin)
    assert events.get("message") == (WEBSOCKET_OPCODE_TEXT, MIB, expected)
    assert events.get("compressed") is True
    assert events.get("echo") is True
    assert events.q.empty(), list(events.q.queue)


def test_chromium_refuses_the_page_without_the_servers_key(
    serve: Any, pairs: tuple[Pair, Pair], site: Path
) -> None:
    """Negative control: the SPKI list holds another certificate's key, so the server's
    certificate (signed by a CA Chromium does not know) is refused."""
    server_pair, other = pairs
    server = serve(tls_site_server(server_pair, site, Events()))
    flag = f"--ignore-certificate-errors-spki-list={spki_hash(other.cert)}"
    with (
        chromium(flags=[flag]) as browser,
        pytest.raises(BrowserError, match="ERR_CERT_AUTHORITY_INVALID"),
    ):
        browser.navigate(f"https://127.0.0.1:{server.port}/index.html", TIMEOUT)
