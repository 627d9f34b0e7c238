"""Real Swoole apps' ``$server->set([...])`` arrays (tests/server/swoole_settings_corpus.py,
kept as their authors wrote them) pass ``set()``: warnings allowed, errors only for keys
refused with a reason, and for keys Swoole 6.2 does not know either (a typo gets a "did you
mean")."""

from __future__ import annotations

import pytest

from pyswoole import ConfigError
from pyswoole.server.settings import Settings
from tests.server.swoole_settings_corpus import CORPUS

#: keys of the corpus that Swoole 6.2 does not read at all (Swoole warns, pyswoole raises)
NOT_SWOOLE = {"backblog": "did you mean 'backlog'", "only_simple_http": "unknown setting"}


@pytest.mark.parametrize(("source", "array"), CORPUS, ids=[s for s, _ in CORPUS])
def test_a_real_settings_array_passes(source: str, array: dict[str, object]) -> None:
    accepted: dict[str, object] = {}
    for key, value in array.items():
        try:
            Settings().update({key: value})
        except ConfigError as exc:
            message = str(exc)
            if key in NOT_SWOOLE:
                assert NOT_SWOOLE[key] in message
            else:
                assert f"setting {key!r} is not supported: " in message, message
        else:
            accepted[key] = value
    settings = Settings()
    settings.update(accepted)  # the rest of the array, at once (cross-key checks included)
    assert set(settings) <= set(accepted) | {"max_conn", "http_compression_level"}


def test_the_corpus_is_big_enough_to_mean_something() -> None:
    assert len(CORPUS) >= 15
    assert sum(len(array) for _, array in CORPUS) >= 150
