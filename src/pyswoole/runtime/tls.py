"""TLS for a listener (``sock_type | SWOOLE_SSL``): an :class:`ssl.SSLContext` built from the
``ssl_*`` settings of the server or of the port (Swoole's ``ListenPort::ssl_context``).

The protocol core never sees TLS: a TLS transport wraps each accepted socket and the
connection reads and writes plaintext as on a plain port. Which transport is the listener's
``ssl_engine`` (docs/architecture.md, decision 37):

- ``"stdlib"``: the event loop's own (uvloop's or asyncio's SSL transport over CPython's
  ``ssl.SSLObject`` and memory BIOs);
- ``"aiofastnet"``: `aiofastnet <https://pypi.org/project/aiofastnet/>`_'s compiled TLS
  transport (the optional extra ``pyswoole[tls]``), which calls OpenSSL directly with the
  context's ``SSL_CTX``: a quarter less server CPU per wss message, 14 % per handshake;
- ``"auto"`` (the default): aiofastnet when it is importable and ``PYSWOOLE_NO_EXTENSIONS``
  is not set, unless the listener has ``ssl_sni_certs`` (CPython's ``sni_callback`` needs the
  ``ssl.SSLObject`` aiofastnet's direct engine does not make); else the loop's own.

As Swoole (include/swoole_ssl.h ``SSLContext``, ext-src/swoole_server_port.cc):

- ``ssl_cert_file``/``ssl_key_file`` (PEM; the key may be in the certificate file), the key's
  ``ssl_passphrase`` (a string, or a callable returning it, as :meth:`ssl.SSLContext.
  load_cert_chain` takes it); a file that is missing or unreadable fails ``start()``
  naming the key and the path (Swoole: a fatal "ssl cert file[...] not found");
- ``ssl_protocols``: the ``SWOOLE_SSL_TLSv1*`` bitmask (0: the OpenSSL default, TLS 1.2 and
  1.3), turned into a minimum and a maximum version;
- ``ssl_ciphers`` (TLS 1.2 cipher list, Swoole's default ``SW_SSL_CIPHER_LIST``),
  ``ssl_ecdh_curve`` (``auto``: OpenSSL's groups), ``ssl_dhparam``,
  ``ssl_prefer_server_ciphers``;
- ``ssl_verify_peer``: mutual TLS, a client without a valid certificate fails the
  handshake; the CAs come from ``ssl_client_cert_file``, ``ssl_cafile``, ``ssl_capath``
  (none given: the system's);
- ``ssl_sni_certs``: ``{server_name: {"ssl_cert_file": ..., "ssl_key_file": ...}}``, one
  certificate per name the client asks for (RFC 6066 section 3), chosen in
  ``sni_callback``; other names get the main certificate;
- ALPN (RFC 7301) offers ``http/1.1`` on HTTP and WebSocket ports.

Renewed certificates: the contexts are built once, at ``start()``, before any fork or
privilege drop (the workers inherit them); ``reload()`` re-reads the files into the same
contexts with :meth:`TlsConfig.reload`, in the SWOOLE_BASE manager before it forks the new
workers and in the SWOOLE_PROCESS master, which keeps its sockets.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
import ssl
from collections.abc import Callable
from typing import Any

from ..constants import (
    SWOOLE_SSL_TLSv1,
    SWOOLE_SSL_TLSv1_1,
    SWOOLE_SSL_TLSv1_2,
    SWOOLE_SSL_TLSv1_3,
)
from ..exceptions import ConfigError
from .connection import Connection
from .state import FASTPATH

__all__ = [
    "DEFAULT_CIPHERS",
    "SSL_ENGINES",
    "TLS_KEYS",
    "DirectTlsConnection",
    "TlsConfig",
    "TlsConnection",
    "aiofastnet_module",
    "check_engine",
    "check_protocols",
    "check_sni_certs",
    "peer_certificate",
    "protocol_range",
]

log = logging.getLogger("pyswoole")

#: Swoole's ``SW_SSL_CIPHER_LIST`` (swoole_config.h)
DEFAULT_CIPHERS = "EECDH+AESGCM:EDH+AESGCM:AES256+EECDH:AES256+EDH"

#: the settings a TLS listener reads
TLS_KEYS = (
    "ssl_cert_file",
    "ssl_key_file",
    "ssl_passphrase",
    "ssl_protocols",
    "ssl_ciphers",
    "ssl_ecdh_curve",
    "ssl_dhparam",
    "ssl_prefer_server_ciphers",
    "ssl_verify_peer",
    "ssl_client_cert_file",
    "ssl_cafile",
    "ssl_capath",
    "ssl_sni_certs",
    "ssl_engine",
)

#: the values of ``ssl_engine``
SSL_ENGINES = ("auto", "stdlib", "aiofastnet")

_VERSIONS = (
    (SWOOLE_SSL_TLSv1, ssl.TLSVersion.TLSv1),
    (SWOOLE_SSL_TLSv1_1, ssl.TLSVersion.TLSv1_1),
    (SWOOLE_SSL_TLSv1_2, ssl.TLSVersion.TLSv1_2),
    (SWOOLE_SSL_TLSv1_3, ssl.TLSVersion.TLSv1_3),
)


def protocol_range(mask: int) -> tuple[ssl.TLSVersion, ssl.TLSVersion] | None:
    """``ssl_protocols`` as (minimum, maximum) versions; None for 0 (OpenSSL's default).

    The versions must be contiguous (``TLSv1_2 | TLSv1_3``): Python's ``ssl`` sets a range,
    not the holes Swoole's deprecated ``SSL_OP_NO_*`` options could make."""
    if not mask:
        return None
    chosen = [version for flag, version in _VERSIONS if mask & flag]
    if not chosen:
        raise ConfigError(
            f"setting 'ssl_protocols': {mask} names no TLS version "
            "(SWOOLE_SSL_TLSv1, _TLSv1_1, _TLSv1_2, _TLSv1_3; SSLv2/SSLv3 are gone)"
        )
    flags = [flag for flag, _ in _VERSIONS if mask & flag]
    first = next(i for i, (flag, _) in enumerate(_VERSIONS) if flag == flags[0])
    if [flag for flag, _ in _VERSIONS[first : first + len(flags)]] != flags:
        raise ConfigError(
            f"setting 'ssl_protocols': {mask} leaves a hole between versions; "
            "give a contiguous range (e.g. SWOOLE_SSL_TLSv1_2 | SWOOLE_SSL_TLSv1_3)"
        )
    return chosen[0], chosen[-1]


def check_protocols(value: Any) -> str | None:
    """Setting check of ``ssl_protocols`` (at ``set()``)."""
    if value < 0:
        return "must be a SWOOLE_SSL_* bitmask >= 0"
    try:
        protocol_range(value)
    except ConfigError as exc:
        return str(exc).split(": ", 1)[-1]
    return None


def check_sni_certs(value: Any) -> str | None:
    """Setting check of ``ssl_sni_certs``: ``{name: {"ssl_cert_file": path, ...}}``."""
    if value is None:
        return None
    allowed = {"ssl_cert_file", "ssl_key_file", "ssl_passphrase"}
    for name, entry in value.items():
        if not isinstance(name, str) or not name:
            return "server names must be non-empty strings"
        if not isinstance(entry, dict) or not isinstance(entry.get("ssl_cert_file"), str):
            return f"{name!r} needs a dict with 'ssl_cert_file' (and 'ssl_key_file')"
        unknown = set(entry) - allowed
        if unknown:
            return f"{name!r}: unknown keys {sorted(unknown)} ({', '.join(sorted(allowed))})"
    return None


_aiofastnet: Any = None  # the module, or False: looked up once per process


def aiofastnet_module() -> Any | None:
    """The ``aiofastnet`` module when a listener may use it: installed (``pip install
    pyswoole[tls]``) and ``PYSWOOLE_NO_EXTENSIONS`` not set (it is a compiled extension too,
    and that variable asks for none); else None."""
    global _aiofastnet
    if _aiofastnet is None:
        module: Any = False
        if not os.environ.get("PYSWOOLE_NO_EXTENSIONS"):
            try:
                module = importlib.import_module("aiofastnet")
            except Exception as exc:  # (ImportError; its OpenSSL shim raises ImportError too)
                log.debug("aiofastnet not usable: %s", exc)
        _aiofastnet = module
    return _aiofastnet or None


def check_engine(value: Any) -> str | None:
    """Setting check of ``ssl_engine`` (at ``set()``): one of :data:`SSL_ENGINES`, and
    ``"aiofastnet"`` only where it can be used."""
    if value not in SSL_ENGINES:
        return f"must be one of {', '.join(map(repr, SSL_ENGINES))}, got {value!r}"
    if value == "aiofastnet" and aiofastnet_module() is None:
        if os.environ.get("PYSWOOLE_NO_EXTENSIONS"):
            return "'aiofastnet' is a compiled extension and PYSWOOLE_NO_EXTENSIONS is set"
        return "'aiofastnet' is not installed (pip install 'pyswoole[tls]'); 'auto' falls back"
    return None


def _readable(key: str, path: Any, *, directory: bool = False) -> str:
    """``path`` if it is a readable file (a directory for ``ssl_capath``), else a
    ConfigError naming the setting and the path."""
    if not isinstance(path, str) or not path:
        raise ConfigError(f"setting {key!r}: expected a path, got {path!r}")
    exists = os.path.isdir(path) if directory else os.path.isfile(path)
    if not exists:
        kind = "directory" if directory else "file"
        raise ConfigError(f"setting {key!r}: {kind} {path!r} not found")
    if not os.access(path, os.R_OK | (os.X_OK if directory else 0)):
        raise ConfigError(f"setting {key!r}: {path!r} is not readable")
    return path


def _no_passphrase() -> str:
    """The key is encrypted and no ``ssl_passphrase`` was set: fail (OpenSSL would prompt
    on the terminal otherwise)."""
    raise ConfigError("the private key is encrypted: set 'ssl_passphrase'")


def peer_certificate(transport: Any) -> str | None:
    """The client's certificate (PEM) of a TLS connection, or None (plain, or none sent):
    Swoole's ``getClientInfo()['ssl_client_cert']``."""
    if transport is None:
        return None
    sslobj = transport.get_extra_info("ssl_object")
    if sslobj is None:
        return None
    der = sslobj.getpeercert(binary_form=True)
    return None if not der else ssl.DER_cert_to_PEM_cert(der)


class TlsConfig:
    """The TLS settings of one listener and the contexts built from them.

    ``values``: the ``ssl_*`` settings (:data:`TLS_KEYS`) with their effective values;
    ``alpn``: offer ``http/1.1`` (HTTP and WebSocket ports; a raw TCP port offers none).
    """

    __slots__ = ("_engine", "_sni", "alpn", "context", "name", "values")

    def __init__(self, values: dict[str, Any], *, alpn: bool, name: str = "") -> None:
        self.values = values
        self.alpn = alpn
        #: the listener, for messages ("127.0.0.1:443")
        self.name = name
        self.context: ssl.SSLContext | None = None
        #: server name (lower case) -> its context (ssl_sni_certs); replaced on reload
        self._sni: dict[str, ssl.SSLContext] = {}
        self._engine = ""

    @classmethod
    def from_settings(cls, get: Callable[[str], Any], *, alpn: bool, name: str) -> TlsConfig:
        return cls({key: get(key) for key in TLS_KEYS}, alpn=alpn, name=name)

    # -- building ---------------------------------------------------------------------------

    def build(self) -> ssl.SSLContext:
        """Read the files and build the listener's context (kept as ``context``); a
        missing or unreadable file, a wrong passphrase, a bad cipher list... raise
        ConfigError naming the setting."""
        self._engine = self._choose_engine()
        sni = self._build_sni()
        context = self._new_context(
            self.values["ssl_cert_file"], self.values["ssl_key_file"], "ssl_cert_file"
        )
        self._sni = sni
        if sni:
            context.sni_callback = self._sni_table
        self.context = context
        return context

    # -- the engine ---------------------------------------------------------------------------

    @property
    def engine(self) -> str:
        """``"stdlib"`` or ``"aiofastnet"``: what ``ssl_engine`` chose for this listener."""
        if not self._engine:
            self._engine = self._choose_engine()
        return self._engine

    def _choose_engine(self) -> str:
        """``ssl_engine`` resolved (module docstring): ConfigError for ``"aiofastnet"``
        where it cannot be used."""
        wanted = self.values.get("ssl_engine") or "auto"
        if wanted == "stdlib":
            return "stdlib"
        problem = check_engine(wanted)
        sni = bool(self.values.get("ssl_sni_certs"))
        if wanted == "aiofastnet":
            if problem:
                raise ConfigError(f"setting 'ssl_engine': {problem}")
            if sni:
                raise ConfigError(
                    "setting 'ssl_engine': 'aiofastnet' cannot serve ssl_sni_certs (CPython's "
                    "sni_callback needs the ssl.SSLObject it does not make): use 'auto' or "
                    "'stdlib' on this listener"
                )
            return "aiofastnet"
        return "aiofastnet" if not sni and aiofastnet_module() is not None else "stdlib"

    def connection_class(self) -> type[Connection]:
        """The connection class of this listener's engine."""
        return DirectTlsConnection if self.engine == "aiofastnet" else TlsConnection

    async def create_server(
        self,
        loop: asyncio.AbstractEventLoop,
        factory: Callable[[], Connection],
        sock: Any,
        backlog: int,
        handshake_timeout: float,
    ) -> asyncio.AbstractServer:
        """Serve the listening socket ``sock`` with this listener's engine: the connections
        see plaintext; a handshake that does not complete within ``handshake_timeout``
        seconds is closed."""
        context = self.worker_context()
        afn = aiofastnet_module() if self.engine == "aiofastnet" else None
        if afn is not None:
            _quiet_handshake_eof(loop)
            _retry_accept_later(sock)
            server = await afn.create_server(
                loop,
                factory,
                sock=sock,
                backlog=backlog,
                ssl=context,
                ssl_handshake_timeout=handshake_timeout,
            )
            return _AiofastnetServer(server)
        return await loop.create_server(
            factory,
            sock=sock,
            backlog=backlog,
            ssl=context,
            ssl_handshake_timeout=handshake_timeout,
        )

    def worker_context(self) -> ssl.SSLContext:
        """The context a listener serves with: the one built at ``start()`` (inherited by
        forked workers, renewed in place by :meth:`reload`); built now if there is none."""
        return self.context if self.context is not None else self.build()

    def reload(self) -> bool:
        """Re-read the certificate files into the existing context (the SWOOLE_PROCESS
        master's listeners keep their contexts): new handshakes get the renewed
        certificates. False, and the old ones kept, if a file cannot be read."""
        context = self.context
        if context is None:
            return False
        try:
            sni = self._build_sni()
            self._load_chain(
                context, self.values["ssl_cert_file"], self.values["ssl_key_file"], "ssl_cert_file"
            )
        except ConfigError as exc:
            log.error("TLS %s: reload: %s; keeping the previous certificate", self.name, exc)
            return False
        self._sni.clear()
        self._sni.update(sni)
        return True

    def _sni_table(self, sslobj: ssl.SSLObject, server_name: str | None, _: Any) -> None:
        """``sni_callback``: the context of the name the client asked for (RFC 6066
        section 3); unknown names and no name keep the main one."""
        if server_name is not None:
            context = self._sni.get(server_name.lower())
            if context is not None:
                sslobj.context = context

    def _build_sni(self) -> dict[str, ssl.SSLContext]:
        certs = self.values["ssl_sni_certs"] or {}
        table: dict[str, ssl.SSLContext] = {}
        for name, entry in certs.items():
            key = f"ssl_sni_certs[{name!r}]"
            cert = entry.get("ssl_cert_file")
            if cert is None:
                raise ConfigError(f"setting {key}: needs 'ssl_cert_file'")
            table[name.lower()] = self._new_context(
                cert,
                entry.get("ssl_key_file"),
                f"{key}['ssl_cert_file']",
                passphrase=entry.get("ssl_passphrase", self.values["ssl_passphrase"]),
            )
        return table

    def _new_context(
        self, cert: Any, key: Any, cert_key: str, passphrase: Any = None
    ) -> ssl.SSLContext:
        values = self.values
        if not cert:
            raise ConfigError(
                f"TLS listener {self.name} (SWOOLE_SSL) needs ssl_cert_file (and ssl_key_file)"
            )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
        if values["ssl_prefer_server_ciphers"]:
            context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        else:
            context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        versions = protocol_range(values["ssl_protocols"])
        if versions is not None:
            context.minimum_version, context.maximum_version = versions
        ciphers = values["ssl_ciphers"] or DEFAULT_CIPHERS
        try:
            context.set_ciphers(ciphers)
        except ssl.SSLError as exc:
            raise ConfigError(f"setting 'ssl_ciphers': {ciphers!r}: {exc}") from exc
        curve = values["ssl_ecdh_curve"]
        if curve and curve != "auto":
            try:
                context.set_ecdh_curve(curve)
            except ValueError as exc:
                raise ConfigError(f"setting 'ssl_ecdh_curve': {curve!r}: {exc}") from exc
        if values["ssl_dhparam"]:
            path = _readable("ssl_dhparam", values["ssl_dhparam"])
            try:
                context.load_dh_params(path)
            except ssl.SSLError as exc:
                raise ConfigError(f"setting 'ssl_dhparam': {path!r}: {exc}") from exc
        if values["ssl_verify_peer"]:
            self._load_client_cas(context)
        if self.alpn:
            context.set_alpn_protocols(["http/1.1"])
        self._load_chain(
            context,
            cert,
            key,
            cert_key,
            passphrase=values["ssl_passphrase"] if passphrase is None else passphrase,
        )
        return context

    def _load_client_cas(self, context: ssl.SSLContext) -> None:
        """Mutual TLS: a client must present a certificate that chains to these CAs."""
        values = self.values
        context.verify_mode = ssl.CERT_REQUIRED
        loaded = False
        for key in ("ssl_client_cert_file", "ssl_cafile"):
            if values[key]:
                path = _readable(key, values[key])
                try:
                    context.load_verify_locations(cafile=path)
                except ssl.SSLError as exc:
                    raise ConfigError(f"setting {key!r}: {path!r}: {exc}") from exc
                loaded = True
        if values["ssl_capath"]:
            context.load_verify_locations(
                capath=_readable("ssl_capath", values["ssl_capath"], directory=True)
            )
            loaded = True
        if not loaded:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)

    def _load_chain(
        self,
        context: ssl.SSLContext,
        cert: Any,
        key: Any,
        cert_key: str,
        passphrase: Any = None,
    ) -> None:
        if passphrase is None:
            passphrase = self.values["ssl_passphrase"]
        cert_path = _readable(cert_key, cert)
        key_name = cert_key.replace("ssl_cert_file", "ssl_key_file")
        key_path = None if not key else _readable(key_name, key)
        try:
            context.load_cert_chain(cert_path, key_path, passphrase or _no_passphrase)
        except ConfigError:
            raise
        except (ssl.SSLError, OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"setting {cert_key!r}/{key_name!r}: cannot load {cert_path!r}"
                f"{'' if key_path is None else f' with {key_path!r}'}: {exc}"
            ) from exc


