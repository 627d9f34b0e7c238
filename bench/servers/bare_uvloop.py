"""The pure-Python-on-uvloop ceiling: a hand-written WebSocket echo with no validation.

Just enough of RFC 6455 to serve wsload: find ``Sec-WebSocket-Key`` and answer 101
(section 4.2.2), parse frames with 7/16/64-bit lengths (section 5.2), unmask with one
``int.from_bytes`` XOR, echo each frame with its own first byte (so text stays text, binary
stays binary and fragments stay fragments), answer pings and close frames. No UTF-8 check,
no limits, no extensions: whatever a real server does beyond this is its overhead.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
from typing import cast

import uvloop
from common import HOST, parse_args, server_ssl

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY_HEADER = b"\r\nsec-websocket-key:"
OP_CLOSE, OP_PING = 0x8, 0x9
FIN_CLOSE, FIN_PONG = 0x88, 0x8A


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the repeated 4-byte ``mask`` (RFC 6455 section 5.3)."""
    n = len(payload)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def encode(first_byte: int, payload: bytes) -> bytes:
    """An unmasked server frame: header (7/16/64-bit length) followed by the payload."""
    n = len(payload)
    if n < 126:
        return bytes((first_byte, n)) + payload
    if n < 65536:
        return bytes((first_byte, 126)) + n.to_bytes(2, "big") + payload
    return bytes((first_byte, 127)) + n.to_bytes(8, "big") + payload


def accept_response(head: bytes) -> bytes:
    """The 101 answer to an upgrade request head (no checks beyond finding the key)."""
    start = head.lower().find(KEY_HEADER) + len(KEY_HEADER)
    end = head.find(b"\r\n", start)
    key = head[start : end if end >= 0 else len(head)].strip()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


class BareEcho(asyncio.Protocol):
    """One connection: HTTP upgrade, then frames; ``clients`` is shared in fanout mode."""

    __slots__ = ("buffer", "clients", "needed", "transport", "upgraded")

    def __init__(self, clients: set[asyncio.Transport] | None) -> None:
        self.clients = clients
        self.buffer = bytearray()
        self.needed = 0
        self.upgraded = False
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.clients is not None:
            self.clients.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            self.buffer += data
            if len(self.buffer) < self.needed:
                return
            data = bytes(self.buffer)
            self.buffer.clear()
        pos = 0 if self.upgraded else self.upgrade(data)
        if pos < 0:
            self.buffer += data
            return
        pos, self.needed = self.parse_frames(data, pos)
        if pos < len(data):
            self.buffer += data[pos:] if pos else data

    def upgrade(self, data: bytes) -> int:
        """Answer the request if its head is complete: offset of the first frame, or -1."""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return -1
        self.transport.write(accept_response(data[:end]))
        self.upgraded = True
        if self.clients is not None:
            self.clients.add(self.transport)
        return end + 4

    def parse_frames(self, data: bytes, pos: int) -> tuple[int, int]:
        """Handle every complete frame from ``pos``: (end of the last one, bytes needed)."""
        size = len(data)
        while size - pos >= 2:
            length = data[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                start += 2
                length = int.from_bytes(data[pos + 2 : start], "big")
            elif length == 127:
                start += 8
                length = int.from_bytes(data[pos + 2 : start], "big")
            masked = data[pos + 1] & 0x80
            end = start + (4 if masked else 0) + length
            if end > size:
                return pos, end - pos
            if masked:
                payload = unmask(data[start + 4 : end], data[start : start + 4])
            else:
                payload = data[start:end]
            self.on_frame(data[pos], payload)
            pos = end
        return pos, 2

    def on_frame(self, first_byte: int, payload: bytes) -> None:
        opcode = first_byte & 0x0F
        if opcode == OP_CLOSE:
            self.transport.write(encode(FIN_CLOSE, payload[:2]))
            self.transport.close()
        elif opcode == OP_PING:
            self.transport.write(encode(FIN_PONG, payload))
        elif opcode < OP_CLOSE:
            frame = encode(first_byte, payload)
            if self.clients is None:
                self.transport.write(frame)
            else:
                for transport in self.clients:
                    transport.write(frame)


async def serve(port: int, fanout: bool, tls: ssl.SSLContext | None = None) -> None:
    clients: set[asyncio.Transport] | None = set() if fanout else None
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: BareEcho(clients), HOST, port, backlog=4096, ssl=tls)
    async with server:
        await server.serve_forever()


def main() -> None:
    args = parse_args("bare uvloop WebSocket echo", compression=False)
    uvloop.run(serve(args.port, args.fanout, server_ssl(args)))


if __name__ == "__main__":
    main()
