"""``pyswoole.cli``: argument parsing, ``--set`` typing by the settings table, loading
``module:attribute`` and applying the options to the server object (no server is started
here: tests/integration/test_cli.py runs the command for real)."""

from __future__ import annotations

import argparse
import itertools
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pyswoole import (
    SWOOLE_BASE,
    SWOOLE_PROCESS,
    SWOOLE_SOCK_UNIX_STREAM,
    ConfigError,
    HttpServer,
    WebSocketServer,
    __version__,
)
from pyswoole.cli import (
    CliError,
    build_parser,
    build_server,
    configure,
    load,
    main,
    parse_log_level,
    parse_setting,
    typed_value,
)
from pyswoole.reloader import child_arguments

_names = itertools.count()


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Write a module with a unique name on sys.path; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(source: str) -> str:
        name = f"cli_app_{next(_names)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    return make


APP = """
    from pyswoole import SWOOLE_BASE, SWOOLE_PROCESS, HttpServer, WebSocketServer

    server = WebSocketServer("127.0.0.1", 9501)
    server.set(package_max_length=1000)

    @server.on("message")
    def on_message(server, frame):
        server.push(frame.fd, frame.data)

    class Holder:
        inner = server

    not_a_server = 42

    def make(host="127.0.0.1", port=9502, mode=SWOOLE_BASE):
        s = WebSocketServer(host, port, mode)
        s.on("message", on_message)
        return s

    def make_plain():
        s = HttpServer("127.0.0.1", 9503)
        s.on("request", lambda request, response: response.end("ok"))
        return s

    def make_nothing():
        return "nope"
"""


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


# -- options -----------------------------------------------------------------------------------


def test_every_option_is_in_the_help() -> None:
    text = build_parser().format_help()
    for option in (
        "--factory",
        "--host",
        "--port",
        "--workers",
        "--task-workers",
        "--mode",
        "--set KEY=VALUE",
        "--log-level",
        "--reload",
        "--reload-dir",
        "--app-dir",
        "--version",
        "MODULE:ATTRIBUTE",
    ):
        assert option in text, option


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"pyswoole {__version__} (")


def test_defaults_leave_the_object_alone() -> None:
    args = parse("app:server")
    assert (args.host, args.port, args.workers, args.task_workers, args.mode) == (None,) * 5
    assert (args.settings, args.log_level, args.reload, args.factory) == ([], None, False, False)


def test_options_are_parsed() -> None:
    args = parse(
        "app:server",
        "--host=::1",
        "--port",
        "0",
        "--workers",
        "4",
        "--task-workers",
        "2",
        "--mode",
        "process",
        "--set",
        "a=1",
        "--set",
        "b=2",
        "--log-level",
        "warning",
        "--reload",
        "--reload-dir",
        "src",
        "--reload-dir",
        "lib",
    )
    assert (args.host, args.port, args.workers, args.task_workers) == ("::1", 0, 4, 2)
    assert (args.mode, args.settings, args.log_level) == ("process", ["a=1", "b=2"], 4)
    assert args.reload and args.reload_dirs == ["src", "lib"]


@pytest.mark.parametrize(
    "argv",
    [
        ("app:server", "--port", "65536"),
        ("app:server", "--port", "http"),
        ("app:server", "--workers", "-1"),
        ("app:server", "--mode", "thread"),
        ("app:server", "--log-level", "loud"),
        ("app:server", "--rel"),  # no abbreviations: --reload must be spelled out
        (),
    ],
)
def test_bad_options_are_usage_errors(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("debug", 0),
        ("TRACE", 1),
        ("info", 2),
        ("notice", 3),
        ("warn", 4),
        ("warning", 4),
        ("error", 5),
        ("none", 6),
        ("SWOOLE_LOG_ERROR", 5),
        ("swoole_log_info", 2),
        ("0", 0),
        ("6", 6),
    ],
)
def test_log_levels_by_swoole_name_or_number(text: str, level: int) -> None:
    assert parse_log_level(text) == level


