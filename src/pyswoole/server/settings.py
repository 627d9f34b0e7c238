"""Server settings: Swoole's keys, typed and validated, defined once.

Every key is declared in :data:`SETTINGS` with its type, default, bounds and meaning; the
README's settings table is generated from the same place (:func:`describe`). An unknown key,
a value of the wrong type or out of range raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from ..exceptions import ConfigError
from ..protocol.deflate import DeflateConfig
from .setting_keys import (
    ALIASES,
    HONOURED,
    IGNORED,
    PENDING,
    REFUSED,
    SETTINGS,
    Setting,
    _default_max_conn,
    default_high_watermark,
)

__all__ = ["SETTINGS", "Setting", "Settings", "default_high_watermark", "describe"]

log = logging.getLogger("pyswoole")


def _unknown(key: str) -> ConfigError:
    """Swoole only warns on an unknown key; a typo silently ignored is worse: an error, with
    the closest known keys."""
    close = difflib.get_close_matches(key, [*SETTINGS, *ALIASES], n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(f"unknown setting {key!r}{hint}")


class Settings(Mapping[str, Any]):
    """The validated settings of a server; read-only mapping of what was ``set()``."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def update(self, values: Mapping[str, Any]) -> None:
        """Validate every key first, then apply all (nothing applied if one is bad)."""
        checked: dict[str, Any] = {}
        for key, value in values.items():
            if not isinstance(key, str):
                raise ConfigError(f"setting names are strings, not {type(key).__name__}")
            key = ALIASES.get(key, key)
            setting = SETTINGS.get(key)
            if setting is None:
                raise _unknown(key)
            checked[key] = setting.validate(value)
        merged = {**self._values, **checked}
        interval = merged.get("heartbeat_check_interval", 0.0)
        idle = merged.get("heartbeat_idle_time", 0.0)
        if idle and interval and idle < interval:
            raise ConfigError("setting 'heartbeat_idle_time' must be >= heartbeat_check_interval")
        limit = merged.get("socket_buffer_size", SETTINGS["socket_buffer_size"].default)
        high = merged.get("buffer_high_watermark")
        low = merged.get("buffer_low_watermark", 0)
        if high is not None and high > limit:
            raise ConfigError(
                f"setting 'buffer_high_watermark' ({high}) must be <= socket_buffer_size ({limit})"
            )
        if low > (default_high_watermark(limit) if high is None else high):
            raise ConfigError("setting 'buffer_low_watermark' must be <= buffer_high_watermark")
        self._values = merged

    def get_value(self, key: str) -> Any:
        """The effective value: what was set, else the default."""
        if key in self._values:
            return self._values[key]
        if key == "max_conn":
            return _default_max_conn()
        if key == "heartbeat_idle_time":
            return 2 * self.get_value("heartbeat_check_interval")
        if key == "heartbeat_check_interval" and "heartbeat_idle_time" in self._values:
            # Swoole: heartbeat_idle_time alone turns the check on, every idle/2 seconds
            return self._values["heartbeat_idle_time"] / 2
        if key == "buffer_high_watermark":
            return default_high_watermark(self.get_value("socket_buffer_size"))
        return SETTINGS[key].default

    def ignored(self) -> list[tuple[str, str]]:
        """The keys set that have no effect here, each with the reason (warned at start)."""
        return [(k, SETTINGS[k].doc) for k in self._values if SETTINGS[k].effect == IGNORED]

    def check_startable(self) -> None:
        """At ``start()``: fail on a ``pending`` key that asks for a feature not built yet;
        log one warning per ``ignored`` key."""
        for key, value in self._values.items():
            setting = SETTINGS[key]
            if setting.effect == PENDING and setting.asks_for_something(value):
                raise ConfigError(f"setting {key!r}: {setting.doc}")
        for key, why in self.ignored():
            log.warning("setting %r has no effect in pyswoole: %s", key, why)

    def deflate_config(self) -> DeflateConfig:
        """The permessage-deflate configuration these settings describe."""
        get = self.get_value
        return DeflateConfig(
            compression_level=get("websocket_compression_level"),
            memory_level=get("websocket_compression_memory_level"),
            server_max_window_bits=get("websocket_compression_window_bits"),
            server_no_context_takeover=not get("websocket_compression_context_takeover"),
            min_size=get("websocket_compression_min_size"),
        )

    def subprotocols(self) -> list[str]:
        value = self.get_value("websocket_subprotocol")
        items = value.split(",") if isinstance(value, str) else list(value)
        return [item.strip() for item in items if item.strip()]

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Settings({self._values!r})"


_CLASS_TITLES = {
    HONOURED: "Honoured (same meaning as in Swoole, or pyswoole's own)",
    PENDING: "Known, not built yet: accepted while off, start() fails when asked for",
    IGNORED: "Accepted with one warning at start(): no effect here",
    REFUSED: "Refused by set(), with the reason",
}


def describe() -> str:
    """The README's settings tables, one per class (generated: tests compare them)."""
    parts: list[str] = []
    for effect, title in _CLASS_TITLES.items():
        keys = [s for s in SETTINGS.values() if s.effect == effect]
        if not keys:
            continue
        if effect == HONOURED:
            rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
            for s in keys:
                types = "/".join(t.__name__ for t in s.types)
                rows.append(f"| `{s.name}` | {types} | `{s.default!r}` | {s.doc} |")
        else:
            rows = ["| key | why |", "|---|---|"]
            rows += [f"| `{s.name}` | {s.doc} |" for s in keys]
        parts.append(f"**{title}** ({len(keys)} keys)\n\n" + "\n".join(rows))
    aliases = ", ".join(f"`{a}` = `{k}`" for a, k in ALIASES.items())
    parts.append(f"Aliases: {aliases}.")
    return "\n\n".join(parts)