#: aiofastnet's message when accept() fails for want of descriptors (EMFILE, ENFILE...)
_ACCEPT_FAILED = "socket.accept() out of system resource"


def _quiet_handshake_eof(loop: asyncio.AbstractEventLoop) -> None:
    """An exception handler chained before the loop's, for two reports of aiofastnet 1.2:

    - a client that closes during the handshake (a TCP health check, a scanner): it passes
      the class ``ConnectionResetError`` where asyncio's SSL transport raises it (an OSError
      instance, not logged), and the log got a broken traceback per such client; kept at
      DEBUG, as the loop's own engine does;
    - accept() out of descriptors: reported once per refused accept, up to ``backlog`` + 1
      times per attempt (as asyncio's own loop); one report per second at most here.
    """
    previous = loop.get_exception_handler()
    if getattr(previous, "_pyswoole_tls", False):
        return
    last_accept_report = [0.0]

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, type) and issubclass(exc, OSError):
            log.debug("TLS: %s: %s", context.get("message", "").split("\n", 1)[0], exc.__name__)
            return
        if context.get("message") == _ACCEPT_FAILED:
            now = loop.time()
            if now - last_accept_report[0] < 1.0:
                return
            last_accept_report[0] = now
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler._pyswoole_tls = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)


class _ListeningSocket(socket.socket):
    """A listening socket aiofastnet 1.2 can pause: at EMFILE/ENFILE its accept loop calls
    ``listening_sock.remove_reader(fd)`` (then retries after a second, as asyncio), which a
    socket does not have: the AttributeError left the reader armed, the loop spinning and
    logging. Same layout as :class:`socket.socket` (``__class__`` is swapped in place)."""

    __slots__ = ()

    def remove_reader(self, fd: int) -> None:
        asyncio.get_running_loop().remove_reader(fd)


