"""Swoole's settings vocabulary: every key ``Server::set()`` knows, and what it does here.

Each key of Swoole 6.2's ``Server``, ``Http\\Server``, ``WebSocket\\Server`` and ``Port``
``set()`` (see docs/research/swoole-settings.md) is declared once, in one of four classes:

- ``honoured``: same meaning as in Swoole (plus pyswoole's own keys, e.g. the
  ``websocket_compression_*`` family);
- ``ignored``: accepted, with one warning at ``start()`` saying why it has no effect here
  (coroutine-runtime knobs, reactor threads, PHP-only options);
- ``pending``: a Swoole feature not built yet: accepted by ``set()`` while it asks for nothing
  (e.g. ``http_compression=False``), ``start()`` fails naming it otherwise;
- ``refused``: ``set()`` raises :class:`ConfigError` with the reason (the feature would change
  what clients see, or an RFC forbids it).

Aliases (``max_connection`` for ``max_conn``...) are stored under their canonical name.
"""

from __future__ import annotations

import re
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..cluster.backend import check_cluster
from ..exceptions import ConfigError
from ..runtime.tls import DEFAULT_CIPHERS, check_engine, check_protocols, check_sni_certs
from .proxies import DEFAULT_PROXY_HEADERS, check_headers, check_origins, check_trusted
from .static_rewrite import check_rules

__all__ = ["ALIASES", "HONOURED", "IGNORED", "PENDING", "REFUSED", "SETTINGS", "Setting"]

HONOURED = "honoured"
IGNORED = "ignored"
PENDING = "pending"
REFUSED = "refused"


def _default_max_conn() -> int:
    """Swoole's default: ``ulimit -n`` (we raise the soft limit to the hard one at start)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > 1_000_000:
        return 1_000_000
    return max(hard, 1)


@dataclass(frozen=True)
class Setting:
    """One key: accepted types, default, optional range/check, meaning, and its class."""

    name: str
    types: tuple[type[Any], ...]
    default: Any
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = None
    effect: str = HONOURED

    def validate(self, value: Any) -> Any:
        if self.effect == REFUSED:
            raise ConfigError(f"setting {self.name!r} is not supported: {self.doc}")
        if self.effect == IGNORED and self.types == (object,):
            return value
        if isinstance(value, str) and self.name in SIZE_KEYS:
            value = parse_size(self.name, value)  # Swoole 6: '2M', '512K', '1G'
        if bool in self.types and not isinstance(value, bool) and value in (0, 1):
            value = bool(value)  # PHP idiom: 'daemonize' => 1
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

    def asks_for_something(self, value: Any) -> bool:
        """For a ``pending`` key: whether ``value`` asks for the missing feature (a false
        value or the default asks for nothing)."""
        return bool(value) and value != self.default

    def _type_names(self) -> str:
        return " or ".join(t.__name__ for t in self.types)


#: the keys Swoole 6 reads with ``php_swoole_parse_to_size()`` (they accept "2M" as well)
SIZE_KEYS = frozenset(
    {
        "package_max_length",
        "socket_buffer_size",
        "buffer_high_watermark",
        "buffer_low_watermark",
        "buffer_output_size",
        "buffer_input_size",
        "kernel_socket_recv_buffer_size",
        "kernel_socket_send_buffer_size",
        "max_queued_bytes",
        "upload_max_filesize",
        "http_compression_min_length",
        "max_buffered_bytes",
        "http_max_header_size",
    }
)
_SIZE = re.compile(r"\s*(\d+)\s*([kmg]?)b?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(name: str, text: str) -> int:
    """A PHP ini quantity, as Swoole 6 reads size settings: ``"2M"`` is 2 MiB."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ConfigError(f"setting {name!r}: {text!r} is not a size (e.g. 2097152, '2M', '512K')")
    return int(match[1]) * _UNITS[match[2].lower()]


