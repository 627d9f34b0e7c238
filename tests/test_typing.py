"""pyswoole.typing and the typed ``on()``: mypy accepts the callbacks of
tests/typing/callbacks_ok.py and rejects exactly the marked lines of
tests/typing/callbacks_wrong.py; every Swoole event has its overload; the decorator
form still checks the event name at once at run time."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import pyswoole.typing as pyswoole_typing
from pyswoole import ConfigError, HttpServer, WebSocketServer
from pyswoole.server.callbacks import EventRegistration
from pyswoole.server.events import EVENTS

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "typing"


def run_mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.timeout(300)
def test_mypy_accepts_well_typed_callbacks() -> None:
    result = run_mypy(CASES / "callbacks_ok.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


@pytest.mark.timeout(300)
def test_mypy_rejects_each_wrong_signature() -> None:
    path = CASES / "callbacks_wrong.py"
    marked = {
        number
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if line.rstrip().endswith("# error")
    }
    assert len(marked) == 6
    result = run_mypy(path)
    assert result.returncode == 1, result.stdout + result.stderr
    reported = {
        int(m.group(1)) for m in re.finditer(r"callbacks_wrong\.py:(\d+): error", result.stdout)
    }
    assert reported == marked, result.stdout
    assert "[type-var]" in result.stdout


def test_well_typed_example_registers_at_run_time() -> None:
    """The accepted example is also a valid program: every on() in it succeeds."""
    names = runpy.run_path(str(CASES / "callbacks_ok.py"))
    server = names["server"]
    assert server.get_callback("message") is names["on_message"]
    assert server.get_callback("worker_stop") is names["on_worker_stop"]
    assert names["port"].get_callback("message") is names["on_port_message"]
    assert names["tasks"].get_callback("task") is names["on_task_object"]


def _literal_names() -> set[str]:
    names: set[str] = set()
    for overload in typing.get_overloads(EventRegistration.on):
        hint = overload.__annotations__["event"]
        names.update(re.findall(r"[\"'](\w+)[\"']", hint))
    return names


def test_every_event_has_a_typed_overload_in_both_spellings() -> None:
    names = _literal_names()
    for event in EVENTS:
        snake = re.sub(r"(?<!^)([A-Z])", r"_\1", event).lower()
        assert event in names, event
        assert snake in names, snake
    assert names <= set(EVENTS) | {re.sub(r"([A-Z])", r"_\1", e).lower() for e in EVENTS}


def test_every_protocol_is_exported() -> None:
    exported = set(pyswoole_typing.__all__)
    protocols = {
        name
        for name, value in vars(pyswoole_typing).items()
        if name.startswith("On") and isinstance(value, type)
    }
    assert protocols == exported


def test_decorator_form_checks_the_event_name_at_once() -> None:
    server = WebSocketServer("127.0.0.1", 0)
    with pytest.raises(ConfigError, match="unknown event"):
        server.on("mesage")
    with pytest.raises(ConfigError, match="not available on HttpServer"):
        HttpServer("127.0.0.1", 0).on("message")
    with pytest.raises(ConfigError, match="not a port event"):
        server.listen("127.0.0.1", 0).on("workerStart")
    decorator = server.on("onMessage")  # another spelling: unchecked by mypy, valid here

    def handler(server: object, frame: object) -> None:
        del server, frame

    assert decorator(handler) is handler
    assert server.get_callback("message") is handler
    assert server.on("close", handler) is True
