"""Settings: every key validated, unknown or ill-typed ones named in the error."""

from __future__ import annotations

import pytest

from pyswoole import ConfigError
from pyswoole.server.settings import SETTINGS, Settings, describe


def test_defaults_match_swoole() -> None:
    settings = Settings()
    assert settings.get_value("package_max_length") == 2 * 1024 * 1024
    assert settings.get_value("worker_num") == 1
    assert settings.get_value("heartbeat_check_interval") == 0
    assert settings.get_value("max_conn") >= 1


def test_set_values_are_kept_and_numbers_normalised() -> None:
    settings = Settings()
    settings.update({"package_max_length": 1024, "heartbeat_check_interval": 1})
    assert settings["package_max_length"] == 1024
    assert settings.get_value("heartbeat_check_interval") == 1.0
    assert settings.get_value("heartbeat_idle_time") == 2.0
    assert dict(settings) == {"package_max_length": 1024, "heartbeat_check_interval": 1.0}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("nope", 1, "unknown setting 'nope'"),
        ("package_max_length", "1M", "'package_max_length': expected int, got str"),
        ("package_max_length", True, "'package_max_length': expected int, got bool"),
        ("package_max_length", 0, "'package_max_length': must be >= 1"),
        ("open_websocket_close_frame", 1, "'open_websocket_close_frame': expected bool"),
        ("websocket_subprotocol", "chat, bad token", "not a valid token"),
        ("worker_num", 0, "'worker_num': must be >= 1"),
    ],
)
def test_bad_values_raise_naming_the_key(key: str, value: object, message: str) -> None:
    settings = Settings()
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        settings.update({key: value})
    assert key not in settings


def test_nothing_applied_when_one_key_is_bad() -> None:
    settings = Settings()
    with pytest.raises(ConfigError):
        settings.update({"package_max_length": 10, "bogus": 1})
    assert "package_max_length" not in settings


def test_idle_time_below_interval_is_rejected() -> None:
    with pytest.raises(ConfigError, match="heartbeat_idle_time"):
        Settings().update({"heartbeat_check_interval": 10, "heartbeat_idle_time": 5})


def test_subprotocols_accept_list_or_comma_string() -> None:
    settings = Settings()
    settings.update({"websocket_subprotocol": "chat, superchat"})
    assert settings.subprotocols() == ["chat", "superchat"]
    settings.update({"websocket_subprotocol": ["v2", "v1"]})
    assert settings.subprotocols() == ["v2", "v1"]


def test_describe_lists_every_setting() -> None:
    table = describe()
    for name in SETTINGS:
        assert f"`{name}`" in table


def test_the_readme_settings_table_is_describe() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert describe() in readme, "README.md's settings table: regenerate it from describe()"
