"""Server settings: Swoole's keys, typed and validated, defined once.

Every key is declared in :data:`SETTINGS` with its type, default, bounds and meaning; the
README's settings table is generated from the same place (:func:`describe`). An unknown key,
a value of the wrong type or out of range raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import resource
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigError
from ..protocol.deflate import DeflateConfig

__all__ = ["SETTINGS", "Setting", "Settings", "describe"]


def _default_max_conn() -> int:
    """Swoole's default: ``ulimit -n`` (we raise the soft limit to the hard one at start)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > 1_000_000:
        return 1_000_000
    return max(hard, 1)


@dataclass(frozen=True)
class Setting:
    """One setting: name, accepted types, default, optional range/check, and meaning."""

    name: str
    types: tuple[type[Any], ...]
    default: Any
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = None
    implemented: bool = True

    def validate(self, value: Any) -> Any:
        if isinstance(value, bool) and bool not in self.types:
            raise ConfigError(f"setting {self.name!r}: expected {self._type_names()}, got bool")
        if not isinstance(value, self.types):
            raise ConfigError(
                f"setting {self.name!r}: expected {self._type_names()}, got {type(value).__name__}"
            )
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"setting {self.name!r}: must be >= {self.minimum}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"setting {self.name!r}: must be <= {self.maximum}, got {value!r}")
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise ConfigError(f"setting {self.name!r}: {problem}")
        if float in self.types and int in self.types and not isinstance(value, bool):
            return float(value)
        return value

    def _type_names(self) -> str:
        return " or ".join(t.__name__ for t in self.types)


def _subprotocols(value: Any) -> str | None:
    items = value.split(",") if isinstance(value, str) else value
    for item in items:
        if not isinstance(item, str):
            return "subprotocol names must be strings"
        if any(c in item.strip() for c in ' \t"(),/:;<=>?@[\\]{}'):
            return f"{item!r} is not a valid token"
    return None


def default_high_watermark(socket_buffer_size: int) -> int:
    """Swoole's default ``buffer_high_watermark``: 80 % of ``socket_buffer_size``."""
    return int(socket_buffer_size * 0.8)


_INT = (int,)
_NUM = (int, float)
_BOOL = (bool,)
_MiB = 1024 * 1024

SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting(
            "worker_num",
            _INT,
            1,
            "worker processes; more than 1 forks a manager and shares the port (SWOOLE_BASE)",
            minimum=1,
            maximum=1024,
        ),
        Setting(
            "task_worker_num",
            _INT,
            0,
            "task worker processes running on('task')",
            minimum=0,
            maximum=1024,
        ),
        Setting(
            "max_request",
            _INT,
            0,
            "a worker restarts after handling this many requests/messages (checked every "
            "second); 0: never",
            minimum=0,
        ),
        Setting(
            "max_wait_time",
            _NUM,
            3.0,
            "seconds a stopping or reloading worker may take before it is killed",
            minimum=0,
        ),
        Setting(
            "worker_timeout",
            _NUM,
            30.0,
            "seconds without a heartbeat from a worker's event loop before the manager "
            "kills and replaces it (a stuck callback); 0 disables",
            minimum=0,
        ),
        Setting("pid_file", (str,), "", "write the master pid here while running"),
        Setting("log_file", (str,), "", "append pyswoole's log (and daemon output) here"),
        Setting(
            "log_level",
            _INT,
            2,
            "Swoole's levels: 0 debug, 1 trace, 2 info, 3 notice, 4 warning, 5 error, 6 none",
            minimum=0,
            maximum=6,
        ),
        Setting("daemonize", _BOOL, False, "detach from the terminal (double fork)"),
        Setting("max_conn", _INT, None, "most connections at once; default: ulimit -n", minimum=1),
        Setting("backlog", _INT, 511, "listen() backlog", minimum=1),
        Setting(
            "package_max_length",
            _INT,
            2 * _MiB,
            "largest WebSocket message and HTTP request body, bytes "
            "(bigger: close 1009 / HTTP 413)",
            minimum=1,
        ),
        Setting(
            "http_max_header_size",
            _INT,
            64 * 1024,
            "largest HTTP request head, bytes (bigger: HTTP 431)",
            minimum=256,
        ),
        Setting(
            "handshake_timeout",
            _NUM,
            10.0,
            "seconds a client may take to send a complete HTTP request or handshake, "
            "and idle keep-alive time; 0 disables",
            minimum=0,
        ),
        Setting(
            "socket_buffer_size",
            _INT,
            8 * _MiB,
            "bytes queued for a client (socket buffer, corked writes, pending compression) "
            "from which push(), send() and broadcast() refuse a message for it: False, "
            "SWOOLE_ERROR_OUTPUT_BUFFER_OVERFLOW",
            minimum=1,
        ),
        Setting(
            "buffer_high_watermark",
            _INT,
            None,
            "bytes queued past which a connection is full: it is not read any more (a client "
            "that sends without reading cannot grow the server) and on('bufferFull') is "
            "called; default 80% of socket_buffer_size",
            minimum=0,
        ),
        Setting(
            "buffer_low_watermark",
            _INT,
            0,
            "a full connection is read again, on('bufferEmpty') called and push_async() "
            "waiters woken once its queue drains to this many bytes",
            minimum=0,
        ),
        Setting(
            "buffer_full_timeout",
            _NUM,
            0.0,
            "seconds a connection may stay full before it is closed (WebSocket: close 1013, "
            "try again later); 0: never (pushes to it are refused until it drains)",
            minimum=0,
        ),
        Setting(
            "max_buffered_bytes",
            _INT,
            0,
            "a worker's budget for received data held until its frame or message completes "
            "(partial frames, unfinished messages), over all its connections; past it the "
            "biggest holders are closed with 1013 (try again later); 0: no budget (each "
            "connection still holds at most package_max_length)",
            minimum=0,
        ),
        Setting(
            "send_yield",
            _BOOL,
            True,
            "push_async()/send_async() wait for room in a full buffer (False: they fail at "
            "once, as push() does)",
        ),
        Setting(
            "heartbeat_check_interval",
            _NUM,
            0.0,
            "seconds between idle checks; 0 disables",
            minimum=0,
        ),
        Setting(
            "heartbeat_idle_time",
            _NUM,
            0.0,
            "seconds without data before a connection is closed (WebSocket: close frame "
            "1001); default 2 x heartbeat_check_interval",
            minimum=0,
        ),
        Setting(
            "websocket_subprotocol",
            (str, list, tuple),
            "",
            "subprotocol(s) the server speaks, in preference order; echoed only when "
            "the client offered one",
            check=_subprotocols,
        ),
        Setting(
            "websocket_compression",
            _BOOL,
            False,
            "negotiate permessage-deflate (RFC 7692) and compress pushes of at least "
            "websocket_compression_min_size bytes",
        ),
        Setting(
            "websocket_compression_level",
            _INT,
            1,
            "zlib level 1-9 (1: fastest; 6 costs ~3x the CPU for ~15% smaller output)",
            minimum=1,
            maximum=9,
        ),
        Setting(
            "websocket_compression_window_bits",
            _INT,
            12,
            "server_max_window_bits 9-15: the compressor's window, 2^bits bytes",
            minimum=9,
            maximum=15,
        ),
        Setting(
            "websocket_compression_memory_level",
            _INT,
            5,
            "zlib memLevel 1-9: size of the compressor's state while it is in use",
            minimum=1,
            maximum=9,
        ),
        Setting(
            "websocket_compression_context_takeover",
            _BOOL,
            False,
            "keep the compressor between messages: better ratio for small similar messages, "
            "but it stays allocated per connection (~36 KiB at window 12 / memLevel 5, "
            "~260 KiB at 15 / 8); off, an idle connection holds no zlib state",
        ),
        Setting(
            "websocket_compression_offload_size",
            _INT,
            256 * 1024,
            "messages of at least this many bytes are compressed in a worker thread (zlib "
            "releases the GIL), in order, so the loop keeps serving others; 0: never",
            minimum=0,
        ),
        Setting(
            "websocket_compression_min_size",
            _INT,
            64,
            "messages smaller than this many bytes are sent uncompressed",
            minimum=0,
        ),
        Setting(
            "open_websocket_close_frame",
            _BOOL,
            False,
            "deliver close frames to on('message') as CloseFrame",
        ),
        Setting(
            "open_websocket_ping_frame",
            _BOOL,
            False,
            "deliver ping frames to on('message'); no automatic pong",
        ),
        Setting("open_websocket_pong_frame", _BOOL, False, "deliver pong frames to on('message')"),
        Setting("open_http_protocol", _BOOL, True, "serve HTTP requests (on('request'))"),
        Setting("open_websocket_protocol", _BOOL, True, "accept WebSocket upgrades"),
        Setting("http_parse_post", _BOOL, True, "fill Request.post from form bodies"),
        Setting("http_parse_cookie", _BOOL, True, "fill Request.cookie"),
        Setting("http_parse_files", _BOOL, True, "store multipart uploads in Request.files"),
        Setting("upload_tmp_dir", (str,), "", "directory for uploaded files; default: tmp dir"),
        Setting("server_name", (str,), "pyswoole", "value of the Server response header"),
        Setting(
            "dispatch_mode",
            _INT,
            2,
            "SWOOLE_PROCESS: how the master picks a connection's worker (1 round robin, "
            "2 fixed by fd, 3 preemptive, 4 by client IP, 5 by uid after bind(), 7 stream, "
            "8 by connection); SWOOLE_BASE: the kernel picks (the accepting worker)",
            check=lambda v: None if v in (1, 2, 3, 4, 5, 7, 8) else "must be 1-5, 7 or 8",
        ),
        Setting(
            "dispatch_func",
            (object,),
            None,
            "SWOOLE_PROCESS: fn(server, fd, type, data) -> worker_id, replaces dispatch_mode",
            check=lambda v: None if v is None or callable(v) else "must be a callable",
        ),
        Setting(
            "enable_delay_receive",
            _BOOL,
            False,
            "a new connection is not read until confirm(fd)",
        ),
        Setting(
            "reload_async",
            _BOOL,
            True,
            "reload() lets a worker finish its pending events and timers before it exits",
        ),
        Setting(
            "task_max_request",
            _INT,
            0,
            "a task worker restarts after this many tasks; 0: never",
            minimum=0,
        ),
        Setting(
            "task_enable_coroutine",
            _BOOL,
            False,
            "on('task') receives (server, Task) (task.id, task.worker_id, task.data, "
            "task.finish()) and may be async def",
        ),
        Setting(
            "reactor_num",
            _INT,
            1,
            "accepted for Swoole compatibility; one loop per worker",
            minimum=1,
            implemented=False,
        ),
        Setting(
            "enable_coroutine",
            _BOOL,
            True,
            "accepted for Swoole compatibility; async def callbacks always run as tasks",
            implemented=False,
        ),
    ]
}


class Settings(Mapping[str, Any]):
    """The validated settings of a server; read-only mapping of what was ``set()``."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def update(self, values: Mapping[str, Any]) -> None:
        """Validate every key first, then apply all (nothing applied if one is bad)."""
        checked: dict[str, Any] = {}
        for key, value in values.items():
            setting = SETTINGS.get(key)
            if setting is None:
                raise ConfigError(f"unknown setting {key!r}")
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
        if key == "buffer_high_watermark":
            return default_high_watermark(self.get_value("socket_buffer_size"))
        return SETTINGS[key].default

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


def describe() -> str:
    """A markdown table of every setting (for the README)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS.values():
        types = "/".join(t.__name__ for t in s.types)
        rows.append(f"| `{s.name}` | {types} | `{s.default!r}` | {s.doc} |")
    return "\n".join(rows)
