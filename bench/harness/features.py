"""What the Performance II scenarios need beyond A-G: wsload features (read from
``wsload -h``), a TLS certificate and a TLS readiness probe, and a file limit high enough
for 100,000 connections.

A scenario whose wsload feature is missing is skipped with a message naming the flag, so an
older wsload still runs every other scenario.
"""

from __future__ import annotations

import re
import resource
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import BenchError
from harness.processes import (
    READY_TIMEOUT,
    CpuWindow,
    Server,
    tree_rss_kib,
    wait_ready,
)

#: feature -> what to tell the user when ``wsload -h`` does not list it
FEATURES: dict[str, str] = {
    "tls": "wss:// URLs (TLS)",
    "deflate": "-z (offer permessage-deflate)",
    "json": "-P json (JSON chat payloads)",
    "echo_rate": "-r RATE in echo mode (open-loop)",
    "sources": "-B (source address ranges)",
    "clock_monotonic": "--clock-monotonic and --receive-only (fanout across processes)",
}
OPENSSL_TIMEOUT = 60.0  # seconds to make the key and certificate
NOFILE_SLACK = 1024  # fds on top of one per connection (listener, epoll, logs, pipes)


def wsload_features(wsload: Path) -> set[str]:
    """The FEATURES this wsload build has, from its usage text (``-h`` exits 2)."""
    try:
        done = subprocess.run([str(wsload), "-h"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    text = done.stdout + done.stderr
    options = {m.group(1): m.group(2) for m in re.finditer(r"^\s+-(\w)\b(.*)$", text, re.M)}
    found = set()
    if "wss://" in text:
        found.add("tls")
    if "z" in options:
        found.add("deflate")
    if "P" in options:
        found.add("json")
    if "B" in options:
        found.add("sources")
    if "--clock-monotonic" in text and "--receive-only" in text:
        found.add("clock_monotonic")
    if "r" in options and re.search(r"open[ -]loop", text):  # -r's echo line
        found.add("echo_rate")
    return found


def missing(needs: tuple[str, ...], have: set[str]) -> str:
    """ "" if every need is there, else the skip message for the first missing one."""
    for need in needs:
        if need not in have:
            return f"skipped: wsload lacks {FEATURES[need]}"
    return ""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


def make_certificate(directory: Path) -> TlsFiles:
    """A self-signed P-256 certificate for 127.0.0.1 made with ``openssl req``."""
    files = TlsFiles(directory / "cert.pem", directory / "key.pem")
    cmd = [
        *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
        *("-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"),
        *("-addext", "subjectAltName=IP:127.0.0.1"),
        *("-keyout", str(files.key), "-out", str(files.cert)),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=OPENSSL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"openssl req: {exc}") from exc
    if done.returncode != 0 or not files.cert.exists():
        raise BenchError(f"openssl req failed: {done.stderr.strip()[-200:]}")
    return files


def wait_ready_tls(server: Server, timeout: float = READY_TIMEOUT) -> None:
    """processes.wait_ready over TLS: a 101 to an upgrade sent through a TLS connection."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    wait_ready(server, timeout, context)


def raise_nofile_for(connections: int) -> str:
    """Raise this process's RLIMIT_NOFILE (soft and hard; root may raise the hard limit up
    to fs.nr_open) so its children can hold ``connections``; "" or why it could not.

    Only this process and the servers and wsload it starts get the higher limit.
    """
    wanted = connections + NOFILE_SLACK
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft >= wanted:
        return ""
    try:
        ceiling = int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        ceiling = wanted
    target = min(wanted, ceiling)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(target, hard)))
    except (ValueError, OSError) as exc:  # not root, or no CAP_SYS_RESOURCE (containers)
        fits = max(0, max(soft, hard) - NOFILE_SLACK)
        return (
            f"cannot raise the file limit from {hard} to {target} ({exc}); "
            f"--scale-conns {fits} fits under it"
        )
    if target < wanted:
        return f"file limit {target} (fs.nr_open) is below the {wanted} wanted"
    return ""


class ActiveWindow(CpuWindow):
    """CpuWindow that also reads the server tree's RSS at the window's end (``rss``)."""

    def __init__(self, server: Server, warmup: float, duration: float, rss: bool) -> None:
        super().__init__(server, warmup, duration)
        self.rss = rss
        self.rss_kib: int | None = None

    def _sample(self, end: str) -> None:
        super()._sample(end)
        if self.rss and end == "end":
            self.rss_kib = tree_rss_kib(self.server)
