"""SourceMarks: per event source, the highest position mtga handled (written or
queued), with when it last moved; and the recovery record of the last
checkpoint: the length of every output file then, the failure queue's next
sequence then, and whether the last stop was clean.

Keys: ``mk/s/<source key>`` -> (position, last moved), ``mk/d/<source key>`` ->
the positions above its mark handled after the checkpoint before an unclean stop
(found by the recovery), and ``mk/r/...``. All are written in the checkpoint's
batch, with the partition offsets they go with.
"""

from __future__ import annotations

import struct
from typing import Iterable, Optional

import msgspec

from .db import Batch, StateDB

_MARK = b"mk/s/"
_DONE = b"mk/d/"
_LENGTHS = b"mk/r/lengths"
_FQ_NEXT = b"mk/r/fq-next"
_TAKEN = b"mk/r/taken"  # when the checkpoint was taken (ns)
_CLEAN = b"mk/r/clean"
_QD = struct.Struct(">qd")
_Q = struct.Struct(">q")


class Recovery(msgspec.Struct):
    lengths: dict[str, int]  # output file (relative to the output folder) -> length at the checkpoint
    fq_next: int  # the failure queue's next sequence at the checkpoint
    taken_ns: int  # when the checkpoint was taken


class SourceMarks:
    def __init__(self, db: StateDB):
        self.db = db

    def all(self) -> dict[bytes, tuple[int, float]]:
        return {k[len(_MARK):]: _QD.unpack(v) for k, v in self.db.scan(_MARK)}

    def put_many(self, marks: Iterable[tuple[bytes, int, float]], batch: Batch) -> None:
        for key, pos, seen in marks:
            batch.put(_MARK + key, _QD.pack(pos, seen))

    def forget_many(self, keys: Iterable[bytes], batch: Batch) -> None:
        for key in keys:
            batch.delete(_MARK + key)

    def done(self) -> dict[bytes, set[int]]:
        return {k[len(_DONE):]: set(msgspec.msgpack.decode(v, type=list[int])) for k, v in self.db.scan(_DONE)}

    def put_done(self, key: bytes, positions: set, batch: Batch) -> None:
        if positions:
            batch.put(_DONE + key, msgspec.msgpack.encode(sorted(positions)))
        else:
            batch.delete(_DONE + key)

    # -- the recovery record ---------------------------------------------------------
    def recovery(self) -> Optional[Recovery]:
        v = self.db.get(_LENGTHS)
        if v is None:
            return None
        n = self.db.get(_FQ_NEXT)
        t = self.db.get(_TAKEN)
        return Recovery(msgspec.msgpack.decode(v, type=dict[str, int]), _Q.unpack(n)[0] if n else 1,
                        _Q.unpack(t)[0] if t else 0)

    def put_recovery(self, r: Recovery, batch: Batch) -> None:
        batch.put(_LENGTHS, msgspec.msgpack.encode(r.lengths))
        batch.put(_FQ_NEXT, _Q.pack(r.fq_next))
        batch.put(_TAKEN, _Q.pack(r.taken_ns))

    def clean(self) -> bool:
        return self.db.get(_CLEAN) is not None

    def set_clean(self, clean: bool) -> None:
        b = Batch()
        if clean:
            b.put(_CLEAN, b"1")
        else:
            b.delete(_CLEAN)
        self.db.write(b, sync=True)
