"""``get_client_info(fd)['ssl_client_cert']`` in SWOOLE_PROCESS workers.

In SWOOLE_PROCESS the master holds every TLS connection, so only it can read the client's
certificate; the workers run the callbacks.  As Swoole (the certificate travels with the
connect event to the worker that gets ``onConnect``, which keeps it with the connection):

* The master sends the PEM once per connection, as the connection's first event
  (``EV_CERT``), to the worker that serves it: on a port with ``ssl_verify_peer`` (every
  client there has a certificate), right when the TLS handshake is done, before
  ``on("connect")``.  The worker keeps it per fd; ``get_client_info`` there returns it.
* When the connection closes, the master tells that worker to forget it (``EV_CERT``
  without a PEM, after the close event), so a worker holds only its open connections'.
* A worker that starts -- a replacement after ``reload()``, a crash or ``max_request`` --
  asks the master (``CERTS``) and gets again the certificates of the connections routed
  to it: a long-lived connection keeps its certificate across reloads.

Cost: nothing for a server without an ``ssl_verify_peer`` port (the hooks are not
installed); on such a port, one IPC message per connection at connect and one at close.
The first event of such a connection is its connect (``dispatch_func`` sees a connect
event, as with ``on("connect")`` set).  A connection ``bind()`` moves to another worker
(``dispatch_mode`` 5) leaves its certificate in the first worker, as Swoole's stays in the
worker that got ``onConnect``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..process import messages as msg
from ..runtime.tls import peer_certificate

if TYPE_CHECKING:
    from ..runtime.connection import Connection
    from .base import Server
    from .process_mode import MasterApp

__all__ = ["MasterCertificates", "verifies_peers"]


def verifies_peers(server: Server) -> bool:
    """Whether a listener of ``server`` asks its clients for a certificate."""
    return any(
        listener.tls is not None and bool(listener.tls.values.get("ssl_verify_peer"))
        for listener in server._listeners
    )


class MasterCertificates:
    """The master's side: which worker holds the certificate of which fd."""

    __slots__ = ("_app", "_connect", "_holders")

    def __init__(self, app: MasterApp, forward_connect: bool) -> None:
        self._app = app
        self._connect = forward_connect
        #: fd -> the worker its certificate was sent to
        self._holders: dict[int, int] = {}

    def connected(self, conn: Connection) -> None:
        """``Worker.on_connect`` in the master (TLS handshake done): the certificate goes
        first, then ``on("connect")`` if the application has one."""
        app = self._app
        cert = peer_certificate(conn.transport)
        if cert is not None:
            fd = conn.fd
            app._send(fd, msg.EV_CERT, msg.pack_send(fd, cert.encode()))
            self._holders[fd] = app.worker_for(fd)
        if self._connect:
            app._forward_connect(conn)

    def closed(self, fd: int) -> None:
        """``fd`` is gone (after its close event was handed over): its holder forgets it."""
        holder = self._holders.pop(fd, None)
        if holder is not None:
            self._deliver(fd, holder, b"")

    def resend(self, worker_id: int) -> None:
        """CERTS from a worker that started: the certificates of its open connections."""
        connections = self._app.worker.connections
        for fd, holder in self._holders.items():
            conn = connections.get(fd)
            if holder == worker_id and conn is not None and not conn.closed:
                cert = peer_certificate(conn.transport)
                if cert is not None:
                    self._deliver(fd, holder, cert.encode())

    def _deliver(self, fd: int, holder: int, pem: bytes) -> None:
        """EV_CERT to ``holder``: behind the fd's other events when it still serves the
        fd, else (``bind()`` moved it) straight to it."""
        app = self._app
        if holder < 0:
            return
        if app.worker_for(fd) == holder:
            app._send(fd, msg.EV_CERT, msg.pack_send(fd, pem))
        elif app.mailer.send(holder, msg.EV_CERT, msg.pack_send(fd, pem)) and app._sent:
            app._sent[holder] += 1  # (dispatch_mode 3/7 compare it with what was handled)