def _retry_accept_later(sock: Any) -> None:
    if type(sock) is socket.socket:
        sock.__class__ = _ListeningSocket


class _AiofastnetServer(asyncio.AbstractServer):
    """aiofastnet's server as the worker uses it. Its ``wait_closed`` waits for every client
    transport (as Python 3.12's does; uvloop's returns once the listener is closed). The
    worker calls it when its connections are gone: the clients left are handshakes still in
    progress (never connected) and TLS closes waiting for the peer's close_notify, which
    would hold the stop for the whole wait; they are aborted (the loop's own server leaves
    them to the process's exit)."""

    __slots__ = ("_server",)

    def __init__(self, server: Any) -> None:
        self._server = server

    def close(self) -> None:
        self._server.close()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        loop: asyncio.AbstractEventLoop = self._server.get_loop()
        return loop

    def is_serving(self) -> bool:
        return bool(self._server.is_serving())

    async def start_serving(self) -> None:
        await self._server.start_serving()

    async def serve_forever(self) -> None:
        await self._server.serve_forever()

    async def wait_closed(self) -> None:
        if not self._server.is_serving():
            self._server.abort_clients()
        await self._server.wait_closed()


class DirectTlsConnection(Connection):
    """A connection of a TLS listener: what differs from a plain one is how bytes meet the
    TLS transport. This class serves aiofastnet's (``ssl_engine``), which asks
    ``get_buffer`` anew for each record it decrypts; :class:`TlsConnection` the loop's own.
    """

    __slots__ = ()

    def _flush_out(self) -> None:
        """One write of what a read's callbacks collected: an SSL transport turns each item
        of ``writelines`` into its own TLS record (hundreds of 70-byte records, each read
        apart by the client), so the items are joined first."""
        out = self.out
        if len(out) > 1:
            joined = b"".join(out)
            out.clear()
            out.append(joined)
        super()._flush_out()

    def _resume_transport(self, transport: asyncio.Transport) -> None:
        """aiofastnet 1.2 resumes reading with a scheduled ``_read_ready``, which reads the
        socket first and returns at EAGAIN before it decrypts what the transport already
        holds (records read before the pause, still in its incoming memory BIO or in
        OpenSSL's buffer): when the client has sent its last bytes, those wait for a read
        event that never comes (the last echo of a flood stalled, ~1 run in 10). Its own
        ``_retry_ssl_read`` (what it schedules after the handshake) decrypts and delivers
        them; the loop's SSL transport has no such method and needs none."""
        transport.resume_reading()
        retry = getattr(transport, "_retry_ssl_read", None)
        if retry is not None:
            self.worker.loop.call_soon(retry)

    def send_message(self, frame: bytes, tail: bytes | None, limit: int) -> bool:
        """A big payload (``tail``) is not kept apart from its header here: apart, the
        header would be a TLS record of its own (the payload is copied by the encryption
        anyway)."""
        if tail is not None:
            return super().send_message(frame + tail, None, limit)
        return super().send_message(frame, None, limit)


class TlsConnection(DirectTlsConnection):
    """A connection on the event loop's SSL transport (``ssl_engine`` ``"stdlib"``).

    With the compiled read path every connection reads into the worker's one bytearray
    (``get_buffer``). asyncio's SSL transport (CPython 3.11 ``sslproto._do_read__buffered``)
    reads a second TLS record of one socket read into ``buf[offset:]``: a copy when ``buf`` is
    a bytearray, so those bytes would be lost. A memoryview of the same bytearray shares its
    memory: the records land in place (uvloop's SSL transport works either way).
    """

    __slots__ = ()

    if FASTPATH:

        def get_buffer(self, sizehint: int) -> memoryview:
            buffer = self._state.read_buffer
            assert buffer is not None
            return memoryview(buffer)
