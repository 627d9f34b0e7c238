"""Event names (any case, snake_case) and callbacks cut to their arity."""

from __future__ import annotations

import pytest

from pyswoole import ConfigError
from pyswoole.server.events import adapt, canonical_event, is_async, positional_arity


@pytest.mark.parametrize(
    "name", ["workerStart", "WorkerStart", "worker_start", "WORKERSTART", "onWorkerStart"]
)
def test_event_name_forms(name: str) -> None:
    assert canonical_event(name) == "workerStart"


def test_before_handshake_response_name() -> None:
    assert canonical_event("before_handshake_response") == "beforeHandshakeResponse"


def test_unknown_event() -> None:
    with pytest.raises(ConfigError, match="unknown event 'frobnicate'"):
        canonical_event("frobnicate")


def test_callback_cut_to_arity() -> None:
    calls: list[tuple[object, ...]] = []

    def two(server: object, fd: object) -> None:
        calls.append((server, fd))

    adapted = adapt("close", two)
    adapted("srv", 7, 0)
    assert calls == [("srv", 7)]


def test_full_arity_and_varargs_are_not_wrapped() -> None:
    def full(server: object, fd: object, reactor_id: object) -> None:
        pass

    def star(*args: object) -> None:
        pass

    assert adapt("close", full) is full
    assert adapt("close", star) is star
    assert positional_arity(star) is None


def test_zero_arity_and_async_detection() -> None:
    hits: list[int] = []
    adapt("start", lambda: hits.append(1))("server")
    assert hits == [1]

    async def handler(server: object, frame: object) -> None:
        pass

    assert is_async(handler)
    assert not is_async(lambda: None)
