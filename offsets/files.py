"""FilePositions: how far each tailed file has been delivered to Kafka.

One record per device + inode: the delivered offset, the fingerprint of the
file's first bytes (its length and crc32, so that it is recomputed over the same
range), the path and when it was stored; then the file's generation (a number
that grows at each truncation, or when the inode holds another file: 0 in a
store written before generations existed), the crc32 of its first line (the
identity checksum; None in older stores) and, for a copy of another file (a
rotated copy read on from its original's position), the ``CopiedFrom`` whose
identity its lines carry.

Beside them, under their own prefixes:
- old generations (``Ended``): the end of a file's generation that a truncation
  (or a new file on the inode) closed, kept until a copy of it is found or
  forget_after_s passes: its identity, the first bytes it had, how far it was
  delivered;
- the next generation of a device + inode whose position was forgotten, so that
  a new file on a reused inode never gets an identity sent before.

These are numbers only: what they mean (when a stored position applies to a
file, what a copy is) is decided by shipper/files/identity.py and shipper/files/copies.py.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Union

import msgspec

from .db import Batch, StateDB

_PREFIX = b"fp/"
_ENDED = b"fe/"
_NEXT_GEN = b"fg/"


class _Src(msgspec.Struct, array_like=True):
    dev: int
    ino: int
    gen: int
    ident: Optional[int]
    path: Any


class _Rec(msgspec.Struct, array_like=True):
    path: Any  # str; bytes (as os.fsencode gives them) for a file name that is not UTF-8
    offset: int
    fp_len: int
    fp_crc: int
    updated_at: float
    gen: int = 0  # absent in stores written before generations: 0
    ident: Optional[int] = None
    src: Optional[_Src] = None


class _End(msgspec.Struct, array_like=True):
    ident: Optional[int]
    fp_len: int
    fp_crc: int
    head: bytes
    end: int
    path: Any
    updated_at: float


@dataclass(frozen=True)
class CopiedFrom:
    """The file whose lines a copy holds: its identity is what the copy's lines carry."""

    dev: int
    ino: int
    gen: int
    ident: int | None
    path: str


@dataclass(frozen=True)
class FilePosition:
    dev: int
    ino: int
    fp_len: int
    fp_crc: int
    path: str
    offset: int
    updated_at: float
    gen: int = 0
    ident: int | None = None
    src: CopiedFrom | None = None


@dataclass(frozen=True)
class Ended:
    """A generation of a file that ended (truncated, or its inode reused), waiting for a copy."""

    dev: int
    ino: int
    gen: int
    ident: int | None
    fp_len: int
    fp_crc: int
    head: bytes  # its first bytes as read (may be empty: only the fingerprint is known)
    end: int  # delivered up to here
    path: str
    updated_at: float


def _key(dev: int, ino: int) -> bytes:
    return _PREFIX + struct.pack(">QQ", dev, ino)


def _stored_path(path: str) -> Union[str, bytes]:
    try:
        path.encode()
        return path
    except UnicodeEncodeError:  # not UTF-8: Python keeps its bytes as surrogate escapes
        return os.fsencode(path)


def _path(v: Union[str, bytes]) -> str:
    return v if type(v) is str else os.fsdecode(v)


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(_Rec)
_dec_end = msgspec.msgpack.Decoder(_End)


def _position(dev: int, ino: int, r: _Rec) -> FilePosition:
    s = r.src
    src = None if s is None else CopiedFrom(s.dev, s.ino, s.gen, s.ident, _path(s.path))
    return FilePosition(dev, ino, r.fp_len, r.fp_crc, _path(r.path), r.offset, r.updated_at, r.gen, r.ident, src)


class FilePositions:
    def __init__(self, db: StateDB):
        self.db = db

    def get(self, dev: int, ino: int) -> FilePosition | None:
        v = self.db.get(_key(dev, ino))
        if v is None:
            return None
        return _position(dev, ino, _dec.decode(v))

    def put_many(self, positions: Iterable[FilePosition], batch: Batch | None = None, sync: bool = False) -> None:
        b = batch or Batch()
        for p in positions:
            s = p.src
            src = None if s is None else _Src(s.dev, s.ino, s.gen, s.ident, _stored_path(s.path))
            b.put(_key(p.dev, p.ino), _enc.encode(_Rec(_stored_path(p.path), p.offset, p.fp_len, p.fp_crc,
                                                       p.updated_at, p.gen, p.ident, src)))
        if batch is None:
            self.db.write(b, sync=sync)

    def put(self, pos: FilePosition, sync: bool = False) -> None:
        self.put_many([pos], sync=sync)

    def forget(self, dev: int, ino: int, next_gen: int | None = None) -> None:
        """Forget a position; ``next_gen``: the generation a new file on that inode starts at."""
        b = Batch()
        b.delete(_key(dev, ino))
        if next_gen is not None:
            b.put(_NEXT_GEN + struct.pack(">QQ", dev, ino), struct.pack(">Q", next_gen))
        self.db.write(b)

    def next_gen(self, dev: int, ino: int) -> int:
        """The first generation of a new file on an inode whose position was forgotten (0: none was)."""
        v = self.db.get(_NEXT_GEN + struct.pack(">QQ", dev, ino))
        return 0 if v is None else struct.unpack(">Q", v)[0]

    def all(self) -> list[FilePosition]:
        out = []
        for k, v in self.db.scan(_PREFIX):
            dev, ino = struct.unpack(">QQ", k[len(_PREFIX):])
            out.append(_position(dev, ino, _dec.decode(v)))
        return out

    # ------------------------------------------------------------ ended generations
    def put_ended(self, ended: Iterable[Ended], gone: Iterable[tuple[int, int, int]] = (),
                  batch: Batch | None = None) -> None:
        """Store ended generations and forget those ``gone`` ((dev, ino, gen): claimed by a copy, or old)."""
        b = batch or Batch()
        for e in ended:
            b.put(_ENDED + struct.pack(">QQQ", e.dev, e.ino, e.gen),
                  _enc.encode(_End(e.ident, e.fp_len, e.fp_crc, e.head, e.end, _stored_path(e.path),
                                   e.updated_at)))
        for dev, ino, gen in gone:
            b.delete(_ENDED + struct.pack(">QQQ", dev, ino, gen))
        if batch is None:
            self.db.write(b)

    def ended(self) -> list[Ended]:
        out = []
        for k, v in self.db.scan(_ENDED):
            dev, ino, gen = struct.unpack(">QQQ", k[len(_ENDED):])
            r = _dec_end.decode(v)
            out.append(Ended(dev, ino, gen, r.ident, r.fp_len, r.fp_crc, r.head, r.end, _path(r.path),
                             r.updated_at))
        return out
