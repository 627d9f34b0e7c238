"""Command line shared by the benchmark servers (each runs as its own process).

Every server takes ``--port`` and ``--fanout`` (broadcast each received message to every
connected client, for wsload's fanout mode); servers that implement permessage-deflate also
take ``--compression``, and those that serve plain HTTP on the same port take ``--http``
(``GET /http`` answers ``ok``: the target of ``bench/hostile.py``'s pipelining flood; off by
default, so the other benchmarks run the servers unchanged). Every server also takes
``--tls-cert FILE --tls-key FILE`` (PEM, made by the bench): then it serves ``wss://`` only.
All bind 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import ssl

HOST = "127.0.0.1"
MAX_MESSAGE = 16 * 1024 * 1024  # bytes; wsload's large scenario sends 64 KiB, tests go to 1 MiB


def parse_args(
    description: str, *, compression: bool, workers: bool = False, http: bool = False
) -> argparse.Namespace:
    """Parse the common options; ``--compression`` only where the server supports it,
    ``--workers`` only where it has worker processes, ``--http`` only where it serves HTTP."""
    parser = argparse.ArgumentParser(description=description)
    if workers:
        parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fanout", action="store_true", help="broadcast instead of echo")
    if compression:
        parser.add_argument("--compression", action="store_true", help="enable permessage-deflate")
    if http:
        parser.add_argument("--http", action="store_true", help="answer GET /http with 'ok'")
    parser.add_argument("--tls-cert", help="certificate (PEM): serve wss:// instead of ws://")
    parser.add_argument("--tls-key", help="private key (PEM) of --tls-cert")
    args = parser.parse_args()
    if not compression:
        args.compression = False
    if not http:
        args.http = False
    return args


def server_ssl(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context for ``--tls-cert``/``--tls-key``, or None without them."""
    if not args.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    return context
