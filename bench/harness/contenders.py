"""The servers under test, which interpreter runs each, and the peers' throwaway venv.

pyswoole and the bare uvloop server run on the interpreter running this harness (the
project's ``.venv``) with the repo's ``src/`` first on PYTHONPATH, so the working tree is
what gets measured. websockets, aiohttp and picows run from ``bench/.peers/``, a venv made
from the same base interpreter and filled from ``bench/peers-requirements.txt``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

from harness import BenchError
from harness.features import TlsFiles
from harness.processes import last_line

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
SERVERS = BENCH / "servers"
PEERS = BENCH / ".peers"
PEERS_REQUIREMENTS = BENCH / "peers-requirements.txt"
PEERS_STAMP = PEERS / ".installed"
PIP_TIMEOUT = 900.0  # seconds for the whole peers install


@dataclass(frozen=True)
class Contender:
    name: str
    script: str
    peer: bool  # runs from the peers venv
    compression: bool  # takes --compression (permessage-deflate)
    packages: tuple[str, ...]  # distributions whose versions the JSON records
    env: tuple[tuple[str, str], ...] = ()  # extra environment variables for the server
    args: tuple[str, ...] = ()  # extra command-line arguments for the server
    runtime: str = "python"  # "php": Swoole itself (bench/servers/swoole_server.php)


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in (
        Contender("pyswoole", "pyswoole_server.py", False, True, ("pyswoole", "uvloop")),
        # pyswoole with its compiled helpers disabled: the pure-Python protocol core
        Contender(
            "pyswoole-py",
            "pyswoole_server.py",
            False,
            True,
            ("pyswoole", "uvloop"),
            (("PYSWOOLE_NO_EXTENSIONS", "1"),),
        ),
        # pyswoole with 2 and 4 worker processes (SWOOLE_BASE): on the 2-core bench machine
        # the server is pinned to one core, so these rows show the multi-process overhead,
        # not scaling
        Contender(
            "pyswoole-w2",
            "pyswoole_server.py",
            False,
            True,
            ("pyswoole", "uvloop"),
            args=("--workers", "2"),
        ),
        Contender(
            "pyswoole-w4",
            "pyswoole_server.py",
            False,
            True,
            ("pyswoole", "uvloop"),
            args=("--workers", "4"),
        ),
        Contender("websockets", "websockets_server.py", True, True, ("websockets", "uvloop")),
        Contender("aiohttp", "aiohttp_server.py", True, True, ("aiohttp", "uvloop")),
        Contender("picows", "picows_server.py", True, False, ("picows", "uvloop")),
        Contender("bare", "bare_uvloop.py", False, False, ("uvloop",)),
        # Swoole itself (PHP and its extension, where installed: `pecl install swoole`);
        # every cell says "skipped" and why where it is not
        Contender("swoole", "swoole_server.php", False, True, (), runtime="php"),
    )
}


def swoole_version(php: str = "php") -> str:
    """The loaded Swoole extension's version ("" when PHP or the extension is missing)."""
    try:
        done = subprocess.run(
            [php, "-r", 'echo phpversion("swoole") ?: "";'],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def runtime_problem(contender: Contender) -> str:
    """ "" if ``contender``'s runtime is here, else its cells' ``skipped: ...`` text."""
    if contender.runtime != "php":
        return ""
    if shutil.which("php") is None:
        return "skipped: no php (Swoole needs PHP and its extension: pecl install swoole)"
    if not swoole_version():
        return "skipped: PHP's swoole extension is not loaded (pecl install swoole)"
    return ""


def server_command(
    contender: Contender,
    python: str,
    port: int,
    fanout: bool,
    compression: bool,
    tls: TlsFiles | None = None,
) -> list[str]:
    """The server's command line (``python`` runs it, or PHP for Swoole); with ``tls`` it
    serves wss:// with that certificate."""
    interpreter = "php" if contender.runtime == "php" else python
    cmd = [interpreter, str(SERVERS / contender.script), "--port", str(port), *contender.args]
    if fanout:
        cmd.append("--fanout")
    if compression:
        cmd.append("--compression")
    if tls is not None:
        cmd += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    return cmd


def server_env(contender: Contender) -> dict[str, str]:
    """The harness's environment; local contenders get ``src/`` first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYSWOOLE_NO_EXTENSIONS", None)  # only a contender's own setting counts
    env.update(contender.env)
    if not contender.peer:
        path = [str(REPO / "src"), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    return env


def peers_python() -> Path:
    """The peers venv's interpreter, creating or refreshing the venv if needed."""
    python = PEERS / "bin" / "python"
    wanted = requirements_digest()
    if python.exists() and stamp() == wanted:
        return python
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(PEERS)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    try:
        done = subprocess.run(
            [*pip, "-r", str(PEERS_REQUIREMENTS)],
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"peers venv: {exc}") from exc
    if done.returncode != 0:
        raise BenchError(f"peers venv: pip failed: {last_line(done.stderr)}")
    PEERS_STAMP.write_text(wanted)
    return python


def requirements_digest() -> str:
    return hashlib.sha256(PEERS_REQUIREMENTS.read_bytes()).hexdigest()


def stamp() -> str:
    try:
        return PEERS_STAMP.read_text()
    except OSError:
        return ""


def versions(python: str, packages: list[str]) -> dict[str, str]:
    """Installed versions of ``packages`` as seen by ``python`` (missing ones are left out)."""
    code = (
        "import importlib.metadata as m, json, platform, sys\n"
        "v = {'python': platform.python_version()}\n"
        "for p in sys.argv[1:]:\n"
        "    try: v[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(v))\n"
    )
    try:
        done = subprocess.run(
            [python, "-c", code, *packages], capture_output=True, text=True, timeout=60
        )
        found: dict[str, str] = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}
    return found


def local_python() -> str:
    return sys.executable
