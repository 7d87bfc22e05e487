"""FailureQueue: a durable FIFO of events that could not be processed.

Each entry keeps the original payload (snappy-compressed), the Kafka headers
and source position it came from, a reason, and retry bookkeeping. Entries are
keyed by a monotonically increasing sequence number; the count lives in its own
key, updated in the same write batch as the entries, so ``count()`` is O(1)
and a crash never leaves it out of step.

Beside each entry, an index key ordered by the time it is next due
(``not_before``) lets the retry loop find the due entries without reading
(and decompressing) every entry; a store written before the index existed
gets it built once, when it is first opened for writing.

A reason is ``"<code>: <detail>"``; ``count_by_reason`` and ``clear(reason=)``
work on the code (the part before the first colon).
"""

from __future__ import annotations

import struct
import time
from collections import Counter
from typing import Iterable, Optional

import msgspec
import snappy

from .db import Batch, StateDB

_ENTRY = b"fq/e/"
_DUE = b"fq/d/"  # + due time (ms) + sequence: b""
_COUNT = b"fq/m/count"
_NEXT = b"fq/m/next"
_INDEXED = b"fq/m/due-index"
_ROUND = b"fq/m/round"  # a retry round to a Kafka output: its entries and the output's ends before it
_Q = struct.Struct(">Q")
_QQ = struct.Struct(">QQ")


class FailedEvent(msgspec.Struct):
    """One failed event as pushed (payload uncompressed here)."""

    payload: bytes
    reason: str
    topic: str = ""
    partition: int = -1
    offset: int = -1
    headers: Optional[list[tuple[str, Optional[bytes]]]] = None  # Kafka allows a header without a value
    timestamp: int = 0  # Kafka message timestamp (ms), 0 when unknown


class Entry(msgspec.Struct, array_like=True):
    payload: bytes  # snappy-compressed on disk, plain once read
    reason: str
    topic: str
    partition: int
    offset: int
    headers: Optional[list[tuple[str, Optional[bytes]]]]
    timestamp: int
    attempts: int
    first_failed: float
    last_failed: float
    not_before: float
    seq: int = 0  # the key; not stored in the value

    @property
    def code(self) -> str:
        return reason_code(self.reason)


def reason_code(reason: str) -> str:
    return reason.split(":", 1)[0].strip()


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(Entry)


def _key(seq: int) -> bytes:
    return _ENTRY + _Q.pack(seq)


def _due_key(not_before: float, seq: int) -> bytes:
    return _DUE + _QQ.pack(max(0, int(not_before * 1000)), seq)