@pytest.mark.parametrize("text", ["7", "-1", "verbose", ""])
def test_unknown_log_levels(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a log level"):
        parse_log_level(text)


# -- --set typing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("worker_num=4", ("worker_num", 4)),
        ("max_wait_time=2.5", ("max_wait_time", 2.5)),
        ("max_wait_time=3", ("max_wait_time", 3)),
        ("daemonize=true", ("daemonize", True)),
        ("daemonize=0", ("daemonize", False)),
        ("websocket_compression=yes", ("websocket_compression", True)),
        ("open_websocket_ping_frame=Off", ("open_websocket_ping_frame", False)),
        ("package_max_length=2M", ("package_max_length", "2M")),
        ("package_max_length=0x100", ("package_max_length", 256)),
        ("log_file=/tmp/a=b.log", ("log_file", "/tmp/a=b.log")),
        ("cpu_affinity_ignore=0,1", ("cpu_affinity_ignore", [0, 1])),
        ("allowed_origins=https://a.test, https://b.test", None),
        ("websocket_subprotocol=chat,superchat", ("websocket_subprotocol", "chat,superchat")),
        ("tcp_fastopen=true", ("tcp_fastopen", True)),
        ("tcp_fastopen=5", ("tcp_fastopen", 5)),
        ("max_connection=10", ("max_connection", 10)),  # an alias is typed as its key
        ("no_such_key=1", ("no_such_key", "1")),  # set() refuses it, with a did-you-mean
    ],
)
def test_set_values_are_typed_by_the_settings_table(
    text: str, expected: tuple[str, Any] | None
) -> None:
    if expected is None:  # the key may be honoured or not depending on the build: its type
        key, value = parse_setting(text)
        assert value == ["https://a.test", "https://b.test"] or key != "allowed_origins"
        return
    assert parse_setting(text) == expected


def test_set_values_reach_set_with_their_types() -> None:
    server = WebSocketServer("127.0.0.1", 0)
    configure(
        server,
        parse(
            "x:y",
            "--set",
            "package_max_length=2M",
            "--set",
            "max_wait_time=1.5",
            "--set",
            "websocket_compression=true",
            "--workers",
            "3",
            "--task-workers",
            "0",
            "--log-level",
            "error",
        ),
    )
    assert server.setting == {
        "package_max_length": 2 * 1024 * 1024,
        "max_wait_time": 1.5,
        "websocket_compression": True,
        "worker_num": 3,
        "task_worker_num": 0,
        "log_level": 5,
    }


def test_json_values_for_lists() -> None:
    assert typed_value("cpu_affinity_ignore", "[2, 3]") == [2, 3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("worker_num", "expected KEY=VALUE"),
        ("=4", "expected KEY=VALUE"),
        ("worker_num=four", "'four' is not an int"),
        ("daemonize=maybe", "not a boolean"),
        ("max_wait_time=soon", "not an int or float"),
        ("cpu_affinity_ignore=[1,", "not valid JSON"),
    ],
)
def test_bad_set_values_say_which(text: str, message: str) -> None:
    with pytest.raises(CliError, match=message):
        parse_setting(text)


def test_unknown_setting_is_refused_by_set_with_a_suggestion() -> None:
    server = WebSocketServer("127.0.0.1", 0)
    with pytest.raises(ConfigError, match="did you mean 'worker_num'"):
        configure(server, parse("x:y", "--set", "worker_nums=2"))


def test_a_bad_size_is_refused_by_set() -> None:
    server = WebSocketServer("127.0.0.1", 0)
    with pytest.raises(ConfigError, match="is not a size"):
        configure(server, parse("x:y", "--set", "package_max_length=2Q"))


# -- loading -----------------------------------------------------------------------------------


def test_load_an_attribute_and_a_dotted_one(make_module: Any) -> None:
    name = make_module(APP)
    server = load(f"{name}:server")
    assert isinstance(server, WebSocketServer)
    assert load(f"{name}:Holder.inner") is server


@pytest.mark.parametrize("spec", ["app", "app:", ":server", ""])
def test_load_needs_module_colon_attribute(spec: str) -> None:
    with pytest.raises(CliError, match="expected MODULE:ATTRIBUTE"):
        load(spec)


def test_load_a_missing_module() -> None:
    with pytest.raises(CliError, match="cannot import module 'no_such_app_mod'"):
        load("no_such_app_mod:server")
    with pytest.raises(CliError, match="no module named 'no_such_pkg_x'"):
        load("no_such_pkg_x.app:server")


def test_load_a_missing_attribute(make_module: Any) -> None:
    name = make_module(APP)
    with pytest.raises(CliError, match=f"module '{name}' has no attribute 'srv'"):
        load(f"{name}:srv")
    with pytest.raises(CliError, match=r"has no attribute 'Holder\.outer'"):
        load(f"{name}:Holder.outer")


def test_a_module_that_fails_to_import_shows_its_own_error(make_module: Any) -> None:
    """Only the named module missing is a one-line error: a missing dependency of the
    app is the app's own traceback."""
    name = make_module("import no_such_dependency_x\n")
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_x"):
        load(f"{name}:server")
    broken = make_module("raise RuntimeError('broken app')\n")
    with pytest.raises(RuntimeError, match="broken app"):
        load(f"{broken}:server")


# -- applying the options to the object -------------------------------------------------------


def test_host_and_port_replace_the_main_listener(make_module: Any) -> None:
    name = make_module(APP)
    server = build_server(parse(f"{name}:server", "--host", "0.0.0.0", "--port", "0"))
    assert (server.host, server.port) == ("0.0.0.0", 0)
    assert (server.ports[0].host, server.ports[0].port) == ("0.0.0.0", 0)
    assert server.setting == {"package_max_length": 1000}  # the module's own set() stays


