"""The ``pyswoole`` command: run a server object from a module, as uvicorn runs an app.

::

    pyswoole app:server [--host H] [--port P] [--workers N] [--task-workers N]
                        [--mode base|process] [--set KEY=VALUE ...] [--log-level LEVEL]
                        [--factory] [--reload [--reload-dir DIR ...]] [--app-dir DIR]
    python -m pyswoole app:server ...

``app:server`` names a ``Server``/``HttpServer``/``WebSocketServer`` object (``module:attr``,
the attribute may be dotted); with ``--factory`` it names a callable returning one. The CLI
only parses and calls the public API: it imports the object, applies the options, calls
``set()`` and ``start()``.

How the options reach an object that was built already:

- ``--host``/``--port`` replace the address of the object's main listener (not started yet,
  so nothing was bound); without them the object keeps its own. Extra ports (``listen()``)
  keep theirs.
- ``--mode`` is a constructor argument (as in Swoole): an object built in another mode is
  refused, naming the fix. With ``--factory``, a factory that takes ``host``, ``port`` or
  ``mode`` keyword parameters is called with the options given, so ``--mode`` reaches the
  constructor.
- ``--workers``, ``--task-workers``, ``--log-level`` and every ``--set`` are ``set()`` on top
  of what the module set (the command line wins). ``--set`` values are typed by the
  settings table (``pyswoole.server.setting_keys``): ``true/false/1/0`` for booleans, ints,
  floats, sizes (``2M``), comma-separated lists, JSON for lists and dicts.

Errors at start are one line on stderr (``pyswoole: error: ...``) and exit code 1: an
address in use (naming it and, where ``/proc`` tells, the process holding it), a privileged
port, an unknown host, a missing module or attribute, a bad option or setting. An
exception raised while importing the module is the program's own: its traceback is shown.

``--reload`` runs the server in a child process and restarts it when a ``.py`` file under
the watched directories changes (``watchfiles``; ``pip install 'pyswoole[reload]'``); in
SWOOLE_PROCESS mode a change is a ``reload()`` of the workers instead, which keeps the
connections. See :mod:`pyswoole.reloader`.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .constants import SWOOLE_BASE, SWOOLE_PROCESS, SWOOLE_SOCK_UNIX_STREAM
from .exceptions import ConfigError, ServerStateError
from .server import Server
from .server.setting_keys import ALIASES, SETTINGS, SIZE_KEYS

__all__ = ["LOG_LEVELS", "CliError", "build_parser", "load", "main", "parse_setting"]

MODES = {"base": SWOOLE_BASE, "process": SWOOLE_PROCESS}
MODE_NAMES = {SWOOLE_BASE: "base (SWOOLE_BASE)", SWOOLE_PROCESS: "process (SWOOLE_PROCESS)"}

#: Swoole's SWOOLE_LOG_* names (without the prefix) -> their numbers
LOG_LEVELS = {
    "debug": 0,
    "trace": 1,
    "info": 2,
    "notice": 3,
    "warning": 4,
    "warn": 4,
    "error": 5,
    "none": 6,
}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class CliError(Exception):
    """A command-line mistake: printed as one line, exit code 1."""


# -- parsing -----------------------------------------------------------------------------------


def parse_log_level(text: str) -> int:
    """``info``, ``SWOOLE_LOG_INFO`` or ``2`` -> 2 (Swoole's numbering, 0 debug .. 6 none)."""
    key = text.strip().lower().removeprefix("swoole_log_")
    if key.isdigit() and 0 <= int(key) <= 6:
        return int(key)
    if key in LOG_LEVELS:
        return LOG_LEVELS[key]
    names = ", ".join(name for name in LOG_LEVELS if name != "warn")
    raise argparse.ArgumentTypeError(f"{text!r} is not a log level ({names} or 0-6)")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is not in 0..65535 (0: any free port)")
    return port


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def typed_value(key: str, text: str) -> Any:
    """``text`` as the type the settings table declares for ``key`` (an unknown key keeps
    the text: ``set()`` then refuses it with a "did you mean")."""
    setting = SETTINGS.get(ALIASES.get(key, key))
    if setting is None:
        return text
    types = setting.types
    stripped = text.strip()
    lowered = stripped.lower()
    if stripped[:1] in ("[", "{") and (dict in types or list in types or object in types):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise CliError(f"--set {key}: {text!r} is not valid JSON ({exc})") from None
    if type(None) in types and lowered in ("none", "null"):
        return None
    if bool in types and lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    if int in types:
        try:
            return int(stripped, 0) if stripped[:2].lower() in ("0x", "0o") else int(stripped)
        except ValueError:
            pass
        if setting.name in SIZE_KEYS:
            return stripped  # '2M': set() reads sizes as Swoole does
    if float in types:
        try:
            return float(stripped)
        except ValueError:
            pass
    if str in types or types == (object,):
        return text
    if list in types or tuple in types:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if items and all(_is_int(item) for item in items):
            return [int(item) for item in items]
        return items
    if bool in types:
        raise CliError(f"--set {key}: {text!r} is not a boolean (true/false, 1/0, yes/no, on/off)")
    names = " or ".join(t.__name__ for t in types)
    raise CliError(f"--set {key}: {text!r} is not {_article(names)} {names}")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def parse_setting(text: str) -> tuple[str, Any]:
    """``"worker_num=4"`` -> ``("worker_num", 4)``, typed by the settings table."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise CliError(f"--set {text!r}: expected KEY=VALUE (e.g. --set package_max_length=4M)")
    return key, typed_value(key, value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyswoole",
        description="Run a pyswoole server object: a WebSocketServer, HttpServer or Server "
        "named module:attribute (or a factory of one with --factory).",
        epilog="Examples: pyswoole app:server --port 9501 --workers 4; "
        "pyswoole app:make_server --factory --mode process --set max_wait_time=10; "
        "pyswoole examples.chat.app:server --reload. Errors at start are one line on stderr, "
        "exit code 1.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "app",
        metavar="MODULE:ATTRIBUTE",
        help="the server object to run, e.g. app:server or pkg.app:servers.main",
    )
    parser.add_argument(
        "--factory",
        action="store_true",
        help="MODULE:ATTRIBUTE is a callable returning the server; it is called with the "
        "host, port and mode options given, for those of its parameters named so",
    )
    parser.add_argument(
        "--host",
        help="address (or unix socket path) of the main listener; default: the object's",
    )
    parser.add_argument(
        "--port",
        type=_port,
        help="port of the main listener (0: any free port); default: the object's",
    )
    parser.add_argument(
        "--workers", type=_count, metavar="N", help="worker processes (setting worker_num)"
    )
    parser.add_argument(
        "--task-workers",
        type=_count,
        metavar="N",
        help="task worker processes (setting task_worker_num; needs on('task'))",
    )
    parser.add_argument(
        "--mode",
        choices=sorted(MODES),
        help="base: SWOOLE_BASE (workers accept and own their connections); process: "
        "SWOOLE_PROCESS (a master owns every connection). A constructor argument: must match "
        "the object's unless --factory passes it to the factory",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any server setting, typed by the settings table (true/false, 4M, a,b,c, JSON); "
        "repeatable; applied after the module's own set()",
    )
    parser.add_argument(
        "--log-level",
        type=parse_log_level,
        metavar="LEVEL",
        help="debug, trace, info, notice, warning, error, none, or Swoole's 0-6 (setting "
        "log_level)",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="restart the server when a .py file changes; in process mode reload() the "
        "workers with the new code instead (connections stay). Needs watchfiles: "
        "pip install 'pyswoole[reload]'",
    )
    parser.add_argument(
        "--reload-dir",
        dest="reload_dirs",
        action="append",
        default=[],
        metavar="DIR",
        help="directory to watch with --reload (repeatable; default: --app-dir)",
    )
    parser.add_argument(
        "--app-dir",
        default=".",
        metavar="DIR",
        help="directory put first on sys.path to import MODULE (default: the current one)",
    )
    parser.add_argument("--version", action="version", version=version_text())
    return parser


def version_text() -> str:
    from .protocol.frames import SPEEDUPS

    build = "compiled helpers" if SPEEDUPS else "pure Python"
    return (
        f"pyswoole {__version__} ({build}; {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.system()})"
    )


# -- loading and configuring -------------------------------------------------------------------


def load(spec: str) -> Any:
    """Import ``module:attr.path`` and return the attribute. A missing module (the named one,
    not a module it imports) or attribute is a :class:`CliError`."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"{spec!r}: expected MODULE:ATTRIBUTE (e.g. app:server)")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise CliError(
                f"cannot import module {module_name!r}: no module named {missing!r}"
            ) from None
        raise
    value: Any = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise CliError(f"module {module_name!r} has no attribute {attr!r}") from None
    return value


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The constructor options given on the command line."""
    return {
        name: value
        for name, value in (
            ("host", args.host),
            ("port", args.port),
            ("mode", None if args.mode is None else MODES[args.mode]),
        )
        if value is not None
    }


def factory_arguments(args: argparse.Namespace) -> dict[str, Any] | None:
    """What ``--factory`` calls the factory with (None without ``--factory``)."""
    return _accepted(load(args.app), _given(args)) if args.factory else None


def build_server(args: argparse.Namespace) -> Server:
    """The server ``args.app`` names, with ``--host/--port/--mode`` applied."""
    target = load(args.app)
    given = _given(args)
    if args.factory:
        if not callable(target):
            kind = type(target).__name__
            raise CliError(f"{args.app} is {_article(kind)} {kind}, not a callable (--factory)")
        server = target(**_accepted(target, given))
        what = f"the factory {args.app} returned"
        if not isinstance(server, Server):
            kind = type(server).__name__
            raise CliError(f"{what} {_article(kind)} {kind}, not a pyswoole server")
    else:
        if not isinstance(target, Server):
            hint = " (use --factory if it builds one)" if callable(target) else ""
            kind = type(target).__name__
            raise CliError(f"{args.app} is {_article(kind)} {kind}, not a pyswoole server{hint}")
        server = target
        what = args.app
    if "mode" in given and given["mode"] != server.mode:
        raise CliError(
            f"{what} is built in {MODE_NAMES[server.mode]} mode, not {args.mode}: the mode is a "
            "constructor argument; pass it there, or use --factory with a factory taking mode"
        )
    _set_address(server, args.host, args.port)
    return server


def _accepted(factory: Any, given: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``given`` that ``factory`` takes."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(given)
    takes = {
        name
        for name, p in parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return {name: value for name, value in given.items() if name in takes}


def _set_address(server: Server, host: str | None, port: int | None) -> None:
    """Point the main listener (not bound yet) at ``host``/``port``."""
    if server.ready.is_set() or server.get_socket() is not None:
        raise CliError("the server object is already running")
    listener = server._listeners[0]
    if listener.sock_type == SWOOLE_SOCK_UNIX_STREAM and port is not None:
        raise CliError(
            f"the main listener is the unix socket {listener.host}: --port does not apply"
        )
    if host is not None:
        if not host:
            raise CliError("--host must not be empty")
        listener.host = host
        server.host = host
    if port is not None:
        listener.port = port


def configure(server: Server, args: argparse.Namespace) -> None:
    """``set()`` the settings the command line asks for (on top of the module's)."""
    settings: dict[str, Any] = dict(parse_setting(text) for text in args.settings)
    if args.workers is not None:
        settings["worker_num"] = args.workers
    if args.task_workers is not None:
        settings["task_worker_num"] = args.task_workers
    if args.log_level is not None:
        settings["log_level"] = args.log_level
    if settings:
        server.set(settings)


def run(args: argparse.Namespace) -> int:
    """Build, configure and start the server (blocks until it stops)."""
    server = build_server(args)
    configure(server, args)
    from .reloader import install_code_reload

    install_code_reload(server, args.app, factory_arguments(args))  # under --reload only
    return 0 if server.start() else 1


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(arguments)
    app_dir = os.path.abspath(args.app_dir)
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    try:
        if args.reload:
            from .reloader import supervise

            return supervise(arguments, args.reload_dirs or [app_dir])
        return run(args)
    except (CliError, ConfigError, ServerStateError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"pyswoole: error: {message}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
