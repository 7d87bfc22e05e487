"""One tailer per file: its identity, its read and delivered positions, rotation.

A file is known by device + inode, checked by fingerprints of its first bytes
and named by its identity: shipper/identity.py.

Positions: ``read_pos`` is the next byte to read from the descriptor; lines framed
and handed to the publisher wait in ``pending`` (one ``Ack`` per read chunk) until
Kafka acknowledges them; ``delivered`` only moves over chunks acknowledged in
order. A truncation (copytruncate) starts a new *generation* from offset 0:
acknowledgements of lines of the old content no longer move the position.
"""

from __future__ import annotations

import errno
import logging
import os
import time
import zlib
from collections import deque
from typing import TYPE_CHECKING

from confluent_kafka import KafkaError

from offsets import FilePosition

from mulog.backoff import Backoff

from .framing import Frame, Framer, utf8_text
from .identity import FINGERPRINT_BYTES, file_identity, fingerprint, identity_crc, same_start

if TYPE_CHECKING:
    from shipper.config import Input

log = logging.getLogger("shipper.tailer")

READ_CHUNK = 1 << 20  # bytes per read() call
_PURGED = (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT)

# states
ACTIVE = "active"  # at a matching path: read as it grows
DRAINING = "draining"  # renamed away or deleted: read to its end, close once idle
RETIRING = "retiring"  # no input wants it any more: stop reading, close
IDLE = "idle"  # descriptor closed after inactivity; reopened when the file grows
CLOSED = "closed"  # done with: dropped once every line sent is acknowledged


class Ack:
    """Delivery callback of the last message of one read chunk.

    The producer is idempotent and keeps a partition's messages in order, and all
    lines of a file go to one partition (same key): when the last line of a chunk
    is acknowledged, so are those before it.
    """

    __slots__ = ("tailer", "gen", "end", "n", "nbytes", "done", "failed", "sink")

    def __init__(self, tailer: "Tailer", gen: int, end: int, n: int, nbytes: int, sink):
        self.tailer = tailer
        self.gen = gen
        self.end = end
        self.n = n
        self.nbytes = nbytes
        self.done = n == 0
        self.failed = False
        self.sink = sink  # the publisher, told when the chunk leaves its queue

    def __call__(self, err, msg) -> None:
        if self.sink is not None:
            self.sink.chunk_resolved(self, err)
        if err is None:
            self.done = True
            self.tailer.advance()
        else:
            self.failed = True
            self.tailer.chunk_failed(self, err)


