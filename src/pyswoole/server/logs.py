"""pyswoole's log: ``log_level``, ``log_file``, ``log_date_format``,
``log_date_with_microseconds``, ``log_rotation`` and ``debug_mode``, as Swoole reads them;
``log_config`` (pyswoole's own) hands a ``logging.config.dictConfig`` dict over instead.

Rotation follows Swoole's logger (``Logger::gen_real_file``): with ``log_rotation`` set, each
process writes straight to ``<log_file>.<date>`` and opens the next file when the date
changes. Nothing is renamed, so every worker can write to the same log without a race (a
rename-based handler, as ``TimedRotatingFileHandler``, would have each process rotate on its
own).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LOG_LEVELS", "ROTATION_SUFFIXES", "DatedFileHandler", "configure"]

log = logging.getLogger("pyswoole")

#: Swoole's SWOOLE_LOG_* levels -> logging levels
LOG_LEVELS = {
    0: logging.DEBUG,
    1: logging.DEBUG,
    2: logging.INFO,
    3: logging.INFO,
    4: logging.WARNING,
    5: logging.ERROR,
    6: logging.CRITICAL + 10,
}

#: SWOOLE_LOG_ROTATION_* -> the strftime suffix of the file (Swoole's date formats)
ROTATION_SUFFIXES = {2: "%Y%m%d", 3: "%Y%m%d%H", 4: "%Y%m%d%H%M"}

_FORMAT = "[%(asctime)s %(process)d %(levelname)s] %(message)s"


class _Formatter(logging.Formatter):
    """``log_date_format`` as strftime, plus ``.uuuuuu`` with ``log_date_with_microseconds``."""

    def __init__(self, datefmt: str, microseconds: bool) -> None:
        super().__init__(_FORMAT, datefmt)
        self.microseconds = microseconds

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        text = time.strftime(datefmt or "%Y-%m-%d %H:%M:%S", self.converter(record.created))
        if self.microseconds:
            text += f"<.{int(record.created * 1_000_000) % 1_000_000:06d}>"
        return text


class DatedFileHandler(logging.Handler):
    """Append to ``<path>.<strftime(suffix)>``, switching files when the date changes."""

    def __init__(self, path: str, suffix: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.path = path
        self.suffix = suffix
        self.clock = clock
        self.current = ""
        self._stream: Any = None

    def filename(self) -> str:
        return f"{self.path}.{time.strftime(self.suffix, time.localtime(self.clock()))}"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            name = self.filename()
            if name != self.current:
                if self._stream is not None:
                    self._stream.close()
                self._stream = open(name, "a", encoding="utf-8")  # noqa: SIM115
                self.current = name
            self._stream.write(self.format(record) + "\n")
            self._stream.flush()
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        super().close()


def configure(get: Callable[[str], Any]) -> None:
    """Set up the ``pyswoole`` logger from the settings (before any process is forked)."""
    debug = get("debug_mode")
    log.setLevel(logging.DEBUG if debug else LOG_LEVELS[get("log_level")])
    config = get("log_config")
    if config:  # the program's own logging (dictConfig), instead of the handler below
        from logging.config import dictConfig  # (imported on first use: start-up time)

        dictConfig({"disable_existing_loggers": False, **config})
        return
    formatter = _Formatter(get("log_date_format"), get("log_date_with_microseconds"))
    log_file = get("log_file")
    handler: logging.Handler
    if log_file:
        rotation = get("log_rotation")
        if rotation:
            handler = DatedFileHandler(log_file, ROTATION_SUFFIXES[rotation])
        else:
            handler = logging.FileHandler(log_file)
    elif not log.handlers and not logging.getLogger().handlers:
        # The program configured no logging: show ours on stderr (not the root logger's
        # business to change).
        handler = logging.StreamHandler()
    else:
        return
    handler.setFormatter(formatter)
    log.addHandler(handler)
