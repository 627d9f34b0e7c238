"""The IPC channel between the processes of one server: any process can message any other.

Theory of operation
-------------------
Every process id (manager, workers, task workers) has one :class:`Inbox`: an ``AF_UNIX``
``SOCK_DGRAM`` socketpair created in the parent *before* it forks, so every child inherits
every inbox. The owner reads ``recv_sock``; everybody else writes to ``send_sock``. One
datagram is one ``sendmsg()``: the kernel queues it whole, so many writers never interleave
their bytes, and it is delivered in the order it was queued.

A message is ``(kind, src, body)``. The Sans-I/O codec (:func:`encode`,
:class:`Reassembler`) cuts a body into datagrams of at most :data:`CHUNK` payload bytes,
each behind a :data:`HEADER` (kind, flags, src, message id, total length)::

    u8 kind | u8 flags (FIRST=1, LAST=2) | u32 src | u32 msg_id | u64 total | payload

Chunks of one message leave a sender back to back on one socket, so per sender they arrive
in order; messages of *different* senders interleave chunk by chunk, and the reassembler
keeps one partial message per ``src``. A chunk that does not continue the partial of its
``src`` (a sender died mid-message and was restarted) is dropped and counted, never spliced.

:class:`Mailer` is the per-process endpoint. ``send()`` never blocks: it tries each
datagram with ``MSG_DONTWAIT``; when the destination is full it queues the rest, and once
anything is queued for a destination later messages queue behind it (order per
sender -> destination is kept). Attached to an event loop, a writer callback flushes the
queue when the socket becomes writable; the reader drains the inbox in bounded batches.
``recv_blocking()`` serves a blocking ``taskwait`` and shares the reassembly state.
``pending(dst)`` says how many bytes wait for a destination, and ``on_drain(dst)`` (if set)
is called when that queue has become empty again: the SWOOLE_PROCESS master stops reading
the connections that feed a worker whose queue is long, and resumes them on the drain.

Linux facts this design leans on (measured on kernel 6.18, see ``tests/process``)
---------------------------------------------------------------------------------
* For ``AF_UNIX`` datagrams the bytes in flight are charged to the *sending* socket: the
  limit is ``SO_SNDBUF`` of ``send_sock`` (requested 4 MiB, capped by
  ``net.core.wmem_max`` = 4 MiB here, doubled by the kernel to 8 MiB), shared by all
  writers of that inbox. ``SO_RCVBUF`` plays no part.
* ``net.unix.max_dgram_qlen`` (10 here) does *not* apply: the kernel skips that check when
  the receiver is the sender's own peer, which is always the case for a socketpair.
  With an 8 MiB buffer about 121 datagrams of 64 KiB, or ~10,900 tiny ones (each costs
  ~768 bytes of kernel truesize), fit before the sender sees ``EAGAIN``.
* A full socket raises ``BlockingIOError`` (``EAGAIN``); ``ENOBUFS`` (memory pressure or an
  oversized datagram) is treated as transient with a short back-off. A datagram above the
  buffer raises ``EMSGSIZE``; the largest datagram is ~``SO_SNDBUF - 32`` (212,960 bytes
  with the 208 KiB default buffer), which is why :data:`CHUNK` is 64 KiB.
* The send end polls writable again only when at most a quarter of the buffer is in use.

Limits
------
Queued bytes per destination are bounded by ``max_pending`` (default
:data:`DEFAULT_MAX_PENDING`, 64 MiB). A message that would take the queue beyond it is
refused whole: ``send()`` returns False and the caller reports the error (as ``push``
returns False when ``buffer_output_size`` is exceeded). A body larger than ``max_pending``
is therefore always refused. A Mailer is not thread-safe, and a forked child must build its
own Mailer (queues and message ids belong to one process: ``attach``, ``flush`` and
``recv_blocking`` raise RuntimeError in a child that inherited its parent's Mailer).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence

__all__ = [
    "CHUNK",
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_MAX_PENDING",
    "HEADER",
    "MAX_DATAGRAM",
    "Inbox",
    "Mailer",
    "Reassembler",
    "encode",
]

log = logging.getLogger("pyswoole")

#: Payload bytes per datagram: far below the smallest datagram limit Linux allows with its
#: default buffers (~208 KiB), large enough that a 16 MiB body is only 256 syscalls.
CHUNK = 64 * 1024
#: kind, flags, src, msg_id, total body length.
HEADER = struct.Struct("<BBIIQ")
#: The largest datagram :func:`encode` produces.
MAX_DATAGRAM = HEADER.size + CHUNK
#: Requested ``SO_SNDBUF``/``SO_RCVBUF`` of an inbox (the kernel caps it at ``wmem_max``).
DEFAULT_BUFFER_SIZE = 4 * 1024 * 1024
#: Bytes a Mailer may queue for one destination before ``send()`` refuses.
DEFAULT_MAX_PENDING = 64 * 1024 * 1024

FIRST = 1
LAST = 2

_U32 = 0xFFFFFFFF
_READ_BATCH = 256  # datagrams per reader wakeup, then back to the loop
_ENOBUFS_BACKOFF = 0.005  # seconds: the socket polls writable but the kernel has no memory
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_SMALL = 2048  # below this, header + body is one concatenated buffer (cheaper than iovecs)

Message = tuple[int, int, bytes]  # (kind, src, body)
Datagram = tuple[bytes, "bytes | memoryview"]  # (header, payload) as queued by a Mailer


class Inbox:
    """One per process id, created in the parent BEFORE forking so every child inherits every
    inbox: an AF_UNIX SOCK_DGRAM socketpair; the process ``owner_id`` reads ``recv_sock``, all
    others send on ``send_sock`` (datagrams are atomic, so many writers do not interleave).

    ``buffer_size`` is requested as ``SO_SNDBUF`` and ``SO_RCVBUF`` of both ends, best effort
    (the kernel caps it at ``net.core.wmem_max``/``rmem_max`` and doubles it); the send end's
    buffer is what bounds the bytes in flight towards this inbox. Both ends are non-blocking.
    """

    __slots__ = ("closed", "owner_id", "recv_sock", "send_sock")

    def __init__(self, owner_id: int, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        if not 0 <= owner_id <= _U32:
            raise ValueError(f"owner_id out of range: {owner_id}")
        self.owner_id = owner_id
        self.recv_sock, self.send_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for sock in (self.recv_sock, self.send_sock):
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                with contextlib.suppress(OSError):  # a platform that refuses keeps its default
                    sock.setsockopt(socket.SOL_SOCKET, option, buffer_size)
            sock.setblocking(False)
        self.closed = False

    @property
    def send_buffer(self) -> int:
        """The effective ``SO_SNDBUF`` of the send end (what the kernel granted)."""
        return self.send_sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)

    def close(self) -> None:
        """Close both ends in this process (other processes keep their inherited copies)."""
        self.closed = True
        self.recv_sock.close()
        self.send_sock.close()

    def __repr__(self) -> str:
        return f"<Inbox owner={self.owner_id}{' closed' if self.closed else ''}>"


# -- the codec (Sans-I/O) ------------------------------------------------------------------


def _check(kind: int, src: int, msg_id: int) -> None:
    if not 0 <= kind <= 0xFF:
        raise ValueError(f"kind must be 0-255, got {kind}")
    if not 0 <= src <= _U32:
        raise ValueError(f"src must fit in 32 bits, got {src}")
    if not 0 <= msg_id <= _U32:
        raise ValueError(f"msg_id must fit in 32 bits, got {msg_id}")


def _datagrams(kind: int, src: int, msg_id: int, body: bytes) -> list[Datagram]:
    """The datagrams of one message as (header, payload view) pairs: no copy of the body."""
    total = len(body)
    if total <= CHUNK:
        return [(HEADER.pack(kind, FIRST | LAST, src, msg_id, total), body)]
    view = memoryview(body)
    out: list[Datagram] = []
    pack = HEADER.pack
    for start in range(0, total, CHUNK):
        flags = (FIRST if start == 0 else 0) | (LAST if start + CHUNK >= total else 0)
        out.append((pack(kind, flags, src, msg_id, total), view[start : start + CHUNK]))
    return out


def encode(kind: int, src: int, msg_id: int, body: bytes) -> list[bytes]:
    """The datagrams carrying one message: ``ceil(len(body) / CHUNK)`` of them, at least one.

    ``kind`` is 0-255; ``src`` (the sending process id) and ``msg_id`` (a per-sender
    counter, wrapping at 2**32) are unsigned 32-bit integers.
    """
    _check(kind, src, msg_id)
    return [header + payload for header, payload in _datagrams(kind, src, msg_id, body)]


class _Partial:
    """A message whose first chunks have arrived."""

    __slots__ = ("chunks", "kind", "msg_id", "size", "total")

    def __init__(self, kind: int, msg_id: int, total: int, first: bytes) -> None:
        self.kind = kind
        self.msg_id = msg_id
        self.total = total
        self.chunks = [first]
        self.size = len(first)


class Reassembler:
    """Turns datagrams back into messages; one partial message per sender.

    ``feed()`` returns ``(kind, src, body)`` when a datagram completes a message. Datagrams
    that cannot belong to a valid message (short, a chunk without its first, a chunk of a
    different message id, a length that does not add up, a body above ``max_size``) are
    dropped and counted in ``dropped``; the next FIRST chunk of that sender starts afresh.
    """

    __slots__ = ("_partials", "dropped", "max_size")

    def __init__(self, max_size: int | None = None) -> None:
        self._partials: dict[int, _Partial] = {}
        self.max_size = max_size
        self.dropped = 0

    def feed(self, datagram: bytes | bytearray | memoryview) -> tuple[int, int, bytes] | None:
        """Take one datagram; the completed message, if this was its last chunk.

        The body is always a fresh ``bytes``: no reference to ``datagram`` is kept, so the
        caller may reuse its receive buffer.
        """
        if len(datagram) < HEADER.size:
            self.dropped += 1
            return None
        kind, flags, src, msg_id, total = HEADER.unpack_from(datagram)
        payload = bytes(datagram[HEADER.size :])  # no copy when datagram is bytes
        partials = self._partials
        if flags & FIRST:
            if src in partials:  # its sender restarted mid-message: that message is lost
                del partials[src]
                self.dropped += 1
            if self.max_size is not None and total > self.max_size:
                self.dropped += 1
                return None
            if flags & LAST:
                if len(payload) != total:
                    self.dropped += 1
                    return None
                return kind, src, payload
            if len(payload) >= total:
                self.dropped += 1
                return None
            partials[src] = _Partial(kind, msg_id, total, payload)
            return None
        partial = partials.get(src)
        if partial is None:
            self.dropped += 1
            return None
        if partial.msg_id != msg_id or partial.kind != kind or partial.total != total:
            del partials[src]
            self.dropped += 2  # the orphaned chunk and the message it interrupted
            return None
        partial.chunks.append(payload)
        partial.size += len(payload)
        if not flags & LAST:
            if partial.size >= total:
                del partials[src]
                self.dropped += 1
            return None
        del partials[src]
        if partial.size != total:
            self.dropped += 1
            return None
        return kind, src, b"".join(partial.chunks)

    def pending(self) -> int:
        """Bytes held in partial messages."""
        return sum(partial.size for partial in self._partials.values())

    def forget(self, src: int) -> bool:
        """Drop the partial message of ``src`` (its process is known to be gone)."""
        return self._partials.pop(src, None) is not None


# -- the endpoint ----------------------------------------------------------------------------


class Mailer:
    """The per-process endpoint: sends to any inbox, receives from its own.

    ``inboxes[i]`` must be the inbox of process ``i``. ``send()`` never blocks; what the
    kernel cannot take yet is queued per destination (at most ``max_pending`` bytes) and
    flushed by the attached loop, by ``recv_blocking()`` while it waits, or by ``flush()``.
    Without a loop attached nothing flushes in the background.
    """

    def __init__(
        self,
        my_id: int,
        inboxes: Sequence[Inbox],
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_message_size: int | None = None,
    ) -> None:
        for index, inbox in enumerate(inboxes):
            if inbox.owner_id != index:
                raise ValueError(f"inboxes[{index}] belongs to process {inbox.owner_id}")
        if not 0 <= my_id < len(inboxes):
            raise ValueError(f"no inbox for process {my_id}")
        self.my_id = my_id
        self.max_pending = max_pending
        self._pid = os.getpid()
        self._inboxes = tuple(inboxes)
        self._inbox = inboxes[my_id]
        self._reassembler = Reassembler(max_message_size)
        self._next_id = 0
        self._queues: dict[int, deque[Datagram]] = {}
        self._pending: dict[int, int] = {}
        #: called as ``on_drain(dst)`` when the queue for ``dst`` has become empty: all of it
        #: was handed to the kernel (or dropped, if the destination broke); it may send
        self.on_drain: Callable[[int], None] | None = None
        self._buffer = bytearray(MAX_DATAGRAM + 1)  # +1: a longer datagram shows as truncated
        self._view = memoryview(self._buffer)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_message: Callable[[int, int, bytes], None] | None = None
        self._batch: tuple[Callable[[], None], Callable[[], None]] | None = None
        self._watched: set[int] = set()  # destinations with a loop writer registered
        self._backoff: dict[int, asyncio.TimerHandle] = {}

    def _check_process(self) -> None:
        """A Mailer copied into a forked child would send its parent's queue twice."""
        if os.getpid() != self._pid:
            raise RuntimeError("this Mailer belongs to the parent process: build a new one")

    @property
    def reassembler(self) -> Reassembler:
        """The reassembly state shared by the attached reader and ``recv_blocking()``."""
        return self._reassembler

    # -- sending --------------------------------------------------------------------------

    def send(self, dst: int, kind: int, body: bytes) -> bool:
        """Send ``body`` to process ``dst`` without blocking; False if it cannot be accepted.

        False means: ``dst`` is unknown, its inbox is closed in this process, the socket
        failed for good, or queuing the message would exceed ``max_pending`` bytes for
        ``dst`` (the message is then not sent at all). True means the message was sent or
        queued and will be delivered in order after everything sent before to ``dst``.
        """
        if not 0 <= dst < len(self._inboxes):
            return False
        inbox = self._inboxes[dst]
        if inbox.closed:
            return False
        if type(body) is not bytes:
            body = bytes(body)  # a bytearray or view could change while it waits in a queue
        if not 0 <= kind <= 0xFF:
            raise ValueError(f"kind must be 0-255, got {kind}")
        size = len(body) + HEADER.size * max(1, -(-len(body) // CHUNK))
        queued = self._pending.get(dst, 0)
        if queued + size > self.max_pending:
            return False
        msg_id = self._next_id
        self._next_id = (msg_id + 1) & _U32
        sock = inbox.send_sock
        if not queued and len(body) <= _SMALL:  # the hot path: one small datagram
            header = HEADER.pack(kind, FIRST | LAST, self.my_id, msg_id, len(body))
            try:
                sock.send(header + body, _DONTWAIT)
                return True
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    return self._broken(dst, exc)
            self._queues[dst] = deque([(header, body)])
            self._pending[dst] = size
            self._watch(dst)
            return True
        datagrams = _datagrams(kind, self.my_id, msg_id, body)
        start = 0
        if not queued:
            while start < len(datagrams):
                try:
                    sock.sendmsg(datagrams[start], (), _DONTWAIT)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.ENOBUFS:
                        break
                    return self._broken(dst, exc)
                start += 1
            if start == len(datagrams):
                return True
            size -= sum(len(h) + len(p) for h, p in datagrams[:start])
        self._queues.setdefault(dst, deque()).extend(datagrams[start:])
        self._pending[dst] = queued + size
        self._watch(dst)
        return True

    def pending(self, dst: int) -> int:
        """Bytes queued for ``dst`` that the kernel has not taken yet."""
        return self._pending.get(dst, 0)

    @property
    def queued(self) -> dict[int, int]:
        """Bytes queued per destination, for destinations with a queue (the live mapping:
        read it, never change it). ``dst in mailer.queued`` is the cheapest "is anything
        waiting for dst" test, for a sender that asks after every message."""
        return self._pending

    def _drained(self, dst: int) -> None:
        """The queue for ``dst`` is gone: tell ``on_drain`` (its errors are logged)."""
        on_drain = self.on_drain
        if on_drain is not None and dst not in self._queues:
            try:
                on_drain(dst)
            except Exception:
                log.exception("IPC drain handler failed (destination %d)", dst)

    def _broken(self, dst: int, exc: OSError) -> bool:
        """A permanent socket error towards ``dst``: drop what was queued for it."""
        log.warning("IPC to process %d failed: %s; dropping its queue", dst, exc)
        self._queues.pop(dst, None)
        self._pending.pop(dst, None)
        self._unwatch(dst)
        return False

    def _push_out(self, dst: int) -> int:
        """Send queued datagrams for ``dst`` until the kernel refuses.

        Returns 0 when the queue is empty, ``errno.EAGAIN`` or ``errno.ENOBUFS`` when the
        kernel refused, and -1 when the destination broke (its queue was dropped).
        """
        queue = self._queues.get(dst)
        if not queue:
            return 0
        sock = self._inboxes[dst].send_sock
        sent = 0
        status = 0
        while queue:
            datagram = queue[0]
            try:
                sock.sendmsg(datagram, (), _DONTWAIT)
            except BlockingIOError:
                status = errno.EAGAIN
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    status = errno.ENOBUFS
                    break
                self._pending[dst] -= sent
                self._broken(dst, exc)
                return -1
            queue.popleft()
            sent += len(datagram[0]) + len(datagram[1])
        self._pending[dst] -= sent
        if not queue:
            del self._queues[dst]
            del self._pending[dst]
        return status

    def flush(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds pushing out every queue (for shutdown).

        True if nothing is left queued. It only writes: two processes flushing towards each
        other's full inbox wait for readers that are not reading, and time out.
        """
        self._check_process()
        deadline = time.monotonic() + timeout
        while True:
            nobufs = False
            for dst in list(self._queues):
                status = self._push_out(dst)
                nobufs = nobufs or status == errno.ENOBUFS
                if status <= 0:
                    self._drained(dst)
            if not self._queues:
                for dst in list(self._watched):
                    self._unwatch(dst)
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if nobufs:
                time.sleep(min(_ENOBUFS_BACKOFF, remaining))
                continue
            poller = select.poll()
            for dst in self._queues:
                poller.register(self._inboxes[dst].send_sock, select.POLLOUT)
            poller.poll(math.ceil(remaining * 1000))

    # -- the event loop -------------------------------------------------------------------

    def attach(
        self,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[int, int, bytes], None],
        batch: tuple[Callable[[], None], Callable[[], None]] | None = None,
    ) -> None:
        """Read my inbox on ``loop`` and call ``on_message(kind, src, body)`` per message;
        flush queued sends when their destination becomes writable. ``batch`` is a pair of
        callables run before and after each batch of messages read at one wakeup (the
        worker groups the socket writes its messages cause)."""
        self._check_process()
        if self._loop is not None:
            raise RuntimeError("Mailer is already attached to a loop")
        self._loop = loop
        self._on_message = on_message
        self._batch = batch
        loop.add_reader(self._inbox.recv_sock.fileno(), self._on_readable)
        for dst in self._queues:
            self._watch(dst)

    def stop_reading(self) -> None:
        """Stop taking messages from the inbox (they wait there for the next reader), but
        keep flushing queued sends: for a worker that is stopping gracefully."""
        loop = self._loop
        if loop is not None and not self._inbox.closed:
            loop.remove_reader(self._inbox.recv_sock.fileno())

    def detach(self) -> None:
        """Stop reading and flushing on the loop; queued sends stay queued."""
        loop = self._loop
        if loop is None:
            return
        for dst in list(self._watched):
            self._unwatch(dst)
        for handle in self._backoff.values():
            handle.cancel()
        self._backoff.clear()
        if not self._inbox.closed:
            loop.remove_reader(self._inbox.recv_sock.fileno())
        self._loop = None
        self._on_message = None
        self._batch = None

    def close(self) -> None:
        """Detach and drop everything queued (the inboxes are closed by their creator)."""
        self.detach()
        self._queues.clear()
        self._pending.clear()

    def _watch(self, dst: int) -> None:
        loop = self._loop
        if loop is None or dst in self._watched or dst in self._backoff:
            return
        self._watched.add(dst)
        loop.add_writer(self._inboxes[dst].send_sock.fileno(), self._on_writable, dst)

    def _unwatch(self, dst: int) -> None:
        if dst in self._watched:
            self._watched.discard(dst)
            assert self._loop is not None
            if not self._inboxes[dst].closed:
                self._loop.remove_writer(self._inboxes[dst].send_sock.fileno())
        handle = self._backoff.pop(dst, None)
        if handle is not None:
            handle.cancel()

    def _on_writable(self, dst: int) -> None:
        had_queue = dst in self._queues
        status = self._push_out(dst)
        if status == errno.EAGAIN:
            return  # stay registered: another writer of that inbox got there first
        self._unwatch(dst)
        if status == errno.ENOBUFS and self._loop is not None:
            # Writable but no kernel memory: polling again at once would spin.
            self._backoff[dst] = self._loop.call_later(_ENOBUFS_BACKOFF, self._retry, dst)
        elif had_queue:
            self._drained(dst)  # after the unwatch: what it sends watches again

    def _retry(self, dst: int) -> None:
        self._backoff.pop(dst, None)
        if dst in self._queues:
            self._watch(dst)

    def _on_readable(self) -> None:
        """Drain up to ``_READ_BATCH`` datagrams, then let the loop run other work."""
        batch = self._batch
        if batch is None:
            self._read_batch()
            return
        batch[0]()
        try:
            self._read_batch()
        finally:
            batch[1]()

    def _read_batch(self) -> None:
        sock = self._inbox.recv_sock
        buffer = self._buffer
        view = self._view
        feed = self._reassembler.feed
        for _ in range(_READ_BATCH):
            try:
                n = sock.recv_into(buffer, 0, _DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # pragma: no cover - the inbox was closed under us
                log.warning("IPC inbox of process %d: %s", self.my_id, exc)
                return
            if n > MAX_DATAGRAM:
                self._reassembler.dropped += 1  # not ours: longer than any encode() output
                continue
            message = feed(view[:n])
            if message is not None:
                self._deliver(message)

    def _deliver(self, message: Message) -> None:
        on_message = self._on_message
        if on_message is None:  # pragma: no cover - detached by an earlier callback
            return
        try:
            on_message(*message)
        except Exception:
            log.exception("IPC message handler failed (kind %d from %d)", *message[:2])

    # -- blocking receive -----------------------------------------------------------------

    def recv_blocking(self, timeout: float) -> tuple[int, int, bytes] | None:
        """Read my inbox synchronously until ONE complete message arrives; None on timeout.

        For a blocking ``taskwait`` while the loop is not running in this call stack. It
        shares the reassembly state with the attached reader (a message half read by one
        is completed by the other), and while it waits it also pushes out queued sends, so
        a task queued behind backpressure still leaves. Messages other than the awaited one
        are the caller's to dispatch.
        """
        self._check_process()
        deadline = time.monotonic() + timeout
        sock = self._inbox.recv_sock
        view = self._view
        feed = self._reassembler.feed
        while True:
            while True:
                try:
                    n = sock.recv_into(self._buffer, 0, _DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
                if n > MAX_DATAGRAM:
                    self._reassembler.dropped += 1
                    continue
                message = feed(view[:n])
                if message is not None:
                    return message
            nobufs = False
            for dst in list(self._queues):
                status = self._push_out(dst)
                nobufs = status == errno.ENOBUFS or nobufs
                if status <= 0:
                    self._drained(dst)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            if not nobufs:
                for dst in self._queues:
                    poller.register(self._inboxes[dst].send_sock, select.POLLOUT)
            wait = min(remaining, _ENOBUFS_BACKOFF) if nobufs else remaining
            poller.poll(math.ceil(wait * 1000))
