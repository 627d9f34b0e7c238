"""What a server says when it starts, and what it says when it cannot.

- :func:`startup_line`: one line, logged once by the process that called ``start()`` (the
  master), listing every listener (``ws://``, ``wss://``, ``http://``, ``https://``,
  ``tcp://``, ``unix:`` paths), the process mode, the workers and the pid, as uvicorn's
  "running on" line. Swoole itself prints nothing at start; this is pyswoole's own, on the
  ``pyswoole`` logger at INFO (``log_level`` 4 or more hides it).
- :func:`bind_error`: a listening socket that cannot be bound becomes a one-line
  :class:`~pyswoole.exceptions.BindError` naming the address, instead of a bare ``OSError``:
  ``EADDRINUSE`` with the process that holds the port when ``/proc`` tells (best effort),
  ``EACCES`` on a privileged port, an unknown host, an address that is not this machine's.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import TYPE_CHECKING

from ..constants import SWOOLE_PROCESS, SWOOLE_SOCK_UNIX_STREAM, SWOOLE_SSL
from ..exceptions import BindError
from ..runtime.listener import Listener

if TYPE_CHECKING:
    from .base import Server

__all__ = ["bind_error", "close_listeners", "listener_url", "port_holder", "startup_line"]

#: /proc/net/tcp's state column for a listening socket
_TCP_LISTEN = "0A"
#: how many processes' fd tables :func:`port_holder` reads at most
_MAX_PROCESSES = 4096


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listener_url(server: Server, listener: Listener) -> str:
    """``ws://127.0.0.1:9501``, ``https://[::1]:443``, ``unix:/run/app.sock`` ..."""
    if listener.sock_type == SWOOLE_SOCK_UNIX_STREAM:
        return f"unix:{listener.host}"
    profile = listener.profile
    if profile is not None:
        websocket, raw = profile.websocket, profile.raw
    else:
        websocket = bool(getattr(server, "_websocket_port", False))
        raw = server._raw_tcp
    tls = bool(listener.sock_type & SWOOLE_SSL)
    scheme = "tcp" if raw else ("ws" if websocket else "http")
    if tls:
        scheme = {"tcp": "tls", "ws": "wss", "http": "https"}[scheme]
    return f"{scheme}://{_address(listener.host, listener.port)}"


def startup_line(server: Server) -> str:
    """The one line a server logs when it serves: listeners, mode, workers, pid."""
    get = server._settings.get_value
    urls = ", ".join(listener_url(server, listener) for listener in server._listeners)
    mode = "SWOOLE_PROCESS" if server.mode == SWOOLE_PROCESS else "SWOOLE_BASE"
    workers = int(get("worker_num"))
    parts = [type(server).__name__, mode, f"{workers} worker{'s' if workers != 1 else ''}"]
    tasks = int(get("task_worker_num"))
    if tasks:
        parts.append(f"{tasks} task worker{'s' if tasks != 1 else ''}")
    parts.append(f"pid {os.getpid()}")
    return f"pyswoole serving {urls} ({', '.join(parts)})"


def close_listeners(listeners: list[Listener]) -> None:
    """Close the sockets bound so far (a later listener failed to bind)."""
    for listener in listeners:
        if listener.sock is not None:
            listener.sock.close()
            listener.sock = None
            listener.unlink()


def bind_error(listener: Listener, exc: OSError) -> BindError:
    """One line saying why ``listener`` could not listen, naming its address."""
    if listener.sock_type == SWOOLE_SOCK_UNIX_STREAM:
        where = f"unix:{listener.host}"
        if exc.errno == errno.EADDRINUSE:
            why = "the path exists and is not a socket"
        else:
            why = exc.strerror or str(exc)
        return _error(f"cannot listen on {where}: {why}", exc)
    where = _address(listener.host, listener.port)
    if isinstance(exc, socket.gaierror):
        return _error(f"cannot listen on {where}: unknown host {listener.host!r} ({exc})", exc)
    if exc.errno == errno.EADDRINUSE:
        holder = port_holder(listener.port)
        return _error(f"address {where} is already in use{f' by {holder}' if holder else ''}", exc)
    if exc.errno == errno.EACCES:
        first = _unprivileged_port_start()
        if 0 < listener.port < first:
            return _error(
                f"permission denied to listen on {where}: ports below {first} need root or "
                "CAP_NET_BIND_SERVICE (or set a port >= 1024)",
                exc,
            )
        return _error(f"permission denied to listen on {where}", exc)
    if exc.errno == errno.EADDRNOTAVAIL:
        return _error(
            f"cannot listen on {where}: {listener.host} is not an address of this machine", exc
        )
    return _error(f"cannot listen on {where}: {exc.strerror or exc}", exc)


def _error(message: str, exc: OSError) -> BindError:
    error = BindError(message)
    error.errno = exc.errno
    return error


def _unprivileged_port_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the TCP sockets listening on ``port`` (any address), from /proc/net."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _TCP_LISTEN:
                continue
            local_port = fields[1].rpartition(":")[2]
            if int(local_port, 16) == port and fields[9] != "0":
                inodes.add(fields[9])
    return inodes


def port_holder(port: int) -> str:
    """``"pid 1234 (python3 -m http.server)"``: the process listening on TCP ``port``, read
    from ``/proc/net/tcp{,6}`` and the ``/proc/<pid>/fd`` links (best effort: another
    user's processes are visible to root only); empty when it cannot tell."""
    inodes = _listening_inodes(port)
    if not inodes:
        return ""
    targets = {f"socket:[{inode}]" for inode in inodes}
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()][:_MAX_PROCESSES]
    except OSError:
        return ""
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link in targets:
                return f"pid {pid} ({_command(pid)})"
    return ""


def _command(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return "?"
    text = " ".join(arg.decode(errors="replace") for arg in argv)
    return text[:120] + ("..." if len(text) > 120 else "")
