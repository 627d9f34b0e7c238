"""Every key Swoole 6.2 reads in ``Server::set()``/``Port::set()`` is known to pyswoole's
``set()``: honoured, accepted with a warning, pending or refused with a reason -- never
"unknown setting" (issue 12: "Swoole's whole settings vocabulary").

The list is Swoole's own: the option tables of ``Swoole\\Server\\Helper::checkOptions()``
(swoole/library src/core/Server/Helper.php: GLOBAL_OPTIONS, SERVER_OPTIONS, PORT_OPTIONS,
HELPER_OPTIONS, AIO_OPTIONS, COROUTINE_OPTIONS) plus the keys the C code reads that those
tables miss (ext-src/php_swoole.cc, swoole_server.cc, swoole_server_port.cc,
swoole_websocket_server.cc; docs/research/swoole-settings.md).
"""

from __future__ import annotations

import pytest

from pyswoole import ConfigError
from pyswoole.server.setting_keys import ALIASES, SETTINGS
from pyswoole.server.settings import Settings

GLOBAL_OPTIONS = """
debug_mode trace_flags log_file log_level log_date_format log_date_with_microseconds
log_rotation display_errors dns_server socket_dns_timeout socket_connect_timeout
socket_write_timeout socket_send_timeout socket_read_timeout socket_recv_timeout
socket_buffer_size socket_timeout
"""
SERVER_OPTIONS = """
chroot user group daemonize pid_file reactor_num single_thread worker_num max_wait_time
max_queued_bytes enable_coroutine max_coro_num max_coroutine hook_flags send_timeout
dispatch_mode send_yield dispatch_func discard_timeout_request enable_unsafe_event
enable_delay_receive enable_reuse_port task_use_object task_object event_object
task_enable_coroutine task_worker_num task_ipc_mode task_tmpdir task_max_request
task_max_request_grace max_connection max_conn start_session_id heartbeat_check_interval
heartbeat_idle_time max_request max_request_grace reload_async open_cpu_affinity
cpu_affinity_ignore http_parse_cookie http_parse_post http_parse_files http_compression
http_compression_level http_gzip_level compression_min_length websocket_compression
upload_tmp_dir enable_static_handler document_root http_autoindex http_index_files
static_handler_locations input_buffer_size buffer_input_size output_buffer_size
buffer_output_size message_queue_key
"""
PORT_OPTIONS = """
ssl_cert_file ssl_key_file backlog socket_buffer_size kernel_socket_recv_buffer_size
kernel_socket_send_buffer_size heartbeat_idle_time buffer_high_watermark buffer_low_watermark
open_tcp_nodelay tcp_defer_accept open_tcp_keepalive open_eof_check open_eof_split package_eof
open_http_protocol open_websocket_protocol websocket_subprotocol open_websocket_close_frame
open_websocket_ping_frame open_websocket_pong_frame open_http2_protocol open_mqtt_protocol
open_redis_protocol max_idle_time tcp_keepidle tcp_keepinterval tcp_keepcount tcp_user_timeout
tcp_fastopen open_length_check package_length_type package_length_offset package_body_offset
package_body_start package_length_func package_max_length ssl_compress ssl_protocols
ssl_verify_peer ssl_allow_self_signed ssl_client_cert_file ssl_verify_depth
ssl_prefer_server_ciphers ssl_ciphers ssl_ecdh_curve ssl_dhparam ssl_sni_certs
"""
HELPER_OPTIONS = "stats_file stats_timer_interval admin_server"
AIO_AND_COROUTINE_OPTIONS = """
aio_core_worker_num aio_worker_num aio_max_wait_time aio_max_idle_time iouring_entries
iouring_workers iouring_flag enable_signalfd wait_signal dns_cache_refresh_time thread_num
min_thread_num max_thread_num socket_dontwait dns_lookup_random use_async_resolver
enable_deadlock_check enable_preemptive_scheduler c_stack_size stack_size name_resolver
dns_cache_expire dns_cache_capacity
"""
#: read by the C code, missing from the library's tables (Swoole itself warns on them)
C_ONLY = """
print_backtrace_on_error enable_kqueue websocket_mask ssl_cafile ssl_capath url_rewrite_rules
bootstrap init_arguments upload_max_filesize max_concurrency worker_max_concurrency
http_compression_types compression_types compression_level http2_header_table_size
http2_enable_push http2_max_concurrent_streams http2_init_window_size http2_max_frame_size
http2_max_header_list_size http2_max_headers
"""

SWOOLE_KEYS = sorted(
    set(
        (
            GLOBAL_OPTIONS
            + SERVER_OPTIONS
            + PORT_OPTIONS
            + HELPER_OPTIONS
            + AIO_AND_COROUTINE_OPTIONS
            + C_ONLY
        ).split()
    )
)


def test_the_list_is_swooles_whole_vocabulary() -> None:
    assert len(SWOOLE_KEYS) >= 170


@pytest.mark.parametrize("key", SWOOLE_KEYS)
def test_every_swoole_key_is_known(key: str) -> None:
    assert key in SETTINGS or key in ALIASES, f"{key!r} is not known to set()"
    name = ALIASES.get(key, key)
    assert SETTINGS[name].doc, f"{key!r} has no meaning or reason"


def test_no_swoole_key_is_an_unknown_setting() -> None:
    """``set()`` never answers "unknown setting" for one of Swoole's keys: it takes it (with
    a value of the right type) or refuses it saying why."""
    for key in SWOOLE_KEYS:
        try:
            Settings().update({key: SETTINGS[ALIASES.get(key, key)].default})
        except ConfigError as exc:
            assert "unknown setting" not in str(exc), exc
