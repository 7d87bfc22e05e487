"""``shipper status``: the stored positions next to the files as they are now.

Opens the position store read-only, so it works while ``shipper tail`` runs (it
sees what was saved up to the last checkpoint, at most checkpoint_interval_s old).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from offsets import FilePositions, StateDB

from shipper.config import db_path
from shipper.files.identity import file_identity, identity_crc


@dataclass
class FileStatus:
    path: str
    identity: str
    delivered: int
    size: int | None  # None: no longer at that path (rotated away or deleted)
    percent: float | None
    updated_at: float

    def as_json(self) -> dict:
        return asdict(self)


def _identity(p, crc: int | None) -> str:
    """The identity the lines of the file carry (its original's, for a copy)."""
    s = p.src
    if s is not None:
        return file_identity(s.dev, s.ino, s.ident if s.ident is not None else crc if crc is not None else p.fp_crc,
                             s.gen)
    return file_identity(p.dev, p.ino, crc if crc is not None else p.fp_crc, p.gen)


def _current(p) -> tuple[int | None, str]:
    """(size, identity) of the file the position belongs to, if it is still at its path."""
    stored = _identity(p, p.ident)
    try:
        fd = os.open(p.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None, stored
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (p.dev, p.ino):
            return None, stored
        crc = identity_crc(fd)
        return st.st_size, _identity(p, p.ident if p.ident is not None else crc)
    finally:
        os.close(fd)


def read_status(state_dir: Path) -> list[FileStatus]:
    db = StateDB(db_path(state_dir), "shipper", read_only=True)  # StateMissing says so in one line
    try:
        positions = FilePositions(db).all()
    finally:
        db.close()
    out = []
    for p in positions:
        size, ident = _current(p)
        if size is None:
            pct = None
        elif size == 0:
            pct = 100.0
        else:
            pct = min(100.0, 100.0 * p.offset / size)
        out.append(FileStatus(p.path, ident, p.offset, size, pct, p.updated_at))
    out.sort(key=lambda s: s.path)
    return out