def _subprotocols(value: Any) -> str | None:
    items = value.split(",") if isinstance(value, str) else value
    for item in items:
        if not isinstance(item, str):
            return "subprotocol names must be strings"
        if any(c in item.strip() for c in ' \t"(),/:;<=>?@[\\]{}'):
            return f"{item!r} is not a valid token"
    return None


def _one_of(*allowed: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(map(str, allowed))}"

    return check


def _callable_or_none(value: Any) -> str | None:
    return None if value is None or callable(value) else "must be a callable"


def _user_or_group(value: Any) -> str | None:
    return None if value else "must not be empty"


def default_high_watermark(socket_buffer_size: int) -> int:
    """Swoole's default ``buffer_high_watermark``: 80 % of ``socket_buffer_size``."""
    return int(socket_buffer_size * 0.8)


_INT = (int,)
_NUM = (int, float)
_BOOL = (bool,)
_STR = (str,)
_ANY = (object,)
_MiB = 1024 * 1024


def _ignored(name: str, why: str) -> Setting:
    return Setting(name, _ANY, None, why, effect=IGNORED)


def _refused(name: str, why: str) -> Setting:
    return Setting(name, _ANY, None, why, effect=REFUSED)


def _pending(name: str, types: tuple[type[Any], ...], default: Any, why: str) -> Setting:
    return Setting(name, types, default, why, effect=PENDING)


