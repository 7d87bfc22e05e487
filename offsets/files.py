"""FilePositions: how far each tailed file has been delivered to Kafka.

One record per device + inode: the delivered offset, the fingerprint of the
file's first bytes (its length and crc32, so that it is recomputed over the same
range), the path and when it was stored. These are numbers only: what they mean
(when a stored position applies to a file) is decided by shipper/identity.py.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any, Iterable, Union

import msgspec

from .db import Batch, StateDB

_PREFIX = b"fp/"


class _Rec(msgspec.Struct, array_like=True):
    path: Any  # str; bytes (as os.fsencode gives them) for a file name that is not UTF-8
    offset: int
    fp_len: int
    fp_crc: int
    updated_at: float


@dataclass(frozen=True)
class FilePosition:
    dev: int
    ino: int
    fp_len: int
    fp_crc: int
    path: str
    offset: int
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


class FilePositions:
    def __init__(self, db: StateDB):
        self.db = db

    def get(self, dev: int, ino: int) -> FilePosition | None:
        v = self.db.get(_key(dev, ino))
        if v is None:
            return None
        r = _dec.decode(v)
        return FilePosition(dev, ino, r.fp_len, r.fp_crc, _path(r.path), r.offset, r.updated_at)

    def put_many(self, positions: Iterable[FilePosition], batch: Batch | None = None, sync: bool = False) -> None:
        b = batch or Batch()
        for p in positions:
            b.put(_key(p.dev, p.ino), _enc.encode(_Rec(_stored_path(p.path), p.offset, p.fp_len, p.fp_crc,
                                                       p.updated_at)))
        if batch is None:
            self.db.write(b, sync=sync)

    def put(self, pos: FilePosition, sync: bool = False) -> None:
        self.put_many([pos], sync=sync)

    def forget(self, dev: int, ino: int) -> None:
        b = Batch()
        b.delete(_key(dev, ino))
        self.db.write(b)

    def all(self) -> list[FilePosition]:
        out = []
        for k, v in self.db.scan(_PREFIX):
            dev, ino = struct.unpack(">QQ", k[len(_PREFIX):])
            r = _dec.decode(v)
            out.append(FilePosition(dev, ino, r.fp_len, r.fp_crc, _path(r.path), r.offset, r.updated_at))
        return out
