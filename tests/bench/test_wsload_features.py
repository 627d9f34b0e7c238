"""wsload's wss://, permessage-deflate, JSON payloads, open-loop echo and source addresses,
run briefly against real servers.

Servers: pyswoole's TLS test program (tests/integration/programs/tls_server.py: a ``ws://``
port and a ``wss://`` port, ``websocket_compression`` on, echo), wsload's own
``test/odd_server.py`` (the ``websockets`` library: ``deflate`` with context takeover both
ways, ``fanout``, ``slow`` = 10 ms per message, ``peers`` = prints each client's address)
and, for the RFC 7692 answers wsload must refuse, a raw socket server in this file that
answers every upgrade with a given ``Sec-WebSocket-Extensions``. Certificates come from
tests/runtime/certs.py (the ``openssl`` command). Only one timing assertion: the open loop
against the slow server reports a median of at least the server's 10 ms.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.serverproc import LineReader, ServerProcess
from tests.runtime.certs import Authority, Pair, needs_openssl

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
ODD_SERVER = BENCH / "wsload" / "test" / "odd_server.py"
TLS_PROGRAM = REPO / "tests" / "integration" / "programs" / "tls_server.py"
RUN_TIMEOUT = 30.0  # seconds for one wsload run (each runs about a second)
START_TIMEOUT = 15.0
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

sys.path.insert(0, str(BENCH))
from harness.wsload import build  # noqa: E402


@pytest.fixture(scope="module")
def wsload() -> Path:
    return build()


def run(wsload: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """wsload ``args`` with ``-j``: exit code, the JSON report ({} if none), stderr (the
    human summary and the first error of each kind)."""
    done = subprocess.run(
        [str(wsload), *args, "-j"], capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, json.loads(lines[-1]) if lines else {}, done.stderr


def brief(*args: str) -> list[str]:
    return [*args, "-d", "1", "-w", "0.2", "-T", "5"]


class OddServer(LineReader):
    """bench/wsload/test/odd_server.py in ``mode`` on a free port."""

    def __init__(self, mode: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ODD_SERVER), "0", mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        self._collect(self.proc.stdout)
        self.port = int(self._find(r"listening (\d+)", START_TIMEOUT, 0)[1])

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(START_TIMEOUT)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@contextlib.contextmanager
def odd_server(mode: str) -> Iterator[OddServer]:
    server = OddServer(mode)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority(tmp_path_factory.mktemp("wsload-ca"))


@pytest.fixture(scope="module")
def pair(ca: Authority) -> Pair:
    return ca.issue("server")


@pytest.fixture(scope="module")
def pyswoole(tmp_path_factory: pytest.TempPathFactory, pair: Pair) -> Iterator[dict[str, int]]:
    """pyswoole's TLS program: {"ws": plain port, "wss": TLS port}."""
    tmp = tmp_path_factory.mktemp("wsload-pyswoole")
    proc = ServerProcess(TLS_PROGRAM, tmp, "--cert", str(pair.cert), "--key", str(pair.key))
    try:
        proc.wait_ready(2)
        tls = int(proc.wait_line(r"TLS (\d+)", START_TIMEOUT)[1])
        yield {"ws": proc.port, "wss": tls}
    finally:
        proc.stop()


# --- wss:// -----------------------------------------------------------------------------


@needs_openssl
def test_wss_deflate_json_verified(wsload: Path, pyswoole: dict[str, int]) -> None:
    """TLS + negotiated permessage-deflate + JSON chat messages, every echo checked."""
    url = f"wss://127.0.0.1:{pyswoole['wss']}/chat"
    code, r, err = run(
        wsload, *brief("-u", url, "-z", "-P", "json", "-V", "-E", "-c", "4", "-k", "4")
    )
    assert code == 0, err
    assert r["tls"] is True and r["payload"] == "json"
    assert r["deflate"].startswith("permessage-deflate"), r
    assert r["msgs"] > 0 and r["errors"] == 0 and r["closed_clean"] == 4
    assert r["payload_bytes_sent"] > r["wire_bytes_sent"] > 0
    assert 0 < r["ratio_sent"] < 1 and 0 < r["ratio_recv"] < 1


@needs_openssl
@pytest.mark.parametrize("mode", ["connect", "idle", "fanout"])
def test_wss_other_modes(wsload: Path, pyswoole: dict[str, int], mode: str) -> None:
    url = f"wss://127.0.0.1:{pyswoole['wss']}/"
    code, r, err = run(wsload, mode, *brief("-u", url, "-c", "3", "-r", "50"))
    assert code == 0, err
    assert r["tls"] is True and r["errors"] == 0, r
    if mode == "connect":  # TCP + TLS + upgrade per cycle, no resumption by default
        assert r["handshakes"] > 0 and r["tls_resumed"] == 0
    elif mode == "idle":
        assert r["ready"] == 3 and r["closed_clean"] == 3
    else:  # the echo server sends the sender's messages back to it only: nothing to deliver
        assert r["established"] == 4 and r["sent"] > 0


