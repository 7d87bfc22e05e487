"""Exactly once: per event source, the highest position mtga has handled.

A source is a shipper's file (host and file identity) or a Kafka partition; its
position grows with every event (the line's byte offset, or the Kafka offset),
and the event's ``#uuid`` carries both (sink/ta/uuids.py). An event at or below
its source's mark was handled before (written, queued in the failure queue, or
filtered out): it is a copy, sent again by a shipper after a SIGKILL or consumed
again by mtga after one, and it is skipped and counted (``events_duplicate``).

The marks are the loop's (this module); the transform's processes keep a cache
and the loop checks, batch by batch and in order, that no chunk handled a
position at or below a mark (sink/pipeline/workers.py). A mark moves when its batch is
delivered, and is stored in the checkpoint's RocksDB batch with the partition
offsets, together with the recovery record (offsets.SourceMarks): after an
unclean stop, sink/pipeline/recovery.py raises the marks from what the output files and
the failure queue got after that checkpoint, before anything is consumed.

The recovery finds exactly which events were handled after the checkpoint:
their positions above their source's mark are kept as ``done`` (and stored)
until the mark passes them, and only those are skipped when they come again. A
batch's events are not handled in position order (the failures are queued
first, then one write per app), so an event below one handled after the
checkpoint may still be to write.

Marks of sources unseen for ``exactly_once.forget_after_s`` are forgotten, so
the state stays bounded (about 40 bytes a source).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable, Optional

from offsets import Batch, SourceMarks, StateDB
from sink.ta.uuids import current_key

if TYPE_CHECKING:
    from mulog.runtime.instrument import Instruments

log = logging.getLogger("mtga")

SWEEP_S = 3600.0  # how often marks are looked at for expiry


class Marks:
    def __init__(self, db: StateDB, forget_after_s: float, inst: "Instruments"):
        self.store = SourceMarks(db)
        self.marks: dict[bytes, int] = {}  # read by the pool
        self.seen: dict[bytes, float] = {}
        self.old_form: list[bytes] = []  # keys stored in the old form (sink/ta/uuids.py): rewritten, then forgotten
        for k, (pos, seen) in self.store.all().items():
            key = current_key(k)
            if key != k:
                self.old_form.append(k)
            if pos > self.marks.get(key, -1):
                self.marks[key] = pos
            self.seen[key] = max(seen, self.seen.get(key, seen))
        self.changed: set[bytes] = {current_key(k) for k in self.old_form}
        # source key -> positions above its mark handled before an unclean stop (read by the pool; changed in place)
        self.done: dict[bytes, set[int]] = self.store.done()
        self.done_changed: set[bytes] = set()
        self.forget_after_s = forget_after_s
        self.next_sweep = time.monotonic() + SWEEP_S
        self.duplicates = inst.events_duplicate
        self.expired = inst.marks_expired

    def advance(self, sources: dict, now: Optional[float] = None) -> None:
        """A batch was delivered: ``sources`` maps a source key to the (first,
        last) position it handled."""
        now = time.time() if now is None else now
        marks, seen, changed = self.marks, self.seen, self.changed
        done = self.done
        for key, (_first, last) in sources.items():
            if last > marks.get(key, -1):
                marks[key] = last
                seen[key] = now
                changed.add(key)
                if done and key in done:
                    d = done[key]
                    d.difference_update([p for p in d if p <= last])
                    self.done_changed.add(key)
                    if not d:
                        del done[key]

    def handled(self, key: bytes, pos: int, now: Optional[float] = None) -> bool:
        """The recovery found the event at ``pos`` handled after the checkpoint."""
        if pos <= self.marks.get(key, -1):
            return False
        d = self.done.setdefault(key, set())
        if pos in d:
            return False
        d.add(pos)
        self.seen[key] = time.time() if now is None else now
        self.done_changed.add(key)
        return True

    def write(self, batch: Batch) -> Callable[[], None]:
        """Put the changed marks (and the expired ones' deletion) into the
        checkpoint's batch; returns what to do once it is written."""
        changed = self.changed
        self.store.put_many(((k, self.marks[k], self.seen[k]) for k in changed if k in self.marks), batch)
        done_changed = set(self.done_changed)
        for k in done_changed:
            self.store.put_done(k, self.done.get(k, ()), batch)
        if self.old_form:
            self.store.forget_many(self.old_form, batch)  # (put again in the current form above)
        gone: list[bytes] = []
        if time.monotonic() >= self.next_sweep:
            self.next_sweep = time.monotonic() + SWEEP_S
            cutoff = time.time() - self.forget_after_s
            gone = [k for k, t in self.seen.items() if t < cutoff and k not in changed]
            self.store.forget_many(gone, batch)
            for k in gone:
                if k in self.done:
                    self.store.put_done(k, (), batch)
        done = set(changed)

        def written() -> None:
            self.changed -= done
            self.done_changed -= done_changed
            self.old_form = []
            for k in gone:
                self.marks.pop(k, None)
                self.seen.pop(k, None)
                self.done.pop(k, None)
            if gone:
                self.expired.add(len(gone))
                log.info("forgot the marks of %d source(s) unseen for %.0fs", len(gone), self.forget_after_s)

        return written
