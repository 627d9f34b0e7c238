"""What the runtime tests share: client frames and a recording stand-in for the transport.

No module-level skip here: the pure-Python cases of the runtime tests use it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyswoole import WebSocketServer
    from pyswoole.runtime.worker import Worker

UPGRADE_HEAD = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)
#: a whole upgrade request (UPGRADE_HEAD plus the empty line)
UPGRADE = UPGRADE_HEAD + b"\r\n"
MASK = b"\x37\xfa\x21\x3d"


def client_frame(
    opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bytes | None = MASK
) -> bytes:
    """A client frame (RFC 6455 section 5.2); ``mask=None`` leaves it unmasked (invalid)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | rsv | opcode
    mbit = 0 if mask is None else 0x80
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = bytes((b0, mbit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, mbit | 127)) + n.to_bytes(8, "big")
    if mask is None:
        return head + payload
    key = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + mask + body


def text(s: str, **kw: Any) -> bytes:
    """A client text frame carrying ``s``."""
    return client_frame(1, s.encode(), **kw)


class RecordingTransport:
    """Enough of asyncio.Transport for a Connection, recording what is written.

    ``calls`` holds one ``(kind, bytes)`` per write()/writelines() call; ``writes`` every
    buffer handed over, in order (writelines' items one by one).
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.writes: list[bytes] = []
        self.closing = False
        self.buffered = 0  # what get_write_buffer_size() reports
        self.fail: BaseException | None = None  # raised by the next write
        self.reading = True  # pause_reading()/resume_reading()
        self.limits: tuple[int | None, int | None] = (None, None)  # set_write_buffer_limits()
        self.eof = False  # write_eof() was called

    def _check(self) -> None:
        assert not self.closing, "write after close"
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error

    def write(self, data: bytes) -> None:
        self._check()
        self.calls.append(("write", bytes(data)))
        self.writes.append(bytes(data))

    def writelines(self, items: Any) -> None:
        self._check()
        items = [bytes(item) for item in items]
        self.calls.append(("writelines", b"".join(items)))
        self.writes.extend(items)

    def clear(self) -> None:
        """Forget what was written so far."""
        self.calls.clear()
        self.writes.clear()

    @property
    def written(self) -> bytes:
        return b"".join(self.writes)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    abort = close

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.limits = (high, low)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True


def build_worker(server: WebSocketServer) -> Worker:
    """The worker ``server.start()`` would run, built without running its loop (the caller
    closes ``worker.loop``). start() sets the send-buffer limit first; so does this."""
    server._buffer_limit = server._settings.get_value("socket_buffer_size")
    return server.build_worker(0)
