"""A minimal headless-Chromium driver over the Chrome DevTools Protocol (CDP).

No dependency beyond the standard library and the ``websockets`` test dependency: Chromium
is started with ``--remote-debugging-port=0``; the port it chose is read from
``<user-data-dir>/DevToolsActivePort``; the page target comes from
``http://127.0.0.1:PORT/json``; its ``webSocketDebuggerUrl`` is driven with ``websockets``'
synchronous client. Every wait is bounded; Chromium is stopped by its PID (SIGTERM, then
SIGKILL) and its temporary profile removed.

The browser is Debian's ``chromium`` package (``/usr/bin/chromium``), which
``scripts/setup`` installs; without it :func:`launch` raises :class:`BrowserMissing`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

CHROMIUM = Path(os.environ.get("PYSWOOLE_CHROMIUM", "/usr/bin/chromium"))
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
# The flags this machine needs (no GPU, no sandbox as root, no background network traffic).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class BrowserError(RuntimeError):
    """Chromium failed to start, a CDP command failed, or page JavaScript threw."""


class BrowserMissing(BrowserError):
    """Chromium is not installed."""


class Browser:
    """One Chromium process and a CDP session on its first page."""

    def __init__(self, proc: subprocess.Popen[bytes], tmp: Path, log_path: Path) -> None:
        self.proc = proc
        self.tmp = tmp
        self.log_path = log_path
        self.ws: ClientConnection | None = None
        self.version = ""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self._stack = contextlib.ExitStack()

    # -- startup --------------------------------------------------------------------------

    def _attach(self, deadline: float) -> None:
        port = self._devtools_port(deadline)
        target = self._page_target(port, deadline)
        self.version = _get_json(port, "/json/version", deadline).get("Browser", "")
        self.ws = self._stack.enter_context(
            connect(
                target["webSocketDebuggerUrl"],
                open_timeout=max(0.1, deadline - time.monotonic()),
                close_timeout=STOP_TIMEOUT,
                ping_interval=None,
                max_size=None,
                compression=None,
            )
        )

    def _devtools_port(self, deadline: float) -> int:
        """The port from ``DevToolsActivePort`` (written once Chromium listens)."""
        path = self.tmp / "profile" / "DevToolsActivePort"
        while True:
            with contextlib.suppress(OSError):
                lines = path.read_text().splitlines()
                if len(lines) >= 2 and lines[0].strip().isdigit():
                    return int(lines[0])
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited with {self.proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise BrowserError(f"no {path.name} within {START_TIMEOUT} s: {self.log()}")
            time.sleep(0.05)  # polling a file Chromium writes: nothing to wait on instead

    def _page_target(self, port: int, deadline: float) -> dict[str, Any]:
        while True:
            targets = _get_json(port, "/json", deadline)
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return pages[0]
            if time.monotonic() > deadline:
                raise BrowserError(f"no page target within {START_TIMEOUT} s: {targets!r}")
            time.sleep(0.05)

    # -- CDP ------------------------------------------------------------------------------

    def _recv(self, deadline: float) -> dict[str, Any]:
        assert self.ws is not None, "not attached"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        try:
            message = self.ws.recv(timeout=remaining)
        except ConnectionClosed as exc:
            raise BrowserError(f"DevTools connection closed: {exc}; {self.log()}") from exc
        result: dict[str, Any] = json.loads(message)
        return result

    def command(self, method: str, params: dict[str, Any] | None = None, timeout: float = 10.0):
        """Send a CDP command; its ``result`` (events meanwhile are kept for ``wait_event``)."""
        assert self.ws is not None, "not attached"
        self._next_id += 1
        ident = self._next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._recv(deadline)
            except TimeoutError:
                raise TimeoutError(f"{method}: no answer within {timeout} s") from None
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self._events.append(message)

    def wait_event(self, method: str, timeout: float = 10.0) -> dict[str, Any]:
        """The params of the first (kept or next) event called ``method``."""
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self._events):
                if event["method"] == method:
                    del self._events[i]
                    return event.get("params", {})
            try:
                message = self._recv(deadline)
            except TimeoutError:
                raise TimeoutError(f"no {method} event within {timeout} s") from None
            if "method" in message:
                self._events.append(message)

    def navigate(self, url: str, timeout: float = 10.0) -> None:
        """Load ``url`` in the page and wait for its load event."""
        self.command("Page.enable", timeout=timeout)
        self._events.clear()
        result = self.command("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise BrowserError(f"navigating to {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired", timeout)

    def evaluate(self, expression: str, timeout: float = 10.0) -> Any:
        """Evaluate JavaScript in the page; a promise is awaited; the value comes back as
        JSON. A thrown exception or rejected promise raises :class:`BrowserError`."""
        result = self.command(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout=timeout,
        )
        details = result.get("exceptionDetails")
        if details is not None:
            exception = details.get("exception", {})
            text = exception.get("description") or exception.get("value") or details.get("text")
            raise BrowserError(f"JavaScript error: {text}")
        return result["result"].get("value")

    # -- shutdown -------------------------------------------------------------------------

    def log(self, limit: int = 2000) -> str:
        """The end of Chromium's stdout/stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def close(self) -> None:
        """Close the CDP connection, stop Chromium by its PID, remove the temporary files."""
        with contextlib.suppress(Exception):
            self._stack.close()  # the DevTools connection
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(STOP_TIMEOUT)
            # Chromium's helper processes (renderer, zygote...) share its process group,
            # which it leads: kill any that outlived it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _get_json(port: int, path: str, deadline: float) -> Any:
    timeout = max(0.1, min(5.0, deadline - time.monotonic()))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as answer:
        return json.load(answer)


def spki_hash(cert: Path) -> str:
    """The base64 SHA-256 of ``cert``'s SubjectPublicKeyInfo, the form Chromium's
    ``--ignore-certificate-errors-spki-list`` takes: Chromium then trusts a chain holding that
    key, and only that one (no blanket ``--ignore-certificate-errors``). The SPKI is read with
    the ``openssl`` command (``x509 -pubkey`` prints it as PEM)."""
    pem = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
    return base64.b64encode(hashlib.sha256(base64.b64decode(body)).digest()).decode()


def launch(timeout: float = START_TIMEOUT, flags: Sequence[str] = ()) -> Browser:
    """Start headless Chromium on about:blank and attach to its page; ``flags`` are added to
    :data:`FLAGS` (e.g. ``--ignore-certificate-errors-spki-list=...``, see :func:`spki_hash`)."""
    if not os.access(CHROMIUM, os.X_OK):
        raise BrowserMissing(
            f"Chromium is missing: {CHROMIUM} not found. The browser tests need Debian's "
            "chromium package: run scripts/setup as root (or apt-get install chromium)."
        )
    tmp = Path(tempfile.mkdtemp(prefix="pyswoole-chromium-"))
    profile = tmp / "profile"
    profile.mkdir()
    log_path = tmp / "chromium.log"
    try:
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [
                    str(CHROMIUM),
                    *FLAGS,
                    *flags,
                    f"--user-data-dir={profile}",
                    "--remote-debugging-port=0",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, for the cleanup in close()
            )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    browser = Browser(proc, tmp, log_path)
    try:
        browser._attach(time.monotonic() + timeout)
    except BaseException:
        browser.close()
        raise
    return browser


@contextlib.contextmanager
def chromium(timeout: float = START_TIMEOUT, flags: Sequence[str] = ()) -> Iterator[Browser]:
    browser = launch(timeout, flags)
    try:
        yield browser
    finally:
        browser.close()
