"""Copies: a new file that holds the lines of a file generation the shipper followed.

logrotate's ``copytruncate`` copies a log to a new file (``app.log.1``,
``app.log-20240101``), then truncates the log, which the server goes on writing
from offset 0. The copy holds the lines of the generation that ended, at the
same offsets: it is that generation, under another name. Read as a new file,
it would send every line again under a new identity (the copies in the glob);
left alone, the lines written after the shipper's last read and before the
truncation would be lost (the copies out of the glob).

So a generation that ends (``Origin``: the truncation of a followed file, or a
stored position whose inode now holds other bytes) is kept with its identity,
the first bytes it had (up to FINGERPRINT_BYTES) and where its reading ended,
until a copy of it is found or forget_after_s passes (offsets.Ended, in the
store, so a restart can still find its copy). Its copy is a file whose first
bytes are the origin's first bytes, compared over at least MIN_COPY_BYTES
(shipper/files/identity.py): it is read from where the origin's reading ended, its
lines carry the origin's identity, path and log_name, and the origin's chunks
still pending with Kafka come with it (what Kafka refuses is read again from
the copy). It is looked for in the origin's folder as soon as the generation
ends, whatever its name (copies out of the glob included), and every new file
is judged (``judge``) before any of its lines is sent:

    compressed  it starts with a compression format's magic number: not a log
    copy        its first bytes are an origin's: read on from the origin's end
    wait        its first bytes are a followed file's (a copy made before the
                truncation, which is seen next), or they begin one and the file
                is still growing (a copy being written), or it is empty
    new         a file of its own: read from its beginning
"""

from __future__ import annotations

import logging
import os
import stat
import time
import zlib
from typing import TYPE_CHECKING, Iterable

from offsets import Ended

from shipper.files.heads import Heads
from shipper.files.identity import FINGERPRINT_BYTES, MIN_COPY_BYTES, compressed, file_identity, key_of

if TYPE_CHECKING:
    from offsets import FilePosition, FilePositions

    from shipper.files.acks import FileAcks
    from shipper.config import Input
    from shipper.files.tailer import Tailer

log = logging.getLogger("shipper")

COPY_WAIT_S = 2.0  # a new file whose bytes begin a followed file's is judged new once it stopped growing this long


class Origin:
    """A generation of a file that ended; see the module doc."""

    __slots__ = ("dev", "ino", "gen", "ident", "fp_len", "fp_crc", "head", "end", "path", "log_name", "input",
                 "acks", "saved", "updated_at")

    def __init__(self, dev: int, ino: int, gen: int, ident: int | None, fp: tuple[int, int], head: bytes, end: int,
                 path: str, log_name: str | None = None, inp: "Input | None" = None,
                 acks: "FileAcks | None" = None, updated_at: float | None = None):
        self.dev, self.ino, self.gen, self.ident = dev, ino, gen, ident
        self.fp_len, self.fp_crc = fp
        self.head = head
        self.end = end  # where its reading ended: its copy is read on from here
        self.path = path
        self.log_name = log_name
        self.input = inp
        self.acks = acks  # its chunks still pending with Kafka (None: restored from the store)
        self.saved: int | None = None
        self.updated_at = time.time() if updated_at is None else updated_at
        if acks is not None:
            acks.owner = self  # named in the log when Kafka refuses one of its chunks

    @property
    def key(self) -> tuple[int, int, int]:
        return self.dev, self.ino, self.gen

    @property
    def delivered(self) -> int:
        return self.acks.delivered if self.acks is not None else self.end

    @property
    def identity(self) -> str:
        return file_identity(self.dev, self.ino, self.ident if self.ident is not None else self.fp_crc, self.gen)

    @classmethod
    def from_stored(cls, p: "FilePosition") -> "Origin":
        return cls(p.dev, p.ino, p.gen, p.ident, (p.fp_len, p.fp_crc), b"", p.offset, p.path)

    def ended(self, now: float) -> Ended:
        return Ended(self.dev, self.ino, self.gen, self.ident, self.fp_len, self.fp_crc, self.head, self.delivered,
                     self.path, now)


def covers(head: bytes, ohead: bytes, fp_len: int, fp_crc: int) -> str | None:
    """Whether a file starting with ``head`` is a copy of one that started with
    ``ohead`` (or, when only its fingerprint is known, whose first ``fp_len`` bytes
    had the crc ``fp_crc``): "copy", "maybe" (``head`` is shorter and begins
    ``ohead``: a copy being written, perhaps) or None."""
    n = len(ohead) if ohead else fp_len
    if n < MIN_COPY_BYTES:
        return None  # too few bytes to tell a copy from a file that starts the same way
    if len(head) < n:
        return "maybe" if ohead and ohead.startswith(head) else None
    if ohead:
        return "copy" if head[:n] == ohead else None
    return "copy" if zlib.crc32(head[:n]) == fp_crc else None


def _head(path_or_fd, size: int) -> bytes:
    n = min(size, FINGERPRINT_BYTES)
    if isinstance(path_or_fd, int):
        return os.pread(path_or_fd, n, 0)
    with open(path_or_fd, "rb") as f:
        return f.read(n)


