"""One tailer per file: its descriptor, its read position, its lifecycle state.

States:

    ACTIVE    at a matching path: read as it grows
    DRAINING  renamed away or deleted: read to its end; closed once idle and
              every line sent is acknowledged
    RETIRING  no input wants it any more: not read; closed once nothing is pending
    IDLE      descriptor closed after inactivity; opened again when the file grows
    CLOSED    done with; dropped from the table once its position is saved

The state changes only in ``to()``, which logs the change once (with the reason
the caller gives) and closes the descriptor when the new state has none. What
to change when is decided by the prospector (finding files, rotation, the EOF
policy) and the loop (retiring). A descriptor is never closed while a chunk of
the file is pending with Kafka (``acks``): a refused chunk is read again from
it, even after the file was renamed or deleted. Only a read error closes it
early (there is nothing left to read from).

Positions: ``read_pos`` is the next byte to read; framed lines go to the
publisher one chunk at a time, and ``acks`` (shipper/acks.py) moves the
delivered offset as Kafka acknowledges them. A truncation (copytruncate) starts
a new generation from offset 0. File identity and fingerprints: shipper/identity.py.
"""

from __future__ import annotations

import errno
import logging
import os
import time
import zlib
from typing import TYPE_CHECKING

from offsets import FilePosition

from .acks import FileAcks
from .framing import Frame, Framer, utf8_text
from .identity import FINGERPRINT_BYTES, file_identity, fingerprint, identity_crc, same_start

if TYPE_CHECKING:
    from shipper.config import Input

    from .stats import Counters

log = logging.getLogger("shipper.tailer")

READ_CHUNK = 1 << 20  # bytes per read() call

ACTIVE = "active"
DRAINING = "draining"
RETIRING = "retiring"
IDLE = "idle"
CLOSED = "closed"
_OPEN = (ACTIVE, DRAINING, RETIRING)  # states that keep a descriptor


