"""One tailer per file: its descriptor, its read position, its lifecycle state.

States:

    ACTIVE    at a matching path: read as it grows
    DRAINING  renamed away or deleted: read to its end; closed once idle and
              every line sent is acknowledged
    RETIRING  no input wants it any more: not read; closed once nothing is pending
    IDLE      descriptor closed after inactivity (close_inactive_s), or while quiet
              when more than max_open_files are open; opened again when it grows
    CLOSED    done with; dropped from the table once its position is saved

An ACTIVE file at its end with nothing pending, quiet for COLD_AFTER_S in a
watched folder, is *cold*, as is an IDLE one: the loop stops reading it until a
write to it is reported (a Seen event), and its position and figures, which
cannot change meanwhile, are taken once; thousands of idle files cost nothing
per turn.

A new file is first *judged* (``judging``): not read until its first bytes say
whether it is a copy of a generation that ended (shipper/files/copies.py), in any state.

The state changes only in ``to()``, which logs the change once (with the reason
the caller gives) and closes the descriptor when the new state has none. What
to change when is decided by the prospector (finding files, rotation, the EOF
policy) and the loop (retiring). A descriptor is never closed while a chunk of
the file is pending with Kafka (``acks``): a refused chunk is read again from
it, even after the file was renamed or deleted. Only a read error closes it
early (there is nothing left to read from).

Positions: ``read_pos`` is the next byte to read; framed lines go to the
publisher one chunk at a time, and ``acks`` (shipper/files/acks.py) moves the
delivered offset as Kafka acknowledges them. A truncation (copytruncate) starts
a new generation from offset 0 (``truncated``): the old generation's chunks and
acks go with what it returns, to be handed to its copy if one is found. A copy
(``src``) carries its original's identity, path and log_name. File identity and
fingerprints: shipper/files/identity.py.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import time
import zlib
from typing import TYPE_CHECKING

from mulog import wire
from offsets import FilePosition, CopiedFrom

from shipper.files.acks import FileAcks
from shipper.files.framing import Frame, Framer, utf8_text
from shipper.files.identity import FINGERPRINT_BYTES, Generation, file_identity, identity_crc, same_start

if TYPE_CHECKING:
    from shipper.config import Input

    from mulog.runtime.instrument import Instruments

log = logging.getLogger("shipper.tailer")

READ_CHUNK = 1 << 20  # bytes per read() call

ACTIVE = "active"
DRAINING = "draining"
RETIRING = "retiring"
IDLE = "idle"
CLOSED = "closed"
_OPEN = (ACTIVE, DRAINING, RETIRING)  # states that keep a descriptor


class Read(enum.Enum):
    """What ``Tailer.read`` gives when it gives no lines."""

    NOTHING = "bytes were read, but no complete line yet"
    END = "at the end of the file (or it changed under the read position, or a read error closed it)"


class Tailer:
    changes = 0  # counts tailers made and turned cold or warm: the loop's list of warm tailers is made again
    def __init__(self, dev: int, ino: int, path: str, fd: int, inp: "Input", log_name: str | None,
                 start: int, fp: tuple[int, int], host: str, counters: "Instruments", *, size: int = 0,
                 gen: int = 0, src: CopiedFrom | None = None, judging: bool = False):
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
        self.head = os.pread(fd, fp[0], 0) if fd >= 0 and fp[0] else b""  # those bytes
        self.ident: int | None = None
        self.gen = gen
        self.src = src  # a copy: the file whose lines it holds (their identity, path and positions)
        self.judging = judging  # not read until its first bytes tell whether it is a copy
        self.judged_at = (-1, 0.0)  # (size, since when) at the last look while judging
        self.waits_on: tuple[int, int] | None = None  # judging: the followed file it is a copy of
        self.topic = inp.topic
        self.key = b""
        self.headers: dict = {}
        self.key_prefix, self.partition = None, None  # the key form's (mulog/wire.py; the publisher's pick)
        self.last_data = time.monotonic()
        self.size_seen = size
        self.changed = False  # a read found the first bytes changed: a truncation
        self.eof = False  # the last read found nothing new
        self.quiet_closed = False  # closed (IDLE) for room, not for inactivity: its reopening is not said
        Tailer.changes += 1
        self.cold = False  # IDLE, or quiet with nothing pending: not read in the loop until a write is
        # reported (Seen); its position and figures do not change meanwhile, so they are looked at once
        self.cold_saved = False  # cold, and its position is stored
        self.view = None  # cold: its FileView, taken once
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
        self.cold = state == IDLE
        Tailer.changes += 1  # its side, or its stored position, may change: the loop's lists are made again
        self.cold_saved, self.view = False, None
        log.log(level, why, *args)

    def warm(self) -> None:
        """No longer cold: read in the loop again (it was written to, or truncated)."""
        if self.cold:
            Tailer.changes += 1
        self.cold, self.cold_saved, self.view = False, False, None

    def chill(self) -> None:
        """Cold: quiet at its end with nothing pending; not read until a write is reported."""
        self.cold, self.cold_saved = True, False
        Tailer.changes += 1

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
        s = self.src
        if s is not None:
            return file_identity(s.dev, s.ino, s.ident if s.ident is not None else crc, s.gen)
        return file_identity(self.dev, self.ino, crc, self.gen)

    def _refresh_identity(self) -> None:
        if self.fd >= 0 and self.ident is None and not self.judging:
            self.ident = identity_crc(self.fd)
        self._build_headers()

    def _build_headers(self) -> None:
        ident = self.identity
        self.key = ident.encode()
        # "offset" is rewritten for every line by the publisher (a dict: cheaper than a list of tuples)
        path = self.path if self.src is None else self.src.path  # a copy's lines were written under its original's
        self.headers = {"host": utf8_text(self.host), "path": utf8_text(path), "file": ident, "offset": "0",
                        "app_id": str(self.input.app_id), "log_name": utf8_text(self.log_name)}
        self.key_prefix = wire.prefix(self.host, ident, self.input.app_id, self.log_name, path)
        self.partition = None  # (topic, partitions, partition), picked again by the publisher

    def set_input(self, inp: "Input", log_name: str | None) -> None:
        if self.src is not None or log_name is None:
            log_name = self.log_name  # a copy keeps its original's log_name
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
            self.cold_saved, self.view = False, None
            if self.cold:
                Tailer.changes += 1  # the cold files' figures are taken again
            self._build_headers()

    # ---------------------------------------------------------------- reading
    @property
    def readable(self) -> bool:
        return (self.fd >= 0 and (self.state == ACTIVE or self.state == DRAINING) and self.acks.refused is None
                and not self.judging)

    def read(self, now: float) -> Frame | Read:
        """Read one chunk: a Frame of complete lines, ``Read.NOTHING`` when no line
        was completed, ``Read.END`` at the end of the file."""
        try:
            data = os.read(self.fd, READ_CHUNK)
        except OSError as e:
            if e.errno in (errno.EINTR, errno.EAGAIN):
                return Read.NOTHING
            self.counters.read_errors.value += 1
            self.to(CLOSED, "read error on %s at offset %d: %s; closing it", self.path, self.read_pos, e,
                    level=logging.ERROR, force=True)
            return Read.END
        if not data:
            self.eof = True
            return Read.END
        self.eof = False
        if self.content_changed():  # truncated and written again past the read position: not its bytes
            os.lseek(self.fd, self.read_pos, os.SEEK_SET)
            self.changed = True
            return Read.END
        self.last_data = now
        self.read_pos += len(data)
        if self.fp_len < FINGERPRINT_BYTES:
            self.head = os.pread(self.fd, min(self.read_pos, FINGERPRINT_BYTES), 0)
            self.fp_len, self.fp_crc = len(self.head), zlib.crc32(self.head)
        frame = self.framer.feed(data)
        if frame is None:
            return Read.NOTHING
        if frame.lines and self.ident is None:
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
        if (st.st_size < self.read_pos and self.src is None) or self.changed:  # a copy does not shrink
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

    def generation(self) -> Generation:
        """This generation of the file: its identity, first bytes, acks and where its
        reading ended (for shipper/files/copy_rules.py)."""
        return Generation(self.dev, self.ino, self.gen, self.ident, (self.fp_len, self.fp_crc), self.head,
                          self.framer.pos, self.acks, self.path, self.log_name, self.input)

    def truncated(self, size: int) -> Generation:
        """The file was truncated (or rewritten from its start): a new generation
        from offset 0. Returns the old one (``generation``)."""
        old = self.generation()
        self.counters.truncations("truncated: %s is %d bytes, below the read position %d, or its first bytes "
                                  "changed (copytruncate?); reading it from offset 0 as generation %d",
                                  self.path, size, self.read_pos, self.gen + 1)
        self.gen += 1
        self.acks = FileAcks(0, self)
        self.read_pos = 0
        self.framer.reset(0)
        self.fp_len, self.fp_crc, self.head = 0, zlib.crc32(b""), b""
        self.ident = None
        self.changed = False
        self.warm()
        os.lseek(self.fd, 0, os.SEEK_SET)
        self._refresh_identity()
        return old

    def become_copy(self, src: CopiedFrom, log_name: str, acks: FileAcks | None, start: int) -> None:
        """Judged a copy of ``src``: its lines carry ``src``'s identity, path and
        log_name, and it is read from ``start`` (where its original's reading ended);
        the original's pending chunks (``acks``) come with it."""
        self.src = src
        self.log_name = log_name
        if acks is None:
            acks = FileAcks(start, self)
        acks.owner = self
        self.acks = acks
        self.read_pos = start
        self.framer.reset(start)
        # its own first bytes (what its stored position is told by: the inode may hold another file later)
        self.head = os.pread(self.fd, FINGERPRINT_BYTES, 0)
        self.fp_len, self.fp_crc = len(self.head), zlib.crc32(self.head)
        os.lseek(self.fd, start, os.SEEK_SET)
        self.judging = False
        self.last_data = time.monotonic()
        self._refresh_identity()

    def judged_new(self, log_name: str) -> None:
        """Judged a file of its own (no copy): read from its start."""
        self.judging = False
        self.log_name = log_name
        self.last_data = time.monotonic()
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

    def reopen(self, path: str, state: str, why: str, *args, level: int = logging.INFO) -> bool:
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
        self.quiet_closed = False
        self.to(state, why, *args, level=level)
        return True

    # ---------------------------------------------------------------- positions
    def _rec(self) -> tuple:
        return self.acks.delivered, self.fp_len, self.fp_crc, self.path, self.gen, self.ident, self.src

    def position(self, now: float) -> FilePosition | None:
        """The position to store, or None when it has not changed (or the file is
        still being judged: a stored position would skip the judgement)."""
        rec = self._rec()
        if rec == self.saved or self.judging:
            return None
        return FilePosition(self.dev, self.ino, self.fp_len, self.fp_crc, self.path, self.acks.delivered, now,
                            self.gen, self.ident, self.src)

    def mark_saved(self, pos: FilePosition) -> None:
        self.saved = (pos.offset, pos.fp_len, pos.fp_crc, pos.path, pos.gen, pos.ident, pos.src)

    @property
    def saved_now(self) -> bool:
        """The stored position is the current one."""
        return self.judging or self.saved == self._rec()

    def __repr__(self) -> str:
        return (f"<Tailer {self.path} {self.identity} {self.state} read={self.read_pos} "
                f"delivered={self.acks.delivered} pending={len(self.acks.pending)}>")
