"""What importing pyswoole loads (issue 17: ``import pyswoole`` under 50 ms).

``import pyswoole`` loads the constants and exceptions only; the public classes load on
first use (a module ``__getattr__``, PEP 562). ``from pyswoole import WebSocketServer`` loads
the server but not what only some requests or settings need (MIME types, e-mail dates,
temporary files, ``logging.config``...), which is imported where it is used. Each check runs
in a fresh interpreter and compares ``sys.modules`` with a bare interpreter's: deterministic,
no timing (``bench/startup.py`` measures the times).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import pyswoole

#: never loaded by ``import pyswoole``
NOT_BY_IMPORT = [
    "asyncio",
    "ssl",
    "socket",
    "selectors",
    "typing",
    "re",
    "json",
    "pickle",
    "zlib",
    "threading",
    "concurrent.futures",
    "multiprocessing",
    "subprocess",
    "ctypes",
    "mmap",
    "tempfile",
    "mimetypes",
    "email",
    "http.cookies",
    "logging",
    "httptools",
    "brotli",
    "numpy",
    "pyswoole.server",
    "pyswoole.runtime",
    "pyswoole.protocol",
    "pyswoole.memory",
    "pyswoole.process",
    "pyswoole.cluster",
    "pyswoole.metrics",
]

#: never loaded by ``from pyswoole import WebSocketServer`` (each is imported where it is
#: used: a static file, an upload, a Date header, ``log_config``, a Table or Lock...)
NOT_BY_SERVER = [
    "mimetypes",
    "email",
    "email.utils",
    "html",
    "secrets",
    "tempfile",
    "logging.config",
    "ctypes",
    "multiprocessing",
    "http.cookies",
    "numpy",
    "redis",
    "pyswoole.memory",
    "pyswoole.process.user",
    "pyswoole.cluster.redis_backend",
    "pyswoole.reloader",
    "pyswoole.testing",
]


def loaded_by(statement: str) -> set[str]:
    """The modules ``statement`` adds to a fresh interpreter's ``sys.modules``."""
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        f"{statement}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    # -I would drop the editable install's path hook; -S is not used for the same reason.
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(out.stdout))


def test_import_pyswoole_loads_only_constants_and_exceptions() -> None:
    loaded = loaded_by("import pyswoole")
    assert {m for m in loaded if m.startswith("pyswoole")} == {
        "pyswoole",
        "pyswoole.constants",
        "pyswoole.exceptions",
    }
    assert sorted(loaded & set(NOT_BY_IMPORT)) == []


def test_the_server_import_leaves_rarely_needed_modules_unloaded() -> None:
    loaded = loaded_by("from pyswoole import WebSocketServer, HttpServer, Server")
    assert "asyncio" in loaded and "pyswoole.server.base" in loaded  # (it did load the server)
    assert sorted(loaded & set(NOT_BY_SERVER)) == []


def test_the_memory_classes_load_on_their_own() -> None:
    loaded = loaded_by("from pyswoole import Table, Atomic, Lock")
    assert "pyswoole.memory.table" in loaded
    assert "pyswoole.server" not in loaded


@pytest.mark.parametrize("name", [n for n in pyswoole.__all__ if not n.isupper()])
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(pyswoole, name)
    assert value is not None
    assert name in dir(pyswoole)
    if isinstance(value, type) and name != "__version__":
        assert value.__name__ == name or name == "Timer"


def test_lazy_names_are_the_submodules_objects() -> None:
    from pyswoole.memory import Table
    from pyswoole.process.user import Process
    from pyswoole.server import Frame, WebSocketServer
    from pyswoole.server.timer import Timer

    assert pyswoole.WebSocketServer is WebSocketServer
    assert pyswoole.Frame is Frame
    assert pyswoole.Table is Table
    assert pyswoole.Process is Process
    assert pyswoole.Timer is Timer


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        _ = pyswoole.NoSuchThing  # type: ignore[attr-defined]
    assert not hasattr(pyswoole, "TYPE_CHECKING")


def test_star_import_gives_every_public_name() -> None:
    loaded = loaded_by(
        "from pyswoole import *\n"
        "import pyswoole\n"
        "assert all(name in globals() for name in pyswoole.__all__)"
    )
    assert "pyswoole.server" in loaded