class Tailer:
    def __init__(self, dev: int, ino: int, path: str, fd: int, inp: "Input", log_name: str,
                 start: int, fp: tuple[int, int], host: str, counters: "Counters", *, size: int = 0):
        self.dev = dev
        self.ino = ino
        self.path = path
        self.fd = fd
        self.host = host
        self.counters = counters
        self.input = inp
        self.log_name = log_name
        self.state = ACTIVE
        self.framer = Framer(start, inp.max_line_bytes)
        self.read_pos = start
        self.acks = FileAcks(start, self)
        self.saved: tuple | None = None  # what the checkpoint last stored
        self.fp_len, self.fp_crc = fp  # covers the first fp_len bytes; grows as the file is read
        self.ident: int | None = None
        self.topic = inp.topic
        self.key = b""
        self.headers: dict = {}
        self.last_data = time.monotonic()
        self.size_seen = size
        self._refresh_identity()

    # ---------------------------------------------------------------- state
    def to(self, state: str, why: str, *args, level: int = logging.INFO, force: bool = False) -> None:
        """The one place the state changes: log ``why % args`` once and close the
        descriptor when ``state`` has none. Closing it while chunks are pending is
        a bug unless ``force`` (a read error: nothing can be read from it anyway)."""
        if state == self.state:
            return
        if state not in _OPEN and self.fd >= 0:
            if not (force or self.acks.idle):
                raise RuntimeError(f"{self!r}: descriptor closed ({state}) with chunks pending with Kafka")
            self._close_fd()
        self.state = state
        log.log(level, why, *args)

    @property
    def finished(self) -> bool:
        """Closed, and every line sent acknowledged (or refused for good)."""
        return self.state == CLOSED and not self.acks.pending

    # ---------------------------------------------------------------- naming
    @property
    def delivered(self) -> int:
        return self.acks.delivered

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
        return self.fd >= 0 and (self.state == ACTIVE or self.state == DRAINING) and self.acks.refused is None

    def read(self, now: float) -> Frame | None | bool:
        """Read one chunk: a Frame of complete lines, None when nothing complete was
        read, False at the end of the file."""
        try:
            data = os.read(self.fd, READ_CHUNK)
        except OSError as e:
            if e.errno in (errno.EINTR, errno.EAGAIN):
                return None
            self.counters.read_errors.value += 1
            self.to(CLOSED, "read error on %s at offset %d: %s; closing it", self.path, self.read_pos, e,
                    level=logging.ERROR, force=True)
            return False
        if not data:
            return False
        self.last_data = now
        self.read_pos += len(data)
        if self.fp_len < FINGERPRINT_BYTES:
            self.fp_len, self.fp_crc = fingerprint(self.fd, min(self.read_pos, FINGERPRINT_BYTES))
        frame = self.framer.feed(data)
        if frame is not None and frame.lines and self.ident is None:
            self._refresh_identity()
        return frame

    def at_eof(self) -> str | None:
        """Checks made when a read found nothing new: ``truncated`` (read again from
        0), ``deleted`` (now DRAINING) or None."""
        try:
            st = os.fstat(self.fd)
        except OSError:
            return None
        self.size_seen = st.st_size
        if st.st_size < self.read_pos:
            self.truncated(st.st_size)
            return "truncated"
        if st.st_nlink == 0 and self.state == ACTIVE:
            self.to(DRAINING, "deleted: %s (%s); reading what is left of it, then closing it", self.path,
                    self.identity)
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
        self.counters.truncations("truncated: %s is %d bytes, below the read position %d (copytruncate?); "
                                  "reading it from offset 0", self.path, size, self.read_pos)
        self.acks.new_generation()
        self.read_pos = 0
        self.framer.reset(0)
        self.fp_len, self.fp_crc = 0, zlib.crc32(b"")
        self.ident = None
        os.lseek(self.fd, 0, os.SEEK_SET)
        self._refresh_identity()

    def recover(self, now: float) -> bool:
        """After Kafka refused a chunk: once every chunk sent has its report and the
        back-off has passed, read again from the delivered position."""
        at = self.acks.rewind(now)
        if at is None:
            return False
        self.read_pos = at
        self.framer.reset(at)
        if self.fd >= 0:
            os.lseek(self.fd, at, os.SEEK_SET)
            log.info("resending %s (%s) from offset %d", self.path, self.identity, at)
        return True

    # ---------------------------------------------------------------- descriptor
    def size_now(self) -> int:
        """The file's size (from the descriptor while open; else as last seen)."""
        if self.fd >= 0:
            try:
                self.size_seen = os.fstat(self.fd).st_size
            except OSError:
                pass
        return self.size_seen

    def _close_fd(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1

    def close(self) -> None:
        """At the shipper's stop: the descriptor goes, whatever the state."""
        self._close_fd()

    def reopen(self, path: str, state: str, why: str, *args) -> bool:
        """Open the file again at ``path`` (its descriptor was closed while idle, and
        it grew or was renamed) and go to ``state``. False when ``path`` is not the
        same file any more."""
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
        self.last_data = time.monotonic()
        self.size_seen = st.st_size
        self.to(state, why, *args)
        return True

    # ---------------------------------------------------------------- positions
    def position(self, now: float) -> FilePosition | None:
        """The position to store, or None when it has not changed."""
        rec = (self.acks.delivered, self.fp_len, self.fp_crc, self.path)
        if rec == self.saved:
            return None
        return FilePosition(self.dev, self.ino, self.fp_len, self.fp_crc, self.path, self.acks.delivered, now)

    def mark_saved(self, pos: FilePosition) -> None:
        self.saved = (pos.offset, pos.fp_len, pos.fp_crc, pos.path)

    @property
    def saved_now(self) -> bool:
        """The stored position is the current one."""
        return self.saved == (self.acks.delivered, self.fp_len, self.fp_crc, self.path)

    def __repr__(self) -> str:
        return (f"<Tailer {self.path} {self.identity} {self.state} read={self.read_pos} "
                f"delivered={self.acks.delivered} pending={len(self.acks.pending)}>")
