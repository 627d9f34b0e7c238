"""``server/dispatch.py``: how the SWOOLE_PROCESS master chooses a connection's worker.

The end-to-end behaviour (real workers, real clients) is in
``tests/integration/test_dispatch.py``; here each rule is checked on its own, with a real
:class:`WorkerLoad` (shared memory, written as a worker would).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import pytest

from pyswoole.server.dispatch import (
    DISPATCH_CLOSE,
    DISPATCH_CONNECT,
    DISPATCH_DATA,
    Dispatcher,
    WorkerLoad,
    ip_key,
)


def make(mode: int, n: int = 3, func: Any = None, load: WorkerLoad | None = None) -> Dispatcher:
    return Dispatcher(object(), n, mode, func, load)


def test_swoole_event_types() -> None:
    """Swoole's dispatch_func ``$type``: 0 data, 4 close, 5 connect."""
    assert (DISPATCH_DATA, DISPATCH_CLOSE, DISPATCH_CONNECT) == (0, 4, 5)


def test_ip_key_is_s_addr_in_native_order() -> None:
    """Swoole hashes ``sin_addr.s_addr`` read as a native uint32 (not ``ip2long``)."""
    assert ip_key("127.0.0.1") == int.from_bytes(bytes([127, 0, 0, 1]), sys.byteorder)
    if sys.byteorder == "little":
        assert ip_key("127.0.0.1") == 0x0100007F
        assert ip_key("10.1.2.3") == 0x0302010A
    # IPv6: the last 32 bits (an IPv4-mapped address hashes like the IPv4 one)
    assert ip_key("::ffff:127.0.0.1") == ip_key("127.0.0.1")
    assert ip_key("") == 0


def test_round_robin_counts_connections() -> None:
    d = make(1)
    assert [d.choose(fd, "127.0.0.1", DISPATCH_DATA, None) for fd in (9, 9, 4, 7, 1)] == [
        0,
        1,
        2,
        0,
        1,
    ]


@pytest.mark.parametrize("mode", [2, 5])
def test_fd_mode_and_unbound_uid_mode(mode: int) -> None:
    d = make(mode, 4)
    assert [d.choose(fd, "10.0.0.1", DISPATCH_DATA, None) for fd in (1, 2, 7, 8)] == [1, 2, 3, 0]


def test_ip_mode() -> None:
    d = make(4, 4)
    assert d.choose(1, "127.0.0.1", DISPATCH_DATA, None) == ip_key("127.0.0.1") % 4
    assert d.choose(2, "127.0.0.1", DISPATCH_DATA, None) == ip_key("127.0.0.1") % 4
    assert d.choose(3, "10.0.0.2", DISPATCH_DATA, None) == ip_key("10.0.0.2") % 4


def test_fewest_connections_mode() -> None:
    d = make(8)
    assert [d.choose(fd, "", DISPATCH_DATA, None) for fd in (5, 6, 7)] == [0, 1, 2]
    d.released(1)
    assert d.choose(8, "", DISPATCH_DATA, None) == 1
    d.released(0)
    d.released(2)
    assert d.choose(9, "", DISPATCH_DATA, None) == 0
    d.take(2)  # a connection moved to worker 2: one each, the lowest id wins
    assert d.choose(10, "", DISPATCH_DATA, None) == 0
    assert d.choose(11, "", DISPATCH_DATA, None) == 1


@pytest.mark.parametrize("mode", [3, 7, 9, 10])
def test_idle_mode_skips_busy_workers(mode: int) -> None:
    load = WorkerLoad(3)
    d = make(mode, 3, load=load)
    assert d.sent is not None
    first = d.choose(1, "", DISPATCH_DATA, None)
    assert first == 0
    d.sent[0] += 1  # the master sent worker 0 an event...
    load.begin(0)  # ...whose callback is running (and blocks)
    assert [d.choose(fd, "", DISPATCH_DATA, None) for fd in (2, 3, 4)] == [1, 2, 1]
    load.end(0)
    assert d.choose(5, "", DISPATCH_DATA, None) == 2  # round robin goes on
    assert d.choose(6, "", DISPATCH_DATA, None) == 0  # idle again
    load.close()


def test_idle_mode_when_every_worker_is_busy() -> None:
    """None idle: the worker whose running callback started last (a stuck one last),
    then the fewest unfinished events."""
    load = WorkerLoad(2)
    d = make(3, 2, load=load)
    assert d.sent is not None
    d.sent[0] = d.sent[1] = 1
    load.begin(0)
    time.sleep(0.01)  # worker 0's callback has run longer
    load.begin(1)
    assert d.choose(1, "", DISPATCH_DATA, None) == 1
    load.end(1)  # done with its callback, but another event waits in its inbox
    d.sent[1] += 1
    assert d.choose(2, "", DISPATCH_DATA, None) == 1
    load.close()


def test_a_worker_that_died_in_a_callback_is_not_busy_forever() -> None:
    """Its replacement counts the event that will never end (WorkerLoad.recover)."""
    load = WorkerLoad(2)
    d = make(3, 2, load=load)
    assert d.sent is not None
    d.sent[0] = 2
    load.begin(0)
    load.end(0)
    load.begin(0)  # killed inside this callback
    load.recover(0)  # the new process for worker 0
    assert load.read(0) == (2, 0.0)
    assert d.choose(1, "", DISPATCH_DATA, None) == 0  # idle again
    load.recover(1)  # nothing to recover
    assert load.read(1) == (0, 0.0)
    load.close()


def test_other_modes_do_not_track_load() -> None:
    assert make(2, load=WorkerLoad(3)).sent is None


def test_dispatch_func_result_picks_the_worker() -> None:
    calls: list[tuple[Any, ...]] = []

    def func(server: Any, fd: int, kind: int, data: Any) -> int:
        calls.append((fd, kind, data))
        return 7

    d = make(2, 3, func=func)
    assert d.has_func
    assert d.choose(4, "", DISPATCH_DATA, b"GET / HTTP/1.1") == 7 % 3
    assert calls == [(4, 0, b"GET / HTTP/1.1")]


def test_dispatch_func_with_three_parameters() -> None:
    d = make(2, 3, func=lambda server, fd, kind: fd + 1)
    assert d.choose(4, "", DISPATCH_CONNECT, b"") == 2


def test_negative_result_falls_back_to_dispatch_mode() -> None:
    """Swoole's DISPATCH_RESULT_USERFUNC_FALLBACK (-3): dispatch_mode decides."""
    d = make(1, 3, func=lambda server, fd, kind, data: -3)
    assert [d.choose(fd, "", DISPATCH_DATA, None) for fd in (5, 5, 5)] == [0, 1, 2]


@pytest.mark.parametrize(
    ("func", "message"),
    [
        (lambda server, fd, kind, data: 1 / 0, "dispatch_func failed"),
        (lambda server, fd, kind, data: "2", "not an int"),
        (lambda server, fd, kind, data: True, "not an int"),
        (lambda server, fd, kind, data: None, "not an int"),
    ],
)
def test_broken_dispatch_func_falls_back_to_fd_mode(
    func: Any, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    d = make(1, 3, func=func)  # (round robin would give 0)
    with caplog.at_level(logging.ERROR, logger="pyswoole"):
        assert d.choose(5, "", DISPATCH_DATA, None) == 5 % 3
    assert message in caplog.text