_HONOURED = [
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
        "kills and replaces it (a stuck callback); with one process (no manager) an error "
        "is logged instead; 0 disables",
        minimum=0,
    ),
    Setting(
        "blocking_threshold",
        _NUM,
        0.5,
        "pyswoole's own: seconds a callback may hold a worker's event loop before one "
        "warning names its event, fd and a stack sample (a watchdog thread; no cost per "
        "message); 0 disables",
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
        "largest WebSocket frame counted with its header (as Swoole), message (its payloads "
        "added up) and HTTP request body, bytes (bigger: close 1009 / HTTP 413)",
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
        "cluster",
        (dict, type(None)),
        None,
        "pyswoole's own: {'backend': 'redis://host:6379/0', 'node_id': ..., "
        "'channel_prefix': 'pyswoole', 'presence_ttl': 10, 'history': {'maxlen': N}}: "
        "publish, broadcast(..., cluster=True), push_user and online reach every node on "
        "that Redis (also redis+cluster://h:p,h:p and redis+sentinel://h:p/service/db; "
        "needs pyswoole[redis])",
        check=check_cluster,
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
        "SWOOLE_PROCESS: how the master picks a connection's worker, once per connection "
        "(1 round robin, 2 fd % n, 3 an idle worker, 4 by client IP, 5 by uid after bind(), "
        "7/9/10 as 3, 8 fewest connections); SWOOLE_BASE: the kernel picks (the accepting "
        "worker)",
        check=lambda v: None if v in (1, 2, 3, 4, 5, 7, 8, 9, 10) else "must be 1-5 or 7-10",
    ),
    Setting(
        "dispatch_func",
        (object,),
        None,
        "SWOOLE_PROCESS: fn(server, fd, type, data) -> worker_id, called once per "
        "connection (a negative result falls back to dispatch_mode)",
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
        "open_tcp_nodelay",
        _BOOL,
        True,
        "TCP_NODELAY on accepted connections (Swoole's HTTP and WebSocket servers turn it "
        "on; False lets the kernel batch small writes, Nagle)",
    ),
    Setting(
        "open_tcp_keepalive",
        _BOOL,
        False,
        "SO_KEEPALIVE on accepted connections, with tcp_keepidle/tcp_keepinterval/tcp_keepcount",
    ),
    Setting(
        "tcp_keepidle", _INT, 0, "seconds idle before keepalive probes (0: kernel's)", minimum=0
    ),
    Setting(
        "tcp_keepinterval", _INT, 0, "seconds between keepalive probes (0: kernel's)", minimum=0
    ),
    Setting(
        "tcp_keepcount",
        _INT,
        0,
        "unanswered probes before the kernel drops (0: kernel's)",
        minimum=0,
    ),
    Setting(
        "kernel_socket_recv_buffer_size",
        _INT,
        0,
        "SO_RCVBUF of each accepted connection, bytes (0: the kernel's, auto-tuned)",
        minimum=0,
    ),
    Setting(
        "kernel_socket_send_buffer_size",
        _INT,
        0,
        "SO_SNDBUF of each accepted connection, bytes (0: the kernel's, auto-tuned)",
        minimum=0,
    ),
    Setting(
        "tcp_user_timeout",
        _INT,
        0,
        "TCP_USER_TIMEOUT, ms: unacknowledged data for this long drops the connection; 0: kernel's",
        minimum=0,
    ),
    Setting(
        "tcp_fastopen",
        (bool, int),
        False,
        "TCP_FASTOPEN on the listening sockets (True: a queue of 1024; an int: that queue)",
    ),
    Setting(
        "tcp_defer_accept",
        _INT,
        0,
        "TCP_DEFER_ACCEPT seconds: accept() only once the client sent data (or the time "
        "passed); 0: off",
        minimum=0,
    ),
    Setting(
        "user",
        _STR,
        "",
        "run workers and task workers as this user (set after binding, so ports below "
        "1024 work); needs root",
        check=_user_or_group,
    ),
    Setting(
        "group", _STR, "", "run workers and task workers with this group", check=_user_or_group
    ),
    Setting(
        "chroot",
        _STR,
        "",
        "workers chroot() here after binding (before user/group are dropped)",
        check=_user_or_group,
    ),
    Setting(
        "log_date_format",
        _STR,
        "%Y-%m-%d %H:%M:%S",
        "strftime format of the time in pyswoole's log lines",
    ),
    Setting("log_date_with_microseconds", _BOOL, False, "log times carry microseconds"),
    Setting(
        "log_rotation",
        _INT,
        0,
        "log_file rotation: 0 single file, 2 daily, 3 hourly, 4 every minute "
        "(SWOOLE_LOG_ROTATION_*; 1 monthly is refused: use daily or logrotate)",
        check=_one_of(0, 2, 3, 4),
    ),
    Setting(
        "debug_mode",
        _BOOL,
        False,
        "log at debug level (as log_level=SWOOLE_LOG_DEBUG) and turn on asyncio's debug "
        "mode in every worker (slow callbacks and never-awaited coroutines are reported)",
    ),
    Setting(
        "access_log",
        _BOOL,
        False,
        "pyswoole's own: one line per HTTP response (method, target, status, bytes, duration) "
        "and per WebSocket open and close (close code, duration) on the 'pyswoole.access' "
        "logger at info",
    ),
    Setting(
        "metrics",
        _STR,
        "",
        "pyswoole's own: the path (e.g. '/metrics') at which the HTTP port answers GET with "
        "Prometheus metrics for the whole server, before static files and on('request'); "
        "empty: off",
        check=lambda v: None if v == "" or v.startswith("/") else "must be a path starting with /",
    ),
    Setting(
        "log_config",
        (dict, type(None)),
        None,
        "pyswoole's own: a logging.config.dictConfig() dict applied by start() before any "
        "process is forked, instead of the default handler (disable_existing_loggers "
        "defaults to False)",
    ),
    Setting(
        "open_cpu_affinity",
        _BOOL,
        False,
        "pin worker N to CPU N % cpu_count (sched_setaffinity), as Swoole does",
    ),
    Setting(
        "cpu_affinity_ignore",
        (list, tuple),
        (),
        "CPUs open_cpu_affinity leaves out (e.g. the ones handling NIC interrupts)",
    ),
    Setting(
        "task_use_object",
        _BOOL,
        False,
        "on('task') receives (server, Task) as with task_enable_coroutine",
    ),
    Setting(
        "websocket_mask",
        _BOOL,
        False,
        "accepted only as False: a server never masks its frames (RFC 6455 section 5.1)",
        check=lambda v: None if v is False else "a server must not mask frames (RFC 6455 5.1)",
    ),
]

