"""What makes a file the same file, in one place.

A file is known by device + inode (the key of its tailer and of its stored
position). Two checksums of its first bytes go with it:

- the *verification* fingerprint ``(fp_len, fp_crc)`` covers the first bytes read
  so far and grows with the file up to FINGERPRINT_BYTES; it is stored with the
  position (offsets.FilePositions keeps the numbers). A stored position applies
  to the file at that device + inode only if the file's first ``fp_len`` bytes
  still have that checksum: a new file that reuses an old inode starts afresh.
- the *identity* checksum covers the file's first line (at most
  FINGERPRINT_BYTES of it); it no longer changes once that line is complete,
  which happens before any line is sent. ``file_identity(dev, ino, crc)`` is the
  identity sent with every line (Kafka key and ``file`` header), the same before
  and after a restart, so a consumer can derive stable ids from
  (host, file, offset).

A file's *generation* is part of its identity: it grows by one at each
truncation (copytruncate) and when the inode holds a new file, so that the
offsets of one identity only ever grow. Generation 0 is written as before
generations existed (``dev:ino:crc``), the next ones as ``dev:ino:crc:g<N>``.

A *copy* of a file (logrotate's copytruncate copies, then truncates) is told by
its first bytes: equal to the first bytes the shipper had read of a generation
that has since ended, over at least MIN_COPY_BYTES (shipper/files/copies.py). Files
that start with a compression format's magic number are not logs.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from offsets import FilePosition

    from shipper.config import Input
    from shipper.files.acks import FileAcks

FINGERPRINT_BYTES = 1024
# a copy is recognised only over this many first bytes at least: fewer could be
# a header every file of the folder starts with
MIN_COPY_BYTES = 256
# magic numbers of compressed files (gzip, bzip2, xz, zstd, lz4, zip): not logs
COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18", b"PK\x03\x04")

Key = tuple[int, int]  # (device, inode)


def key_of(st: os.stat_result) -> Key:
    return st.st_dev, st.st_ino


def fingerprint(fd_or_path, length: int = FINGERPRINT_BYTES) -> tuple[int, int]:
    """(length covered, crc32) of the first ``length`` bytes of a file."""
    if isinstance(fd_or_path, int):
        data = os.pread(fd_or_path, length, 0)
    else:
        with open(fd_or_path, "rb") as f:
            data = f.read(length)
    return len(data), zlib.crc32(data)


def same_start(fd: int, fp: tuple[int, int]) -> bool:
    """Whether the file's first ``fp[0]`` bytes still have the checksum ``fp[1]``."""
    return fingerprint(fd, fp[0]) == fp


def identity_crc(fd: int) -> int | None:
    """crc32 of the file's first line (at most FINGERPRINT_BYTES); None while that
    line is still incomplete."""
    data = os.pread(fd, FINGERPRINT_BYTES, 0)
    nl = data.find(b"\n")
    if nl >= 0:
        return zlib.crc32(data[: nl + 1])
    if len(data) >= FINGERPRINT_BYTES:
        return zlib.crc32(data)
    return None


def file_identity(dev: int, ino: int, crc: int, gen: int = 0) -> str:
    """``<device>:<inode>:<crc32 of the first line>``, in hex, then ``:g<generation>``
    from generation 1 on."""
    return f"{dev:x}:{ino:x}:{crc:08x}" if not gen else f"{dev:x}:{ino:x}:{crc:08x}:g{gen}"


def compressed(head: bytes) -> bool | None:
    """True when ``head`` (a file's first bytes) starts like a compressed file,
    None while too few bytes are there to tell, else False."""
    for magic in COMPRESSED:
        n = min(len(head), len(magic))
        if head[:n] == magic[:n]:
            return True if n == len(magic) else None
    return False


def stored_start(stored: "FilePosition | None", fd: int, size: int) -> tuple[int | None, str]:
    """Where a stored position lets the file open as ``fd`` (``size`` bytes) be
    read from: (offset, how), or (None, why not) when it does not apply."""
    if stored is None:
        return None, ""
    if not same_start(fd, (stored.fp_len, stored.fp_crc)):
        return None, "new file (its inode held another file before)"
    if size < stored.offset and stored.src is None:  # a copy does not shrink: nothing left to read of it
        return None, f"truncated while stopped (size {size} < stored offset {stored.offset})"
    return stored.offset, "resuming"


@dataclass(frozen=True)
class Generation:
    """A generation of a file as it ended (a truncation, or its inode taken by
    another file): what shipper/files/copy_rules.py needs to follow its copy."""

    dev: int
    ino: int
    gen: int
    ident: Optional[int]
    fp: tuple[int, int]  # fingerprint: (length, crc32) of its first bytes
    head: bytes  # its first bytes, as read
    end: int  # where its reading ended
    acks: "FileAcks"  # its chunks still pending with Kafka
    path: str
    log_name: Optional[str]
    input: "Input"