class Tailer:
    def __init__(self, dev: int, ino: int, path: str, fd: int, inp: "Input", log_name: str,
                 start: int, fp: tuple[int, int], host: str, *, size: int = 0):
        self.dev = dev
        self.ino = ino
        self.path = path
        self.fd = fd
        self.host = host
        self.input = inp
        self.log_name = log_name
        self.state = ACTIVE
        self.gen = 0
        self.framer = Framer(start, inp.max_line_bytes)
        self.read_pos = start
        self.delivered = start
        self.saved: tuple | None = None  # what the checkpointer last stored
        self.pending: deque[Ack] = deque()
        self.fp_len, self.fp_crc = fp  # covers the first fp_len bytes; grows as the file is read
        self.ident: int | None = None
        self.topic = inp.topic
        self.key = b""
        self.headers: dict = {}
        self.last_data = time.monotonic()
        self.size_seen = size
        self.failed_at: float | None = None  # a chunk failed: rewind once nothing is pending
        self.retry_at = 0.0
        self.backoff = Backoff(1.0, 60.0)
        self.cut_lines = 0
        self._refresh_identity()

    # ---------------------------------------------------------------- naming
    @property
    def identity(self) -> str:
        crc = self.ident if self.ident is not None else self.fp_crc
        return file_identity(self.dev, self.ino, crc)

    def _refresh_identity(self) -> None:
        if self.fd >= 0 and self.ident is None:
            self.ident = identity_crc(self.fd)
        self._build_headers()

    def _build_headers(self) -> None:
        ident = self.identity
        self.key = ident.encode()
        # "offset" is rewritten for every line by the publisher (a dict: cheaper than a list of tuples)
        self.headers = {"host": utf8_text(self.host), "path": utf8_text(self.path), "file": ident, "offset": "0",
                        "app_id": str(self.input.app_id), "log_name": utf8_text(self.log_name)}

    def set_input(self, inp: "Input", log_name: str) -> None:
        if inp is self.input and log_name == self.log_name:
            return
        self.input = inp
        self.topic = inp.topic
        self.log_name = log_name
        self.framer.max_line = inp.max_line_bytes
        self._build_headers()

    def set_path(self, path: str) -> None:
        if path != self.path:
            log.info("renamed: %s -> %s (%s), reading on at offset %d", self.path, path, self.identity,
                     self.read_pos)
            self.path = path
            self._build_headers()

    # ---------------------------------------------------------------- reading
    @property
    def readable(self) -> bool:
        return self.fd >= 0 and self.state in (ACTIVE, DRAINING) and self.failed_at is None

    def read(self, now: float) -> Frame | None | bool:
        """Read one chunk: a Frame of complete lines, None when nothing complete was
        read, False at the end of the file."""
        try:
            data = os.read(self.fd, READ_CHUNK)
        except OSError as e:
            if e.errno in (errno.EINTR, errno.EAGAIN):
                return None
            log.error("read error on %s at offset %d: %s; closing it", self.path, self.read_pos, e)
            self.close()
            self.state = CLOSED
            return False
        if not data:
            return False
        self.last_data = now
        self.read_pos += len(data)
        if self.fp_len < FINGERPRINT_BYTES:
            self._grow_fingerprint()
        frame = self.framer.feed(data)
        if frame is not None and frame.lines and self.ident is None:
            self._refresh_identity()
        return frame

    def _grow_fingerprint(self) -> None:
        self.fp_len, self.fp_crc = fingerprint(self.fd, min(self.read_pos, FINGERPRINT_BYTES))

    def at_eof(self, now: float) -> str | None:
        """Checks made when a read found nothing new. Returns an event name
        (``truncated``, ``deleted``) or None."""
        try:
            st = os.fstat(self.fd)
        except OSError:
            return None
        self.size_seen = st.st_size
        if st.st_size < self.read_pos:
            self.truncated(st.st_size)
            return "truncated"
        if st.st_nlink == 0 and self.state == ACTIVE:
            self.state = DRAINING
            return "deleted"
        return None

    def content_changed(self) -> bool:
        """True when the first bytes no longer match (truncated and rewritten
        between two looks)."""
        if self.fd < 0 or self.fp_len == 0:
            return False
        try:
            return not same_start(self.fd, (self.fp_len, self.fp_crc))
        except OSError:
            return False

    def truncated(self, size: int) -> None:
        log.warning("truncated: %s is %d bytes, below the read position %d (copytruncate?); "
                    "reading it from offset 0", self.path, size, self.read_pos)
        self.gen += 1
        self.read_pos = 0
        self.delivered = 0
        self.framer.reset(0)
        self.fp_len, self.fp_crc = 0, zlib.crc32(b"")
        self.ident = None
        os.lseek(self.fd, 0, os.SEEK_SET)
        self._refresh_identity()

    # ----------------------------------------------------------- acknowledging
    def advance(self) -> None:
        p = self.pending
        while p and p[0].done:
            a = p.popleft()
            if a.gen == self.gen:
                self.delivered = a.end

    def chunk_failed(self, ack: Ack, err) -> None:
        if err.code() in _PURGED:  # dropped from the queue at the stop: sent again at the next start
            return
        if self.failed_at is None:
            log.error("Kafka refused lines of %s (offsets up to %d): %s; they will be sent again",
                      self.path, ack.end, err)
            self.failed_at = time.monotonic()

    def try_recover(self, now: float) -> bool:
        """After a failed chunk, once nothing is pending any more: go back to the
        delivered position and read again (after a back-off)."""
        if self.failed_at is None:
            return False
        p = self.pending
        if any(not (a.done or a.failed) for a in p):
            return False  # wait until every chunk sent has its report
        for a in p:  # the position moves over the chunks acknowledged before the first failed one
            if a.failed:
                break
            if a.gen == self.gen:
                self.delivered = a.end
        p.clear()
        if not self.retry_at:
            self.retry_at = now + self.backoff.next()
            return False
        if now < self.retry_at:
            return False
        self.retry_at = 0.0
        self.failed_at = None
        self.read_pos = self.delivered
        self.framer.reset(self.delivered)
        if self.fd >= 0:
            os.lseek(self.fd, self.delivered, os.SEEK_SET)
        log.info("resending %s from offset %d", self.path, self.delivered)
        return True

    def add_empty(self, end: int) -> None:
        """A chunk with no line to send (only empty lines) still moves the position."""
        a = Ack(self, self.gen, end, 0, 0, None)
        self.pending.append(a)
        self.advance()

    # ---------------------------------------------------------------- state
    def position(self, now: float) -> FilePosition | None:
        """The position to store, or None when it has not changed."""
        rec = (self.delivered, self.fp_len, self.fp_crc, self.path)
        if rec == self.saved:
            return None
        return FilePosition(self.dev, self.ino, self.fp_len, self.fp_crc, self.path, self.delivered, now)

    def mark_saved(self, pos: FilePosition) -> None:
        self.saved = (pos.offset, pos.fp_len, pos.fp_crc, pos.path)

    @property
    def behind(self) -> int:
        return max(0, self.size_seen - self.delivered)

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1

    def reopen(self, path: str) -> bool:
        """Open an idle file again (it grew). False when it is not the same file."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (self.dev, self.ino) or (
                self.fp_len and not same_start(fd, (self.fp_len, self.fp_crc))):
            os.close(fd)
            return False
        self.fd = fd
        os.lseek(fd, self.read_pos, os.SEEK_SET)
        self.state = ACTIVE
        self.last_data = time.monotonic()
        return True

    def __repr__(self) -> str:
        return f"<Tailer {self.path} {self.identity} {self.state} read={self.read_pos} delivered={self.delivered}>"