def test_without_host_and_port_the_object_keeps_its_address(make_module: Any) -> None:
    name = make_module(APP)
    server = build_server(parse(f"{name}:server"))
    assert (server.host, server.port, server.mode) == ("127.0.0.1", 9501, SWOOLE_BASE)


def test_mode_must_match_an_object(make_module: Any) -> None:
    name = make_module(APP)
    assert build_server(parse(f"{name}:server", "--mode", "base")).mode == SWOOLE_BASE
    with pytest.raises(CliError, match=r"built in base .* mode, not process"):
        build_server(parse(f"{name}:server", "--mode", "process"))


def test_a_factory_gets_host_port_and_mode(make_module: Any) -> None:
    name = make_module(APP)
    server = build_server(
        parse(f"{name}:make", "--factory", "--mode", "process", "--port", "0", "--host", "::1")
    )
    assert isinstance(server, WebSocketServer)
    assert (server.host, server.port, server.mode) == ("::1", 0, SWOOLE_PROCESS)
    assert build_server(parse(f"{name}:make", "--factory")).port == 9502  # its defaults


def test_a_factory_without_parameters(make_module: Any) -> None:
    name = make_module(APP)
    server = build_server(parse(f"{name}:make_plain", "--factory", "--port", "0"))
    assert isinstance(server, HttpServer) and server.port == 0
    with pytest.raises(CliError, match="not process"):
        build_server(parse(f"{name}:make_plain", "--factory", "--mode", "process"))


@pytest.mark.parametrize(
    ("attribute", "factory", "message"),
    [
        ("not_a_server", False, "is an int, not a pyswoole server"),
        ("make", False, r"not a pyswoole server \(use --factory"),
        ("make_nothing", True, "returned a str, not a pyswoole server"),
        ("not_a_server", True, "not a callable"),
    ],
)
def test_what_is_not_a_server(
    make_module: Any, attribute: str, factory: bool, message: str
) -> None:
    name = make_module(APP)
    argv = [f"{name}:{attribute}", *(["--factory"] if factory else [])]
    with pytest.raises(CliError, match=message):
        build_server(parse(*argv))


def test_port_does_not_apply_to_a_unix_listener(tmp_path: Path) -> None:
    from pyswoole.cli import _set_address

    server = WebSocketServer(str(tmp_path / "s.sock"), 0, SWOOLE_BASE, SWOOLE_SOCK_UNIX_STREAM)
    with pytest.raises(CliError, match="unix socket"):
        _set_address(server, None, 9000)
    _set_address(server, str(tmp_path / "t.sock"), None)
    assert server.ports[0].host == str(tmp_path / "t.sock")


def test_main_prints_one_line_and_returns_1(
    make_module: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    name = make_module(APP)
    assert main([f"{name}:nothing_here"]) == 1
    assert (
        capsys.readouterr().err
        == f"pyswoole: error: module '{name}' has no attribute 'nothing_here'\n"
    )
    assert main([f"{name}:server", "--set", "worker_num=0"]) == 1
    assert capsys.readouterr().err == "pyswoole: error: setting 'worker_num': must be >= 1, got 0\n"


# -- --reload ----------------------------------------------------------------------------------


def test_the_reloaded_child_gets_the_other_arguments() -> None:
    argv = [
        "app:s",
        "--reload",
        "--port",
        "0",
        "--reload-dir",
        "a",
        "--reload-dir=b",
        "--set",
        "x=1",
    ]
    assert child_arguments(argv) == ["app:s", "--port", "0", "--set", "x=1"]


def test_reload_without_watchfiles_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "watchfiles", None)  # import watchfiles -> ImportError
    assert main(["app:server", "--reload"]) == 1
    assert capsys.readouterr().err == (
        "pyswoole: error: --reload needs the watchfiles package: pip install 'pyswoole[reload]'\n"
    )


def test_reload_dir_must_be_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("watchfiles")
    missing = tmp_path / "missing"
    assert main(["app:server", "--reload", "--reload-dir", str(missing)]) == 1
    assert capsys.readouterr().err == f"pyswoole: error: --reload-dir {missing}: not a directory\n"


def test_which_modules_a_code_reload_imports_again(tmp_path: Path) -> None:
    from pyswoole.reloader import _under

    root = str(tmp_path.resolve())
    app = str(tmp_path / "app.py")
    assert _under("app", app, [root])
    assert not _under("app", "/elsewhere/app.py", [root])
    assert not _under("pyswoole.cli", str(tmp_path / "src/pyswoole/cli.py"), [root])
    assert not _under("dep", str(tmp_path / ".venv/lib/site-packages/dep.py"), [root])
    assert not _under("__main__", app, [root])
    assert not _under("builtin", None, [root])