_COROUTINE = "asyncio runs pyswoole's callbacks: Swoole's coroutine runtime has no twin here"
_REACTOR = "one event loop per worker process: no reactor or I/O threads to size"
_THREAD = "SWOOLE_THREAD mode is not offered (Python's GIL): use worker processes"

_IGNORED = [
    _ignored("reactor_num", _REACTOR),
    _ignored("single_thread", _REACTOR),
    _ignored("enable_coroutine", "async def callbacks always run as asyncio tasks"),
    _ignored("hook_flags", _COROUTINE + " (no runtime hooks; use asyncio libraries)"),
    _ignored("max_coroutine", _COROUTINE),
    _ignored("c_stack_size", _COROUTINE),
    _ignored("enable_preemptive_scheduler", _COROUTINE),
    _ignored("enable_deadlock_check", _COROUTINE),
    _ignored("exit_condition", _COROUTINE),
    _ignored("socket_connect_timeout", _COROUTINE + " (client socket timeouts)"),
    _ignored("socket_read_timeout", _COROUTINE + " (client socket timeouts)"),
    _ignored("socket_write_timeout", _COROUTINE + " (client socket timeouts)"),
    _ignored("socket_timeout", _COROUTINE + " (client socket timeouts)"),
    _ignored("socket_dns_timeout", _COROUTINE + " (client socket timeouts)"),
    _ignored("dns_server", _COROUTINE + " (the system resolver is used)"),
    _ignored("dns_cache_expire", _COROUTINE),
    _ignored("dns_cache_capacity", _COROUTINE),
    _ignored("use_async_resolver", _COROUTINE),
    _ignored("enable_signalfd", "signals go through asyncio's signal handling"),
    _ignored("wait_signal", "signals go through asyncio's signal handling"),
    _ignored("aio_core_worker_num", "file I/O runs in asyncio's default thread pool"),
    _ignored("aio_worker_num", "file I/O runs in asyncio's default thread pool"),
    _ignored("aio_max_wait_time", "file I/O runs in asyncio's default thread pool"),
    _ignored("aio_max_idle_time", "file I/O runs in asyncio's default thread pool"),
    _ignored("iouring_entries", "no io_uring backend (uvloop/asyncio use epoll)"),
    _ignored("iouring_workers", "no io_uring backend (uvloop/asyncio use epoll)"),
    _ignored("iouring_flag", "no io_uring backend (uvloop/asyncio use epoll)"),
    _ignored("bootstrap", _THREAD),
    _ignored("init_arguments", _THREAD),
    _ignored("display_errors", "PHP's error display: Python exceptions are logged"),
    _ignored("trace_flags", "Swoole debug-build tracing: use log_level/debug_mode"),
    _ignored(
        "task_ipc_mode",
        "task workers always get tasks over a unix socket pair, "
        "least-busy first (like SWOOLE_IPC_UNIXSOCK)",
    ),
    _ignored("message_queue_key", "no System V message queue (task_ipc_mode has no effect)"),
    _ignored("task_tmpdir", "tasks of any size travel over the socket pair: no temp files"),
    _ignored("buffer_input_size", "input buffers grow as needed up to package_max_length"),
    _ignored(
        "enable_unsafe_event",
        "a connection always stays on one worker, so "
        "on('connect')/on('close') are always delivered, whatever dispatch_mode",
    ),
    _ignored("discard_timeout_request", "events of a closed connection are never delivered"),
    _ignored(
        "enable_reuse_port",
        "the workers share one listening socket (SO_REUSEPORT per worker is not built)",
    ),
    _ignored("worker_max_concurrency", "async def callbacks are not queued per worker"),
    _ignored(
        "max_queued_bytes",
        "SWOOLE_PROCESS flow control is built in (the master stops "
        "reading a client whose worker's queue passes 1 MiB)",
    ),
    _ignored("send_timeout", "use buffer_full_timeout (close a connection that stays full)"),
    _ignored("stats_file", "read stats() instead"),
    _ignored("start_session_id", "fds start at 1"),
    _ignored("max_request_grace", "a worker restarts at exactly max_request"),
    _ignored(
        "buffer_output_size",
        "what push()/send() may queue is bounded per connection by "
        "socket_buffer_size, whatever the size of one message",
    ),
    _ignored("admin_server", "Swoole Dashboard is not offered"),
    _ignored(
        "open_http2_protocol",
        "HTTP/2 is not served: clients use HTTP/1.1 (RFC 9113 "
        "section 3: h2 is negotiated, never assumed)",
    ),
    _ignored("http2_header_table_size", "HTTP/2 is not served"),
    _ignored("http2_initial_window_size", "HTTP/2 is not served"),
    _ignored("http2_max_concurrent_streams", "HTTP/2 is not served"),
    _ignored("http2_max_frame_size", "HTTP/2 is not served"),
    _ignored("http2_max_header_list_size", "HTTP/2 is not served"),
    _ignored("upload_max_filesize", "package_max_length bounds the whole request body"),
    _ignored("enable_server_token", "the Server header is server_name"),
    _ignored("ssl_compress", "TLS compression is off in OpenSSL builds (CRIME)"),
    _ignored("print_backtrace_on_error", "a callback's exception is logged with its traceback"),
    _ignored("enable_kqueue", "uvloop/asyncio choose the system's poller (epoll on Linux)"),
    _ignored("name_resolver", _COROUTINE),
    _ignored("dns_cache_refresh_time", _COROUTINE),
    _ignored("dns_lookup_random", _COROUTINE),
    _ignored("socket_dontwait", _COROUTINE),
    _ignored("max_concurrency", _COROUTINE),
    _ignored("max_idle_time", _COROUTINE),
    _ignored("thread_num", _THREAD),
    _ignored("max_thread_num", _THREAD),
    _ignored("min_thread_num", _THREAD),
    _ignored("http2_enable_push", "HTTP/2 is not served"),
    _ignored("http2_init_window_size", "HTTP/2 is not served"),
    _ignored("http2_max_headers", "HTTP/2 is not served"),
    _ignored("stats_timer_interval", "read stats() instead"),
    _ignored("task_max_request_grace", "a task worker restarts at exactly task_max_request"),
    *(
        _ignored(name, "a Swoole 1.x-4.x key that Swoole 6 no longer reads")
        for name in (
            "timeout",
            "poll_thread_num",
            "ipc_mode",
            "pipe_buffer_size",
            "task_async",
            "request_slowlog_file",
            "request_slowlog_timeout",
            "trace_event_worker",
        )
    ),
]