class FailureQueue:
    def __init__(self, db: StateDB):
        self.db = db
        c = db.get(_COUNT)
        n = db.get(_NEXT)
        self._count = 0 if c is None else _Q.unpack(c)[0]
        self._next = 1 if n is None else _Q.unpack(n)[0]
        if not db.read_only and db.get(_INDEXED) is None:
            self._build_index()

    def _build_index(self) -> None:
        b = Batch()
        for k, v in self.db.scan(_ENTRY):
            b.put(_due_key(_dec.decode(v).not_before, _Q.unpack(k[len(_ENTRY):])[0]), b"")
        b.put(_INDEXED, b"1")
        self.db.write(b, sync=True)

    # -- writes ------------------------------------------------------------------
    def _add(self, b: Batch, e: Entry, seq: int) -> None:
        stored = msgspec.structs.replace(e, payload=snappy.compress(e.payload), seq=0)
        b.put(_key(seq), _enc.encode(stored))
        b.put(_due_key(e.not_before, seq), b"")

    def _set_counters(self, b: Batch, count: int, nxt: int) -> None:
        b.put(_COUNT, _Q.pack(count))
        b.put(_NEXT, _Q.pack(nxt))

        def apply():
            self._count, self._next = count, nxt

        b.on_commit(apply)

    def push_many(self, events: Iterable[FailedEvent], batch: Batch | None = None,
                  sync: bool = False, now: float | None = None) -> int:
        """Append events; with ``batch`` they are written when that batch is."""
        t = time.time() if now is None else now
        b = batch or Batch()
        seq = self._next
        n = 0
        for ev in events:
            e = Entry(ev.payload, ev.reason, ev.topic, ev.partition, ev.offset, ev.headers,
                      ev.timestamp, 0, t, t, t)
            self._add(b, e, seq)
            seq += 1
            n += 1
        if n:
            self._set_counters(b, self._count + n, seq)
            if batch is None:
                self.db.write(b, sync=sync)
        return n

    # -- a retry round whose lines go into a Kafka transaction -----------------------
    def put_round(self, seqs: list[int], ends: list) -> None:
        """Before the round's transaction commits: its entries, and where the
        output's partitions ended before it ([topic, partition, offset], ...)."""
        b = Batch()
        b.put(_ROUND, msgspec.msgpack.encode({"seqs": list(seqs), "ends": [list(e) for e in ends]}))
        self.db.write(b, sync=True)

    def round(self) -> Optional[tuple[list[int], list]]:
        """The round a crash interrupted (its entries, the output's ends before it), or None."""
        v = self.db.get(_ROUND)
        if v is None:
            return None
        d = msgspec.msgpack.decode(v)
        return d["seqs"], [tuple(e) for e in d["ends"]]

    def end_round(self, seqs: Iterable[int] = (), sync: bool = True) -> int:
        """The round is over: remove its entries written (``seqs``) and forget it, in one write."""
        b = Batch()
        n = self._ack_into(b, seqs)
        b.delete(_ROUND)
        self.db.write(b, sync=sync)
        return n

    def push(self, ev: FailedEvent, sync: bool = False) -> int:
        """Append one event; returns its sequence number once it is durable."""
        seq = self._next
        self.push_many([ev], sync=sync)
        return seq

    def ack(self, seqs: Iterable[int], sync: bool = False) -> int:
        """Remove entries (processed successfully). Unknown sequences are ignored."""
        b = Batch()
        n = self._ack_into(b, seqs)
        if n:
            self.db.write(b, sync=sync)
        return n

    def _ack_into(self, b: Batch, seqs: Iterable[int]) -> int:
        n = 0
        for s in seqs:
            k = _key(s)
            v = self.db.get(k)
            if v is not None:
                b.delete(k)
                b.delete(_due_key(_dec.decode(v).not_before, s))
                n += 1
        if n:
            self._set_counters(b, self._count - n, self._next)
        return n

    def requeue(self, entry: Entry, reason: str, not_before: float, sync: bool = False,
                now: float | None = None) -> int:
        """Move an entry to the back with attempts+1, a new reason and retry time."""
        t = time.time() if now is None else now
        b = Batch()
        old = _key(entry.seq)
        v = self.db.get(old)
        if v is None:
            return 0
        b.delete(old)
        b.delete(_due_key(_dec.decode(v).not_before, entry.seq))
        seq = self._next
        e = msgspec.structs.replace(entry, reason=reason, attempts=entry.attempts + 1,
                                    last_failed=t, not_before=not_before)
        self._add(b, e, seq)
        self._set_counters(b, self._count, seq + 1)
        self.db.write(b, sync=sync)
        return seq

    def clear(self, reason: str | None = None) -> int:
        """Remove every entry (or those whose reason code is ``reason``)."""
        removed = 0
        while True:
            b = Batch()
            n = 0
            for k, v in self.db.scan(_ENTRY):
                e = _dec.decode(v)
                if reason is not None and reason_code(e.reason) != reason:
                    continue
                b.delete(k)
                b.delete(_due_key(e.not_before, _Q.unpack(k[len(_ENTRY):])[0]))
                n += 1
                if n >= 10_000:
                    break
            if not n:
                return removed
            self._set_counters(b, self._count - n, self._next)
            self.db.write(b, sync=True)
            removed += n

    # -- reads -------------------------------------------------------------------
    def due(self, now: float, limit: int) -> list[Entry]:
        """Up to ``limit`` entries whose retry time has come, the longest due
        first; only those are read and decompressed."""
        out = []
        stale = []
        now_ms = now * 1000
        for k, _ in self.db.scan(_DUE):
            ms, seq = _QQ.unpack(k[len(_DUE):])
            if ms > now_ms:
                break
            v = self.db.get(_key(seq))
            if v is None:
                stale.append(k)  # its entry is gone: the index key goes too
                continue
            e = _dec.decode(v)
            e.seq = seq
            e.payload = snappy.decompress(e.payload)
            out.append(e)
            if len(out) >= limit:
                break
        if stale:
            b = Batch()
            for k in stale:
                b.delete(k)
            self.db.write(b)
        return out

    @property
    def next_seq(self) -> int:
        """The sequence the next entry will get (as this process last wrote it)."""
        return self._next

    @property
    def size(self) -> int:
        """Entries in the queue, as this process last wrote them (no store read)."""
        return self._count

    def count(self) -> int:
        if self.db.read_only:
            c = self.db.get(_COUNT)
            return 0 if c is None else _Q.unpack(c)[0]
        return self._count

    def peek(self, n: int = 100, after: int = 0) -> list[Entry]:
        """The first ``n`` entries in FIFO order (with sequence above ``after``)."""
        out = []
        for k, v in self.db.scan(_ENTRY, start=_key(after + 1) if after else None):
            e = _dec.decode(v)
            e.seq = _Q.unpack(k[len(_ENTRY):])[0]
            e.payload = snappy.decompress(e.payload)
            out.append(e)
            if len(out) >= n:
                break
        return out

    def __iter__(self):
        after = 0
        while True:
            chunk = self.peek(1000, after)
            if not chunk:
                return
            yield from chunk
            after = chunk[-1].seq

    def count_by_reason(self) -> dict[str, int]:
        c: Counter[str] = Counter()
        for _, v in self.db.scan(_ENTRY):
            c[reason_code(_dec.decode(v).reason)] += 1
        return dict(c.most_common())
