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
        ("package_max_length", "1X", "'package_max_length': '1X' is not a size"),
        ("worker_num", "2", "'worker_num': expected int, got str"),
        ("package_max_length", True, "'package_max_length': expected int, got bool"),
        ("package_max_length", 0, "'package_max_length': must be >= 1"),
        ("open_websocket_close_frame", 2, "'open_websocket_close_frame': expected bool"),
        ("open_websocket_close_frame", "yes", "'open_websocket_close_frame': expected bool"),
        ("worker_nums", 2, "unknown setting 'worker_nums'; did you mean 'worker_num'"),
        ("open_length_check", True, "'open_length_check' is not supported: TCP framing"),
        ("websocket_mask", True, "must not mask frames"),
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
    assert describe() in readme, "README.md: run scripts/readme_settings.py"


# -- Swoole's whole vocabulary ---------------------------------------------------------------


def test_php_idioms_pass() -> None:
    """What a PHP settings array translates to: ints for booleans, Swoole's constants."""
    import pyswoole

    settings = Settings()
    settings.update(
        {
            "daemonize": 0,
            "open_tcp_keepalive": 1,
            "log_level": pyswoole.SWOOLE_LOG_WARNING,
            "dispatch_mode": pyswoole.SWOOLE_DISPATCH_FDMOD,
            "package_max_length": 8 * 1024 * 1024,
        }
    )
    assert settings["daemonize"] is False
    assert settings["open_tcp_keepalive"] is True
    assert settings["log_level"] == 4


def test_aliases_are_stored_under_the_canonical_key() -> None:
    settings = Settings()
    settings.update({"max_connection": 100})
    assert settings.get_value("max_conn") == 100
    assert "max_connection" not in settings


def test_ignored_keys_are_accepted_and_warned_about_once_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings()
    settings.update({"reactor_num": 4, "hook_flags": 2147481599, "task_ipc_mode": 3})
    assert [key for key, _ in settings.ignored()] == ["reactor_num", "hook_flags", "task_ipc_mode"]
    with caplog.at_level("WARNING", logger="pyswoole"):
        settings.check_startable()
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 3
    assert "'reactor_num' has no effect in pyswoole: one event loop per worker" in warned[0]


def test_pending_keys_fail_at_start_only_when_they_ask_for_something(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pyswoole.server.setting_keys import PENDING, Setting

    # (no key is pending today: a stand-in one keeps the mechanism tested)
    pending = Setting("future_thing", (object,), None, "the thing is not built yet", effect=PENDING)
    monkeypatch.setitem(SETTINGS, "future_thing", pending)
    off = Settings()
    off.update({"future_thing": None, "http_compression": False})
    off.check_startable()  # asks for nothing: starts
    on = Settings()
    on.update({"future_thing": {"^/a": "/b"}})
    with pytest.raises(ConfigError, match=r"'future_thing': the thing is not built yet"):
        on.check_startable()


def test_refused_keys_say_why() -> None:
    with pytest.raises(ConfigError, match="'open_mqtt_protocol' is not supported: the MQTT"):
        Settings().update({"open_mqtt_protocol": True})


def test_every_key_has_a_class_and_a_reason() -> None:
    from pyswoole.server.setting_keys import HONOURED, IGNORED, PENDING, REFUSED

    for setting in SETTINGS.values():
        assert setting.effect in (HONOURED, IGNORED, PENDING, REFUSED), setting.name
        assert setting.doc, setting.name


def test_unknown_key_far_from_any_gets_no_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        Settings().update({"zzzzqqq": 1})
    assert str(info.value) == "unknown setting 'zzzzqqq'"


def test_heartbeat_idle_time_alone_turns_the_check_on() -> None:
    """Swoole: with only heartbeat_idle_time, the check runs every idle/2 seconds."""
    settings = Settings()
    settings.update({"heartbeat_idle_time": 60})
    assert settings.get_value("heartbeat_check_interval") == 30.0
    assert settings.get_value("heartbeat_idle_time") == 60.0


def test_swooles_other_spellings_are_aliases() -> None:
    settings = Settings()
    settings.update({"input_buffer_size": 1 << 20, "stack_size": 1 << 21})
    assert settings.get_value("buffer_input_size") == 1 << 20
    assert settings.get_value("c_stack_size") == 1 << 21
    with pytest.raises(ConfigError, match="'package_body_offset' is not supported"):
        settings.update({"package_body_start": 4})


def test_sizes_as_php_ini_quantities() -> None:
    """Swoole 6 reads size settings with php_swoole_parse_to_size(): '2M' is 2 MiB."""
    settings = Settings()
    settings.update({"package_max_length": "2M", "socket_buffer_size": "512k"})
    assert settings["package_max_length"] == 2 * 1024 * 1024
    assert settings["socket_buffer_size"] == 512 * 1024