_RAW_TCP = (
    "TCP framing (EOF / length-prefixed packets) is not built: on('receive') gets bytes as "
    "they arrive"
)
_REFUSED = [
    _refused("open_eof_check", _RAW_TCP),
    _refused("open_eof_split", _RAW_TCP),
    _refused("package_eof", _RAW_TCP),
    _refused("open_length_check", _RAW_TCP),
    _refused("package_length_type", _RAW_TCP),
    _refused("package_length_offset", _RAW_TCP),
    _refused("package_body_offset", _RAW_TCP),
    _refused("package_length_func", _RAW_TCP),
    _refused("open_mqtt_protocol", "the MQTT protocol is not built"),
    _refused("open_redis_protocol", "the Redis server protocol is not built"),
    _refused("open_fastcgi_protocol", "the FastCGI protocol is not built"),
    _refused("event_object", "callbacks receive Swoole's positional arguments, not objects"),
    _refused("ssl_method", "removed in Swoole 4.5: use ssl_protocols"),
]


def _strings(value: Any) -> str | None:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return "must be a list of strings"
    return None


def _locations(value: Any) -> str | None:
    problem = _strings(value)
    if problem is None and not all(v.startswith("/") for v in value):
        return "each location must start with '/'"
    return problem


def _document_root(value: Any) -> str | None:
    # (whether it exists is checked at start() when enable_static_handler is set)
    return "longer than PATH_MAX" if len(value) >= 4096 else None


