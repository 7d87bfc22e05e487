"""PartitionOffsets: (topic, partition) -> the next offset to consume."""

from __future__ import annotations

import struct
from typing import Iterable, Mapping

from .db import Batch, StateDB

_PREFIX = b"po/"
_Q = struct.Struct(">q")


def _key(topic: str, partition: int) -> bytes:
    return _PREFIX + topic.encode() + b"\x00" + struct.pack(">I", partition)


class PartitionOffsets:
    """Next offset per topic partition; several partitions update in one batch."""

    def __init__(self, db: StateDB):
        self.db = db

    def get(self, topic: str, partition: int) -> int | None:
        v = self.db.get(_key(topic, partition))
        return None if v is None else _Q.unpack(v)[0]

    def put_many(self, offsets: Mapping[tuple[str, int], int], batch: Batch | None = None, sync: bool = False) -> None:
        """Store ``{(topic, partition): next_offset}`` atomically."""
        b = batch or Batch()
        for (topic, partition), off in offsets.items():
            b.put(_key(topic, partition), _Q.pack(off))
        if batch is None:
            self.db.write(b, sync=sync)

    def put(self, topic: str, partition: int, offset: int, sync: bool = False) -> None:
        self.put_many({(topic, partition): offset}, sync=sync)

    def forget(self, keys: Iterable[tuple[str, int]]) -> None:
        b = Batch()
        for topic, partition in keys:
            b.delete(_key(topic, partition))
        self.db.write(b)

    def all(self) -> dict[tuple[str, int], int]:
        out = {}
        for k, v in self.db.scan(_PREFIX):
            topic, part = k[len(_PREFIX):-5], k[-4:]
            out[(topic.decode(), struct.unpack(">I", part)[0])] = _Q.unpack(v)[0]
        return out
