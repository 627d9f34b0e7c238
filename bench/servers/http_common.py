"""What the HTTP benchmark servers share (bench/http_bench.py): the answer to ``GET /`` and
the command line. Each server answers ``GET /`` with 13 bytes of ``text/plain`` (keep-alive)
and serves the files of ``<--root>/static/`` under ``/static/`` (Swoole's layout: the URL path
under the document root), binding 127.0.0.1 on ``--port``."""

from __future__ import annotations

import argparse

HOST = "127.0.0.1"
BODY = b"Hello, World!"
CONTENT_TYPE = "text/plain"
STATIC_PREFIX = "/static"


def parse_args(description: str, workers: bool = False) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", required=True, help="document root (files in its static/)")
    if workers:
        parser.add_argument("--workers", type=int, default=1)
    return parser.parse_args()