@needs_openssl
def test_wss_session_resumption(wsload: Path, pyswoole: dict[str, int]) -> None:
    url = f"wss://127.0.0.1:{pyswoole['wss']}/"
    code, r, err = run(wsload, "connect", *brief("-u", url, "-c", "2", "--tls-resume"))
    assert code == 0, err
    assert r["tls_resume"] is True and r["tls_resumed"] > 0 and r["errors"] == 0


@needs_openssl
def test_wss_verification(
    wsload: Path, pyswoole: dict[str, int], ca: Authority, tmp_path: Path
) -> None:
    """-A CAFILE: the right CA passes (name checked: 127.0.0.1 is in the certificate's
    names), another CA fails every handshake as a TLS error."""
    url = f"wss://127.0.0.1:{pyswoole['wss']}/"
    code, r, err = run(wsload, "connect", *brief("-u", url, "-c", "2", "-A", str(ca.cert)))
    assert code == 0 and r["handshakes"] > 0 and r["errors"] == 0, err
    stranger = Authority(tmp_path / "other", name="other-ca")
    code, r, err = run(wsload, *brief("-u", url, "-c", "2", "-A", str(stranger.cert)))
    assert code == 3, err  # no connection completed the handshake
    assert r["err_tls"] == 2 and r["established"] == 0
    assert "certificate" in err


# --- permessage-deflate ------------------------------------------------------------------


def test_client_no_context_takeover(wsload: Path, pyswoole: dict[str, int]) -> None:
    url = f"ws://127.0.0.1:{pyswoole['ws']}/"
    args = ("-u", url, "-Z", "client_no_context_takeover", "-P", "json", "-V", "-E", "-c", "2")
    code, r, err = run(wsload, *brief(*args))
    assert code == 0, err
    assert r["deflate_offer"] == "permessage-deflate; client_no_context_takeover"
    assert "client_no_context_takeover" in r["deflate"]
    assert r["msgs"] > 0 and r["errors"] == 0 and r["tls"] is False
    assert r["ratio_sent"] < 1 and r["ratio_recv"] < 1


@pytest.mark.parametrize(
    "payload",
    [("-P", "json", "-k", "4"), ("-b", "-s", "300000"), ("-s", "0")],
    ids=["json-pipelined", "binary-300k", "empty"],
)
def test_deflate_context_takeover(wsload: Path, payload: tuple[str, ...]) -> None:
    """The websockets server keeps its window across messages in both directions: every
    message after the first depends on the ones before, on both sides (300 kB messages
    inflate in more than one chunk; an empty message after the first compresses to nothing
    and is sent as one empty block, RFC 7692 section 7.2.3.6)."""
    with odd_server("deflate") as server:
        code, r, err = run(
            wsload, *brief("-u", server.url(), "-z", "-V", "-E", "-c", "2", *payload)
        )
    assert code == 0, err
    assert "no_context_takeover" not in r["deflate"]
    assert "client_max_window_bits=12" in r["deflate"]
    assert r["msgs"] > 0 and r["errors"] == 0
    if r["payload_bytes_sent"]:
        assert r["ratio_sent"] < 1 and r["ratio_recv"] < 1


def test_deflate_fragmented(wsload: Path) -> None:
    """Compressed echoes in 3 fragments (RSV1 on the first only) with pings in between."""
    with odd_server("frag") as server:
        args = ("-u", server.url(), "-z", "-V", "-E", "-P", "json", "-k", "4")
        code, r, err = run(wsload, *brief(*args))
        server._find(r"pongs \d+ of \d+", START_TIMEOUT, 0)  # pings came and were answered
    assert code == 0, err
    assert r["deflate"] is not None and r["msgs"] > 0 and r["errors"] == 0
    assert r["ratio_recv"] < 1


def test_fanout_json_deflate(wsload: Path) -> None:
    """Fanout with -P json: an 8-character timestamp, then a chat message (100-2000 bytes);
    compressed by the sender and inflated by every receiver."""
    with odd_server("fanout") as server:
        code, r, err = run(
            wsload, "fanout", *brief("-u", server.url(), "-c", "3", "-r", "50", "-P", "json", "-z")
        )
    assert code == 0, err
    assert r["deliveries"] > 0 and r["errors"] == 0 and r["sent"] > 0
    assert 108 <= r["payload_bytes_sent"] / r["sent"] <= 2008
    assert r["ratio_sent"] < 1 and r["ratio_recv"] < 1