# Swoole 6.2's static file handler and HTTP response compression (server/static.py,
# protocol/http_compression.py): what each key does, with Swoole's defaults.
_HTTP_FILES = [
    Setting(
        "enable_static_handler",
        _BOOL,
        False,
        "serve files under document_root before on('request') (bodiless requests)",
    ),
    Setting(
        "document_root",
        _STR,
        "",
        "directory the static handler serves (start() fails if it does not exist)",
        check=_document_root,
    ),
    Setting(
        "static_handler_locations",
        (list, tuple, type(None)),
        None,
        "URL prefixes served from disk (a missing file there is 404); None: every URL, "
        "a missing file goes to on('request')",
        check=lambda v: None if v is None else _locations(v),
    ),
    Setting(
        "http_index_files",
        (list, tuple, type(None)),
        None,
        "file names a directory request is answered with (the first that exists)",
        check=lambda v: None if v is None else _strings(v),
    ),
    Setting(
        "http_autoindex",
        _BOOL,
        False,
        "an HTML listing of a directory that has no index file",
    ),
    Setting(
        "url_rewrite_rules",
        (dict, type(None)),
        None,
        "{pattern: replacement} rewriting the path the static handler looks up, first match "
        "wins: a '/prefix' is replaced, a '~regex~' match too ($1 for a group); "
        "on('request') still gets the URL as sent",
        check=check_rules,
    ),
    Setting(
        "http_compression",
        _BOOL,
        True,
        "compress response bodies (end() and write()) with the client's best "
        "Accept-Encoding: br (if brotli is installed), gzip, deflate",
    ),
    Setting(
        "http_compression_level",
        _INT,
        1,
        "compression level (zlib 1-9, brotli 0-11; clamped as Swoole)",
    ),
    Setting(
        "http_compression_min_length",
        _INT,
        20,
        "end() bodies shorter than this many bytes are sent uncompressed",
        minimum=0,
    ),
    Setting(
        "http_compression_types",
        (list, tuple, type(None)),
        None,
        "media types to compress ('text/*' covers text/); None: every type",
        check=lambda v: None if v is None else _strings(v),
    ),
]
# pyswoole's own (server/proxies.py; Swoole has neither): the client behind a proxy, and the
# origins a browser may open a WebSocket from.
_PROXIES = [
    Setting(
        "trusted_proxies",
        (list, tuple, str),
        (),
        "peers (addresses, CIDR networks, 'unix', '*') whose X-Forwarded-For/Forwarded/"
        "X-Real-IP name the client in remote_addr and get_client_info; empty: none",
        check=check_trusted,
    ),
    Setting(
        "proxy_headers",
        (list, tuple),
        DEFAULT_PROXY_HEADERS,
        "forwarding headers believed from trusted_proxies (x-forwarded-for, forwarded, "
        "x-real-ip), the first one present wins: list only those the proxy sets",
        check=check_headers,
    ),
    Setting(
        "allowed_origins",
        (list, tuple),
        (),
        "Origin values a browser WebSocket handshake may carry ('https://*.example.com'); "
        "others get 403; no Origin header passes; empty: any",
        check=check_origins,
    ),
]


def _passphrase(value: Any) -> str | None:
    if value is None or isinstance(value, (str, bytes)) or callable(value):
        return None
    return "must be a str or a callable"