class Copies:
    """The origins waiting for a copy, and the judgement of new files (module doc)."""

    def __init__(self, positions: "FilePositions | None"):
        self.positions = positions
        self.origins: dict[tuple[int, int, int], Origin] = {}
        self.gone: set[tuple[int, int, int]] = set()  # claimed or forgotten: removed at the next save
        self.heads: tuple[float, Heads] | None = None  # (the turn's time, the index made in it)
        if positions is not None:
            for e in positions.ended():
                o = Origin(e.dev, e.ino, e.gen, e.ident, (e.fp_len, e.fp_crc), e.head, e.end, e.path,
                           updated_at=e.updated_at)
                o.saved = e.end
                self.origins[o.key] = o

    def add(self, o: Origin) -> None:
        self.origins[o.key] = o
        self.gone.discard(o.key)

    def claim(self, o: Origin) -> None:
        """``o``'s copy was found: it is followed as a file from now on."""
        self.origins.pop(o.key, None)
        self.gone.add(o.key)

    # ------------------------------------------------------------ judging
    def judge(self, t: "Tailer", tailers: Iterable["Tailer"], now: float) -> tuple[str, Origin | None]:
        """What the new file ``t`` is (module doc): (verdict, the origin of a copy)."""
        try:
            size = os.fstat(t.fd).st_size
            head = _head(t.fd, size)
        except OSError:
            return "wait", None
        if size != t.judged_at[0]:
            t.judged_at = (size, now)
        if not head:
            return "wait", None
        c = compressed(head)
        if c is None or c:
            return ("wait" if c is None else "compressed"), None
        best, maybe = None, False
        for o in self.origins.values():
            v = covers(head, o.head, o.fp_len, o.fp_crc)
            if v == "copy" and (best is None or len(o.head or b"") > len(best.head or b"")):
                best = o
            maybe = maybe or v == "maybe"
        if best is not None:
            return "copy", best
        t.waits_on = None
        heads = self.index(tailers, now)
        if len(head) >= MIN_COPY_BYTES:
            for x in heads.same_start(head):
                if x is t or x.judging or x.state == "closed":
                    continue
                v = covers(head, x.head, x.fp_len, x.fp_crc)
                if v == "copy":  # a copy of a file still followed: its truncation comes next
                    t.waits_on = (x.dev, x.ino)
                    return "wait", None
                maybe = maybe or v == "maybe"
        else:
            maybe = maybe or heads.begins(head, t)
        if maybe and now - t.judged_at[1] < COPY_WAIT_S:
            return "wait", None
        return "new", None

    def index(self, tailers: Iterable["Tailer"], now: float) -> Heads:
        """The followed files' first bytes, indexed once per turn of the loop."""
        if self.heads is None or self.heads[0] != now:
            self.heads = (now, Heads(tailers))
        return self.heads[1]

    def followed(self, t: "Tailer") -> None:
        """``t`` was judged: files judged later in the same turn compare with it too."""
        if self.heads is not None:
            self.heads[1].add(t)

    def find(self, o: Origin, tailers: dict) -> tuple[str, os.stat_result] | None:
        """The copy of ``o`` in its folder, whatever its name: a file not followed
        (or still judged) whose first bytes are ``o``'s; the newest if several."""
        best = None
        try:
            with os.scandir(os.path.dirname(o.path) or ".") as it:
                entries = [e for e in it if e.is_file(follow_symlinks=False)]
        except OSError:
            return None
        need = max(len(o.head) if o.head else o.fp_len, MIN_COPY_BYTES)
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
                key = key_of(st)
                t = tailers.get(key)
                if key == (o.dev, o.ino) or st.st_size < need or not stat.S_ISREG(st.st_mode) or (
                        t is not None and not t.judging):
                    continue
                if covers(_head(e.path, st.st_size), o.head, o.fp_len, o.fp_crc) == "copy" and (
                        best is None or st.st_mtime > best[1].st_mtime):
                    best = (e.path, st)
            except OSError:
                continue
        return best

    # ------------------------------------------------------------ storing
    def to_save(self, now: float) -> tuple[list[Ended], list[tuple[int, int, int]]]:
        """Origins whose delivered offset changed since stored, and those to forget."""
        return [o.ended(now) for o in self.origins.values() if o.saved != o.delivered], sorted(self.gone)

    def mark_saved(self, saved: list[Ended], gone: list[tuple[int, int, int]]) -> None:
        for e in saved:
            o = self.origins.get((e.dev, e.ino, e.gen))
            if o is not None:
                o.saved = e.end
                o.updated_at = e.updated_at
        self.gone.difference_update(gone)

    def expire(self, forget_after_s: float) -> int:
        """Forget the origins no copy was found for within forget_after_s."""
        cutoff = time.time() - forget_after_s
        old = [o for o in self.origins.values() if o.updated_at < cutoff and (o.acks is None or o.acks.idle)]
        for o in old:
            self.claim(o)
        if old:
            log.info("no copy found within %.0fs of the end of %d file generation(s) (%s): forgotten",
                     forget_after_s, len(old), ", ".join(o.path for o in old[:3]))
        return len(old)
