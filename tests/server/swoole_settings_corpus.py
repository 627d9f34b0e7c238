"""Real ``$server->set([...])`` arrays from public Swoole apps and frameworks, as Python dicts.

Each entry is ``(source, settings)`` where ``source`` is ``"owner/repo:path"`` of the public file
the array was read from (found with the code search of public repositories) and ``settings`` is
that array translated literally: PHP ``true``/``false`` become ``True``/``False``, ``1`` stays
``1`` (``'daemonize' => 1`` is kept as an int, not turned into a bool), sizes are ints, PHP
constants become the ``pyswoole`` constant of the same name, closures become small lambdas.

Values the apps compute at run time are frozen to what they evaluate to by default:

* ``swoole_cpu_num()`` is ``_CPU_NUM`` (the machine's CPU count, as Swoole computes it);
* ``storage_path('x')`` / ``base_path('x')`` / ``BASE_PATH . '/x'`` / ``__DIR__ . '/x'`` are
  absolute path strings under ``/srv/app`` (the comment gives the PHP expression);
* ``env('NAME', default)`` is its default; ``date('Y-m')`` is a fixed month.

Hyperf writes keys as ``Swoole\\Constant::OPTION_*``; each is the key string it names.

The corpus deliberately keeps what the apps really wrote, including keys Swoole 6.2 does not
know (``backblog``, ``only_simple_http``, ``timeout``, ``debug_mode`` without a debug build),
the deprecated ``dispatch_mode => 7`` and ``None`` for an unset certificate path: a settings layer
that claims Swoole compatibility must say something sensible about every one of them.
"""

from __future__ import annotations

import os

import pyswoole

_CPU_NUM = os.cpu_count() or 1  # swoole_cpu_num()

