from collections.abc import Callable
from typing import Any

class ConnectionBase:
    transport: Any
    ws: Any
    on_message: Any
    app: Any
    worker: Any
    out: list[bytes]
    out_bytes: int
    _write_paused: bool
    deflate: Any
    _jobs: Any
    _state: WorkerState
    closed: bool
    last_recv: float
    status: int
    corked: bool
    def get_buffer(self, sizehint: int) -> bytearray: ...
    def buffer_updated(self, nbytes: int) -> None: ...
    def send_final(self, data: bytes) -> bool: ...

def configure(
    websocket_type: type,
    frame_type: type,
    send_data_type: type,
    open_state: int,
    status_active: int,
) -> None: ...

class Pusher:
    def __init__(
        self, table: dict[int, Any], limit: int, fallback: Callable[..., bool]
    ) -> None: ...
    def __call__(self, fd: int, data: Any, opcode: int = 1, flags: int = 1) -> bool: ...

class WorkerState:
    request_count: int
    recv_bytes: int
    send_bytes: int
    response_count: int
    buffer_overflows: int
    read_buffer: bytearray | None
    deferred: list[Any]
    depth: int
    buffer_slack: int
    def __init__(self, read_buffer_size: int = 0) -> None: ...

def flush_deferred(state: WorkerState) -> None: ...
def broadcast_frame(conns: Any, frame: bytes, limit: int) -> tuple[int, list[Any]]: ...