# TLS on a listener made with sock_type | SWOOLE_SSL (runtime/tls.py), read from the server's
# settings or the port's (Port.set), as Swoole's ListenPort; no effect on a plain port. None
# is the same as unset (PHP's null: Swoole's php_swoole_array_get_value skips it).
_STR_OR_NONE = (str, type(None))
_TLS_SETTINGS = [
    Setting("ssl_cert_file", _STR_OR_NONE, "", "certificate chain (PEM) of a SWOOLE_SSL port"),
    Setting("ssl_key_file", _STR_OR_NONE, "", "its private key (PEM); empty: in ssl_cert_file"),
    Setting(
        "ssl_passphrase",
        _ANY,
        "",
        "the private key's password (str, or a callable returning it)",
        check=_passphrase,
    ),
    Setting(
        "ssl_protocols",
        _INT,
        0,
        "SWOOLE_SSL_TLSv1_* flags OR-ed together: a contiguous range of versions; "
        "0: OpenSSL's default (TLS 1.2 and 1.3)",
        check=check_protocols,
    ),
    Setting("ssl_ciphers", _STR_OR_NONE, DEFAULT_CIPHERS, "OpenSSL cipher list (TLS 1.2)"),
    Setting("ssl_ecdh_curve", _STR_OR_NONE, "auto", "ECDH curve name; 'auto': OpenSSL's groups"),
    Setting("ssl_dhparam", _STR_OR_NONE, "", "DH parameters file (PEM) for DHE ciphers"),
    Setting("ssl_prefer_server_ciphers", _BOOL, False, "the server's cipher order wins (TLS 1.2)"),
    Setting(
        "ssl_verify_peer",
        _BOOL,
        False,
        "mutual TLS: a client must present a certificate signed by ssl_client_cert_file/"
        "ssl_cafile/ssl_capath (none set: the system CAs); get_client_info()"
        "['ssl_client_cert'] holds it (PEM)",
    ),
    Setting(
        "ssl_client_cert_file",
        _STR_OR_NONE,
        "",
        "CA certificates (PEM) client certificates chain to",
    ),
    Setting("ssl_cafile", _STR_OR_NONE, "", "more CA certificates (PEM) for client certificates"),
    Setting("ssl_capath", _STR_OR_NONE, "", "a directory of hashed CA certificates (c_rehash)"),
    Setting(
        "ssl_sni_certs",
        (dict, type(None)),
        None,
        "{server_name: {'ssl_cert_file': ..., 'ssl_key_file': ...}}: the certificate for "
        "the name a client asks for (SNI); others get ssl_cert_file",
        check=check_sni_certs,
    ),
    Setting(
        "ssl_engine",
        _STR,
        "auto",
        "pyswoole's own: who runs TLS. 'aiofastnet': its compiled transport (pip install "
        "'pyswoole[tls]'; ~25 % less CPU per message, 14 % per handshake); 'stdlib': the event "
        "loop's SSL transport; 'auto': aiofastnet when importable and the listener has no "
        "ssl_sni_certs, else stdlib",
        check=check_engine,
    ),
    _ignored(
        "ssl_verify_depth",
        "Python's ssl cannot set the verify depth: OpenSSL's default (100) applies",
    ),
    _ignored(
        "ssl_allow_self_signed",
        "Python's ssl has no verify callback: trust a self-signed client certificate by "
        "listing it in ssl_client_cert_file",
    ),
    _ignored("ssl_host_name", "a client option: a server's name comes from the client's SNI"),
]
_PENDING: list[Setting] = []

#: Swoole's other spellings of a key -> the key it is stored under (swoole_server.cc,
#: swoole_server_port.cc, php_swoole.cc)
ALIASES = {
    "max_connection": "max_conn",
    "output_buffer_size": "buffer_output_size",
    "input_buffer_size": "buffer_input_size",
    "task_object": "task_use_object",
    "max_coro_num": "max_coroutine",
    "stack_size": "c_stack_size",
    "http_gzip_level": "http_compression_level",
    "compression_level": "http_compression_level",
    "compression_min_length": "http_compression_min_length",
    "compression_types": "http_compression_types",
    "package_body_start": "package_body_offset",
    "socket_send_timeout": "socket_write_timeout",
    "socket_recv_timeout": "socket_read_timeout",
    "ssl_key_password": "ssl_passphrase",
}

SETTINGS: dict[str, Setting] = {}
for _setting in [
    *_HONOURED,
    *_HTTP_FILES,
    *_PROXIES,
    *_IGNORED,
    *_REFUSED,
    *_TLS_SETTINGS,
    *_PENDING,
]:
    if _setting.name in ALIASES:
        continue
    assert _setting.name not in SETTINGS, _setting.name
    SETTINGS[_setting.name] = _setting
