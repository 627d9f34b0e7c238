"""socketify.py (uWebSockets + libuv, its own loop): ``app.get("/")`` and ``app.static`` for
``/static/``."""

from __future__ import annotations

import os
from typing import Any

from http_common import BODY, CONTENT_TYPE, HOST, STATIC_PREFIX, parse_args
from socketify import App, AppListenOptions


def main() -> None:
    args = parse_args("socketify HTTP server")
    app = App()

    def hello(res: Any, req: Any) -> None:
        res.write_header("Content-Type", CONTENT_TYPE)
        res.end(BODY)

    app.get("/", hello)
    app.static(STATIC_PREFIX, os.path.join(args.root, "static"))
    app.listen(AppListenOptions(port=args.port, host=HOST), lambda config: None)
    app.run()


if __name__ == "__main__":
    main()
