"""What a worker process does to itself before its loop runs, and the socket options.

Swoole applies these in its worker and task worker processes, after the master bound the
listening sockets (so a port below 1024 can be bound as root, then served as ``nobody``):

- ``open_cpu_affinity`` (+ ``cpu_affinity_ignore``): worker N on CPU N % count;
- ``chroot``, then ``group``, then ``user`` (the order that still allows each step);
- ``debug_mode``: asyncio's debug mode on the worker's loop.

Socket options: ``open_tcp_nodelay``, ``open_tcp_keepalive`` with ``tcp_keep*``,
``tcp_user_timeout`` on each accepted connection; ``tcp_fastopen`` and ``tcp_defer_accept``
on the listening sockets.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigError

__all__ = [
    "Identity",
    "connection_options",
    "daemonize",
    "enter_worker_process",
    "listener_options",
    "resolve_identity",
]

log = logging.getLogger("pyswoole")

SockOption = tuple[int, int, int]


@dataclass(frozen=True)
class Identity:
    """The ``user``/``group``/``chroot`` settings, resolved at ``start()`` (so an unknown user
    fails there, once, not in every worker)."""

    uid: int | None
    gid: int | None
    chroot: str


def resolve_identity(get: Callable[[str], Any]) -> Identity:
    user, group, root = get("user"), get("group"), get("chroot")
    uid = gid = None
    if user:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise ConfigError(f"setting 'user': no user {user!r} on this system") from None
        uid, gid = entry.pw_uid, entry.pw_gid
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(f"setting 'group': no group {group!r} on this system") from None
    if root and not os.path.isdir(root):
        raise ConfigError(f"setting 'chroot': {root!r} is not a directory")
    wanted = (uid is not None and uid != os.geteuid()) or (gid is not None and gid != os.getegid())
    if (wanted or root) and os.geteuid() != 0:
        raise ConfigError("settings 'user'/'group'/'chroot' need the server to start as root")
    return Identity(uid, gid, root)


def enter_worker_process(get: Callable[[str], Any], identity: Identity, worker_id: int) -> None:
    """Run in a freshly started worker or task worker (or the single process), before its
    callbacks: CPU affinity, then chroot, group and user."""
    if get("open_cpu_affinity"):
        ignore = set(get("cpu_affinity_ignore"))
        cpus = sorted(os.sched_getaffinity(0) - ignore) or sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[worker_id % len(cpus)]})
    if identity.chroot:
        os.chroot(identity.chroot)
        os.chdir("/")
    if identity.gid is not None and identity.gid != os.getegid():
        os.setgroups([identity.gid])
        os.setgid(identity.gid)
    if identity.uid is not None and identity.uid != os.geteuid():
        os.setuid(identity.uid)


def connection_options(get: Callable[[str], Any]) -> tuple[SockOption, ...]:
    """``setsockopt`` calls for each accepted connection (none in the common case:
    asyncio/uvloop already set TCP_NODELAY, which is Swoole's HTTP/WebSocket default)."""
    options: list[SockOption] = []
    if not get("open_tcp_nodelay"):
        options.append((socket.IPPROTO_TCP, socket.TCP_NODELAY, 0))
    if get("open_tcp_keepalive"):
        options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
        for key, name in (
            ("tcp_keepidle", "TCP_KEEPIDLE"),
            ("tcp_keepinterval", "TCP_KEEPINTVL"),
            ("tcp_keepcount", "TCP_KEEPCNT"),
        ):
            if get(key) and hasattr(socket, name):
                options.append((socket.IPPROTO_TCP, getattr(socket, name), get(key)))
    if get("kernel_socket_recv_buffer_size"):
        options.append((socket.SOL_SOCKET, socket.SO_RCVBUF, get("kernel_socket_recv_buffer_size")))
    if get("kernel_socket_send_buffer_size"):
        options.append((socket.SOL_SOCKET, socket.SO_SNDBUF, get("kernel_socket_send_buffer_size")))
    if get("tcp_user_timeout") and hasattr(socket, "TCP_USER_TIMEOUT"):
        options.append((socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, get("tcp_user_timeout")))
    return tuple(options)


def listener_options(get: Callable[[str], Any]) -> tuple[SockOption, ...]:
    """``setsockopt`` calls for each listening socket, after ``bind()``."""
    options: list[SockOption] = []
    fastopen = get("tcp_fastopen")
    if fastopen and hasattr(socket, "TCP_FASTOPEN"):
        queue = 1024 if fastopen is True else int(fastopen)
        options.append((socket.IPPROTO_TCP, socket.TCP_FASTOPEN, queue))
    if get("tcp_defer_accept") and hasattr(socket, "TCP_DEFER_ACCEPT"):
        options.append((socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, get("tcp_defer_accept")))
    return tuple(options)


def apply(sock: Any, options: tuple[SockOption, ...]) -> None:
    """Set ``options`` on ``sock``; one that the kernel refuses is logged, not fatal."""
    for level, name, value in options:
        try:
            sock.setsockopt(level, name, value)
        except OSError as exc:
            log.warning("setsockopt(%d, %d, %d) failed: %s", level, name, value, exc)


def daemonize(log_file: str) -> None:
    """Detach from the terminal: fork, new session, fork; stdio to ``log_file`` or null."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    sys.stdout.flush()
    sys.stderr.flush()
    null = os.open(os.devnull, os.O_RDWR)
    out = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if log_file else null
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