@pytest.mark.parametrize("busy_poll", [False, True], ids=["sleeping", "busy-poll"])
def test_fanout_across_processes(wsload: Path, busy_poll: bool) -> None:
    """--receive-only --clock-monotonic in one process, the sender in another: the
    receivers report each broadcast under the sender's CLOCK_MONOTONIC timestamp (the same
    clock as Python's time.monotonic_ns on Linux) with a latency that makes sense only if
    both processes read one clock. --busy-poll receivers (never asleep in epoll_wait) get
    every copy too, and still stop cleanly on SIGINT."""
    polling = ("--busy-poll",) if busy_poll else ()
    with odd_server("fanout") as server:
        receiver = subprocess.Popen(
            [
                *(str(wsload), "fanout", "--receive-only", "--clock-monotonic", "-j", "-q"),
                *polling,
                *("-u", server.url(), "-c", "3", "-d", "60", "-w", "0", "-T", "5"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert receiver.stdout is not None
            assert receiver.stdout.readline().strip() == "ready 3"
            code, sent, err = run(
                wsload,
                *("fanout", "--clock-monotonic", "-u", server.url(), "-c", "1", "-r", "20"),
                *("-d", "0.5", "-w", "0", "-T", "5"),
            )
            receiver.send_signal(signal.SIGINT)
            out, err_r = receiver.communicate(timeout=RUN_TIMEOUT)
        finally:
            if receiver.poll() is None:
                receiver.kill()
                receiver.wait(RUN_TIMEOUT)
    now = time.monotonic_ns() & ((1 << 48) - 1)
    assert code == 0, err
    assert receiver.returncode == 0, err_r
    got = json.loads(out.splitlines()[-1])
    assert got["receive_only"] is True and got["clock"] == "monotonic" and got["sent"] == 0
    assert got["busy_poll"] is busy_poll and sent["busy_poll"] is False
    assert got["established"] == 3 and got["errors"] == 0 and got["closed_clean"] == 3
    assert sent["clock"] == "monotonic" and sent["receive_only"] is False and sent["sent"] >= 5
    stamps = {ts for ts, _, _ in sent["broadcasts"]}  # the sender's own receiver saw them
    assert len(got["broadcasts"]) == sent["sent"], (got["broadcasts"], sent["sent"])
    assert stamps <= {ts for ts, _, _ in got["broadcasts"]}
    for ts, copies, last_us in got["broadcasts"]:
        assert copies == 3
        assert (
            0 < last_us < 2_000_000
        )  # one clock: microseconds to milliseconds, not the launch gap
        assert 0 <= now - ts < 60 * 10**9
    assert got["deliveries"] == 3 * sent["sent"] and got["broadcasts_dropped"] == 0


class AnsweringServer:
    """Answers every upgrade with 101 and ``Sec-WebSocket-Extensions: <answer>`` (None:
    no such header), then answers a close frame with a close frame."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.offers: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5.0)
                with contextlib.suppress(OSError):
                    self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request and len(request) < 16384:
            chunk = conn.recv(4096)
            if not chunk:
                return
            request += chunk
        headers = dict(
            line.split(": ", 1) for line in request.decode().split("\r\n")[1:] if ": " in line
        )
        self.offers.append(headers.get("Sec-WebSocket-Extensions", ""))
        accept = base64.b64encode(
            hashlib.sha1(headers["Sec-WebSocket-Key"].encode() + GUID).digest()
        )
        extension = (
            f"Sec-WebSocket-Extensions: {self.answer}\r\n" if self.answer is not None else ""
        )
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n" + extension.encode() + b"\r\n"
        )
        while data := conn.recv(4096):  # until the client closes
            if data[0] == 0x88:
                conn.sendall(b"\x88\x02\x03\xe8")
                return

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5.0)
        self.listener.close()


@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        ((), "permessage-deflate"),  # not offered: any extension fails, as before
        (("-z",), "permessage-deflate; client_max_window_bits=16"),  # 8..15 only
        (("-z",), "permessage-deflate; client_max_window_bits=09"),  # no leading zero
        (("-z",), "permessage-deflate; client_max_window_bits"),  # an answer needs a value
        (("-z",), "permessage-deflate; client_max_window_bits=8"),  # zlib cannot do 8
        (("-z",), "permessage-deflate; mystery_param"),
        (("-z",), "permessage-deflate; server_no_context_takeover=1"),
        (("-z",), "permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
        (("-z",), "x-webkit-deflate-frame"),
        (("-z",), "permessage-deflate, permessage-deflate"),
        (("-Z", "server_no_context_takeover"), "permessage-deflate; client_max_window_bits=10"),
        (("-Z", "server_no_context_takeover"), "permessage-deflate"),  # offered, not answered
        (("-Z", "server_max_window_bits=10"), "permessage-deflate; server_max_window_bits=12"),
        (("-Z", "client_max_window_bits=10"), "permessage-deflate; client_max_window_bits=11"),
    ],
)
def test_refused_extension_answers(wsload: Path, offer: tuple[str, ...], answer: str) -> None:
    """RFC 7692 section 7.1: an answer the offer does not allow fails the handshake."""
    server = AnsweringServer(answer)
    try:
        code, r, err = run(
            wsload, "idle", "-u", f"ws://127.0.0.1:{server.port}/", "-d", "0.1", "-T", "5", *offer
        )
    finally:
        server.close()
    assert code == 3, err
    assert r["err_handshake"] == 1 and r["established"] == 0
    assert "Sec-WebSocket-Extensions" in err


@pytest.mark.parametrize(
    ("offer", "answer", "sent"),
    [
        (("-z",), None, "permessage-deflate; client_max_window_bits"),
        (("-z",), 'permessage-deflate; client_max_window_bits="10"', None),
        (("-z",), "permessage-deflate; client_max_window_bits=10; server_max_window_bits=9", None),
        (
            (
                "-Z",
                "client_no_context_takeover; server_no_context_takeover; server_max_window_bits=10",
            ),
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover; "
            "server_max_window_bits=10",
        ),
    ],
    ids=["declined", "quoted", "windows", "exact-offer"],
)
def test_accepted_extension_answers(
    wsload: Path, offer: tuple[str, ...], answer: str | None, sent: str | None
) -> None:
    """A declined offer (no header) runs uncompressed; valid answers are taken; -Z sends the
    offer exactly; a parameter value may be a quoted string (RFC 7692 section 7.1)."""
    server = AnsweringServer(answer)
    try:
        code, r, err = run(
            wsload, "idle", "-u", f"ws://127.0.0.1:{server.port}/", "-d", "0.1", "-T", "5", *offer
        )
    finally:
        server.close()
    assert code == 0, err
    assert r["established"] == 1 and r["errors"] == 0
    assert r["deflate"] == answer
    if sent is not None:
        assert server.offers == [sent]


# --- open loop, source addresses, usage ---------------------------------------------------


def test_open_loop_reports_the_server_delay(wsload: Path) -> None:
    """Issue 17: with -r the latency runs from each message's scheduled send time; a server
    that takes 10 ms per message cannot show less (the one timing assertion here)."""
    with odd_server("slow") as server:
        code, r, err = run(wsload, *brief("-u", server.url(), "-r", "40", "-c", "2", "-E"))
    assert code == 0, err
    assert r["open_loop"] is True and r["offered_rate"] == 40.0
    assert r["msgs"] > 0 and r["achieved_rate"] > 0 and r["errors"] == 0
    assert r["p50_us"] >= 10_000, r


def test_source_address_range(wsload: Path) -> None:
    """-B deals the connections over the source addresses; the server sees both."""
    with odd_server("peers") as server:
        code, r, err = run(
            wsload, *brief("-u", server.url(), "-B", "127.0.0.1-127.0.0.2", "-c", "4")
        )
        for address in ("127.0.0.1", "127.0.0.2"):
            server._find(rf"peer {address}", START_TIMEOUT, 0)
        peers = [line for line in server.lines if line.startswith("peer ")]
    assert code == 0, err
    assert r["src_addrs"] == 2 and r["errors"] == 0 and r["established"] == 4
    assert sorted(peers) == ["peer 127.0.0.1"] * 2 + ["peer 127.0.0.2"] * 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-B", "127.0.0.9-127.0.0.1"), "bad -B"),
        (("-B", "localhost"), "bad -B"),
        (("-Z", "mystery"), "bad permessage-deflate offer"),
        (("-Z", "client_max_window_bits=8"), "zlib"),
        (("-A", "/nonexistent"), "wss://"),
        (("-P", "xml"), "-P"),
        (("--receive-only",), "fanout options"),
        (("--clock-monotonic",), "fanout options"),
        (("--busy-poll",), "fanout options"),
    ],
)
def test_bad_usage(wsload: Path, args: tuple[str, ...], message: str) -> None:
    code, _, err = run(wsload, "-u", "ws://127.0.0.1:9/", *args)
    assert code == 2 and message in err