CORPUS: list[tuple[str, dict[str, object]]] = [
    # Hyperf HTTP server (Swoole\Constant::OPTION_* keys).
    (
        "wuxian12/web:config/autoload/server.php",
        {
            "enable_coroutine": True,
            "worker_num": _CPU_NUM,
            "pid_file": "/srv/app/hyperf.pid",  # BASE_PATH . '/hyperf.pid'
            "open_tcp_nodelay": True,
            "max_coroutine": 100000,
            "open_http2_protocol": True,
            "max_request": 100000,
            "socket_buffer_size": 2 * 1024 * 1024,
            "buffer_output_size": 2 * 1024 * 1024,
        },
    ),
    (
        "ryc1008/moske-api:config/autoload/server.php",
        {
            "enable_coroutine": True,
            "worker_num": _CPU_NUM,
            "pid_file": "/srv/app/runtime/hyperf.pid",  # BASE_PATH . '/runtime/hyperf.pid'
            "open_tcp_nodelay": True,
            "max_coroutine": 100000,
            "open_http2_protocol": True,
            "max_request": 100000,
            "socket_buffer_size": 2 * 1024 * 1024,
            "buffer_output_size": 2 * 1024 * 1024,
            "document_root": "/srv/app/public",  # BASE_PATH . '/public'
            "enable_static_handler": True,
        },
    ),
    (
        "yansongda/hyperf-skeleton:config/autoload/server.php",
        {
            "enable_coroutine": True,
            "worker_num": 2 * _CPU_NUM,
            "reactor_num": 2 * _CPU_NUM,
            "pid_file": "/srv/app/runtime/yansongda.pid",  # BASE_PATH.'/runtime/yansongda.pid'
            "open_tcp_nodelay": True,
            "max_coroutine": 100000,
            "open_http2_protocol": True,
            "buffer_input_size": 2 * 1024 * 1024,
            "buffer_output_size": 2 * 1024 * 1024,
            "socket_buffer_size": 2 * 1024 * 1024,
        },
    ),
    # Laravel Octane: defaultServerOptions() merged under config('octane.swoole.options').
    (
        "laravel/octane:src/Commands/StartSwooleCommand.php",
        {
            "enable_coroutine": False,
            "daemonize": False,
            "log_file": "/srv/app/storage/logs/swoole_http.log",  # storage_path(...)
            # app()->environment('local') ? SWOOLE_LOG_INFO : SWOOLE_LOG_ERROR (production)
            "log_level": pyswoole.SWOOLE_LOG_ERROR,
            "max_request": 500,  # $this->option('max-requests'), default 500
            "package_max_length": 10 * 1024 * 1024,
            "reactor_num": _CPU_NUM,  # workerCount(): --workers=auto is the CPU count
            "send_yield": True,
            "socket_buffer_size": 10 * 1024 * 1024,
            "task_max_request": 500,
            "task_worker_num": _CPU_NUM,  # taskWorkerCount(): --task-workers=auto
            "worker_num": _CPU_NUM,
        },
    ),
    # LaravelS: the 'swoole' section is handed to Server::set() as is.
    (
        "hhxsv5/laravel-s:config/laravels.php",
        {
            "daemonize": False,  # env('LARAVELS_DAEMONIZE', false)
            "dispatch_mode": 2,
            "reactor_num": _CPU_NUM * 2,
            "worker_num": _CPU_NUM * 2,
            "task_ipc_mode": 1,
            "task_max_request": 8000,
            "task_tmpdir": "/dev/shm",  # @is_writable('/dev/shm/') ? '/dev/shm' : '/tmp'
            "max_request": 8000,
            "open_tcp_nodelay": True,
            "pid_file": "/srv/app/storage/laravels.pid",  # storage_path('laravels.pid')
            "log_file": "/srv/app/storage/logs/swoole-2026-12.log",  # date('Y-m')
            "log_level": 4,
            "document_root": "/srv/app/public",  # base_path('public')
            "buffer_output_size": 2 * 1024 * 1024,
            "socket_buffer_size": 128 * 1024 * 1024,
            "package_max_length": 4 * 1024 * 1024,
            "reload_async": True,
            "max_wait_time": 60,
            "enable_reuse_port": True,
            "enable_coroutine": False,
            "http_compression": False,
        },
    ),
    # A LaravelS fork's WebSocket server config.
    (
        "hangjw/laravel-s:src/Config/laravelsWebsocket.php",
        {
            "dispatch_mode": 2,
            "max_request": 3000,
            "daemonize": 1,
            "pid_file": "/srv/app/storage/laravelsWebsocket.pid",
            "log_file": "/srv/app/storage/logs/swoole-2026-12-05.log",  # date('Y-m-d')
            "log_level": 4,
            "document_root": "/srv/app/public",
        },
    ),
    # swooletw/laravel-swoole style config, as deployed in a Docker image.
    (
        "hughshen/laravel-swoole-docker:config/swoole_http.php",
        {
            "pid_file": "/srv/app/storage/logs/swoole_http.pid",
            "log_file": "/srv/app/storage/logs/swoole_http.log",
            "daemonize": False,
            "reactor_num": _CPU_NUM * 2,
            "worker_num": _CPU_NUM * 2,
            "task_worker_num": _CPU_NUM * 2,
            "package_max_length": 20 * 1024 * 1024,
            "buffer_output_size": 10 * 1024 * 1024,
            "socket_buffer_size": 128 * 1024 * 1024,
            "max_request": 3000,
            "send_yield": True,
            "ssl_cert_file": None,
            "ssl_key_file": None,
        },
    ),
    (
        "flysion/swoolaravel:config/webserver.php",
        {
            "worker_num": _CPU_NUM * 4,
            "task_worker_num": _CPU_NUM * 4,
            "upload_tmp_dir": "/srv/app/storage/upload_tmp",  # storage_path('upload_tmp')
        },
    ),
    # EasySwoole: MAIN_SERVER.SETTING is passed to Server::set().
    (
        "tenry18/live:dev.php",
        {
            "worker_num": _CPU_NUM,
            "reload_async": True,
            "max_wait_time": 3,
            "enable_coroutine": True,
        },
    ),
    (
        "easy-swoole/demo:tcp.php",
        {
            "worker_num": 1,
            "reload_async": True,
            "max_wait_time": 3,
            "open_length_check": True,
            "package_max_length": 81920,
            "package_length_type": "N",
            "package_length_offset": 0,
            "package_body_offset": 4,
        },
    ),
    (
        "KingWQ/easyswoole3.x-api:dev.php",
        {
            "worker_num": 8,
            "max_request": 5000,
            "task_worker_num": 8,
            "task_max_request": 1000,
            "reload_async": True,
            "task_enable_coroutine": True,
            "max_wait_time": 3,
        },
    ),
    # Yii2 console WebSocket server (settings passed to Swoole\WebSocket\Server::set()).
    (
        "sharifov/test:environments/stage/console/config/params-local.php",
        {
            "pid_file": "/srv/app/console/runtime/swoole.pid",  # __DIR__ . '/../runtime/...'
            "worker_num": 1,
            "websocket_compression": True,
            "group": "www-data",
            "open_tcp_keepalive": True,
            "tcp_keepidle": 60,
            "tcp_keepinterval": 3,
            "tcp_keepcount": 3,
            "heartbeat_idle_time": 60,
            "heartbeat_check_interval": 15,
        },
    ),
    # A WebSocket chat demo: $ws->set(...) as shown in its README.
    (
        "jasonccs/swool-demo:README.md",
        {
            "daemonize": True,
            "max_request": 10000,
            "dispatch_mode": 2,
            "debug_mode": 1,
            "heartbeat_check_interval": 5,
            "heartbeat_idle_time": 600,
        },
    ),
    (
        "sebastiankennedy/learning-swoole:02/heartbeat/server.php",
        {
            "heartbeat_idle_time": 10,
            "heartbeat_check_interval": 3,
        },
    ),
    # A WebSocket server written to reproduce swoole-src issue 3212.
    (
        "swooleo/example:issue/3212/server.php",
        {
            "worker_num": 1,
        },
    ),
    # 'backblog' is the app's typo for 'backlog'.
    (
        "FlyingKirito/Kirito:config/httpServer.php",
        {
            "worker_num": 1,
            "backblog": 128,
            "max_request": 100,
            "daemonize": True,
            "log_file": "/srv/app/var/log/swoole.log",  # dirname(__DIR__).'/var/log/swoole.log'
            "pid_file": "/srv/app/var/pid/http_server.pid",
        },
    ),
    (
        "kimistar/lumen_swoole:config/swoole.php",
        {
            "worker_num": 8,
            "max_request": 2000,
            "dispatch_mode": 3,
            "daemonize": 1,
            "log_file": "/srv/app/storage/logs/swoole_server.log",
            "pid_file": "/srv/app/storage/logs/swoole_server.pid",
        },
    ),
    # yii2-swoole: 'only_simple_http' is not a Swoole option.
    (
        "tiagocomti/swoole-with-modules-basic:config/server.php",
        {
            "pid_file": "/srv/app/runtime/swoole.pid",  # __DIR__ .'/../runtime/swoole.pid'
            "log_file": "/tmp/swoole_http_server_core.log",
            "worker_num": int(_CPU_NUM * 0.8),  # (int)(swoole_cpu_num()*0.8)
            "daemonize": True,
            "enable_static_handler": False,
            "enable_coroutine": False,
            "open_mqtt_protocol": False,
            "only_simple_http": True,
            "open_tcp_nodelay": True,
            "max_request": 10000,
            "dispatch_mode": 2,
            "log_level": 0,
            "task_worker_num": 2,
            "user": "www",
            "group": "www",
        },
    ),
    (
        "swoole-foundation/yii2-swoole-extension:tests/config/server.php",
        {
            "pid_file": "/srv/app/tests/runtime/swoole.pid",
            "worker_num": 2,
            "daemonize": 0,
            "task_worker_num": 2,
        },
    ),
    # 'timeout' is the select/epoll timeout of Swoole 1.x, long gone.
    (
        "MexChina/swoole:App/Refresh/Config/dev/swoole.config.php",
        {
            "timeout": 2.5,
            "worker_num": 1,
            "reactor_num": 4,
            "task_worker_num": 0,
            "backlog": 128,
            "max_request": 5000,
            "daemonize": 0,
            "dispatch_mode": 2,
            # SWOOLE_ROOT_DIR . "log/" . SWOOLE_APP . "/swoole_" . date('Ymd') . ".log"
            "log_file": "/srv/app/log/refresh/swoole_20261205.log",
        },
    ),
    # swoolefy WebSocket server 'setting'.
    (
        "bingcool/swoolefy:score/Websocket/config.php",
        {
            "reactor_num": 1,
            "worker_num": 3,
            "max_request": 1000,
            "task_worker_num": 2,
            "task_tmpdir": "/dev/shm",
            "daemonize": 0,
            "dispatch_mode": 2,
            "log_file": "/srv/app/score/Websocket/log.txt",  # __DIR__.'/log.txt'
            "pid_file": "/srv/app/score/Websocket/server.pid",
        },
    ),
    # linkphp WebSocket server 'setting'.
    (
        "liugene/linkphp:conf/bin/ws.php",
        {
            "reactor_num": 1,
            "worker_num": 1,
            "backlog": 128,
            "max_request": 1,
            "dispatch_mode": 1,
            "pid_file": "/srv/app/runtime/run/ws.pid",  # RUNTIME_PATH . 'run/ws.pid'
            "log_file": "/srv/app/runtime/log/ws.log",
        },
    ),
    # Laravel HTTP server: 'options' passed to Server::set(); heartbeat with dispatch_mode 1.
    (
        "pappercup/laras:src/Config/swoole.php",
        {
            "daemonize": 1,
            "log_file": "/srv/app/storage/logs/swoole.log",  # storage_path('logs/swoole.log')
            "dispatch_mode": 1,
            "heartbeat_check_interval": 30,
            "heartbeat_idle_time": 60,
            "max_request": 2000,
            "worker_num": 4,
            "reactor_num": 2,
            "max_conn": 10000,
        },
    ),
    (
        "simoole/simoole:src/ini/swoole.ini.php",
        {
            "worker_num": _CPU_NUM,
            "max_request": 10000,
            "max_coroutine": 100000,
            "daemonize": 0,
            "pid_file": "/srv/app/tmp/server.pid",  # TMP_PATH . 'server.pid'
            "log_file": "/srv/app/tmp/running.tmp",  # TMP_PATH . 'running.tmp'
            "open_http2_protocol": False,
            "dispatch_mode": 2,
        },
    ),
    # Swoole's own examples: a PHP dispatch_func closure and the removed stream mode.
    (
        "swoole/swoole-src:examples/server/dispatch_func.php",
        {
            # function ($serv, $fd, $type, $data) { return intval($data[0]); }
            "dispatch_func": lambda serv, fd, type_, data: int(data[0]),
        },
    ),
    (
        "swoole/swoole-src:examples/server/dispatch_stream.php",
        {
            "dispatch_mode": 7,
            "worker_num": 2,
        },
    ),
]
